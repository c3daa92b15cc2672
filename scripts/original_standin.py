"""A stand-in of the original study's archive, imported and studied with gmg, timed.

Writes ``OUT/archive`` in the original's layout (``logs/train/maze_pure_yellowline/maze-5x5/
<date>__seed_<s>/model_<t>.pth``, five checkpoints per run, saved as from a GPU, and the
per-episode CSVs of ``experiments/results-1000``) holding the bundled zoo's yellow-line agents
widened into the original's architecture (16, 32, 32: the same policy, zeros in the extra
channels; ``--random`` for random networks, which wander to the timeout), written by
tests/test_import_original.py, then runs and times
``gmg import original``, ``gmg demo`` on the imported population, and
``gmg import original-results`` (which compares the original's episodes with the demo's).

    nice -n 10 .venv/bin/python scripts/original_standin.py --agents 8 --out runs/original-standin
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_import_original import STEPS_5M, make_archive, make_results, widened_original_state  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / "experiments" / "zoo" / "yellow-line"


def timed(args: list[str]) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "gmg.experiments.cli.main", *args], check=True)
    return round(time.time() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("runs/original-standin"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random", action="store_true", help="random networks instead of widened zoo agents")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    archive, runs = args.out / "archive", args.out / "runs"
    t0 = time.time()
    zoo = sorted(ZOO.glob("agent-*"))[: args.agents]
    # one checkpoint per run: the zoo agent (the zoo kept no snapshots)
    states = None if args.random else (lambda k, i: widened_original_state(zoo[k]))
    folders = make_archive(archive, seeds=tuple(range(100, 100 + args.agents)), states=states,
                           steps=STEPS_5M[-1:] if states else STEPS_5M)
    make_results(archive, "maze-5x5", [f.name for f in folders],
                 ("red-line-yellow-gem", "yellow-gem-red-line", "green-line-red-line"))
    times = {"write stand-in archive": round(time.time() - t0, 1)}
    times["gmg import original"] = timed(["import", "original", str(archive), "--run-dir", str(runs), "--quiet"])
    pop = runs / "maze-5x5"
    times["gmg demo"] = timed(["demo", "--agents", str(pop), "--run-dir", str(pop), "--device", args.device, "--quiet"])
    times["gmg import original-results"] = timed(["import", "original-results", str(archive), "--run-dir", str(runs),
                                                  "--quiet"])
    times["import + demo"] = round(times["gmg import original"] + times["gmg demo"], 1)
    print(json.dumps(times, indent=2))
    (args.out / "timings.json").write_text(json.dumps(times, indent=2))


if __name__ == "__main__":
    main()
