"""The colour-shape maze: N procgen-style mazes stepping in lockstep as torch tensors.

All state lives on one device; ``step`` makes no host-device copy. Levels come from a
level sampler (training: seeded uniform draws from a range; evaluation: a fixed list in
order) and are generated once per sampler as a bank (see ``gmg.training.levels``). Finished
episodes reset automatically in the same step (procgen's convention): the returned
observation is the new level's first frame and ``info`` describes the finished episode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch

from gmg.training.errors import UserError
from gmg.training.levels import (
    WORLD_DIM,
    Levels,
    check_world_dim,
    generate,
    path_lengths,
    sample_training_levels,
    start_cell,
)
from gmg.training.objects import ObjectSpec, parse_object
from gmg.training.procgen_levels import EVAL_LEVELS, generate_procgen
from gmg.training.procgen_levels import EVAL_START as PROCGEN_EVAL_START
from gmg.training.render import make_renderer

NUM_ACTIONS = 15
# the maze's defaults, one definition each (WORLD_DIM, the side in cells, lives in levels.py):
TIMEOUT = 500  # steps before an episode is cut off
OBS_SIZE = 64  # observation side in pixels (EnvConfig.size, TrainConfig/ModelConfig.obs_size)
REWARD_GOAL, REWARD_OTHER = 10.0, -10.0
EVAL_START = 1_000_000_000  # evaluation level ids start here, disjoint from training ranges
# where levels come from: gmg's hash of the id, or the original's procgen generator seeded
# with it; the procgen source evaluates on the original's test levels 100,000-100,999
LEVEL_SOURCES = ("hashed", "procgen")
_GENERATORS = {"hashed": generate, "procgen": generate_procgen}
_EVAL_STARTS = {"hashed": EVAL_START, "procgen": PROCGEN_EVAL_START}
# procgen's 15 actions: 0-8 are (vx, vy) in {-1, 0, 1}^2 (x right, y up), 9-14 no-ops
ACTION_NAMES = (
    "left_down", "left", "left_up", "down", "noop", "up", "right_down", "right",
    "right_up", "d", "a", "w", "s", "q", "e",
)
# simplified moves for people: action index of each named move
MOVES = {"left": 1, "down": 3, "up": 5, "right": 7, "noop": 4}


def action_deltas(device: torch.device | str = "cpu") -> torch.Tensor:
    """int64 (15, 2): (d_row, d_col) of each action in the maze (diagonals go sideways)."""
    out = []
    for a in range(NUM_ACTIONS):
        vx, vy = (a // 3 - 1, a % 3 - 1) if a < 9 else (0, 0)
        if vx != 0:
            vy = 0
        out.append((-vy, vx))
    return torch.tensor(out, dtype=torch.int64, device=device)


def move(free: torch.Tensor, agent: torch.Tensor, mirrored: torch.Tensor, deltas: torch.Tensor,
         world_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The maze's move rule: (agent, mirrored) after moving by ``deltas`` (int64 (N, 2), rows of
    ``action_deltas``) from flat cell ``agent`` (N,) with facing ``mirrored`` (N,) in levels whose
    walkable cells are ``free`` (bool (N, W*W)). A wall or the border keeps the cell; any move with a
    rightward part mirrors the mouse and a leftward one unmirrors it, blocked or not (procgen's rule)."""
    w = world_dim
    r, c = agent // w, agent % w
    nr, nc = r + deltas[:, 0], c + deltas[:, 1]
    inside = (nr >= 0) & (nr < w) & (nc >= 0) & (nc < w)
    target = nr.clamp(0, w - 1) * w + nc.clamp(0, w - 1)
    ok = inside & free.gather(1, target[:, None])[:, 0]
    facing = torch.where(deltas[:, 1] > 0, True, torch.where(deltas[:, 1] < 0, False, mirrored))
    return torch.where(ok, target, agent), facing


class EnvError(UserError, ValueError):
    """A maze that cannot be built: no envs, no objects, no levels, a timeout under one step."""


def check_levels(levels: str) -> None:
    if levels not in LEVEL_SOURCES:
        raise EnvError(f"unknown levels {levels!r}: use {' or '.join(LEVEL_SOURCES)}")


def evaluation_start(levels: str = "hashed") -> int:
    """The first evaluation level id of a level source; every source has ``EVAL_LEVELS`` of them
    (1000: the original's test levels), ids ``evaluation_start(levels) + 0 .. EVAL_LEVELS - 1``."""
    check_levels(levels)
    return _EVAL_STARTS[levels]


