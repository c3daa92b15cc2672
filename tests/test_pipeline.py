"""The reduced pipeline CI runs: tiny agents through every stage into one report."""

from __future__ import annotations

import json

from gmg.experiments.cli.main import main
from gmg.experiments.store import ResultsStore
from gmg.experiments.study import PipelineConfig, run_pipeline

TINY = PipelineConfig(settings=("yellow_gem-vs-red_line", "green_line-vs-red_line", "train:yellow_line"), n_levels=12,
                      reliance_levels=6, reliance_attr=4, probe_objects=("red_line",), probe_scenes=40,
                      top_outliers=1, predict_attribution=False)


def test_pipeline_runs_every_stage_and_resumes_without_rework(tiny_population):
    run = tiny_population / "study"
    report = run_pipeline(tiny_population, run, TINY, device="cpu", progress=False)
    assert report.is_file() and report.name == "index.html"
    with ResultsStore(run) as store:
        tables = store.tables()
        assert {"episodes", "reliance", "probes", "predictions"} <= tables
        n = store.query("SELECT COUNT(*) AS n FROM episodes")["n"][0]
        # agents x (settings + the five profile settings besides train:yellow_line) x levels
        assert n == 3 * (3 + 5) * 12
        predicted = store.query("SELECT DISTINCT setting FROM predictions")["setting"]
        assert set(predicted) == {"yellow_gem-vs-red_line", "green_line-vs-red_line"}
    html = report.read_text()
    for section in ("Outliers", "Regression", "Probes", 'id="predictions"', "walk model",
                    "the walk model predicts its preference across agents"):
        assert section.lower() in html.lower()
    first = json.loads((run / "timings.json").read_text())
    # the top outlier's dossier found its agent (the report is handed a list of folders)
    dossier = next((run / "dossiers").iterdir())
    assert (dossier / "policy-0.png").is_file(), (dossier / "index.html").read_text()[-600:]
    assert "policy maps skipped" not in (dossier / "index.html").read_text()
    # every dossier says how well the channel model explains its agent, and the worst-explained agent has one
    pages = {int(d.name.split("-")[-1]): (d / "index.html").read_text() for d in (run / "dossiers").iterdir()}
    assert all("What the channel model explains" in p and " of 3 (1 = explained worst" in p for p in pages.values())
    assert any("rank 1 of 3" in p for p in pages.values())

    run_pipeline(tiny_population, run, TINY, device="cpu", progress=False)
    with ResultsStore(run) as store:
        assert store.query("SELECT COUNT(*) AS n FROM episodes")["n"][0] == n
    again = json.loads((run / "timings.json").read_text())
    assert again["evaluate"] <= max(1.0, first["evaluate"] / 3)


def test_demo_without_a_zoo_says_what_to_do(tmp_path, capsys):
    assert main(["demo", "--agents", str(tmp_path / "nothing"), "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no agents" in err


def test_a_study_plays_the_agents_on_their_own_background(tiny_population):
    import dataclasses

    from gmg.experiments.population import Population, population
    from gmg.experiments.stages import study_settings

    refs = population(tiny_population)
    settings, background = study_settings(refs, TINY)
    assert background == "black" and {s.background for s in settings} == {"black"}
    textured = Population.of([dataclasses.replace(r, meta={**r.meta, "env": {**r.meta["env"], "background": "textured"}})
                              for r in refs])
    settings, background = study_settings(textured, TINY)
    assert background == "textured" and {s.background for s in settings} == {"textured"}
    explicit = dataclasses.replace(TINY, settings=("red_line-vs-yellow_gem@black",))
    assert [s.background for s in study_settings(textured, explicit)[0]] == ["black"]
    assert len(study_settings(textured, dataclasses.replace(TINY, settings=()))[0]) > 3  # the goal's list
