"""The ``gmg`` command: each verb is a thin shell over one library function.

User-facing errors (bad values, unknown names, corrupt files, wrong versions) become one
line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

USER_ERRORS: tuple[type[BaseException], ...] = ()


def _user_errors() -> tuple[type[BaseException], ...]:
    from training.assets import AssetsNotFound
    from training.checkpoint import AgentLoadError
    from training.config import ConfigError
    from training.levels import LevelError
    from training.objects import ObjectSpecError
    from training.ppo import TrainingError
    from training.render import RenderError

    errors = [AssetsNotFound, AgentLoadError, ConfigError, LevelError, ObjectSpecError, TrainingError, RenderError]
    try:
        from experiments.errors import GmgError

        errors.append(GmgError)
    except ImportError:
        pass
    return tuple(errors)


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            from training.config import ConfigError

            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def cmd_train(args: argparse.Namespace) -> None:
    from training.config import make_config
    from training.ppo import parse_seeds, resolve_device, train

    overrides = _overrides(args.set)
    if args.goal:
        overrides["goal"] = args.goal
    if args.background:
        overrides["background"] = args.background
    if args.steps:
        overrides["total_timesteps"] = args.steps
    config = make_config(args.preset, overrides, args.config)
    seeds = parse_seeds(args.seeds)
    device = resolve_device(args.device)
    run = train(config, args.run_dir, seeds, device=device, progress=not args.quiet)
    print(run / "agents")


# modules that add verbs: each has ``register(subparsers)``; add a line per module
VERB_MODULES = (
    "experiments.cli_render",
    "experiments.cli_bench",
    "experiments.cli_analysis",
    "experiments.cli_interp",
    "experiments.cli_probe",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="gmg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)

    p = sub.add_parser("train", help="train a population of PPO agents (resumes and skips finished seeds)")
    p.add_argument("--preset", default="cpu", help="cpu, paper or paper-textured")
    p.add_argument("--seeds", default="0", help="e.g. 0-31 or 0,3,5-7")
    p.add_argument("--goal", help="training object, e.g. yellow_line, white_line")
    p.add_argument("--background", help="black, grey or textured")
    p.add_argument("--steps", help="total env steps per agent")
    p.add_argument("--config", help="TOML file of field = value overrides")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override any training field")
    p.add_argument("--run-dir", default="runs/train", type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except _user_errors() as e:
        print(f"gmg {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gmg {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
