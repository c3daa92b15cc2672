"""The ``gmg`` command: each verb is a thin shell over one library function.

Every user-facing error derives from ``gmg.training.errors.UserError`` (bad values, unknown
names, corrupt files, wrong versions) and becomes one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from gmg.experiments.cli import analysis as cli_analysis
from gmg.experiments.cli import anatomy as cli_anatomy
from gmg.experiments.cli import bench as cli_bench
from gmg.experiments.cli import compare as cli_compare
from gmg.experiments.cli import evaluate as cli_evaluate
from gmg.experiments.cli import imports as cli_imports
from gmg.experiments.cli import interp as cli_interp
from gmg.experiments.cli import predict as cli_predict
from gmg.experiments.cli import probe as cli_probe
from gmg.experiments.cli import render as cli_render
from gmg.experiments.cli import study as cli_study
from gmg.experiments.cli import train as cli_train
from gmg.experiments.cli import vfield as cli_vfield
from gmg.training.errors import UserError

# modules that add verbs: each has ``register(subparsers)``; add a module here per verb group
VERB_MODULES = (cli_train, cli_study, cli_render, cli_bench, cli_analysis, cli_compare, cli_interp, cli_probe,
                cli_evaluate, cli_vfield, cli_predict, cli_anatomy, cli_imports)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in VERB_MODULES:
        module.register(sub)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"gmg {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gmg {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
