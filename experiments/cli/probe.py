"""``gmg probe``: linear probes per agent and layer, with controls, into the results store.

    gmg probe --agents zoo:yellow-line --run-dir runs/probe [--layers main|all|NAME,...]
              [--objects red_line,green_gem,...] [--scenes 600] [--probes cell_logistic,...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_probe(args: argparse.Namespace) -> None:
    from gmg.experiments.probing import DEFAULT_OBJECTS, PROBES, ProbeRunConfig, probe_population
    from gmg.training.objects import parse_object
    from gmg.training.runtime import resolve_device
    from gmg.training.seeds import parse_seeds

    layers = args.layers if args.layers in ("main", "all") else tuple(_csv(args.layers) or ())
    objects = tuple(parse_object(o).name for o in (_csv(args.objects) or DEFAULT_OBJECTS))
    cfg = ProbeRunConfig(
        objects=objects, layers=layers, probes=tuple(_csv(args.probes) or PROBES), n_scenes=args.scenes,
        background=args.background, pool=args.pool or None, seed=args.seed, keep_activations=args.keep_activations,
        n_components=args.components or None, test_size=args.test_size, n_jobs=args.jobs,
    )
    ids = parse_seeds(args.ids) if args.ids else None
    device = resolve_device(args.device)
    table = probe_population(args.agents, args.run_dir, cfg, ids=ids, device=device,
                             progress=None if args.quiet else print)
    if args.plot:
        from gmg.experiments.plots.probes import plot_agent_profile, plot_population_bands

        first = int(table["agent"].min())
        p1 = Path(args.run_dir) / f"probe-agent-{first:04d}.png"
        p2 = Path(args.run_dir) / "probe-population.png"
        plot_agent_profile(table, first, path=p1)
        plot_population_bands(table, path=p2)
        print(p1)
        print(p2)
    print(Path(args.run_dir) / "results.duckdb")


def register(subparsers) -> None:
    p = subparsers.add_parser("probe", help="linear probes per agent and layer for goal-object detection, with controls")
    p.add_argument("--agents", default="zoo:yellow-line", help="zoo:NAME, a run directory or an agent folder")
    p.add_argument("--ids", help="only these agent ids, e.g. 0-7")
    p.add_argument("--run-dir", default="runs/probe", type=Path)
    p.add_argument("--layers", default="main", help="main, all, or comma-separated hook names")
    p.add_argument("--objects", help="comma-separated objects (default: red/green/blue/yellow/white line and gem)")
    p.add_argument("--probes", help="comma-separated: cell_logistic, cell_position, xy_ridge (default: all)")
    p.add_argument("--scenes", type=int, default=600, help="scenes per object (25%% held out)")
    p.add_argument("--background", default="black", help="black, grey or textured")
    p.add_argument("--pool", type=int, default=8, help="pool conv maps to at most POOL x POOL (0: no pooling)")
    p.add_argument("--components", type=int, default=64, help="PCA components before the probe (0: no PCA)")
    p.add_argument("--test-size", type=float, default=0.25, help="share of scenes held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=-1,
                   help="processes fitting probes at once (default -1: every core); results do not depend on it")
    p.add_argument("--keep-activations", action="store_true", help="keep the float16 activations on disk")
    p.add_argument("--plot", action="store_true", help="also save the profile and population plots")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_probe)
