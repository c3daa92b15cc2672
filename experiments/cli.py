"""The ``gmg`` command: each verb is a thin shell over one library function.

User-facing errors (bad values, unknown names, corrupt files, wrong versions) become one
line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys


def _user_errors() -> tuple[type[BaseException], ...]:
    from training.assets import AssetsNotFound
    from training.checkpoint import AgentLoadError
    from training.config import ConfigError
    from training.env import EnvError
    from training.levels import LevelError
    from training.objects import ObjectSpecError
    from training.ppo import TrainingError
    from training.render import RenderError

    errors = [AssetsNotFound, AgentLoadError, ConfigError, EnvError, LevelError, ObjectSpecError, TrainingError, RenderError]
    try:
        from experiments.errors import GmgError

        errors.append(GmgError)
    except ImportError:
        pass
    return tuple(errors)


# modules that add verbs: each has ``register(subparsers)``; add a line per module
VERB_MODULES = (
    "experiments.cli_train",
    "experiments.cli_pipeline",
    "experiments.cli_render",
    "experiments.cli_bench",
    "experiments.cli_analysis",
    "experiments.cli_interp",
    "experiments.cli_probe",
    "experiments.cli_eval",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="gmg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)

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
