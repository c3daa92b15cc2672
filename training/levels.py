"""Maze levels as a pure function of the level id, vectorised over levels in torch.

Faithful to procgen's ``MazeGen``: rooms at even (x, y), Kruskal over the walls between
rooms in random order, then "no dead ends" (each free cell with exactly one free
4-neighbour gets one random in-bounds wall neighbour removed, cells visited in procgen's
order), objects on distinct random cells that Kruskal freed, never the start.

Randomness comes from an integer hash of (level id, stream, index) rather than a stateful
generator, so level *i* is bit-identical on every device and in every batch. Grids are
in image orientation: row 0 is the top; the start is the bottom-left cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gmg.training.errors import UserError

MIN_WORLD, MAX_WORLD = 3, 25
WORLD_DIM = 5  # the maze's default side in cells (the original's 5x5 maze); env.py holds the other defaults
_M32 = 0xFFFFFFFF
# hash streams: one per random decision, so adding one never shifts another; every stream id
# of the package is here (S_ACTIONS: the action noise of gmg.experiments.evaluate)
_S_WALLS, _S_DEADENDS, _S_OBJECTS, _S_BACKGROUND, _S_SAMPLER = 1, 2, 3, 4, 5
S_ACTIONS = 11


class LevelError(UserError, ValueError):
    """An impossible level request (world size, object count)."""


def check_world_dim(world_dim: int) -> None:
    if not isinstance(world_dim, int) or world_dim % 2 == 0 or not MIN_WORLD <= world_dim <= MAX_WORLD:
        raise LevelError(
            f"world_dim must be an odd integer from {MIN_WORLD} to {MAX_WORLD}, got {world_dim!r}"
        )


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    # murmur3's finaliser on uint32 values held in int64 (products wrap, low bits exact)
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def hash_u32(*keys: torch.Tensor | int) -> torch.Tensor:
    """Deterministic uint32 (as int64) from integer keys, broadcast together."""
    h = torch.tensor(0x9E3779B9)
    for k in keys:
        k = torch.as_tensor(k) & _M32
        h = _fmix32(h * 31 + k + 0x7F4A7C15)
    return h


def uniform(*keys: torch.Tensor | int) -> torch.Tensor:
    """float64 in [0, 1) from integer keys."""
    return hash_u32(*keys).to(torch.float64) / 4294967296.0


def _key(level_ids: torch.Tensor) -> torch.Tensor:
    return _fmix32(level_ids ^ _fmix32(level_ids >> 32))


@dataclass
class Levels:
    """A batch of generated levels; every tensor has the batch first.

    free:       bool (N, W, W), True where the agent may walk.
    objects:    int64 (N, K), flat cell index (row * W + col) of obj1..objK.
    path_len:   int64 (N, K), shortest-path steps from the start to each object, moving
                around the other objects (plain shortest path if that is impossible).
    background: int64 (N,), which of the textured backgrounds this level uses.
    bg_offset:  float64 (N,), the texture's horizontal offset as a fraction in [0, 1).
    """

    level_ids: torch.Tensor
    free: torch.Tensor
    objects: torch.Tensor
    path_len: torch.Tensor
    background: torch.Tensor
    bg_offset: torch.Tensor

    @property
    def world_dim(self) -> int:
        return self.free.shape[-1]

    def __len__(self) -> int:
        return self.free.shape[0]

    def index(self, idx: torch.Tensor | slice) -> "Levels":
        return Levels(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def to(self, device: torch.device | str) -> "Levels":
        return Levels(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def start_cell(world_dim: int) -> int:
    """Flat index of the start (bottom-left) cell."""
    return (world_dim - 1) * world_dim


def _walls(world_dim: int) -> torch.Tensor:
    """(n_walls, 3) flat indices (room a, room b, wall cell) in procgen's order."""
    w = world_dim
    out = []
    # procgen coordinates (x right, y up); converted to image rows below
    for i in range(1, w, 2):
        for j in range(0, w, 2):
            if 0 < i < w - 1:
                out.append(((i - 1, j), (i + 1, j), (i, j)))
    for i in range(0, w, 2):
        for j in range(1, w, 2):
            if 0 < j < w - 1:
                out.append(((i, j - 1), (i, j + 1), (i, j)))

    def flat(xy: tuple[int, int]) -> int:
        x, y = xy
        return (w - 1 - y) * w + x

    return torch.tensor([[flat(a), flat(b), flat(c)] for a, b, c in out], dtype=torch.int64)


