"""The reduced pipeline CI runs: tiny agents through every stage into one report."""

from __future__ import annotations

import json

from experiments.cli import main
from experiments.pipeline import PipelineConfig, run_pipeline
from experiments.store import ResultsStore

TINY = PipelineConfig(settings=("yellow_gem-vs-red_line", "green_line-vs-red_line", "train:yellow_line"), n_levels=12,
                      reliance_levels=6, reliance_attr=4, probe_objects=("red_line",), probe_scenes=40,
                      top_outliers=1)


def test_pipeline_runs_every_stage_and_resumes_without_rework(tiny_population):
    run = tiny_population / "study"
    report = run_pipeline(tiny_population, run, TINY, device="cpu", progress=False)
    assert report.is_file() and report.name == "index.html"
    with ResultsStore(run) as store:
        tables = store.tables()
        assert {"episodes", "reliance", "probes"} <= tables
        n = store.query("SELECT COUNT(*) AS n FROM episodes")["n"][0]
        assert n == 3 * 3 * 12  # agents x settings x levels
    html = report.read_text()
    for section in ("Outliers", "Regression", "Probes"):
        assert section.lower() in html.lower()
    first = json.loads((run / "timings.json").read_text())

    run_pipeline(tiny_population, run, TINY, device="cpu", progress=False)
    with ResultsStore(run) as store:
        assert store.query("SELECT COUNT(*) AS n FROM episodes")["n"][0] == n
    again = json.loads((run / "timings.json").read_text())
    assert again["evaluate"] <= max(1.0, first["evaluate"] / 3)


def test_demo_without_a_zoo_says_what_to_do(tmp_path, capsys):
    assert main(["demo", "--agents", str(tmp_path / "nothing"), "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no agents" in err
