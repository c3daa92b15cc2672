"""``gmg anatomy``: does the initialisation or the data order decide an agent's channel?"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_anatomy(args: argparse.Namespace) -> None:
    from gmg.experiments.analysis.seed_anatomy import OUTCOMES, run_anatomy
    from gmg.experiments.cli.tables import format_table
    from gmg.training.runtime import resolve_device

    out = run_anatomy(args.agents, args.run_dir, resolve_device(args.device), n_levels=args.n_levels,
                      snapshot_levels=args.snapshot_levels, pool=args.pool, seed=args.seed,
                      n_permutations=args.permutations, progress=not args.quiet)
    for note in out["notes"]:
        print(note)
    if "decomposition" in out:
        cols = ["outcome", "share_init", "share_init_lo", "share_init_hi", "p_init", "share_data", "share_data_lo",
                "share_data_hi", "p_data", "share_resid"]
        print(format_table(out["decomposition"][cols], "share of between-agent variance: initialisation vs data "
                                                       "order (bootstrap 95% CI, permutation p)"))
    if "commitment" in out:
        c = out["commitment"].groupby("outcome")["committed_at"].describe()[["mean", "min", "50%", "max"]]
        print(format_table(c.reset_index(), "fraction of training after which the final value is fixed (±0.05)"))
    if "before_training" in out:
        print(format_table(out["before_training"], "predicted from the untrained network, out of sample"))
    print("outcomes: " + "; ".join(f"{k}: {v}" for k, v in OUTCOMES.items()))
    print(Path(args.run_dir) / "anatomy")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anatomy", help="a seed grid: does the initialisation or the data order decide the channel, "
                                       "when does a seed commit, and can it be told before training?")
    p.add_argument("--agents", default="zoo:seed-grid",
                   help="a grid trained with --seeds and --data-seeds (other agents: all but the decomposition)")
    p.add_argument("--pool", help="more agents (one seed each, say zoo:yellow-line) for the before-training fit")
    p.add_argument("--n-levels", type=int, default=500, help="evaluation levels per setting for the final agents")
    p.add_argument("--snapshot-levels", type=int, default=300, help="evaluation levels per setting per snapshot")
    p.add_argument("--permutations", type=int, default=1999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=Path("runs/anatomy"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_anatomy)