def neighbour_table(world_dim: int) -> torch.Tensor:
    """(W*W, 4) flat index of each cell's neighbours in procgen's order, -1 off-world.

    procgen's order is (x-1), (y-1), (y+1), (x+1); y points up, so y-1 is the row below.
    """
    w = world_dim
    table = torch.full((w * w, 4), -1, dtype=torch.int64)
    for r in range(w):
        for c in range(w):
            for k, (dr, dc) in enumerate(((0, -1), (1, 0), (-1, 0), (0, 1))):
                rr, cc = r + dr, c + dc
                if 0 <= rr < w and 0 <= cc < w:
                    table[r * w + c, k] = rr * w + cc
    return table


def distance_map(free: torch.Tensor, sources: torch.Tensor, blocked: torch.Tensor | None = None) -> torch.Tensor:
    """Steps from each source to every cell (BFS by relaxation), -1 where unreachable.

    free: bool (N, W, W); sources: int64 (N,) flat cell; blocked: bool (N, W, W) or None.
    Returns int64 (N, W, W).
    """
    n, w, _ = free.shape
    walk = free if blocked is None else free & ~blocked
    big = w * w + 1
    dist = torch.full((n, w * w), big, dtype=torch.int64, device=free.device)
    dist.scatter_(1, sources[:, None], 0)
    dist = dist.view(n, w, w)
    walk = walk.clone()
    walk.view(n, -1).scatter_(1, sources[:, None], True)
    for _ in range(w * w):
        nb = torch.full_like(dist, big)
        nb[:, 1:, :] = torch.minimum(nb[:, 1:, :], dist[:, :-1, :])
        nb[:, :-1, :] = torch.minimum(nb[:, :-1, :], dist[:, 1:, :])
        nb[:, :, 1:] = torch.minimum(nb[:, :, 1:], dist[:, :, :-1])
        nb[:, :, :-1] = torch.minimum(nb[:, :, :-1], dist[:, :, 1:])
        new = torch.where(walk, torch.minimum(dist, nb + 1), dist)
        if torch.equal(new, dist):
            break
        dist = new
    return torch.where(dist >= big, torch.full_like(dist, -1), dist)


def path_efficiency(path_len, steps, reached=None):
    """Path efficiency: shortest path / steps of an episode that reached its object (1 on a
    shortest path, never above 1); with ``reached`` (bool), 0 where the object was not reached.
    The one definition for sampled episodes, exact chains (``steps`` a number) and the walk
    model: numpy arrays in, float64 array out; tensors in, float64 tensor out."""
    if isinstance(path_len, torch.Tensor):
        steps = torch.as_tensor(steps, dtype=torch.float64, device=path_len.device)
        eff = (path_len.to(torch.float64) / steps.clamp(min=1.0)).clamp(0.0, 1.0)
        return eff if reached is None else torch.where(torch.as_tensor(reached, device=eff.device), eff, 0.0)
    import numpy as np

    eff = np.clip(np.asarray(path_len, dtype=np.float64) / np.maximum(np.asarray(steps, dtype=np.float64), 1.0), 0.0, 1.0)
    return eff if reached is None else np.where(np.asarray(reached, dtype=bool), eff, 0.0)


