"""Stage ``anatomy`` (``gmg anatomy``): a seed grid's decomposition, commitment and prediction before
training, in ``RUN/anatomy``. Not in the study by default (it needs a seed grid)."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.analysis.seed_anatomy import run_anatomy

    return run_anatomy(population, run_dir, device, seed=config.seed, progress=progress)
