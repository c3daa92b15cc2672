"""Sweeps on a Ray cluster or in local worker processes: the in-process work, split into tasks.

Training: one task per seed (per stacked group with ``--stack``), writing its checkpoints
into the shared run directory (a retried task resumes from the last one). Evaluation: one task per batch of agents in one
setting (a chunk), returning its rows; the driver alone writes the results store. On Ray each task
asks for one CPU and ``1 / workers`` of a GPU when the device is one, so Ray packs
``workers`` tasks per GPU. Without Ray, ``workers`` spawned processes here play the chunks, one
torch thread each unless told otherwise. Ray is optional: without it ``--ray`` says how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from gmg.training.errors import UserError

INSTALL_HINT = "pip install 'ray>=2.9' (the ray extra of gmg-toolkit)"
MAX_RETRIES = 3  # a task (chunk) whose worker process died is rerun up to this many times
# test hook: a folder; the first attempt of each task there dies mid-task (os._exit)
FAULT_ENV = "GMG_TEST_KILL_WORKER_ONCE"


def add_ray_arguments(p, what: str = "tasks") -> None:
    """``--ray`` and ``--workers`` for a command that can run on a cluster or in processes here."""
    p.add_argument("--ray", metavar="auto|local|ADDRESS",
                   help=f"run the {what} as Ray tasks: auto joins the cluster of `ray start`, local starts Ray "
                        f"here, or a head address (needs {INSTALL_HINT})")
    p.add_argument("--workers", type=int, default=1,
                   help=f"{what} at once per device: without --ray, that many processes here (1: this process "
                        "alone); with --ray, each Ray task asks for 1/WORKERS of a GPU")


def connect(address: str):
    """The ``ray`` module, connected: ``local`` starts Ray in this process, ``auto`` or an
    address joins a running cluster (``ray start --head``). Reuses an existing connection."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot join a Ray cluster at {address!r} ({first}); start one with "
                       "`ray start --head`, or use --ray local for Ray on this machine") from None
    return ray


def _resources(ray, device: str, workers: int) -> dict:
    """One CPU per task, and 1/workers of a GPU for --device cuda (or auto on a cluster with GPUs).

    The device is resolved by each task on its own node, not by the driver, which may have no GPU.
    """
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" and not gpus:
        # Ray would keep such tasks pending forever, waiting for a GPU to join
        raise UserError("--device cuda, but the Ray cluster has no GPU; use --device cpu or auto, "
                       "or add a GPU node with `ray start`")
    gpu = device == "cuda" or (device == "auto" and gpus > 0)
    return {"num_cpus": 1, "num_gpus": (1.0 / max(1, workers)) if gpu else 0, "max_retries": MAX_RETRIES}


def _die_once(key: str) -> bool:
    """True the first time ``key`` is seen under the test hook's folder (then the caller dies)."""
    folder = os.environ.get(FAULT_ENV)
    if not folder:
        return False
    marker = Path(folder) / key
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def _train_task(config, run_dir: str, seeds: list[int], device: str) -> list[int]:
    from gmg.training.seed_groups import train_group

    if _die_once(f"train-{seeds[0]}"):
        train_group(config, run_dir, seeds, device=device, max_iterations=1)
        os._exit(1)  # the worker process dies after its first checkpoint
    return train_group(config, run_dir, seeds, device=device)


def _eval_task(chunk, refs, setting, device: str, args: dict):
    """One evaluation chunk, where a runner sends it (a Ray task or a local worker process):
    ``chunk`` is ``evaluate.play_chunk`` or ``exact.exact_chunk``, ``args`` its other arguments."""
    frame = chunk(refs, setting, device, **args)
    if _die_once(f"eval-{setting.name}-{refs[0].agent_id}"):
        os._exit(1)  # dies with its rows computed but not returned
    return frame


def _completed(ray, futures: dict) -> Iterator[tuple[object, object]]:
    """(what, result or exception) as each task ends, in completion order."""
    pending = list(futures)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ref = ready[0]
        try:
            yield futures[ref], ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a failed task is reported with what it was doing
            yield futures[ref], e


