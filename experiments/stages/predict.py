"""Stage ``predict`` (``gmg predict``): the channel model's profile, predictions and scores."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig, study_settings


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True,
        ray: str | None = None, workers: int = 1):
    from gmg.experiments.analysis.predict import run_predict
    from gmg.experiments.cluster import chunk_runner

    if not config.predict:
        return None
    settings, _ = study_settings(population, config)
    return run_predict(population, run_dir, [s.name for s in settings if not s.single], device,
                       n_levels=config.n_levels, seed=config.seed, progress=progress,
                       attribution=config.predict_attribution, run_chunks=chunk_runner(ray, workers))
