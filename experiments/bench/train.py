"""``gmg bench train``: PPO env steps/s per preset, with and without bf16 and torch.compile,
for seeds trained alone, in worker processes (``--workers``) or stacked (``--stack``)."""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import torch

from gmg.training.checkpoint import agent_dir_name
from gmg.training.config import make_config
from gmg.training.errors import UserError
from gmg.training.runtime import machine, resolve_device
from gmg.training.seed_groups import exit_with_parent, train_group

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

    chosen = None
    if variants:
        unknown = [v for v in variants if v not in TRAIN_VARIANTS]
        if unknown:
            raise UserError(f"unknown train variant {unknown[0]!r}: use {', '.join(TRAIN_VARIANTS)}")
        chosen = {p: tuple(TRAIN_VARIANTS[v] for v in variants) for p in presets}
    if iterations < 2:
        raise UserError(f"--iterations must be at least 2 (the first update warms up), got {iterations}")
    counts = [workers] if isinstance(workers, int) else list(workers)
    stacks = [stack] if isinstance(stack, int) else list(stack)
    for name, values in (("workers", counts), ("stack", stacks)):
        if min(values) < 1:
            raise UserError(f"--{name} must be at least 1, got {min(values)}")
    return {"bench": "train", "machine": machine(),
            "rows": measure_presets(device=str(device), workers=(1, *[n for n in counts if n > 1]), presets=tuple(presets),
                            variants=chosen, stacks=(1, *[k for k in stacks if k > 1]), overrides=overrides,
                            iterations=iterations)}



ALL_VARIANTS = ((False, False), (True, False), (False, True))  # (bf16, compile)


def _bench_one(config, device: str, stack: int = 1) -> float:
    """Env steps/s of the last update of a short training run of ``stack`` seeds (stacked
    in this process when more than one), summed over the seeds."""
    with tempfile.TemporaryDirectory() as tmp:
        train_group(config, Path(tmp), list(range(stack)), device=device)
        log = Path(tmp) / "agents" / agent_dir_name(0) / "train.csv"
        return stack * float(list(csv.DictReader(open(log)))[-1]["sps"])


def _bench_synced(config, device: str, seeds: list[int], barrier) -> dict:
    """Train ``seeds`` (stacked if several) after every worker is ready: the clock's ``start``
    and ``end``, ``updates`` [(time, env steps so far)] at each update's end, and ``peak`` GPU
    MiB (0 on a CPU)."""
    from gmg.training.env import TrainingLevels, level_bank

    torch.zeros(1, device=device)  # CUDA context (or nothing on a CPU) before the clock starts
    level_bank(TrainingLevels(config.num_levels, config.seed, config.start_level), config.world_dim, 1, "cpu")
    ends: dict[int, float] = {}  # global step -> when the update that reached it ended (last seed's row)
    barrier.wait()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        train_group(config, Path(tmp), seeds, device=device,
                    on_update=lambda row: ends.__setitem__(row["global_step"], time.time()))
    t1 = time.time()
    return {"start": t0, "end": t1, "updates": sorted((t, step * len(seeds)) for step, t in ends.items()),
            "peak": torch.cuda.max_memory_allocated() / 2**20 if torch.device(device).type == "cuda" else 0.0}


def steady_rate(updates: list[list[tuple[float, float]]]) -> float:
    """Summed env steps/s of several workers while all of them train, first updates excluded.

    ``updates`` holds each worker's [(time, env steps so far)] at its updates' ends. The window
    runs from the last worker's end of its first update (compilation, graph capture and
    cuDNN's autotuning are over everywhere) to the first worker's last end (none has stopped);
    each worker's steps are interpolated linearly between its update ends. NaN when the window
    is empty (too few updates, or workers that hardly overlapped).
    """
    import numpy as np

    if any(len(u) < 2 for u in updates):
        return float("nan")
    a, b = max(u[0][0] for u in updates), min(u[-1][0] for u in updates)
    if b <= a:
        return float("nan")
    def steps_at(u, t: float) -> float:
        return float(np.interp(t, [p[0] for p in u], [p[1] for p in u]))

    return sum(steps_at(u, b) - steps_at(u, a) for u in updates) / (b - a)


