"""``gmg bench WHAT``: run one benchmark of ``gmg.experiments.bench.run.BENCHES``, print a table, write JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> None:
    from gmg.experiments.bench.run import run_bench
    from gmg.experiments.cli.tables import format_table
    from gmg.training.runtime import resolve_device

    options = {"device": resolve_device(args.device)}
    for key in ("num_envs", "steps", "threads", "num_levels"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.no_procgen:
        options["procgen"] = False
    if args.agents:
        options["agents"] = args.agents
    from gmg.training.seeds import parse_ranges

    if args.workers:
        options["workers"] = parse_ranges(args.workers, "workers", "2,4")
    if args.stack:
        options["stack"] = parse_ranges(args.stack, "stack", "4,8")
    if args.iterations is not None:
        options["iterations"] = args.iterations
    if args.set:
        from gmg.experiments.cli.train import parse_overrides

        options["overrides"] = parse_overrides(args.set)
    for key in ("presets", "variants"):
        if getattr(args, key):
            options[key] = [v.strip() for v in getattr(args, key).split(",") if v.strip()]
    if args.random_agents:
        options["random_agents"] = True
    if args.exact:
        options["exact"] = True
    if args.eval_settings:
        options["settings"] = [v.strip() for v in args.eval_settings.split(",") if v.strip()]
    if args.n_agents is not None:
        options["n_agents"], options["cycle"] = args.n_agents, False
    if args.n_levels is not None:
        options["n_levels"] = args.n_levels
    out = args.out if args.out is not None else Path("runs/bench") / f"{args.what}.json"
    result = run_bench(args.what, out, **options)
    print(format_table(result))
    if "ray_startup_s" in result:
        print(f"ray start: {result['ray_startup_s']:.1f} s")
    if "ratio" in result:
        print(f"ratio: {result['ratio']:.2f}x")
    print(out)


def register(sub: argparse._SubParsersAction) -> None:
    from gmg.experiments.bench.run import BENCHES

    p = sub.add_parser("bench", help="measure speed: " + ", ".join(BENCHES))
    p.add_argument("what", choices=sorted(BENCHES), help="what to measure")
    p.add_argument("--num-envs", type=int, help="parallel envs (env bench: 256)")
    p.add_argument("--steps", type=int, help="timed steps per env (env bench: 200)")
    p.add_argument("--threads", type=int, help="CPU threads for both sides (default: all cores)")
    p.add_argument("--num-levels", type=int, help="env bench: training levels to sample (100000)")
    p.add_argument("--no-procgen", action="store_true", help="env bench: skip procgen's maze")
    p.add_argument("--agents", help="eval bench: trained agents to cycle to 100 (default runs/zoo-yellow-line/agents)")
    p.add_argument("--workers", help="train bench: also time this many seeds trained at once (or several: 2,4)")
    p.add_argument("--stack", help="train bench: also time this many seeds stacked in one process (or several: 4,8)")
    p.add_argument("--iterations", type=int, help="train bench: updates per timed run (default 2; the first warms "
                   "up; 4 or more for the steady figure of --workers)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="train bench: override a training field")
    p.add_argument("--presets", help="train bench: comma-separated presets (default cpu,paper)")
    p.add_argument("--variants", help="train bench: comma-separated fp32, bf16, compile, bf16+compile (default: "
                   "fp32, bf16, compile; fp32 only for paper on a CPU)")
    p.add_argument("--random-agents", action="store_true", help="eval bench: also time 100 random agents (slow)")
    p.add_argument("--exact", action="store_true", help="eval bench: each population sampled and exact, with CPU "
                   "seconds, frames per level and the preference interval's width per CPU-second")
    p.add_argument("--settings", dest="eval_settings", help="eval bench: comma-separated settings (default "
                   "red_line-vs-yellow_gem)")
    p.add_argument("--n-agents", type=int, help="eval bench: the first N agents, each once (default: cycled to 100)")
    p.add_argument("--n-levels", type=int, help="eval bench: evaluation levels (default 1000)")
    p.add_argument("--out", type=Path, help="JSON file (default runs/bench/WHAT.json)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_bench)
