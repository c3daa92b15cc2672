"""``gmg train`` and ``gmg zoo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_overrides(items: list[str] | None) -> dict:
    """``--set FIELD=VALUE`` items as {field: value} (field names with ``_`` for ``-``)."""
    from gmg.training.config import ConfigError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _legacy_render(run_dir: Path) -> dict:
    """{"render": "box"} for a run started before the field existed (its population.json's recipe
    has none): resumed, it keeps the renderer it was trained with; otherwise {}."""
    import json

    try:
        train = json.loads((Path(run_dir) / "population.json").read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {} if "render" in train else {"render": "box"}


def cmd_train(args: argparse.Namespace) -> None:
    from gmg.training.config import make_config
    from gmg.training.runtime import resolve_device
    from gmg.training.seed_groups import train
    from gmg.training.seeds import parse_seeds

    overrides = parse_overrides(args.set)
    for field, value in (("goal", args.goal), ("background", args.background), ("total_timesteps", args.steps),
                         ("snapshot_every", args.snapshot_every), ("levels", args.levels), ("render", args.render)):
        if value:
            overrides[field] = value
    if "render" not in overrides:
        overrides.update(_legacy_render(args.run_dir))
    config = make_config(args.preset, overrides, args.config)
    seeds = parse_seeds(args.seeds)
    data_seeds = parse_seeds(args.data_seeds) if args.data_seeds else None
    if args.ray:
        from gmg.experiments.cluster import seed_runner

        # each Ray task resolves the device on its own node
        run = train(config, args.run_dir, seeds, device=args.device, progress=not args.quiet,
                    workers=args.workers, stack=args.stack, run_seeds=seed_runner(args.ray), data_seeds=data_seeds)
    else:
        run = train(config, args.run_dir, seeds, device=resolve_device(args.device), progress=not args.quiet,
                    workers=args.workers, stack=args.stack, data_seeds=data_seeds)
    print(run / "agents")


def cmd_zoo(args: argparse.Namespace) -> None:
    from gmg.experiments.population import ZOO_DIR, resolve_agents, zoo_names
    from gmg.experiments.zoo.export import export_zoo

    if args.action == "check":
        from gmg.experiments.zoo.export import HELDOUT_RATIO, HELDOUT_SUCCESS, check_agents

        agents = args.agents or "zoo:yellow-line"
        # by default one folder per population: a results store refuses a second agent 0
        source = Path(str(agents).removeprefix("zoo:")).resolve()
        run_dir = args.run_dir or Path("runs/zoo-check") / (source.parent if source.name == "agents" else source).name
        table = check_agents(agents, run_dir, args.device, n_levels=args.n_levels, progress=not args.quiet)
        out = run_dir / "heldout.csv"
        table.to_csv(out, index=False)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"{int(table['passes'].sum())} of {len(table)} agents reach success >= {HELDOUT_SUCCESS:.0%} and "
              f"length <= {HELDOUT_RATIO}x shortest on {args.n_levels} held-out levels -> {out}")
        return
    if args.action == "export":
        if not args.run_dir or not args.name:
            from gmg.training.errors import UserError

            raise UserError("zoo export needs --run-dir RUN and --name NAME (e.g. yellow-line)")
        from gmg.training.seeds import parse_seeds

        done = export_zoo(args.run_dir, ZOO_DIR / args.name, seeds=parse_seeds(args.seeds) if args.seeds else None)
        print(f"{len(done)} agent(s) -> {ZOO_DIR / args.name}")
    else:
        for name in zoo_names():
            refs = resolve_agents(f"zoo:{name}")
            print(f"zoo:{name}  {len(refs)} agents  seeds {refs[0].agent_id}-{refs[-1].agent_id}")


def register(sub: argparse._SubParsersAction) -> None:
    from gmg.experiments.cluster import add_ray_arguments

    p = sub.add_parser("train", help="train a population of PPO agents (resumes; skips finished seeds)")
    from gmg.training.config import PRESETS

    p.add_argument("--preset", default="cpu", help=", ".join(PRESETS))
    p.add_argument("--seeds", default="0", help="e.g. 0-31 or 0,3,5-7: each sets an agent's initial weights and, "
                                                "without --data-seeds, its level order, action sampling and minibatches")
    p.add_argument("--data-seeds", help="train every seed with each of these data seeds (level order, action "
                                        "sampling, minibatch order), e.g. 100-102: a seed x data-seed grid, agent "
                                        "ids seed*10000+data seed")
    p.add_argument("--goal", help="training object, e.g. yellow_line, white_line")
    p.add_argument("--background", help="black, grey or textured")
    p.add_argument("--levels", choices=["hashed", "procgen"], help="level source: gmg's hashed levels (default) or "
                   "the original's procgen levels by id (training ids start_level..start_level+num_levels-1)")
    p.add_argument("--render", choices=["procgen", "box"], help="how frames are drawn: procgen's own drawing (default "
                   "for new runs) or the area-averaged box of the bundled zoo (kept by runs started before the option)")
    p.add_argument("--steps", help="total env steps per agent")
    p.add_argument("--snapshot-every", metavar="N", help="keep each agent's weights every N updates (and the last) "
                                                         "under agent-XXXX/snapshots/, to replay training")
    p.add_argument("--config", help="TOML file of field = value overrides")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override any training field")
    p.add_argument("--run-dir", default="runs/train", type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_ray_arguments(p, "seeds")
    p.add_argument("--stack", type=int, default=1, metavar="K",
                   help="train up to K seeds together in one process, parameters stacked (torch.func); "
                        "each agent matches the one trained alone up to float rounding")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("zoo", help="list the bundled zoo, export a trained run into it (16-bit weights), "
                                   "or check agents on held-out levels of their training distribution")
    p.add_argument("action", choices=["list", "export", "check"])
    p.add_argument("--run-dir", type=Path,
                   help="export: the trained run; check: where results go (default runs/zoo-check/NAME)")
    p.add_argument("--name", help="zoo population name, e.g. yellow-line")
    p.add_argument("--seeds", help="export: only these seeds, e.g. 0-4,6-16 (those that pass `gmg zoo check`)")
    p.add_argument("--agents", help="check: zoo:NAME, a run directory or agent folder (default zoo:yellow-line)")
    p.add_argument("--n-levels", type=int, default=1000, help="check: held-out levels per agent")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_zoo)
