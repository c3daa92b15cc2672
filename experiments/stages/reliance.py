"""Stage ``reliance`` (``gmg reliance``): each agent's channel-reliance row, the ``reliance`` table."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.reliance import run_reliance

    return run_reliance(population, run_dir, device, n_levels=config.reliance_levels, n_attr=config.reliance_attr,
                        seed=config.seed)