def evaluation_ids(n: int = EVAL_LEVELS, levels: str = "hashed") -> torch.Tensor:
    """int64 (n,): the ids of the first ``n`` evaluation levels of the level source ``levels``."""
    start = evaluation_start(levels)
    return torch.arange(start, start + n)


def check_n_levels(n_levels: int) -> None:
    """One line unless 1 <= ``n_levels`` <= ``EVAL_LEVELS`` (a count of evaluation levels)."""
    if not 1 <= n_levels <= EVAL_LEVELS:
        raise EnvError(f"n_levels must be from 1 to {EVAL_LEVELS} (the fixed evaluation levels), got {n_levels}")


def check_level_index(level: int) -> None:
    """One line unless ``level`` indexes an evaluation level (0 .. ``EVAL_LEVELS`` - 1)."""
    if not 0 <= level < EVAL_LEVELS:
        raise EnvError(f"level must be one of the {EVAL_LEVELS} evaluation levels (0-{EVAL_LEVELS - 1}), got {level}")


class TrainingLevels:
    """Uniform draws from ``[start, start + num_levels)``; ``seed`` fixes the order."""

    def __init__(self, num_levels: int = 100_000, seed: int = 0, start: int = 0):
        if num_levels < 1:
            raise EnvError(f"num_levels must be at least 1, got {num_levels}")
        self.num_levels, self.seed, self.start = int(num_levels), int(seed), int(start)

    def ids(self) -> torch.Tensor:
        return torch.arange(self.start, self.start + self.num_levels)

    def rows(self, counters: torch.Tensor) -> torch.Tensor:
        """Bank row of the ``counters``-th level drawn."""
        return sample_training_levels(self.seed, counters, self.num_levels)


class EvaluationLevels:
    """A fixed list of level ids, used in order (and cycled); by default the first ``n``
    evaluation levels of the level source ``levels``."""

    def __init__(self, level_ids: Sequence[int] | torch.Tensor | None = None, n: int = EVAL_LEVELS,
                 levels: str = "hashed"):
        if level_ids is None:
            level_ids = evaluation_ids(n, levels)
        self.level_ids = torch.as_tensor(level_ids, dtype=torch.int64).reshape(-1)
        if self.level_ids.numel() == 0:
            raise EnvError("evaluation needs at least one level id")

    def ids(self) -> torch.Tensor:
        return self.level_ids

    def rows(self, counters: torch.Tensor) -> torch.Tensor:
        return counters % self.level_ids.numel()


@lru_cache(maxsize=8)
def _bank(kind: str, ids: tuple[int, ...], world_dim: int, n_objects: int, levels: str = "hashed") -> Levels:
    # a range is keyed by (start, stop), a list by its ids: cheap keys for the cache
    t = torch.arange(*ids) if kind == "range" else torch.tensor(ids, dtype=torch.int64)
    return _GENERATORS[levels](t, world_dim, n_objects)


def level_bank(sampler, world_dim: int, n_objects: int, device: torch.device, levels: str = "hashed") -> Levels:
    """Every level a sampler can draw from the level source ``levels``, generated once
    (cached per process on the CPU)."""
    check_levels(levels)
    if isinstance(sampler, TrainingLevels):
        bank = _bank("range", (sampler.start, sampler.start + sampler.num_levels), world_dim, n_objects, levels)
    else:
        bank = _bank("ids", tuple(int(i) for i in sampler.ids()), world_dim, n_objects, levels)
    return bank.to(device)


@dataclass(frozen=True)
class EnvConfig:
    """What makes one maze distribution: size, objects, background, timeout."""

    objects: tuple[str, ...] = ("yellow_line",)
    world_dim: int = WORLD_DIM
    size: int = OBS_SIZE
    background: str = "black"
    timeout: int = TIMEOUT
    # how frames are drawn: procgen's own drawing ("procgen") or area-averaged ("box", the
    # renderer of every agent trained before the field existed, so a config without it means box;
    # new training asks for procgen: ``TrainConfig.render``)
    render: str = "box"
    # where levels come from (LEVEL_SOURCES): "hashed" (gmg's, every agent trained before the
    # field existed) or "procgen" (the original's levels by id)
    levels: str = "hashed"

    def object_specs(self) -> tuple[ObjectSpec, ...]:
        return tuple(parse_object(o) for o in self.objects)