def _reason(e: Exception) -> str:
    text = str(getattr(e, "cause", None) or e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def seed_runner(address: str):
    """A ``run_seeds`` for ``gmg.training.ppo.train`` that trains each group of seeds as a Ray task
    (it joins the cluster only when some seed is left to train)."""
    return lambda config, run_dir, groups, device, workers, bar: train_seeds(
        address, config, run_dir, groups, str(device), workers, bar)


def train_seeds(address: str, config, run_dir: Path, groups: list[list[int]], device: str, workers: int = 1,
                bar=None) -> None:
    """Train each group of seeds (one seed, or several stacked) as a Ray task into
    ``run_dir/agents``, as ``gmg.training.ppo.train`` does in-process."""

    from gmg.training.seed_groups import failed_seeds_message

    ray = connect(address)
    task = ray.remote(**_resources(ray, device, workers))(_train_task)
    config = config.with_run(threads=config.run.threads or 1)
    futures = {task.remote(config, str(Path(run_dir).resolve()), g, str(device)): g for g in groups}
    failed = []
    for group, result in _completed(ray, futures):
        if isinstance(result, Exception):
            failed.append((group, _reason(result)))
        if bar:
            bar.update(len(group))
    if failed:
        raise UserError(failed_seeds_message(failed, sum(map(len, groups)), " on the cluster"))


def chunk_runner(address: str | None, workers: int = 1, threads: int | None = None):
    """A ``run_chunks`` for ``gmg.experiments.evaluate.evaluate``: with ``address``, each chunk a Ray
    task, ``workers`` of them per GPU; without it and ``workers > 1``, ``workers`` local processes
    of ``threads`` torch threads each (default 1, so rows do not depend on the number of workers);
    None otherwise (evaluate plays in-process)."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if address is not None:
        return lambda jobs, device, args, chunk: play_chunks(address, jobs, device, args, workers, chunk)
    if workers > 1:
        return lambda jobs, device, args, chunk: play_local(jobs, device, args, workers, chunk, threads or 1)
    return None


def play_chunks(address: str, jobs: list, device, args: dict, workers: int, chunk) -> Iterator[tuple]:
    """Yield (setting, agents, rows) per job as Ray tasks running ``chunk`` (``evaluate.play_chunk``
    or ``exact.exact_chunk``) finish; failures are raised after every good chunk has been yielded (and stored).
    Agent paths go out absolute: a task on another node does not share this working directory."""
    import dataclasses

    if not jobs:
        return  # nothing left: a finished sweep needs no cluster
    ray = connect(address)
    jobs = [(setting, [dataclasses.replace(r, path=Path(r.path).resolve()) for r in batch]) for setting, batch in jobs]
    task = ray.remote(**_resources(ray, str(device), workers))(_eval_task)
    futures = {task.remote(chunk, batch, setting, str(device), args): (setting, batch) for setting, batch in jobs}
    yield from _stored_or_failed(_completed(ray, futures), len(jobs), "on the cluster")


def play_local(jobs: list, device, args: dict, workers: int, chunk, threads: int = 1) -> Iterator[tuple]:
    """``play_chunks`` in ``workers`` spawned processes here, each with ``threads`` torch threads set
    before any work. A worker that dies (killed, out of memory) breaks the pool: the chunks it had
    not returned go to a fresh one, up to ``MAX_RETRIES`` times, as Ray reruns a dead worker's task."""
    import pickle
    from concurrent.futures.process import BrokenProcessPool

    if not jobs:
        return
    try:
        pickle.dumps((chunk, args))
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise UserError(f"the evaluation's arguments cannot be sent to worker processes ({e}); an intervention "
                        "must be a module-level class or function: use it, or --workers 1") from None

    def completed() -> Iterator[tuple[object, object]]:
        todo = jobs
        for attempt in range(MAX_RETRIES + 1):
            died = []
            for job, result in _pool_results(todo, device, args, workers, chunk, threads):
                if isinstance(result, BrokenProcessPool) and attempt < MAX_RETRIES:
                    died.append(job)
                else:
                    yield job, result
            if not died:
                return
            todo = died

    yield from _stored_or_failed(completed(), len(jobs), "in worker processes")


def _pool_results(jobs: list, device, args: dict, workers: int, chunk, threads: int) -> Iterator[tuple]:
    """((setting, batch), rows or exception) of each job as one pool of worker processes finishes it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: CUDA cannot be used in a forked child, and no parent thread state is inherited
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_local_worker, initargs=(os.getpid(), threads))
    try:
        futures = {pool.submit(_eval_task, chunk, batch, setting, str(device), args): (setting, batch)
                   for setting, batch in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.exception() or fut.result()
    finally:
        # a driver stopped early waits only for the chunks in flight, not for the queued ones
        pool.shutdown(wait=True, cancel_futures=True)


def _local_worker(parent_pid: int, threads: int) -> None:
    """Initializer of a local evaluation worker: its torch threads, and its end with the driver."""
    import torch

    from gmg.training.seed_groups import exit_with_parent

    torch.set_num_threads(threads)
    exit_with_parent(parent_pid)


def _stored_or_failed(completed: Iterator[tuple[object, object]], total: int, where: str) -> Iterator[tuple]:
    """Yield (setting, agents, rows) of each chunk that succeeded; then one line naming the failed ones."""
    from concurrent.futures.process import BrokenProcessPool

    from gmg.training.seeds import format_seeds

    failed = []
    for (setting, batch), result in completed:
        if isinstance(result, BaseException):
            why = "its worker process died" if isinstance(result, BrokenProcessPool) else _reason(result)
            failed.append(f"{setting.name} agents {format_seeds([r.agent_id for r in batch])}: {why}")
            continue
        yield setting, batch, result
    if failed:
        raise UserError(f"{len(failed)} of {total} evaluation chunks failed {where} "
                        f"({'; '.join(failed[:3])}); rerun the same command to run only what is missing")
