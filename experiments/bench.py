"""Benchmarks: ``gmg bench WHAT`` runs ``BENCHES[WHAT]`` and writes its JSON.

Each entry of ``BENCHES`` is a function ``fn(*, device, out, **options) -> dict`` that
measures, prints nothing, and returns a JSON-ready dict with a ``rows`` list (one dict
per measured thing) plus whatever else it wants to record. Add an entry per thing to
measure; ``format_table`` prints any result's ``rows``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def machine() -> dict:
    """What the numbers were measured on: CPU, core count, GPU, library versions."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        # other processes share the cores: record how busy the machine was
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_ours(
    num_envs: int, steps: int, device: torch.device, warmup: int = 20, seed: int = 0, num_levels: int = 100_000
) -> dict:
    """Steps/s of ``MazeEnv`` under uniformly random actions, rendering included.

    Actions are drawn on the device beforehand so the loop measures the env alone.
    """
    from training.env import NUM_ACTIONS, EnvConfig, MazeEnv, TrainingLevels

    gen = torch.Generator(device=device).manual_seed(seed)
    actions = torch.randint(0, NUM_ACTIONS, (warmup + steps, num_envs), generator=gen, device=device)
    t0 = time.perf_counter()
    env = MazeEnv(num_envs, EnvConfig(), TrainingLevels(num_levels, seed), device=device)
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
        "env": "gmg MazeEnv",
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
    ours samples training levels from ``[0, num_levels)`` (the bank is built before timing).
    Returns ``{"bench": "env", "machine": ..., "rows": [ours, procgen], "ratio": ours/procgen}``.
    """
    device = torch.device(device)
    threads = threads or os.cpu_count() or 1
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = [bench_ours(num_envs, steps, device, num_levels=num_levels)]
    finally:
        torch.set_num_threads(previous)
    rows[0]["num_threads"] = threads
    if procgen:
        rows.append(bench_procgen(num_envs, steps, threads))
    result = {"bench": "env", "machine": machine(), "rows": rows}
    if procgen and "steps_per_s" in rows[1]:
        result["ratio"] = rows[0]["steps_per_s"] / rows[1]["steps_per_s"]
    return result


# name -> function(*, device, **options) -> dict with "rows"; other modules add entries here
TRAIN_VARIANTS = {"fp32": (False, False), "bf16": (True, False), "compile": (False, True),
                  "bf16+compile": (True, True)}  # name -> (bf16, compile)


def bench_train(*, device: torch.device | str = "cpu", workers=1, stack=1, presets=("cpu", "paper"),
                variants=None, overrides=None, iterations: int = 2, **_) -> dict:
    """PPO env steps/s per preset, with and without bf16 autocast and torch.compile.

    ``workers`` (a count or several) > 1 adds rows for that many seeds trained at once
    (``gmg train --workers``), ``stack`` (a count or several) > 1 rows for that many seeds
    stacked in one process (``gmg train --stack``); ``overrides`` training fields set in every
    row; ``variants`` (names of ``TRAIN_VARIANTS``) limits what is timed; ``iterations``
    updates per run.
    """
    from experiments.errors import GmgError
    from experiments.training_report import bench_train as measure

    chosen = None
    if variants:
        unknown = [v for v in variants if v not in TRAIN_VARIANTS]
        if unknown:
            raise GmgError(f"unknown train variant {unknown[0]!r}: use {', '.join(TRAIN_VARIANTS)}")
        chosen = {p: tuple(TRAIN_VARIANTS[v] for v in variants) for p in presets}
    if iterations < 2:
        raise GmgError(f"--iterations must be at least 2 (the first update warms up), got {iterations}")
    counts = [workers] if isinstance(workers, int) else list(workers)
    stacks = [stack] if isinstance(stack, int) else list(stack)
    for name, values in (("workers", counts), ("stack", stacks)):
        if min(values) < 1:
            raise GmgError(f"--{name} must be at least 1, got {min(values)}")
    return {"bench": "train", "machine": machine(),
            "rows": measure(device=str(device), workers=(1, *[n for n in counts if n > 1]), presets=tuple(presets),
                            variants=chosen, stacks=(1, *[k for k in stacks if k > 1]), overrides=overrides,
                            iterations=iterations)}


BENCHES: dict[str, Callable[..., dict]] = {
    "env": bench_env,
    "train": bench_train,
    "eval": lambda **options: __import__("experiments.evaluate", fromlist=["bench_eval"]).bench_eval(**options),
    "ray": lambda **options: __import__("experiments.cluster", fromlist=["bench_ray"]).bench_ray(**options),
}


def format_table(result: dict) -> str:
    """The ``rows`` of a bench result as a fixed-width text table."""
    rows = result.get("rows", [])
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)

    table = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)) for t in table]
    return "\n".join(lines)


def run_bench(what: str, out: Path | str | None = None, **options) -> dict:
    """Run ``BENCHES[what]`` and write its result as JSON to ``out`` (if given)."""
    from experiments.errors import GmgError

    if what not in BENCHES:
        raise GmgError(f"unknown benchmark {what!r}: use one of {', '.join(sorted(BENCHES))}")
    result = BENCHES[what](**options)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result