class MazeEnv:
    """``num_envs`` mazes on ``device``; obj1 is the goal (+10), others end the episode (-10).

    ``step(actions)`` takes int64 (N,) actions and returns
    ``obs`` uint8 (N, size, size, 3), ``reward`` float32 (N,), ``terminated`` and
    ``truncated`` bool (N,), and ``info``: a dict of (N,) tensors describing the
    finished episode where ``done`` (``level``, ``reached`` 0 = timeout / 1 = obj1 /
    2 = obj2, ``length``, ``path_len`` (N, K), the final ``agent`` cell and ``mirrored``)
    plus ``level_now`` of every env.

    With ``lazy`` (evaluation's first episodes, ``EvaluationLevels`` only) no frame is drawn
    unless asked: ``reset`` and ``step`` return ``None`` for ``obs``, ``observe(mask)`` draws the
    frames of the envs asked for (a policy that caches its logits per state needs few), the
    frames without the mouse are drawn once per level of the bank and shared by every env on
    it, and a finished env is not reset (the caller drops it with ``keep``). The frames drawn
    are the eager env's, pixel for pixel.
    """

    STATE = ("row", "agent", "mirrored", "steps", "counter")  # what a resumed run restores

    def __init__(
        self,
        num_envs: int,
        config: EnvConfig = EnvConfig(),
        levels: TrainingLevels | EvaluationLevels | None = None,
        device: torch.device | str = "cpu",
        lazy: bool = False,
    ):
        check_world_dim(config.world_dim)
        if lazy and not isinstance(levels, EvaluationLevels):
            raise EnvError("a lazy env plays a fixed list of evaluation levels: give EvaluationLevels")
        self.lazy = lazy
        self._level_static: torch.Tensor | None = None  # lazy: the bank's frames without the mouse
        if num_envs < 1:
            raise EnvError(f"num_envs must be at least 1, got {num_envs}")
        if config.timeout < 1:
            raise EnvError(f"timeout must be at least 1 step, got {config.timeout}")
        self.config = config
        self.num_envs = num_envs
        self.device = torch.device(device)
        # on an accelerator, redraw every env at a reset and select (no host sync in step); on the
        # CPU a data-dependent subset costs nothing extra. Both give the same frames (tested on CPU).
        self.redraw_all = self.device.type != "cpu"
        self.specs = config.object_specs()
        if not self.specs:
            raise EnvError("the maze needs at least one object (the goal)")
        self.sampler = levels if levels is not None else TrainingLevels()
        self.bank = level_bank(self.sampler, config.world_dim, len(self.specs), self.device, config.levels)
        self.renderer = make_renderer(config.render, config.world_dim, config.size, config.background, self.specs,
                                      self.device)
        self._deltas = action_deltas(self.device)
        self._world = config.world_dim
        self._rewards = torch.tensor(
            [REWARD_GOAL] + [REWARD_OTHER] * (len(self.specs) - 1), dtype=torch.float32, device=self.device
        )
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Restart the sampler (or load the given bank rows) in every env; first frames."""
        n, dev = self.num_envs, self.device
        if rows is None:
            rows = self._first_rows()
        else:
            self.counter = torch.zeros((), dtype=torch.int64, device=dev)
        self.row = rows.to(dev).clone()
        self.agent = torch.full((n,), start_cell(self._world), dtype=torch.int64, device=dev)
        self.mirrored = torch.zeros(n, dtype=torch.bool, device=dev)
        self.steps = torch.zeros(n, dtype=torch.int64, device=dev)
        if self.lazy:
            return None
        self.static = self.render_static(self.row)
        return self.observe()

    def state(self) -> dict:
        """What a resumed run needs to go on exactly where this one is."""
        return {k: getattr(self, k) for k in self.STATE}

    def load_state(self, state: dict) -> None:
        for k in self.STATE:
            setattr(self, k, state[k].to(self.device))
        if not self.lazy:
            self.static = self.render_static(self.row)

    def render_static(self, rows: torch.Tensor) -> torch.Tensor:
        """uint8: the frames of bank rows ``rows`` (int64 (N,)) without the mouse, flattened as
        ``renderer.with_agent`` takes them (what ``observe`` draws the mouse onto)."""
        b = self.bank
        bg = self.renderer.background_frames(b.background[rows], b.bg_offset[rows])
        wall = ~b.free[rows].reshape(rows.shape[0], -1)
        return self.renderer.static(wall, b.objects[rows], bg)

    def bank_static(self, rows: torch.Tensor) -> torch.Tensor:
        """``render_static`` of bank rows ``rows``, each level drawn once per call; a lazy env
        keeps what it drew and draws only rows it has not seen (a rollout of level 999 draws one)."""
        levels, which = torch.unique(rows, return_inverse=True)
        if not self.lazy:
            return self.render_static(levels)[which]
        if self._level_static is None:
            self._level_drawn = torch.zeros(len(self.bank), dtype=torch.bool, device=self.device)
        new = levels[~self._level_drawn[levels]]
        if new.numel():
            drawn = self.render_static(new)
            if self._level_static is None:
                self._level_static = torch.empty(len(self.bank), *drawn.shape[1:], dtype=drawn.dtype,
                                                 device=self.device)
            self._level_static[new] = drawn
            self._level_drawn[new] = True
        return self._level_static[rows]

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the envs where ``mask`` (bool (N,)) holds, in order; the others are dropped
        for good (evaluation plays each env's first episode and stops stepping finished ones)."""
        names = ("row", "agent", "mirrored", "steps") + (() if self.lazy else ("static",))  # lazy: static per level
        for name in names:
            setattr(self, name, getattr(self, name)[mask])
        self.num_envs = int(self.row.shape[0])

    def place_objects(self, cells: torch.Tensor | Sequence[int]) -> None:
        """Put the objects on flat cells ``cells`` (int64 (K,): obj1..objK) in every level of
        this env and redraw; the level bank is replaced, never edited (it is cached and shared).
        ``path_len`` is recomputed for the new cells."""
        objects = torch.as_tensor(cells, dtype=torch.int64, device=self.device).reshape(1, -1)
        if objects.shape[1] != len(self.specs):
            raise EnvError(f"{objects.shape[1]} cells for the {len(self.specs)} objects of this maze")
        objects = objects.expand(len(self.bank), -1).clone()
        self.bank = dataclasses.replace(self.bank, objects=objects, path_len=path_lengths(self.bank.free, objects))
        self._level_static = None
        if not self.lazy:
            self.static = self.render_static(self.row)

    def observe(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Current frames, uint8 (N, size, size, 3), or those of the envs where ``mask`` (bool
        (N,)) holds."""
        if mask is None:
            mask = slice(None)
        static = self.bank_static(self.row[mask]) if self.lazy else self.static[mask]
        return self.renderer.with_agent(static, self.agent[mask], self.mirrored[mask])

    def object_masks(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """bool (N, size, size, K): the pixels of each object in the current frames (the mouse
        never shares an object's cell while an episode lasts: reaching it ends the episode);
        with ``rows``, in the frames of those bank rows instead."""
        rows = self.row if rows is None else rows
        return self.renderer.object_masks(self.bank.objects[rows], ~self.bank.free[rows].reshape(rows.shape[0], -1))

    def state_frames(self, rows: torch.Tensor, agent: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        """uint8 (N, size, size, 3): the frame ``observe`` shows with the mouse on flat cell
        ``agent`` (int64 (N,)), ``mirrored`` (bool (N,)) or not, in bank row ``rows`` (int64 (N,))
        of this env's levels; the env's own state is left alone (exact evaluation draws every state)."""
        return self.renderer.with_agent(self.bank_static(rows), agent, mirrored)

    @property
    def level_ids(self) -> torch.Tensor:
        return self.bank.level_ids[self.row]

    @property
    def free(self) -> torch.Tensor:
        """bool (N, W, W) walkable cells of each env's level."""
        return self.bank.free[self.row]

    @property
    def objects(self) -> torch.Tensor:
        """int64 (N, K) flat cells of the objects of each env's level."""
        return self.bank.objects[self.row]

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor):
        w = self._world
        actions = actions.to(self.device, torch.int64)
        self.agent, self.mirrored = move(self.bank.free.view(self.bank.free.shape[0], -1)[self.row], self.agent,
                                         self.mirrored, self._deltas[actions], w)
        self.steps += 1

        objs = self.bank.objects[self.row]  # (N, K)
        hit = objs == self.agent[:, None]
        reached = torch.where(hit.any(1), hit.to(torch.int64).argmax(1) + 1, 0)
        terminated = reached > 0
        truncated = ~terminated & (self.steps >= self.config.timeout)
        reward = torch.where(terminated, self._rewards[(reached - 1).clamp(min=0)], 0.0)
        done = terminated | truncated
        info = {
            "level": self.bank.level_ids[self.row],
            "reached": reached,
            "length": self.steps.clone(),
            "path_len": self.bank.path_len[self.row],
            "done": done,
            # where the episode ended (pre-reset), so adapters can draw the final frame
            "agent": self.agent,
            "mirrored": self.mirrored,
        }
        if self.lazy:  # first episodes only: the caller drops the finished envs
            info["level_now"] = info["level"]
            return None, reward, terminated, truncated, info
        self._autoreset(done)
        info["level_now"] = self.bank.level_ids[self.row]
        return self.observe(), reward, terminated, truncated, info

    def _first_rows(self) -> torch.Tensor:
        n = self.num_envs
        self.counter = torch.full((), n, dtype=torch.int64, device=self.device)
        return self.sampler.rows(torch.arange(n, device=self.device))

    def _next_rows(self, done: torch.Tensor) -> torch.Tensor:
        """Bank rows of the next levels drawn, in env order, for the envs that are done."""
        order = torch.cumsum(done.to(torch.int64), 0) - 1
        new_rows = self.sampler.rows(self.counter + order)
        self.counter = self.counter + done.sum()
        return new_rows

    def _autoreset(self, done: torch.Tensor) -> None:
        self.row = torch.where(done, self._next_rows(done), self.row)
        self.agent = torch.where(done, start_cell(self._world), self.agent)
        self.mirrored = self.mirrored & ~done
        self.steps = torch.where(done, 0, self.steps)
        if self.redraw_all:
            self.static = torch.where(done[:, None, None], self.render_static(self.row), self.static)
        else:
            idx = done.nonzero().squeeze(1)
            if idx.numel():
                self.static[idx] = self.render_static(self.row[idx])


class SeedLevels(TrainingLevels):
    """The training levels of several seeds side by side, ``per_seed`` envs each."""

    def __init__(self, num_levels: int, seeds: Sequence[int], start: int, per_seed: int):
        super().__init__(num_levels, seeds[0], start)
        self.seeds, self.per_seed = torch.as_tensor(list(seeds), dtype=torch.int64), per_seed

    def rows(self, counters: torch.Tensor) -> torch.Tensor:
        """``counters``: (len(seeds) * per_seed,) draw numbers, each of its env's seed."""
        seeds = self.seeds.to(counters.device).repeat_interleave(self.per_seed)
        return sample_training_levels(seeds, counters, self.num_levels)


class StackedMazeEnv(MazeEnv):
    """The envs of several training runs in one batch: envs ``[k * per_seed, (k+1) * per_seed)``
    are seed ``seeds[k]``'s, and draw exactly the levels a ``MazeEnv`` of that seed alone would."""

    def __init__(self, per_seed: int, config: EnvConfig, num_levels: int, seeds: Sequence[int], start: int = 0,
                 device: torch.device | str = "cpu"):
        self.per_seed, self.groups = per_seed, len(seeds)
        super().__init__(per_seed * len(seeds), config, SeedLevels(num_levels, seeds, start, per_seed), device)

    def _first_rows(self) -> torch.Tensor:
        k, n = self.groups, self.per_seed
        self.counter = torch.full((k,), n, dtype=torch.int64, device=self.device)
        return self.sampler.rows(torch.arange(n, device=self.device).repeat(k))

    def _next_rows(self, done: torch.Tensor) -> torch.Tensor:
        d = done.to(torch.int64).view(self.groups, self.per_seed)
        new_rows = self.sampler.rows((self.counter[:, None] + d.cumsum(1) - 1).reshape(-1))
        self.counter = self.counter + d.sum(1)
        return new_rows

    def seed_state(self, k: int) -> dict:
        """The ``state()`` a ``MazeEnv`` of seed ``seeds[k]`` alone would have."""
        part = slice(k * self.per_seed, (k + 1) * self.per_seed)
        return {key: (self.counter[k] if key == "counter" else getattr(self, key)[part]).clone()
                for key in self.STATE}

    def load_seed_state(self, k: int, state: dict) -> None:
        part = slice(k * self.per_seed, (k + 1) * self.per_seed)
        for key in self.STATE:
            value = state[key].to(self.device)
            if key == "counter":
                self.counter[k] = value
            else:
                getattr(self, key)[part] = value
        self.static[part] = self.render_static(self.row[part])