def _bench_concurrent(config, device: str, workers: int, stack: int = 1) -> dict:
    """Summed env steps/s of ``workers`` processes at once (as ``--workers``), each training
    ``stack`` seeds stacked (as ``--stack``).

    Every process starts its clock at a shared barrier, once Python, torch, the device and
    the level bank are ready. ``whole``: all env steps over the time from that barrier to the
    last process's end (the slowest worker and every warm-up update included); ``steady``:
    ``steady_rate`` of the workers' updates; ``peak``: GPU MiB of the largest process.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    threads = config.run.threads or (1 if workers > 1 else 0)
    groups = [list(range(w * stack, (w + 1) * stack)) for w in range(workers)]
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx, initializer=exit_with_parent,
                                                       initargs=(os.getpid(),)) as pool:
        barrier = manager.Barrier(workers)
        runs = list(pool.map(_bench_synced, [config.with_run(threads=threads)] * workers,
                             [device] * workers, groups, [barrier] * workers))
    start, end = min(r["start"] for r in runs), max(r["end"] for r in runs)
    return {"whole": workers * stack * config.num_iterations * config.batch_size / (end - start),
            "steady": steady_rate([r["updates"] for r in runs]), "peak": max(r["peak"] for r in runs)}


def _minibatches_of(base, batch: int) -> int:
    """How many minibatches split a shortened rollout of ``batch`` samples into minibatches of the
    preset's own size (a minibatch's cost per sample depends on its size), or as near as divides."""
    n = max(1, batch // base.minibatch_size)
    while batch % n:
        n -= 1
    return n


def measure_presets(device: str = "auto", presets=("cpu", "paper"), iterations: int = 2, num_steps: int | None = None,
                variants: dict | None = None, workers: tuple[int, ...] = (1,), stacks: tuple[int, ...] = (1,),
                overrides: dict | None = None) -> list[dict]:
    """Env steps/s of PPO (rollout + update) per preset and bf16 / compile variant.

    The last of ``iterations`` updates is timed (the first warms up caches and compile).
    On a CPU every rollout is shortened to ``num_steps`` (default 16), in minibatches of the
    preset's size where they fit, so that one update takes seconds, not a quarter hour (steps/s
    barely depends on it: the network's per-sample cost dominates), and the paper preset runs
    in float32 only (bf16 is 10x slower on CPUs without native bf16, as the cpu preset's bf16
    row shows).
    ``variants`` maps a preset to its (bf16, compile) pairs. Each ``workers`` count above 1
    adds a row per preset and variant: that many seeds trained at once, steps/s summed; each
    ``stacks`` count above 1 a row of that many seeds stacked in one process (its last update,
    summed over the seeds). With a workers comparison every row, the single seed's too, is
    timed twice: ``env_steps_per_s`` counts all updates from a shared start to the last end,
    ``steady_env_steps_per_s`` only the time all workers trained past their first update
    (``steady_rate``; give it ``iterations`` of 4 or more). ``overrides`` are training fields
    set in every row (``gmg bench train --set``).
    """
    overrides = dict(overrides or {})
    whole_runs = workers != (1,)
    counts = [(n, 1) for n in workers] + [(1, k) for k in stacks if k > 1]
    dev = resolve_device(device)
    if variants is None:
        variants = {p: ALL_VARIANTS for p in presets}
        if dev.type == "cpu":
            variants["paper"] = ((False, False),)
    rows = []
    for preset in presets:
        for bf16, compiled in variants.get(preset, ALL_VARIANTS):
            over = {"bf16": bf16, "compile": compiled}
            base = make_config(preset, overrides)
            steps = num_steps or (16 if dev.type == "cpu" else base.num_steps)
            over.update(num_steps=steps, total_timesteps=base.num_envs * steps * iterations,
                        num_minibatches=_minibatches_of(base, base.num_envs * steps), num_levels=1000,
                        checkpoint_every=10_000)
            config = make_config(preset, {**overrides, **over})
            for n, k in counts:
                if (n > 1 and compiled) or (k > 1 and compiled):  # compiling in every worker at once only
                    continue  # measures the compiler; stacked training does not compile
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.time()
                try:
                    # with a workers comparison every row is timed the same way (whole runs, synced)
                    steady = None
                    if whole_runs:
                        runs = _bench_concurrent(config, str(dev), n, k)
                        sps, steady, peak = runs["whole"], runs["steady"], runs["peak"]
                    else:
                        sps, peak = _bench_one(config, str(dev), k), None
                    error = ""
                except Exception as e:  # a variant unsupported here (e.g. compile without a compiler)
                    sps, steady, peak, error = float("nan"), None, None, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:80]}"
                row = {"preset": preset, "bf16": bf16, "compile": compiled, "workers": n, "stack": k,
                       "num_envs": config.num_envs, "num_steps": steps, "widths": list(config.widths),
                       "env_steps_per_s": round(sps, 1)}
                if steady is not None:
                    row["steady_env_steps_per_s"] = round(steady, 1)
                row.update(seconds=round(time.time() - t0, 1), device=dev.type, error=error)
                if overrides:
                    row["set"] = ",".join(f"{k}={v}" for k, v in overrides.items())
                if dev.type == "cuda":
                    row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20 if peak is None else peak)
                rows.append(row)
    return rows

