"""``gmg render``: PNGs of levels as the agent sees them."""

from __future__ import annotations

import argparse
from pathlib import Path


def _level_ids(text: str | None) -> list[int] | None:
    from gmg.training.seeds import parse_ranges

    return parse_ranges(text, "levels", "0-15 or 3,7,1000000000") if text else None


def cmd_render(args: argparse.Namespace) -> None:
    from gmg.experiments.plots.levels import render_pictures
    from gmg.training.runtime import resolve_device

    objects = tuple(o.strip() for o in args.objects.split(",") if o.strip())
    paths = render_pictures(
        args.out,
        objects,
        args.background,
        level_ids=_level_ids(args.levels),
        n_levels=args.n,
        first_level=args.first,
        world_dim=args.world_dim,
        size=args.size,
        scale=args.scale,
        channels=args.channels,
        device=resolve_device(args.device),
        render=args.render,
    )
    for path in paths.values():
        print(path)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write PNGs of levels: agent's view, R/G/B channel split, level grid")
    p.add_argument("--objects", default="yellow_line", help="comma-separated, obj1 first: red_line,yellow_gem")
    p.add_argument("--background", default="black", help="black, grey or textured")
    p.add_argument("--levels", help="level ids, e.g. 0-15 or 3,7,1000000000 (default: --n from --first)")
    p.add_argument("--n", type=int, default=16, help="how many levels in the grid")
    p.add_argument("--first", type=int, default=0, help="first level id")
    p.add_argument("--world-dim", type=int, default=5)
    p.add_argument("--size", type=int, default=64, help="observation size in px")
    p.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscale of the PNGs")
    p.add_argument("--channels", default="grey", choices=["grey", "tint"], help="how to show each channel")
    p.add_argument("--render", default="procgen", choices=["procgen", "box"],
                   help="procgen's own drawing (default) or the area-averaged one of the first zoo")
    p.add_argument("--out", default=Path("runs/render"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_render)
