"""``gmg compare``: populations side by side, each on its own training background."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_compare(args: argparse.Namespace) -> None:
    from gmg.experiments.analysis.compare import compare_populations
    from gmg.experiments.cli.tables import format_table

    settings = [s for s in args.settings.split(",") if s.strip()]
    out = compare_populations(args.populations, settings, args.run_dir, args.device, n_levels=args.n_levels,
                              seed=args.seed, progress=not args.quiet)
    if len(out["asymmetry"]):
        print(format_table(out["asymmetry"], "asymmetry: mean preference for the green line minus the red line "
                                             "(vs the yellow gem), bootstrap 95% CI over agents"))
    if len(out["tests"]):
        print(format_table(out["tests"], "between populations: permutation test of the difference"))
    print(out["figure"])


def register(sub: argparse._SubParsersAction) -> None:
    from gmg.experiments.analysis.compare import COLOUR_SETTINGS

    p = sub.add_parser("compare", help="populations side by side on their own backgrounds; the texture asymmetry")
    p.add_argument("populations", nargs="+", help="zoo:NAME, run directories or agent folders")
    p.add_argument("--settings", default=",".join(COLOUR_SETTINGS),
                   help="comma-separated settings, played on each population's own background")
    p.add_argument("--n-levels", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=Path("runs/compare"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_compare)
