"""The run directory: which tables it holds, where each lives, which stage writes it.

A run directory holds the results store (``results.duckdb``: the tables that grow chunk by
chunk) and CSV tables that an analysis writes whole (``analysis/``, ``compare/``,
``anatomy/``). :data:`TABLES` names every one with the stage of ``gmg.experiments.stages``
that writes it and the ``gmg`` command that runs that stage; :func:`read_stage` reads any of
them or raises :class:`MissingStage` with the one line to run. Readers (the report, the
dossier) go through here, so a missing table always names what writes it.

    >>> read_stage("runs/demo", "regression")   # analysis/regression.csv, or MissingStage
    >>> population_metrics(read_stage("runs/demo", "episodes"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gmg.training.errors import UserError


@dataclass(frozen=True)
class Table:
    """One table of a run: its stage, the command that writes it, and its CSV file (None: in
    the results store)."""

    name: str
    stage: str
    command: str
    file: str | None = None

    def path(self, run_dir: str | Path) -> Path:
        from gmg.experiments.store import STORE_FILE

        return Path(run_dir) / (self.file or STORE_FILE)

    def to_run(self, run_dir: str | Path) -> str:
        """The command line that writes this table into ``run_dir``."""
        run_dir = Path(run_dir)
        if self.stage == "compare":  # compare writes into a folder of its own (the report's RUN/compare)
            return f"{self.command} --run-dir {run_dir / 'compare'}"
        return f"{self.command} --run-dir {run_dir}"


_TABLES = (
    Table("episodes", "evaluate", "gmg evaluate"),
    Table("exact", "evaluate", "gmg evaluate --exact"),
    Table("reliance", "reliance", "gmg reliance"),
    Table("probes", "probes", "gmg probe"),
    Table("predictions", "predict", "gmg predict"),
    Table("goal_attribution", "predict", "gmg predict"),
    Table("predict_scores", "predict", "gmg predict", "analysis/predict_scores.csv"),
    Table("predict_profile", "predict", "gmg predict", "analysis/predict_profile.csv"),
    Table("regression", "regress", "gmg regress", "analysis/regression.csv"),
    Table("regression_diagnostics", "regress", "gmg regress", "analysis/regression_diagnostics.csv"),
    Table("regression_points", "regress", "gmg regress", "analysis/regression_points.csv"),
    Table("regression_notes", "regress", "gmg regress", "analysis/regression_notes.csv"),
    Table("outliers", "outliers", "gmg outliers", "analysis/outliers.csv"),
    Table("outlier_features", "outliers", "gmg outliers", "analysis/outlier_features.csv"),
    Table("capable_but_unusual", "outliers", "gmg outliers", "analysis/capable_but_unusual.csv"),
    Table("outlier_notes", "outliers", "gmg outliers", "analysis/outlier_notes.csv"),
    # the study's outliers stage also draws the top outliers' vector fields (``gmg run`` / ``gmg demo``)
    Table("outlier_fields", "outliers", "gmg run", "analysis/outlier_fields.csv"),
    Table("asymmetry", "compare", "gmg compare", "compare/asymmetry.csv"),
    Table("asymmetry_tests", "compare", "gmg compare", "compare/asymmetry_tests.csv"),
    *(Table(name, "anatomy", "gmg anatomy", f"anatomy/{name}.csv")
      for name in ("outcomes", "decomposition", "commitment", "before_training", "trajectory")),
    Table("anatomy_notes", "anatomy", "gmg anatomy", "anatomy/notes.csv"),
)
TABLES: dict[str, Table] = {t.name: t for t in _TABLES}

# the intervention values that mean "the agent as it is" (evaluate writes "none"; imported
# results and older stores used the others)
NO_INTERVENTION = ("none", "", "baseline", "clean")


class MissingStage(UserError):
    """The run lacks a table; the message names the ``gmg`` command that writes it."""


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise UserError(f"unknown table {name!r}; a run holds {', '.join(TABLES)}") from None


def missing(run_dir: str | Path, name: str) -> str:
    """The one line a reader shows for a missing table: the stage and the command that writes it."""
    t = table(name)
    return f"run `{t.to_run(run_dir)}` (stage {t.stage} writes `{name}`)"


def has_stage(run_dir: str | Path, name: str) -> bool:
    """Whether the run holds table ``name`` (without reading it)."""
    from gmg.experiments.store import ResultsStore

    t = table(name)
    path = t.path(run_dir)
    if not path.is_file():
        return False
    if t.file is not None:
        return True
    try:
        with ResultsStore(run_dir, read_only=True) as store:
            return name in store.tables()
    except UserError:
        return False


def read_stage(run_dir: str | Path, name: str) -> pd.DataFrame:
    """The whole table ``name`` of the run, or :class:`MissingStage` naming the command to run."""
    from gmg.experiments.store import ResultsStore

    t = table(name)
    if not has_stage(run_dir, name):
        raise MissingStage(f"{run_dir} has no `{name}` table yet: {missing(run_dir, name)}")
    if t.file is not None:
        try:
            return pd.read_csv(t.path(run_dir))
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
    with ResultsStore(run_dir, read_only=True) as store:
        return store.table(name)


def write_table(run_dir: str | Path, name: str, rows: pd.DataFrame, index: bool = False) -> Path:
    """Write the CSV table ``name`` of the run (its path from :data:`TABLES`); return the path."""
    path = table(name).path(run_dir)
    if table(name).file is None:
        raise UserError(f"`{name}` lives in the results store; write it with ResultsStore.write_chunk")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=index)
    return path


def write_notes(run_dir: str | Path, name: str, notes: list[str]) -> Path:
    """The one-line notes of a stage (what it skipped and why) as the table ``name``."""
    return write_table(run_dir, name, pd.DataFrame({"note": list(notes)}, dtype=object))


def notes_of(run_dir: str | Path, name: str) -> list[str]:
    """The notes a stage left (none if it has not run)."""
    return [str(n) for n in read_stage(run_dir, name)["note"]] if has_stage(run_dir, name) else []


def no_intervention(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the agents as they are (no intervention); all rows of a table without the column."""
    if "intervention" not in rows.columns:
        return rows
    return rows[rows["intervention"].fillna("none").astype(str).str.lower().isin(NO_INTERVENTION)]


def population_metrics(episodes: pd.DataFrame) -> pd.DataFrame:
    """``gmg.experiments.evaluate.metrics`` of the un-intervened ``episodes`` rows (with their
    confidence intervals): one row per (agent, setting). ``MissingStage`` if there are none."""
    from gmg.experiments.evaluate import metrics

    df = no_intervention(episodes)
    if df.empty:
        raise MissingStage(f"no un-intervened episodes found: run `{TABLES['episodes'].command}` first")
    return metrics(df)
