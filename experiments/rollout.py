"""A GIF of one agent playing one evaluation level: its view beside its R, G and B channels.

The episode is exactly the one ``evaluate`` records for that (agent, setting, level, seed):
it uses the same hashed action noise (or greedy actions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmg.experiments.evaluate import OUTCOMES, agent_policy
from gmg.experiments.population import AgentRef
from gmg.experiments.settings import Setting, file_stem, parse_setting
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv, check_level_index


def split_frame(obs: np.ndarray, scale: int = 4, gap: int = 4) -> np.ndarray:
    """uint8 (H, W, 3) -> (H*scale, 4*W*scale + 3*gap, 3): the view, then R, G, B alone."""
    big = obs.repeat(scale, 0).repeat(scale, 1)
    panels = [big]
    for c in range(3):
        only = np.zeros_like(big)
        only[..., c] = big[..., c]
        panels.append(only)
    sep = np.full((big.shape[0], gap, 3), 255, dtype=np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [sep, p]
    return np.concatenate(out, axis=1)


def rollout(
    ref: AgentRef,
    setting: Setting | str,
    out: str | Path,
    level: int = 0,
    greedy: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    scale: int = 4,
    fps: int = 5,
    timeout: int | None = None,
) -> tuple[Path, dict]:
    """Play evaluation level ``level`` once and write the GIF; returns (path, episode record).

    ``timeout`` defaults to the agent's training timeout, as in ``evaluate``.
    """
    import imageio.v2 as imageio


    setting = parse_setting(setting)
    check_level_index(level)
    trained = ref.trained_on
    timeout = int(timeout or trained.timeout)
    config = EnvConfig(objects=setting.objects, world_dim=trained.world_dim, size=trained.size,
                       background=setting.background, timeout=timeout, levels=trained.levels,
                       render=trained.render)
    # lazy: a finished episode is not reset, so its last frame is drawn like any other
    env = MazeEnv(1, config, EvaluationLevels(n=level + 1, levels=trained.levels), device, lazy=True)
    env.reset(torch.tensor([level], device=env.device))
    # n_levels only maps env index -> agent; the noise keys on the level id itself
    policy = agent_policy([ref.load(device)], [ref.agent_id], setting, level + 1, greedy, seed)
    envs = torch.tensor([level], device=env.device)
    frames = [split_frame(env.observe()[0].cpu().numpy(), scale)]
    for _ in range(timeout):
        _, _, _, _, info = env.step(policy(env, envs))
        frames.append(split_frame(env.observe()[0].cpu().numpy(), scale))
        if bool(info["done"][0]):
            break
    record = {"agent": ref.agent_id, "setting": setting.name, "level": level,
              "outcome": OUTCOMES[int(info["reached"][0])], "steps": int(info["length"][0])}
    frames += [frames[-1]] * 2  # hold the last frame
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    return out, record


def default_path(run_dir: str | Path, ref: AgentRef, setting: Setting | str, level: int) -> Path:
    setting = parse_setting(setting)
    return Path(run_dir) / "rollouts" / f"agent-{ref.agent_id:04d}-{file_stem(setting)}-level{level}.gif"
