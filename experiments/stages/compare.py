"""Stage ``compare`` (``gmg compare``): this population beside ``config.compare_with``, in ``RUN/compare``."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.analysis.compare import compare_populations

    if not config.compare_with:
        return None
    return compare_populations([population, *config.compare_with], run_dir=Path(run_dir) / "compare", device=device,
                               n_levels=config.compare_levels, seed=config.seed, progress=progress)
