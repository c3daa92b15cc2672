"""The study's stages, one module each: ``run(population, run_dir, config, device, progress)``
writes the stage's tables into the run directory (``gmg.experiments.rundir.TABLES`` names
them) and skips what is already there. ``STAGES`` is the study's order; the report
(``gmg.experiments.report.page.build_report``) only reads what they wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

# the study's order: a stage reads only what the ones before it wrote
STAGES = ("evaluate", "predict", "reliance", "probes", "compare", "regress", "outliers")
# not in the study by default: the seed grid's decomposition (``gmg anatomy``)
OTHER_STAGES = ("anatomy",)


@dataclass(frozen=True)
class PipelineConfig:
    """How much of each stage to run."""

    settings: tuple[str, ...] | None = None  # None: the list named after the agents' goal
    n_levels: int = 1000  # evaluation levels per (agent, setting)
    reliance_levels: int = 100
    reliance_attr: int = 32
    probe_objects: tuple[str, ...] | None = None  # None: every colour x shape of the probes stage
    probe_scenes: int = 600
    probe_layers: str | tuple[str, ...] = "main"
    top_outliers: int = 3
    compare_with: tuple[str, ...] = ()  # other populations shown beside this one (``gmg compare``)
    compare_levels: int = 1000
    predict: bool = True  # the channel model (``gmg predict``): profile settings, predictions, scores
    predict_attribution: bool = True  # its goal-pixel attributions too (captum; minutes for a population)
    seed: int = 0


def study_settings(agents, config: PipelineConfig) -> tuple[list, str]:
    """(settings, background) of a study: ``config.settings`` or the goal's list, on the agents'
    own training background as reliance plays them (a ``@BACKGROUND`` suffix still wins)."""
    from gmg.experiments.settings import default_settings, resolve_settings

    goal, background = agents.trained_on.goal, agents.trained_on.background
    if config.settings:
        return resolve_settings(list(config.settings), background), background
    return default_settings(goal, background), background


def stage(name: str):
    """The module of stage ``name``."""
    import importlib

    return importlib.import_module(f"gmg.experiments.stages.{name}")
