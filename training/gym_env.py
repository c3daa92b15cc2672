"""Gymnasium views of the maze: a ``VectorEnv`` over ``MazeEnv`` and a single-env ``Env``.

Both speak numpy (uint8 HWC observations, int actions) and keep ``MazeEnv``'s level
samplers: a training sampler's ``seed`` is the seed passed to ``reset(seed=...)``, after
which (and at the first reset) a sampler starts from its first draws (an evaluation list
from its first level); a reset without a seed goes on to its next levels.
``register_envs()`` registers the ids ``gmg/ColourShapeMaze-v0`` (and
``gmg/ColourShapeMazeTest-v0``, two test objects) with gymnasium; nothing is registered at
import time.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gmg.training.env import NUM_ACTIONS, EnvConfig, EvaluationLevels, MazeEnv, TrainingLevels
from gmg.training.render import ProcgenRenderer, Renderer, make_renderer

ENV_ID = "gmg/ColourShapeMaze-v0"
TEST_ENV_ID = "gmg/ColourShapeMazeTest-v0"
HUMAN_SIZE = 512
# keys of MazeEnv's info that describe the finished episode (valid where ``done``)
EPISODE_KEYS = ("level", "reached", "length", "path_len")


def make_config(config: EnvConfig | None = None, **fields: Any) -> EnvConfig:
    """An ``EnvConfig`` from a config and/or its fields; ``objects`` may be "a,b" or a tuple."""
    if config is not None and fields:
        raise TypeError("pass either config or its fields, not both")
    if config is not None:
        return config
    if isinstance(fields.get("objects"), str):
        fields["objects"] = tuple(o.strip() for o in fields["objects"].split(",") if o.strip())
    elif "objects" in fields:
        fields["objects"] = tuple(fields["objects"])
    return EnvConfig(**fields)


def _reseeded(levels: TrainingLevels | EvaluationLevels, seed: int | None):
    if seed is not None and isinstance(levels, TrainingLevels):
        return TrainingLevels(levels.num_levels, seed=seed, start=levels.start)
    return levels


def _final_frames(env: MazeEnv, rows: torch.Tensor, agent: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """uint8 (n, size, size, 3): the last frame of episodes on bank ``rows`` (before reset)."""
    return env.renderer.with_agent(env.render_static(rows), agent, mirrored)


class MazeVectorEnv(VectorEnv):
    """``num_envs`` mazes as a gymnasium ``VectorEnv`` with same-step autoreset.

    ``step(actions)`` takes int (num_envs,) and returns obs uint8 (num_envs, 64, 64, 3),
    rewards float32, terminations and truncations bool, and ``infos``: numpy arrays
    ``level``, ``reached`` (0 timeout, 1 obj1, 2 obj2), ``length``, ``path_len``
    (num_envs, K) with a ``_key`` mask (= episode done), the same under ``final_info`` (with
    ``_final_info``, gymnasium's same-step layout), ``level_now``, and, where ``_final_obs``,
    ``final_obs`` (the finished episode's last frame; the returned obs is already the next
    level's first frame). Actions outside 0-14 are refused.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        num_envs: int = 16,
        config: EnvConfig | None = None,
        levels: TrainingLevels | EvaluationLevels | None = None,
        device: torch.device | str = "cpu",
        render_mode: str | None = None,
        final_obs: bool = True,
        **config_fields: Any,
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = make_config(config, **config_fields)
        self.levels = levels if levels is not None else TrainingLevels()
        self.env = MazeEnv(num_envs, self.config, self.levels, device)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.final_obs = final_obs
        size = self.config.size
        self.single_observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """The first reset, or one with a ``seed`` (which reseeds a training sampler), starts
        every env from the sampler's first draws; a later one loads the sampler's next levels."""
        super().reset(seed=seed)
        env = self.env
        if seed is not None:
            self.action_space.seed(seed)
            env.sampler = _reseeded(env.sampler, seed)
        if seed is not None or self._obs is None:
            self._obs = env.reset()
        else:
            counter = env.counter
            self._obs = env.reset(rows=env.sampler.rows(counter + torch.arange(self.num_envs, device=env.device)))
            env.counter = counter + self.num_envs
        return self._obs.cpu().numpy(), {"level_now": self.env.level_ids.cpu().numpy()}

    def step(self, actions):
        env = self.env
        rows = env.row
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.all((actions >= 0) & (actions < NUM_ACTIONS)):
            raise ValueError(f"actions must be {self.num_envs} ints in 0-{NUM_ACTIONS - 1}, got {actions!r}")
        acts = torch.as_tensor(actions, dtype=torch.int64, device=env.device)
        obs, reward, terminated, truncated, info = env.step(acts)
        self._obs = obs
        done = info["done"].cpu().numpy()
        infos: dict[str, Any] = {"level_now": info["level_now"].cpu().numpy()}
        for key in EPISODE_KEYS:
            infos[key] = info[key].cpu().numpy()
            infos["_" + key] = done.copy()
        if done.any():  # gymnasium's same-step layout, as SyncVectorEnv writes it: only when an episode ended
            infos["final_info"] = {k: infos[k] for k in EPISODE_KEYS} | {"_" + k: done.copy() for k in EPISODE_KEYS}
            infos["_final_info"] = done.copy()
        if self.final_obs and done.any():
            final = np.zeros((self.num_envs,) + self.single_observation_space.shape, np.uint8)
            idx = torch.as_tensor(done.nonzero()[0], device=env.device)
            final[done] = _final_frames(env, rows[idx], info["agent"][idx], info["mirrored"][idx]).cpu().numpy()
            infos["final_obs"], infos["_final_obs"] = final, done.copy()
        return (
            obs.cpu().numpy(),
            reward.cpu().numpy(),
            terminated.cpu().numpy(),
            truncated.cpu().numpy(),
            infos,
        )

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Each env's current agent view, uint8 (size, size, 3)."""
        if self.render_mode is None:
            return None
        obs = self._obs if self._obs is not None else self.env.observe()
        return tuple(obs.cpu().numpy())


class MazeGymEnv(gym.Env):
    """One maze as a gymnasium ``Env`` (passes ``gymnasium.utils.env_checker.check_env``).

    Observations are uint8 (size, size, 3); actions are procgen's 15. An episode ends on
    touching an object (``terminated``) or at the timeout (``truncated``); call ``reset()``
    for the sampler's next level. ``render()``: ``"rgb_array"`` returns the agent's view,
    ``"human"`` draws a ``HUMAN_SIZE``-px view in a matplotlib window; ``frame(size)``
    returns that larger view as an array.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(
        self,
        config: EnvConfig | None = None,
        levels: TrainingLevels | EvaluationLevels | None = None,
        render_mode: str | None = None,
        device: torch.device | str = "cpu",
        human_size: int = HUMAN_SIZE,
        **config_fields: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = make_config(config, **config_fields)
        self.env = MazeEnv(1, self.config, levels if levels is not None else TrainingLevels(), device)
        self.render_mode = render_mode
        self.human_size = human_size
        size = self.config.size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._counter = 0
        self._frame: torch.Tensor | None = None  # (1, size, size, 3) current frame
        self._state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # row, agent, mirrored
        self._renderers: dict[int, Renderer | ProcgenRenderer] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Load the sampler's next level (its first one after a ``seed``)."""
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
            self.env.sampler = _reseeded(self.env.sampler, seed)
            self._counter = 0
        env = self.env
        row = env.sampler.rows(torch.tensor([self._counter], device=env.device))
        self._counter += 1
        self._frame = env.reset(rows=row)
        self._state = (env.row.clone(), env.agent.clone(), env.mirrored.clone())
        return self._frame[0].cpu().numpy(), self._info()

    def _info(self, info: dict | None = None) -> dict[str, Any]:
        env = self.env
        row = self._state[0]
        out = {"level": int(env.bank.level_ids[row][0]), "path_len": env.bank.path_len[row][0].cpu().numpy()}
        if info is not None:
            out.update(reached=int(info["reached"][0]), length=int(info["length"][0]))
        return out

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in 0-{NUM_ACTIONS - 1}, got {action!r}")
        env = self.env
        row = self._state[0]
        obs, reward, terminated, truncated, info = env.step(torch.tensor([int(action)], device=env.device))
        if bool(info["done"][0]):
            # MazeEnv already loaded the next level; this view shows the episode's last frame
            self._frame = _final_frames(env, row, info["agent"], info["mirrored"])
        else:
            self._frame = obs
        self._state = (row, info["agent"].clone(), info["mirrored"].clone())
        return (
            self._frame[0].cpu().numpy(),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._info(info),
        )

    def frame(self, size: int | None = None) -> np.ndarray:
        """The current state drawn at ``size`` px (default: the agent's view), uint8 (size, size, 3)."""
        if self._state is None:
            raise RuntimeError("call reset() before rendering")
        if size is None or size == self.config.size:
            return self._frame[0].cpu().numpy()
        if size not in self._renderers:
            c = self.config
            self._renderers[size] = make_renderer(c.render, c.world_dim, size, c.background, self.env.specs,
                                                  self.env.device)
        r, b = self._renderers[size], self.env.bank
        row, agent, mirrored = self._state
        bg = r.background_frames(b.background[row], b.bg_offset[row])
        wall = ~b.free[row].reshape(1, -1)
        return r.render(wall, b.objects[row], agent, mirrored, bg)[0].cpu().numpy()

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self.frame()
        if self.render_mode == "human":
            self._show(self.frame(self.human_size))
        return None

    def _show(self, image: np.ndarray) -> None:
        import matplotlib.pyplot as plt

        if not hasattr(self, "_figure") or not plt.fignum_exists(self._figure.number):
            self._figure, ax = plt.subplots(figsize=(6, 6))
            ax.set_axis_off()
            self._image = ax.imshow(image)
        self._image.set_data(image)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-interactive backends (CI) just skip
            plt.pause(1 / self.metadata["render_fps"])

    def close(self) -> None:
        if hasattr(self, "_figure"):
            import matplotlib.pyplot as plt

            plt.close(self._figure)
            del self._figure


def register_envs() -> tuple[str, str]:
    """Register ``gmg/ColourShapeMaze-v0`` (training: one goal object) and
    ``gmg/ColourShapeMazeTest-v0`` (red line vs yellow gem on evaluation levels).

    Idempotent. Both accept ``EnvConfig`` fields as keyword arguments, e.g.
    ``gym.make(ENV_ID, objects="white_line", background="textured")`` or
    ``gym.make_vec(ENV_ID, num_envs=64, vectorization_mode="vector_entry_point")``.
    """
    common = dict(
        entry_point="gmg.training.gym_env:MazeGymEnv",
        vector_entry_point="gmg.training.gym_env:MazeVectorEnv",
        max_episode_steps=None,  # MazeEnv's own timeout truncates
        disable_env_checker=True,
    )
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, **common)
    if TEST_ENV_ID not in gym.registry:
        gym.register(TEST_ENV_ID, kwargs={"objects": ("red_line", "yellow_gem"), "levels": EvaluationLevels()}, **common)
    return ENV_ID, TEST_ENV_ID
