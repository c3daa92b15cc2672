"""``gmg demo`` (the README's main job) and ``gmg run`` (the same study on any population)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> None:
    from gmg.experiments.study import demo

    report = demo(args.run_dir, args.agents, args.device, progress=not args.quiet)
    print(f"report: {report}")


def cmd_run(args: argparse.Namespace) -> None:
    from gmg.experiments.study import PipelineConfig, run_pipeline

    config = PipelineConfig(
        settings=tuple(s.strip() for s in args.settings.split(",")) if args.settings else None,
        n_levels=args.n_levels, reliance_levels=args.reliance_levels, probe_scenes=args.probe_scenes,
        top_outliers=args.top, seed=args.seed,
    )
    report = run_pipeline(args.agents, args.run_dir, config, args.device, progress=not args.quiet,
                          ray=args.ray, workers=args.workers)
    print(f"report: {report}")


def register(sub: argparse._SubParsersAction) -> None:
    from gmg.experiments.cluster import add_ray_arguments

    p = sub.add_parser("demo", help="the whole study on the bundled zoo, sized for a CPU: ends with the report's path")
    p.add_argument("--agents", default="zoo:yellow-line", help="zoo:yellow-line or zoo:white-line")
    p.add_argument("--run-dir", default=Path("runs/demo"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the whole study on your population at full size (resumes where it stopped)")
    p.add_argument("--agents", required=True, help="a run directory of `gmg train`, zoo:NAME or an agent folder")
    p.add_argument("--run-dir", default=Path("runs/study"), type=Path)
    p.add_argument("--settings", help="comma-separated settings (default: the list named after the agents' goal)")
    p.add_argument("--n-levels", type=int, default=1000, help="evaluation levels per (agent, setting)")
    p.add_argument("--reliance-levels", type=int, default=100)
    p.add_argument("--probe-scenes", type=int, default=600)
    p.add_argument("--top", type=int, default=3, help="dossiers of this many top outliers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_ray_arguments(p, "evaluation chunks")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_run)
