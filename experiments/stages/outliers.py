"""Stage ``outliers`` (``gmg outliers``, then ``gmg explain`` and ``gmg vfield`` for the top ones): the
ranking tables, the dossiers of the ``config.top_outliers`` most unusual agents and of the agent the
channel model explains worst, and the top outliers' vector fields (table ``outlier_fields``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gmg.experiments.stages import PipelineConfig
from gmg.training.errors import UserError


def run(population, run_dir: str | Path, config: PipelineConfig, device="cpu", progress: bool = True):
    from gmg.experiments.analysis.outliers import run_outliers
    from gmg.experiments.rundir import write_notes

    run_dir = Path(run_dir)
    try:
        out = run_outliers(run_dir, top=max(config.top_outliers, 5), seed=config.seed)
    except UserError as e:
        write_notes(run_dir, "outlier_notes", [str(e)])
        return None
    chosen = dossier_agents(run_dir, out["ranking"], config.top_outliers)
    write_dossiers(run_dir, population, chosen, device)
    write_fields(run_dir, population, [a for a in out["ranking"].index[:config.top_outliers]], device)
    return out


def worst_explained(run_dir: Path) -> int | None:
    """The agent whose preferences the channel model misses most (``predictions``), if any."""
    from gmg.experiments.analysis.predict import shown_model
    from gmg.experiments.rundir import has_stage, read_stage

    if not has_stage(run_dir, "predictions"):
        return None
    pred = read_stage(run_dir, "predictions")
    model = shown_model(pred)
    miss = (pred["observed"] - pred[model]).abs().groupby(pred["agent"]).mean().sort_values(ascending=False)
    return int(miss.index[0]) if len(miss) else None


def dossier_agents(run_dir: Path, ranking: pd.DataFrame, top: int) -> list[int]:
    """The agents the report shows dossiers of: the ``top`` outliers, then the worst explained."""
    chosen = [int(a) for a in ranking.index[:top]]
    worst = worst_explained(run_dir)
    return chosen + ([worst] if worst is not None and worst not in chosen else [])


def write_dossiers(run_dir: Path, population, agents: list[int], device) -> list[Path]:
    from gmg.experiments.report.dossier import explain

    return [explain(a, run_dir, population, device) for a in agents]


def write_fields(run_dir: Path, population, top: list[int], device) -> None:
    """The top outliers' vector fields in the run's first two-object setting, clean and under
    isolate:g (``gmg vfield``), listed in ``outlier_fields`` for the report."""
    from gmg.experiments.rundir import notes_of, population_metrics, read_stage, write_notes, write_table
    from gmg.experiments.vfield import vector_fields

    settings = population_metrics(read_stage(run_dir, "episodes"))["setting"]
    pairs = [s for s in dict.fromkeys(settings) if "-vs-" in s]
    rows = []
    if population is not None and pairs:
        try:
            ids = [int(a) for a in top if int(a) in population.ids]
            fields = vector_fields(population.select(ids), pairs[0], 0, run_dir / "vfield", "isolate:g", device=device)
            rows = [(fields["clean"], f"vector fields of the top outliers, {pairs[0]}"),
                    (fields["intervened"], "the same under isolate:g, changed moves in red")]
        except UserError as e:
            write_notes(run_dir, "outlier_notes", [*notes_of(run_dir, "outlier_notes"), f"vector fields skipped: {e}"])
    write_table(run_dir, "outlier_fields", pd.DataFrame(
        [{"path": str(Path(p).relative_to(run_dir)), "caption": c} for p, c in rows], columns=["path", "caption"]))
