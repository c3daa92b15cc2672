"""``gmg bench ray``: a small sweep in-process against a local Ray cluster."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.cluster import chunk_runner, connect, seed_runner


def bench_ray(*, device="cpu", seeds: int = 4, steps: int = 8192, n_levels: int = 200, **_) -> dict:
    """Seconds of a small sweep in-process and on a local Ray (2 tasks at once on 2 cores).

    Training: ``seeds`` cpu-preset agents of ``steps`` env steps, in-process with
    ``--workers 2`` against one Ray task per seed. Evaluation: those agents x 2 settings x
    ``n_levels`` levels, 2 agents per chunk, in this process against Ray tasks. Ray's own
    start is timed apart; each row's ``overhead_s`` is Ray's time minus in-process time.
    """
    import tempfile
    import time

    from gmg.experiments.evaluate import evaluate
    from gmg.training.config import make_config
    from gmg.training.runtime import machine
    from gmg.training.seed_groups import train

    device = str(device)
    config = make_config("cpu", {"total_timesteps": steps, "num_levels": 1000, "threads": 1})
    settings = ["red_line-vs-yellow_gem", "train:yellow_line"]
    eval_args = dict(n_levels=n_levels, batch_envs=2 * n_levels, progress=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        ray = connect("local")
        startup = time.perf_counter() - t0
        for stage, local, remote in (
            ("train", lambda: train(config, tmp / "local", list(range(seeds)), device, progress=False, workers=2),
             lambda: train(config, tmp / "ray", list(range(seeds)), device, progress=False,
                           run_seeds=seed_runner("local"))),
            ("evaluate", lambda: evaluate(tmp / "local" / "agents", settings, tmp / "eval-local", device, **eval_args),
             lambda: evaluate(tmp / "local" / "agents", settings, tmp / "eval-ray", device, run_chunks=chunk_runner("local"),
                              **eval_args)),
        ):
            t0 = time.perf_counter()
            local()
            t_local = time.perf_counter() - t0
            t0 = time.perf_counter()
            remote()
            t_ray = time.perf_counter() - t0
            rows.append({"stage": stage, "in_process_s": round(t_local, 2), "ray_s": round(t_ray, 2),
                         "overhead_s": round(t_ray - t_local, 2)})
    ray.shutdown()
    return {"bench": "ray", "machine": machine(), "ray_startup_s": round(startup, 2),
            "sweep": {"seeds": seeds, "steps": steps, "settings": settings, "n_levels": n_levels}, "rows": rows}

