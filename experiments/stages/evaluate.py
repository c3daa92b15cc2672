"""Stage ``evaluate`` (``gmg evaluate``): every agent in every study setting, the ``episodes`` table."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig, study_settings


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True,
        ray: str | None = None, workers: int = 1):
    from gmg.experiments.cluster import chunk_runner
    from gmg.experiments.evaluate import evaluate

    settings, _ = study_settings(population, config)
    return evaluate(population, settings, run_dir, device, n_levels=config.n_levels, seed=config.seed,
                    progress=progress, run_chunks=chunk_runner(ray, workers))
