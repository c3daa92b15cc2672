"""Benchmarks: ``gmg bench WHAT`` runs ``BENCHES[WHAT]`` and writes its JSON.

Each entry of ``BENCHES`` is a function ``fn(*, device, out, **options) -> dict`` that
measures, prints nothing, and returns a JSON-ready dict with a ``rows`` list (one dict
per measured thing) plus whatever else it wants to record. Add an entry per thing to
measure; ``gmg.experiments.cli.tables.format_table`` prints any result's ``rows``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from gmg.experiments.bench.cluster import bench_ray
from gmg.experiments.bench.env import bench_env
from gmg.experiments.bench.eval import bench_eval
from gmg.experiments.bench.train import bench_train
from gmg.training.errors import UserError

BENCHES: dict[str, Callable[..., dict]] = {
    "env": bench_env,
    "train": bench_train,
    "eval": bench_eval,
    "ray": bench_ray,
}


def run_bench(what: str, out: Path | str | None = None, **options) -> dict:
    """Run ``BENCHES[what]`` and write its result as JSON to ``out`` (if given)."""
    if what not in BENCHES:
        raise UserError(f"unknown benchmark {what!r}: use one of {', '.join(sorted(BENCHES))}")
    result = BENCHES[what](**options)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result
