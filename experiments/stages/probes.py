"""Stage ``probes`` (``gmg probe``): linear probes per agent and layer, the ``probes`` table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gmg.experiments.stages import PipelineConfig, study_settings


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.probing import ProbeRunConfig, probe_population

    _, background = study_settings(population, config)
    probe_cfg = ProbeRunConfig(seed=config.seed, n_scenes=config.probe_scenes, layers=config.probe_layers,
                               background=background)
    if config.probe_objects:
        probe_cfg = dataclasses.replace(probe_cfg, objects=tuple(config.probe_objects))
    return probe_population(population, run_dir, probe_cfg, device=device)
