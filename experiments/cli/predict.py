"""``gmg predict``: the channel model's predictions of every agent's preference, scored honestly."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_predict(args: argparse.Namespace) -> None:
    from gmg.experiments.analysis.predict import run_predict
    from gmg.experiments.cli.tables import format_table
    from gmg.experiments.cluster import chunk_runner
    from gmg.experiments.population import population
    from gmg.training.runtime import resolve_device
    from gmg.training.seeds import parse_seeds

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # small convs: two threads spin against each other on a busy CPU
    agents = population(args.agents, parse_seeds(args.ids) if args.ids else None)
    out = run_predict(agents, args.run_dir, args.settings, resolve_device(args.device), n_levels=args.n_levels,
                      seed=args.seed, progress=not args.quiet, profile_from=args.profile,
                      readout_levels=args.readout_levels, attribution=not args.no_attributions,
                      combine=args.combine, run_chunks=chunk_runner(args.ray, args.workers, args.threads))
    print(format_table(out["settings"], "across-agent R² of predicted vs observed preference, beside the noise ceiling"))
    print("pooled: " + ", ".join(f"{k} {v:.3f}" for k, v in out["pooled"].items()))
    if out["skipped"]:
        print("not expressible, skipped: " + ", ".join(out["skipped"]))
    print(Path(args.run_dir) / "results.duckdb")


def register(sub: argparse._SubParsersAction) -> None:
    from gmg.experiments.cluster import add_ray_arguments

    p = sub.add_parser("predict", help="predict each agent's preference in every setting from its channel profile")
    p.add_argument("--agents", default="zoo:yellow-line", help="zoo:NAME, a run directory or an agent folder")
    p.add_argument("--ids", help="only these agent ids, e.g. 0-7")
    p.add_argument("--settings", nargs="*", help="two-object settings or list names (default: the agents' list)")
    p.add_argument("--n-levels", type=int, default=1000)
    p.add_argument("--profile", default="rollouts", choices=["rollouts", "exact", "network"],
                   help="measure the profile by playing the single-object settings, by solving their exact "
                        "Markov chains (no action noise, ~2x the CPU time), or read it off the network (headings "
                        "on rendered frames, no rollouts)")
    p.add_argument("--readout-levels", type=int, default=50, help="levels of rendered frames per probe object "
                                                                  "(--profile network) and of the goal-pixel attributions")
    p.add_argument("--no-attributions", action="store_true",
                   help="skip the goal-pixel attributions (captum; about 4 s per agent on a CPU)")
    p.add_argument("--combine", default="max", choices=["max", "add"],
                   help="the walk model's pull toward a colour: its strongest channel's (max) or their sum (add)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a busy CPU); "
                   "with --workers, of each worker process (default 1)")
    add_ray_arguments(p, "evaluation chunks")
    p.add_argument("--run-dir", default=Path("runs/predict"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_predict)
