"""Stage ``anatomy`` (``gmg anatomy``): a seed grid's decomposition, commitment and prediction before
training, in ``RUN/anatomy``; on other agents (say imported ones) what needs no grid, the rest
skipped with a note (``anatomy_notes``). Not in the study by default (it is about seed grids)."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.analysis.seed_anatomy import run_anatomy

    return run_anatomy(population, run_dir, device, seed=config.seed, progress=progress)
