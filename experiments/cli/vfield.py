"""``gmg vfield``: every agent's most likely move from every cell of one level, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_vfield(args: argparse.Namespace) -> None:
    from gmg.experiments.population import population
    from gmg.experiments.vfield import parse_place, vector_fields
    from gmg.training.runtime import resolve_device
    from gmg.training.seeds import parse_seeds

    agents = population(args.agents, parse_seeds(args.ids) if args.ids else None)
    out = vector_fields(agents, args.setting, args.level, args.out, args.intervention, parse_place(args.place),
                        resolve_device(args.device), args.occupancy)
    print(out["clean"])
    if out["intervened"]:
        print(out["intervened"])
        changed = sorted(out["changed"].items(), key=lambda kv: -kv[1])[:5]
        print("most changed under the intervention: " + ", ".join(f"agent {a} ({n} moves)" for a, n in changed))
    for path in out["occupancy"]:
        print(path)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vfield", help="vector fields of a population: each agent's most likely move in every cell")
    p.add_argument("--agents", default="zoo:yellow-line", help="zoo:NAME, a run directory or an agent folder")
    p.add_argument("--ids", help="only these agent ids, e.g. 0-7")
    p.add_argument("--setting", default="red_line-vs-yellow_gem", help="objects shown (on the agents' background)")
    p.add_argument("--level", type=int, default=0, help="evaluation level, 0-999")
    p.add_argument("--place", help="custom object cells ROW,COL;ROW,COL (obj1 then obj2), e.g. 0,4;4,4")
    p.add_argument("--intervention", default="isolate:g",
                   help="also draw the fields under this intervention, changed moves in red ('none': skip)")
    p.add_argument("--occupancy", action="store_true",
                   help="also draw each agent's expected visits per cell (its exact Markov chain), clean and under "
                        "--intervention")
    p.add_argument("--out", default=Path("runs/vfield"), type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_vfield)
