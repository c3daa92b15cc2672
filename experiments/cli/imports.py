"""``gmg import original`` and ``gmg import original-results``: the original study's agents and
evaluation results (train-procgen's files) into gmg's formats; see docs/original-agents.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gmg.training.errors import UserError


def _problems(lines: list[str], done: str) -> None:
    """Each problem on one line on stderr; then one line (exit 2) if there were any."""
    for line in lines:
        print(line, file=sys.stderr)
    if lines:
        raise UserError(f"{len(lines)} problem(s) listed above; {done}")


def cmd_original(args: argparse.Namespace) -> None:
    from gmg.experiments.original.agents import import_original

    out = import_original(args.path, args.run_dir, args.goal, args.background, progress=not args.quiet)
    for pop in out.populations:
        n = sum(1 for p in (pop / "agents").iterdir() if (p / "meta.json").is_file())
        print(f"{pop}: {n} agents (one population: gmg evaluate --agents {pop} --run-dir {pop})")
    print(f"imported {len(out.imported)}, already there {len(out.skipped)}")
    _problems(out.problems, f"the other {len(out.imported) + len(out.skipped)} agents are in place")


def cmd_original_results(args: argparse.Namespace) -> None:
    from gmg.experiments.cli.tables import format_table
    from gmg.experiments.original.results import compare_with_original, import_original_results
    from gmg.experiments.store import STORE_FILE

    out = import_original_results(args.path, args.run_dir, args.goal, args.background, progress=not args.quiet)
    for store_dir in out["runs"]:
        print(f"{store_dir / STORE_FILE}: the original's episodes (gmg plot / outliers / report --run-dir {store_dir})")
        against = args.against or store_dir.parent
        if not (Path(against) / STORE_FILE).is_file():
            print(f"no gmg evaluation in {against} to compare with: run `gmg evaluate --agents {store_dir.parent} "
                  f"--run-dir {store_dir.parent}` in the original's settings, then rerun this command")
            continue
        cmp = compare_with_original(store_dir, against)
        cmp["agents"].to_csv(store_dir / "comparison.csv", index=False)
        cmp["settings"].to_csv(store_dir / "comparison-settings.csv", index=False)
        cols = [c for c in ("setting", "agents", "preference_orig", "preference_gmg", "mean_diff", "mean_diff_lo",
                            "mean_diff_hi", "agents_differing", "expected_by_chance", "capability_orig",
                            "capability_gmg", "level_agreement", "level_agreement_chance", "kappa", "same_world")
                if c in cmp["settings"].columns]
        levels = "levels replayed: per-level agreement" if cmp["replayed"] else "gmg did not replay the original's levels"
        print(format_table(cmp["settings"][cols], f"the original against gmg ({against}), per setting; {levels}"))
        print(f"per agent: {store_dir / 'comparison.csv'}")
    print(f"{out['episodes']} episodes written")
    _problems(out["problems"], "the other files are in place")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="the original study's agents and results into gmg (docs/original-agents.md)")
    verbs = p.add_subparsers(dest="what", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("path", type=Path, help="a run folder, a logs/train tree or the unpacked archive")
        q.add_argument("--run-dir", type=Path, default=Path("runs/original"),
                       help="populations go to RUN_DIR/<run name>/ (default runs/original)")
        q.add_argument("--goal", help="what runs of an unknown run name were trained to reach, e.g. yellow_line")
        q.add_argument("--background", help="their background: black (default), grey or textured")
        q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="unused: imports run on the CPU")
        q.add_argument("--quiet", action="store_true")

    q = verbs.add_parser("original", help="train-procgen checkpoints (model_<steps>.pth) as gmg agent folders")
    common(q)
    q.set_defaults(func=cmd_original)

    q = verbs.add_parser("original-results", help="the original's per-episode CSVs as a results store, "
                                                   "compared with gmg's evaluation of the same agents")
    common(q)
    q.add_argument("--against", type=Path, help="gmg's run directory to compare with (default: RUN_DIR/<run name>)")
    q.set_defaults(func=cmd_original_results)
