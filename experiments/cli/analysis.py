"""``gmg regress``, ``gmg outliers``, ``gmg report`` and ``gmg explain``: thin shells over
:mod:`gmg.experiments.analysis.regression`, :mod:`gmg.experiments.analysis.outliers`, :mod:`gmg.experiments.report.page` and
:mod:`gmg.experiments.report.dossier`."""

from __future__ import annotations

import argparse
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default="runs/demo", type=Path, help="run directory holding results.duckdb")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def _print_table(df, title: str) -> None:
    from gmg.experiments.cli.tables import format_table

    print(format_table(df, title))


def cmd_regress(args: argparse.Namespace) -> None:
    from gmg.experiments.analysis.regression import diagnostics_table, run_regressions

    out = run_regressions(args.run_dir, args.y_setting, args.x_setting, args.reliance_col)
    cols = ["model", "term", "coef", "se", "ci_low", "ci_high", "p", "r2", "r2_cv", "n"]
    _print_table(out["table"][cols], "OLS, HC3 robust standard errors; r2_cv: leave-one-agent-out")
    _print_table(diagnostics_table(out["results"]), "residual diagnostics")
    for note in out["notes"]:
        print(f"note: {note}")
    for f in out["files"]:
        print(f)


def cmd_outliers(args: argparse.Namespace) -> None:
    from gmg.experiments.analysis.outliers import run_outliers

    out = run_outliers(args.run_dir, top=args.top, seed=args.seed, preference_z_min=args.z)
    _print_table(out["ranking"].head(args.top).reset_index(), "outlier ranking (combined = median rank percentile)")
    _print_table(out["features"], "top features (robust z against the population)")
    _print_table(out["capable"], "fully capable but unusual preference")
    for note in out["notes"]:
        print(f"note: {note}")
    for f in out["files"]:
        print(f)


def cmd_report(args: argparse.Namespace) -> None:
    from gmg.experiments.report.page import build_report
    from gmg.training.runtime import resolve_device

    print(build_report(args.run_dir, args.agents, top=args.top, device=resolve_device(args.device), seed=args.seed))


def cmd_explain(args: argparse.Namespace) -> None:
    from gmg.experiments.report.dossier import explain
    from gmg.training.runtime import resolve_device

    print(explain(args.agent, args.run_dir, args.agents, resolve_device(args.device), args.level))


def register(sub) -> None:
    p = sub.add_parser("regress", help="regress OOD preference on channel reliance (and the original behavioural one)")
    _common(p)
    p.add_argument("--y-setting", help="setting whose preference is explained (default yellow_gem-vs-red_line)")
    p.add_argument("--x-setting", help="behavioural regressor setting (default green_line-vs-red_line)")
    p.add_argument("--reliance-col", help="column of the reliance table to use (default green_vs_red)")
    p.set_defaults(func=cmd_regress)

    p = sub.add_parser("outliers", help="rank agents by how unusual they are across settings")
    _common(p)
    p.add_argument("--top", type=int, default=10, help="how many to list and explain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--z", type=float, default=4.0, help="|robust z| of preference that counts as unusual")
    p.set_defaults(func=cmd_outliers)

    p = sub.add_parser("report", help="write the run's static HTML report (run_dir/report/index.html)")
    _common(p)
    p.add_argument("--agents", help="where the agents live (default: the run directory)")
    p.add_argument("--top", type=int, default=3, help="dossiers of this many top outliers")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("explain", help="write the one-page dossier of one agent")
    p.add_argument("agent", type=int, help="agent id (its seed)")
    _common(p)
    p.add_argument("--agents", help="where the agents live (default: the run directory)")
    p.add_argument("--level", type=int, help="evaluation level id for the policy maps (default: the first)")
    p.set_defaults(func=cmd_explain)
