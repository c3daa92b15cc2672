"""``gmg bench env``: our batched maze against procgen's own, same env count, random actions."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from gmg.training.runtime import machine


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_ours(
    num_envs: int, steps: int, device: torch.device, warmup: int = 20, seed: int = 0, num_levels: int = 100_000,
    render: str = "procgen",
) -> dict:
    """Steps/s of ``MazeEnv`` under uniformly random actions, rendering included.

    Actions are drawn on the device beforehand so the loop measures the env alone.
    """
    from gmg.training.env import NUM_ACTIONS, EnvConfig, MazeEnv, TrainingLevels

    gen = torch.Generator(device=device).manual_seed(seed)
    actions = torch.randint(0, NUM_ACTIONS, (warmup + steps, num_envs), generator=gen, device=device)
    t0 = time.perf_counter()
    env = MazeEnv(num_envs, EnvConfig(render=render), TrainingLevels(num_levels, seed), device=device)
    _sync(device)
    setup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for t in range(warmup):
        env.step(actions[t])
    _sync(device)
    t0 = time.perf_counter()
    episodes = torch.zeros((), dtype=torch.int64, device=device)
    for t in range(warmup, warmup + steps):
        obs, reward, terminated, truncated, info = env.step(actions[t])
        episodes += info["done"].sum()
    _sync(device)
    elapsed = time.perf_counter() - t0
    row = {
        "env": f"gmg MazeEnv ({render} render)",
        "device": str(device),
        "num_envs": num_envs,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": num_envs * steps / elapsed,
        "episodes": int(episodes),
        "setup_s": setup_s,
        "obs_shape": list(obs.shape[1:]),
    }
    if device.type == "cuda":
        row["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def bench_procgen(num_envs: int, steps: int, num_threads: int | None = None, warmup: int = 20, seed: int = 0) -> dict:
    """Steps/s of procgen's own ``maze`` (easy) through its gym3 API, random actions."""
    num_threads = num_threads or os.cpu_count() or 1
    row = {"env": "procgen maze (easy, gym3)", "device": "cpu", "num_envs": num_envs, "steps": steps,
           "num_threads": num_threads}
    try:
        from procgen import ProcgenGym3Env
    except Exception as e:  # gym3 or procgen's compiled library missing: report, do not fail
        row.update(error=f"procgen's runtime cannot be imported ({type(e).__name__}: {e})".splitlines()[0])
        return row
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 15, size=(warmup + steps, num_envs), dtype=np.int32)
    env = ProcgenGym3Env(num=num_envs, env_name="maze", distribution_mode="easy", num_threads=num_threads,
                         rand_seed=seed)
    for t in range(warmup):
        env.act(actions[t])
        env.observe()
    t0 = time.perf_counter()
    for t in range(warmup, warmup + steps):
        env.act(actions[t])
        _, obs, _ = env.observe()
    elapsed = time.perf_counter() - t0
    row.update(seconds=elapsed, steps_per_s=num_envs * steps / elapsed, obs_shape=list(obs["rgb"].shape[1:]))
    return row


def bench_env(
    *,
    device: torch.device | str = "cpu",
    num_envs: int = 256,
    steps: int = 200,
    threads: int | None = None,
    procgen: bool = True,
    num_levels: int = 100_000,
    **_,
) -> dict:
    """Our env and procgen's maze side by side: same env count, random actions, rendering on.

    ``threads`` (default: all cores) is torch's CPU thread count and procgen's ``num_threads``;
    ours samples training levels from ``[0, num_levels)`` (the bank is built before timing), drawn
    by procgen's renderer and by the box one. Returns ``{"bench": "env", "machine": ...,
    "rows": [ours (procgen render), ours (box render), procgen], "ratio": ours (procgen render)/procgen}``.
    """
    device = torch.device(device)
    threads = threads or os.cpu_count() or 1
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = [bench_ours(num_envs, steps, device, num_levels=num_levels, render=r) for r in ("procgen", "box")]
    finally:
        torch.set_num_threads(previous)
    for row in rows:
        row["num_threads"] = threads
    if procgen:
        rows.append(bench_procgen(num_envs, steps, threads))
    result = {"bench": "env", "machine": machine(), "rows": rows}
    if procgen and "steps_per_s" in rows[-1]:
        result["ratio"] = rows[0]["steps_per_s"] / rows[-1]["steps_per_s"]
    return result

