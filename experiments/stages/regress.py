"""Stage ``regress`` (``gmg regress``): the behavioural, mechanistic and channel regressions, written
as the ``regression``, ``regression_diagnostics``, ``regression_points`` and ``regression_notes`` tables."""

from __future__ import annotations

from pathlib import Path

from gmg.experiments.stages import PipelineConfig
from gmg.training.errors import UserError


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    """``run_regressions``; a run that cannot support a regression (no episodes, too few agents)
    keeps its reason in ``regression_notes`` for the report instead of stopping the study."""
    from gmg.experiments.analysis.regression import run_regressions
    from gmg.experiments.rundir import write_notes

    try:
        return run_regressions(run_dir)
    except UserError as e:
        write_notes(run_dir, "regression_notes", [str(e)])
        return None