def path_lengths(free: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """int64 (N, K): steps from the start to each object, moving around the other objects
    (plain shortest path if that is impossible). free: bool (N, W, W); objects: int64 (N, K)."""
    n, w, _ = free.shape
    n_objects = objects.shape[1]
    device = free.device
    path = []
    starts = torch.full((n,), start_cell(w), dtype=torch.int64, device=device)
    for k in range(n_objects):
        others = torch.zeros(n, w * w, dtype=torch.bool, device=device)
        for j in range(n_objects):
            if j != k:
                others.scatter_(1, objects[:, j : j + 1], True)
        d = distance_map(free, starts, others.view(n, w, w)).view(n, -1).gather(1, objects[:, k : k + 1])
        if n_objects > 1:
            plain = distance_map(free, starts).view(n, -1).gather(1, objects[:, k : k + 1])
            d = torch.where(d < 0, plain, d)
        path.append(d[:, 0])
    return torch.stack(path, 1) if path else torch.zeros(n, 0, dtype=torch.int64, device=device)


def generate(
    level_ids: torch.Tensor, world_dim: int = WORLD_DIM, n_objects: int = 1, n_backgrounds: int = 9
) -> Levels:
    """Generate the levels with these ids (int64 tensor (N,), on any device)."""
    check_world_dim(world_dim)
    device = level_ids.device
    ids = level_ids.to(torch.int64)
    n, w = ids.shape[0], world_dim
    key = _key(ids)[:, None]

    # Kruskal: a uniformly random wall order; join two rooms when they are not yet joined
    walls = _walls(w).to(device)
    n_walls = walls.shape[0]
    free = torch.zeros(n, w * w, dtype=torch.bool, device=device)
    rooms = torch.tensor(
        [r * w + c for r in range(0, w, 2) for c in range(0, w, 2)], dtype=torch.int64, device=device
    )
    free[:, rooms] = True
    labels = torch.arange(w * w, device=device).expand(n, -1).clone()
    if n_walls:
        order = torch.argsort(
            hash_u32(key, _S_WALLS, torch.arange(n_walls, device=device)[None, :]), dim=1, stable=True
        )
        for t in range(n_walls):
            wall = walls[order[:, t]]  # (N, 3)
            la = labels.gather(1, wall[:, :1])
            lb = labels.gather(1, wall[:, 1:2])
            join = la != lb
            free.scatter_(1, wall[:, 2:3], join | free.gather(1, wall[:, 2:3]))
            labels = torch.where(join & (labels == lb), la, labels)
    kruskal_free = free.clone()

    # no dead ends, cells in procgen's order (y up from the bottom row, then x)
    nbr = neighbour_table(w).to(device)
    for y in range(w):
        for x in range(w):
            cell = (w - 1 - y) * w + x
            nb = nbr[cell]
            valid = nb >= 0
            nbf = free[:, nb.clamp(min=0)] & valid  # (N, 4)
            is_wall = ~free[:, nb.clamp(min=0)] & valid
            dead_end = free[:, cell] & (nbf.sum(1) == 1)
            n_wall = is_wall.sum(1)
            u = uniform(key[:, 0], _S_DEADENDS, cell)
            pick = (u * n_wall.clamp(min=1)).floor().to(torch.int64)  # nth wall neighbour
            rank = torch.cumsum(is_wall.to(torch.int64), 1) - 1
            chosen = is_wall & (rank == pick[:, None]) & (dead_end & (n_wall > 0))[:, None]
            free[:, nb.clamp(min=0)] |= chosen & valid
    # objects: distinct random Kruskal-free cells, never the start; obj1 = lowest key, ...
    start = start_cell(w)
    candidates = kruskal_free.clone()
    candidates[:, start] = False
    n_cand = candidates.sum(1)
    if n_objects > int(n_cand.min()):
        raise LevelError(
            f"{n_objects} objects do not fit: a {w}x{w} maze can have as few as "
            f"{int(n_cand.min())} free cells besides the start; use fewer objects or a larger world_dim"
        )
    keys = hash_u32(key, _S_OBJECTS, torch.arange(w * w, device=device)[None, :])
    keys = torch.where(candidates, keys, torch.full_like(keys, 1 << 40))
    objects = torch.argsort(keys, dim=1, stable=True)[:, :n_objects]

    free3 = free.view(n, w, w)
    path_len = path_lengths(free3, objects)

    background = (uniform(key[:, 0], _S_BACKGROUND, 0) * n_backgrounds).floor().to(torch.int64)
    bg_offset = uniform(key[:, 0], _S_BACKGROUND, 1)
    return Levels(ids, free3, objects, path_len, background, bg_offset)


def sample_training_levels(seed: int | torch.Tensor, counters: torch.Tensor, num_levels: int,
                           start_level: int = 0) -> torch.Tensor:
    """The ``counters``-th training level of a seeded sampler: uniform over
    ``[start_level, start_level + num_levels)``; the seed (or one per counter) fixes the order."""
    u = hash_u32(_fmix32(torch.as_tensor(seed)), _S_SAMPLER, counters >> 32, counters)
    return start_level + (u % num_levels)
