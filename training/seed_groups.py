"""Training a population: seeds one by one, stacked in one process, or in worker processes.

``train(config, run_dir, seeds)`` trains every seed into ``run_dir/agents``, skipping
finished ones and resuming the others; the PPO of one seed is ``gmg.training.ppo``, several
seeds stacked in one process ``gmg.training.stacked``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from gmg.training.checkpoint import CODE_VERSION, agent_dir_name, is_finished, resume_iteration
from gmg.training.config import ConfigError, TrainConfig
from gmg.training.errors import TrainingError
from gmg.training.ppo import train_agent
from gmg.training.runtime import resolve_device
from gmg.training.seeds import format_seeds
from gmg.training.stacked import train_stacked


def seed_groups(run_dir: Path, seeds: list[int], stack: int) -> list[list[int]]:
    """``seeds`` in groups of up to ``stack`` trained together; a group's seeds stand at the
    same update (fresh seeds together, resumed ones with the seeds they were stacked with)."""
    if stack <= 1:
        return [[s] for s in seeds]
    by_step: dict[int, list[int]] = {}
    for s in seeds:
        agent_dir = run_dir / "agents" / agent_dir_name(s)
        # resume.pt, not meta.json: it is written first, so it is never behind
        by_step.setdefault(resume_iteration(agent_dir), []).append(s)
    return [group[i : i + stack] for group in by_step.values() for i in range(0, len(group), stack)]


def train_group(config: TrainConfig, run_dir: Path, seeds: list[int], device: str | torch.device = "auto",
                progress: bool = False, max_iterations: int | None = None, on_update=None) -> list[int]:
    """Train one seed alone, or several stacked in this process (``gmg.training.stacked``);
    ``on_update`` as in ``train_agent``, called once per seed and update."""
    try:
        if len(seeds) == 1:
            one = dataclasses.replace(config, seed=seeds[0])
            train_agent(one, Path(run_dir) / "agents" / agent_dir_name(one.agent_id),
                        device=device, progress=progress, max_iterations=max_iterations, on_update=on_update)
        else:
            train_stacked(config, run_dir, seeds, device=device, progress=progress, max_iterations=max_iterations,
                          on_update=on_update)
    except torch.OutOfMemoryError:
        raise TrainingError(f"seed {format_seeds(seeds)}: out of memory on {device}; the last checkpoint is kept: "
                            "train fewer seeds at once (--workers, --stack) or set bf16=true") from None
    return seeds


def train(config: TrainConfig, run_dir: str | Path, seeds: list[int], device: str | torch.device = "auto",
          progress: bool = True, workers: int = 1, stack: int = 1, run_seeds=None,
          data_seeds: list[int] | None = None) -> Path:
    """Train a population into ``run_dir/agents``; finished seeds are skipped, others resumed.

    ``data_seeds`` (a grid): every seed (its initial weights) with every data seed (level
    order, action sampling, minibatch order), agent ids ``seed * 10000 + data seed``; without
    it one seed sets both, as for every agent trained before.

    ``stack > 1`` trains up to that many seeds together in one process with stacked
    parameters (``gmg.training.stacked``; each agent is the one trained alone up to float
    rounding). ``workers > 1`` runs that many seeds (or stacked groups) at once, one process
    each, sharing the device (each agent exactly the one trained alone); on a CPU the cores
    are divided between the workers unless ``config.run.threads`` is set.
    ``run_seeds(config, run_dir, groups, device, workers, bar)``, if given, trains the
    groups instead (``gmg.experiments.cluster`` passes one that uses Ray).
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if stack < 1:
        raise ConfigError(f"stack must be at least 1, got {stack}")
    if stack > 1 and config.run.compile:
        raise ConfigError("compile is not supported when seeds are stacked; drop compile=true or use --stack 1")
    if stack > 1 and config.run.snapshot_every:
        raise ConfigError("snapshots are kept by seeds trained one per process: use --stack 1 (with --workers)")
    if data_seeds:
        if stack > 1:
            raise ConfigError("data seeds are trained one agent per process: use --stack 1 (with --workers)")
        for d in data_seeds:  # each data seed's agents in turn, the seeds of one in parallel
            train(dataclasses.replace(config, data_seed=d).validate(), run_dir, seeds, device, progress, workers,
                  1, run_seeds)
        return Path(run_dir)
    if stack > 1 and config.data_seed is not None:
        raise ConfigError("data seeds are trained one agent per process: use --stack 1 (with --workers)")
    run_dir = Path(run_dir)
    (run_dir / "agents").mkdir(parents=True, exist_ok=True)
    (run_dir / "population.json").write_text(json.dumps(
        {"code_version": CODE_VERSION, "preset": config.preset, "seeds": seeds, "train": config.to_dict()},
        indent=2))
    todo = [s for s in seeds if not is_finished(run_dir / "agents" / agent_dir_name(dataclasses.replace(config, seed=s).agent_id))]
    groups = seed_groups(run_dir, todo, stack)
    outer = None
    if progress:
        from tqdm import tqdm

        outer = tqdm(total=len(seeds), initial=len(seeds) - len(todo), unit="agent", desc="population",
                     dynamic_ncols=True)
    if run_seeds is not None:
        if groups:
            run_seeds(config, run_dir, groups, device, workers, outer)
    elif workers > 1 and len(groups) > 1:
        _train_in_workers(config, run_dir, groups, resolve_device(device), min(workers, len(groups)), outer)
    else:
        for group in groups:
            train_group(config, run_dir, group, device, progress=progress)
            if outer:
                outer.update(len(group))
    if outer:
        outer.close()
    return run_dir


def _train_in_workers(config: TrainConfig, run_dir: Path, groups: list[list[int]], device: torch.device,
                      workers: int, bar) -> None:
    """One process per concurrently trained group; a failed group is reported, the others go on."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = config.run.threads or (max(1, (os.cpu_count() or 1) // workers) if device.type == "cpu" else 1)
    failed = []
    # spawn, not fork: CUDA cannot be used in a forked child
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(train_group, config.with_run(threads=threads), run_dir, g, str(device)): g
                   for g in groups}
        for fut in as_completed(futures):
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - reported per group below
                failed.append((futures[fut], str(e).splitlines()[0] if str(e) else type(e).__name__))
            if bar:
                bar.update(len(futures[fut]))
    if failed:
        raise TrainingError(failed_seeds_message(failed, sum(map(len, groups))))


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker once the process that started it is gone.

    A killed ``gmg train`` (SIGTERM, SIGKILL) would otherwise leave its workers training on,
    orphaned, into the run directory that a rerun resumes from. Checkpoints are written
    atomically, so ending between them loses only the updates since the last one.
    """
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def failed_seeds_message(failed: list[tuple[list[int], str]], total: int, where: str = "") -> str:
    """One line for groups of seeds that failed in workers: ``failed`` holds (seeds, reason)."""
    shown = "; ".join(f"seed{'s' if len(g) > 1 else ''} {format_seeds(g)}: {why}" for g, why in failed[:3])
    n_failed = sum(len(g) for g, _ in failed)
    return f"{n_failed} of {total} seeds failed{where} ({shown}); rerun the same command to retry them"
