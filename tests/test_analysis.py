"""Regression, outliers, dossier and report: synthetic populations with known answers."""

from __future__ import annotations

import html as html_lib
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import make_agent_dir

from gmg.experiments.analysis.outliers import capable_but_unusual, explain_outliers, feature_matrix, rank_outliers
from gmg.experiments.analysis.regression import (
    behavioural_regression,
    diagnostics,
    fit_ols,
    mechanistic_regression,
    plot_regression,
    tidy,
)
from gmg.experiments.cli.main import main
from gmg.experiments.rundir import population_metrics
from gmg.experiments.store import ResultsStore
from gmg.training.errors import UserError

Y_SETTING, X_SETTING = "yellow_gem-vs-red_line", "green_line-vs-red_line"


# ------------------------------------------------------------------ synthetic data
def tidy_prefs(values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy (agent, setting, preference) from setting -> (n_agents,) values."""
    return pd.concat(
        [pd.DataFrame({"agent": np.arange(len(v)), "setting": s, "preference": v}) for s, v in values.items()],
        ignore_index=True,
    )


def population(n_agents=40, n_settings=10, seed=0, unusual=None, incapable=None) -> pd.DataFrame:
    """Tidy metrics: preference ~ 0.8 +- 0.05, capability ~ 20 +- 2 steps, with planted agents.

    ``unusual``: agent with preference 0.15 in settings s2 and s7 (capability normal);
    ``incapable``: agent with capability 45 steps in s4 (preference normal).
    """
    rng = np.random.default_rng(seed)
    agents = np.repeat(np.arange(n_agents), n_settings)
    settings = np.tile([f"s{i}" for i in range(n_settings)], n_agents)
    df = pd.DataFrame({
        "agent": agents, "setting": settings,
        "preference": np.clip(rng.normal(0.8, 0.05, len(agents)), 0, 1),
        "capability": rng.normal(20, 2, len(agents)),
    })
    if unusual is not None:
        df.loc[(df.agent == unusual) & df.setting.isin(["s2", "s7"]), "preference"] = 0.15
    if incapable is not None:
        df.loc[(df.agent == incapable) & (df.setting == "s4"), "capability"] = 45.0
    return df


def make_run(root: Path, n_agents: int = 8, reliance: bool = True, probes: bool = True, agents: bool = True,
             seed: int = 0) -> Path:
    """A run directory with synthetic ``episodes`` (and ``reliance``/``probes``) tables and tiny agents."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0.05, 0.95, n_agents)
    settings = {Y_SETTING: 0.2 + 0.6 * g, X_SETTING: g, "yellow_line-vs-black_gem": np.full(n_agents, 0.9)}
    settings["yellow_line-vs-black_gem"][3] = 0.05  # the planted odd one
    n_levels = 40
    frames = []
    for a in range(n_agents):
        for s, p in settings.items():
            out = np.where(rng.random(n_levels) < p[a], "obj1", "obj2").astype("<U7")  # room for "timeout"
            out[:2] = "timeout"
            frames.append(pd.DataFrame({
                "agent": a, "setting": s, "intervention": "none", "level": np.arange(n_levels), "outcome": out,
                "steps": np.where(out == "timeout", 500, rng.integers(5, 30, n_levels)),
                "path_len_obj1": 5, "path_len_obj2": pd.array([6] * n_levels, dtype="Int64"),
            }))
    with ResultsStore(root) as store:
        store.write_chunk("episodes", pd.concat(frames, ignore_index=True), {})
        if reliance:
            rel = pd.DataFrame({"agent": np.arange(n_agents), "green_vs_red": 2 * g - 1 + rng.normal(0, 0.05, n_agents),
                                "none_efficiency": 0.6, "isolate_g_efficiency": g, "isolate_r_efficiency": 1 - g,
                                "attr_share_r": 0.3, "attr_share_g": 0.5, "attr_share_b": 0.2})
            store.write_chunk("reliance", rel, {})
        if probes:
            # shaped like gmg.experiments.probing's table: probe kinds, layer order, pixel baselines
            layers = ("pixels.r", "hook_obs", "blocks.0.hook_pool", "hook_hidden")
            pr = pd.DataFrame([{"agent": a, "object": o, "layer": layer, "layer_index": i - 1, "probe": probe,
                                "accuracy": rng.uniform(0.5, 1.0), "chance": 1 / 24}
                               for a in range(n_agents) for o in ("red_line", "yellow_gem")
                               for i, layer in enumerate(layers) for probe in ("cell_logistic", "xy_ridge")])
            pr["ci_low"], pr["ci_high"] = pr["accuracy"] - 0.05, pr["accuracy"] + 0.05
            store.write_chunk("probes", pr, {})
    if agents:
        for a in range(n_agents):
            make_agent_dir(root / "agents", a)
    return root


# ------------------------------------------------------------------ regression
def hetero_data(seed: int, n: int = 400):
    """y = 0.3 + 0.25 reliance + 0.4 detectability + noise whose sd grows with reliance."""
    rng = np.random.default_rng(seed)
    rel = rng.uniform(-1, 1, n)
    det = rng.uniform(0, 1, n)
    y = 0.3 + 0.25 * rel + 0.4 * det + rng.normal(0, 1, n) * (0.02 + 0.3 * (rel + 1) ** 2)
    return rel, det, y


TRUE = {"Intercept": 0.3, "reliance": 0.25, "detectability": 0.4}


def test_regression_recovers_known_coefficients_with_robust_errors(tmp_path):
    n = 400
    rel, det, y = hetero_data(2, n)
    prefs = tidy_prefs({Y_SETTING: y, X_SETTING: rel})
    res = mechanistic_regression(prefs, pd.DataFrame({"agent": np.arange(n), "green_vs_red": rel}),
                                 pd.Series(det, index=np.arange(n)), setting=Y_SETTING)
    t = tidy(res).set_index("term")
    assert list(t.columns[:6]) == ["coef", "se", "t", "p", "ci_low", "ci_high"]
    assert t["n"].iloc[0] == n and 0 < t["r2"].iloc[0] < 1
    for term, true in TRUE.items():
        assert abs(t.loc[term, "coef"] - true) < 3 * t.loc[term, "se"], term
    assert res.cov_type == "HC3"
    from scipy import stats

    # t-based inference (statsmodels' robust default is the normal, optimistic for small n)
    df_resid = n - 3
    assert t.loc["reliance", "p"] == pytest.approx(2 * stats.t.sf(abs(t.loc["reliance", "t"]), df_resid))
    half = stats.t.ppf(0.975, df_resid) * t.loc["reliance", "se"]
    assert t.loc["reliance", "ci_high"] - t.loc["reliance", "coef"] == pytest.approx(half)
    plain = smf.ols("y ~ reliance + detectability", res.model.data.frame).fit()
    assert t.loc["reliance", "se"] > 1.15 * plain.bse["reliance"]  # HC3 sees the heteroskedasticity
    d = diagnostics(res)
    assert d["breusch_pagan_p"] < 0.01
    assert 1.5 < d["durbin_watson"] < 2.5

    # the 95% intervals hold the true coefficients in about 95% of replications
    covered = {term: 0 for term in TRUE}
    reps = 60
    for seed in range(100, 100 + reps):
        r, dt, yy = hetero_data(seed, n)
        ci = tidy(fit_ols(pd.DataFrame({"y": yy, "reliance": r, "detectability": dt}),
                          "y ~ reliance + detectability")).set_index("term")
        for term, true in TRUE.items():
            covered[term] += ci.loc[term, "ci_low"] < true < ci.loc[term, "ci_high"]
    assert all(c / reps >= 0.85 for c in covered.values()), covered

    # the original behavioural regression, settings found by name; one planted high-leverage agent
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, 60)
    yb = 0.1 + 0.7 * x + rng.normal(0, 0.03, 60)
    x[7], yb[7] = 3.0, -1.0
    res_b = behavioural_regression(tidy_prefs({Y_SETTING: yb, X_SETTING: x, "red_line-vs-yellow_gem": 1 - yb}))
    assert res_b.model.data.frame["x"].equals(pd.Series(x, index=np.arange(60), name="x"))
    assert diagnostics(res_b)["most_influential"] == 7
    png = plot_regression(res_b, tmp_path / "plots" / "b.png")
    assert png.stat().st_size > 5000


def test_detectability_covering_only_some_agents_is_left_out_with_a_note_not_shrinking_n():
    n = 30
    rel, det, y = hetero_data(4, n)
    prefs = tidy_prefs({Y_SETTING: y})
    reliance = pd.DataFrame({"agent": np.arange(n), "green_vs_red": rel})
    some = pd.Series(det[:12], index=np.arange(12))  # probes ran on 12 of 30 agents
    res = mechanistic_regression(prefs, reliance, some, setting=Y_SETTING)
    assert int(res.nobs) == n and "detectability" not in res.params
    assert "probes cover 12 of the 30 agents" in res.gmg_notes[0]
    full = mechanistic_regression(prefs, reliance, pd.Series(det, index=np.arange(n)), setting=Y_SETTING)
    assert int(full.nobs) == n and "detectability" in full.params and full.gmg_notes == []


def test_regression_rejects_unknown_setting():
    prefs = tidy_prefs({Y_SETTING: np.linspace(0, 1, 5), X_SETTING: np.linspace(0, 1, 5)})
    with pytest.raises(UserError, match="not evaluated"):
        behavioural_regression(prefs, y_setting="purple_gem-vs-red_line")
    with pytest.raises(UserError, match="gmg evaluate"):
        behavioural_regression(tidy_prefs({Y_SETTING: np.linspace(0, 1, 5)}))


# ------------------------------------------------------------------ outliers
def test_outlier_ranking_puts_planted_agent_first():
    m = feature_matrix(population(unusual=17))
    assert m.shape == (40, 20)
    ranking = rank_outliers(m, seed=0)
    assert ranking.index[0] == 17
    assert ranking.loc[17, "combined"] == ranking["combined"].max()
    assert rank_outliers(m, seed=0).index.tolist() == ranking.index.tolist()  # deterministic
    feats = explain_outliers(m, [17], k=3)
    assert set(feats["feature"].iloc[:2]) == {"s2|preference", "s7|preference"}
    assert (feats["z"].iloc[:2] < -5).all()


def test_an_agent_alone_in_a_column_where_most_agents_are_equal_ranks_first():
    # the Agent-439 case: most agents prefer obj1 always (preference exactly 1.0, so that
    # column's IQR is 0); one prefers it a tenth of the time
    rng = np.random.default_rng(0)
    m = pd.DataFrame(rng.normal(size=(100, 10)), columns=[f"s{i}|preference" for i in range(10)])
    m["s3|preference"] = 1.0
    m.loc[42, "s3|preference"] = 0.1
    ranking = rank_outliers(m, seed=0)
    assert ranking.index[0] == 42
    assert ranking.loc[42, ["pct_iforest", "pct_lof", "pct_mahalanobis"]].min() > 0.95


def test_capable_but_unusual_filter_separates_the_two_kinds():
    m = feature_matrix(population(unusual=17, incapable=23, seed=3))
    assert set(rank_outliers(m, seed=0).index[:2]) == {17, 23}
    found = capable_but_unusual(m)
    assert found["agent"].tolist() == [17]
    assert found["setting"].iloc[0] in {"s2", "s7"}


def test_outliers_small_population_falls_back_with_notes():
    m = feature_matrix(population(n_agents=6, unusual=2))
    ranking = rank_outliers(m, seed=0)
    notes = " ".join(ranking.attrs["notes"])
    assert "Ledoit-Wolf" in notes and "n_neighbors=2" in notes
    assert ranking.index[0] == 2
    with pytest.raises(UserError, match="at least 3"):
        rank_outliers(m.iloc[:2])


# ------------------------------------------------------------------ CLI and missing stages
def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_stages_and_unknown_agent_give_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for verb in (["regress"], ["outliers"], ["explain", "0"]):
        assert "gmg evaluate" in _one_line_error(capsys, [*verb, "--run-dir", str(run), "--device", "cpu"])
    make_run(run, n_agents=6, reliance=False, probes=False, agents=False)
    assert main(["regress", "--run-dir", str(run)]) == 0  # behavioural only; says how to add reliance
    out = capsys.readouterr().out
    assert "behavioural" in out and "gmg reliance" in out
    assert (run / "plots" / "regress_behavioural.png").is_file()
    err = _one_line_error(capsys, ["explain", "99", "--run-dir", str(run), "--device", "cpu"])
    assert "agent 99" in err and "not in" in err


def analyse(run: Path, top: int = 1) -> None:
    """The study's regress and outliers stages (dossiers and vector fields included) on ``run``."""
    from gmg.experiments.population import population_of_run
    from gmg.experiments.stages import PipelineConfig, stage

    for name in ("regress", "outliers"):
        stage(name).run(population_of_run(run, None), run, PipelineConfig(top_outliers=top), "cpu", False)


def test_the_report_only_reads_tables_and_names_the_stage_of_a_missing_one(tmp_path, monkeypatch):
    import gmg.experiments.analysis.outliers as outliers
    import gmg.experiments.analysis.regression as regression
    import gmg.experiments.report.dossier as dossier
    import gmg.experiments.vfield as vfield
    from gmg.experiments.report.page import build_report
    from gmg.experiments.rundir import TABLES

    run = make_run(tmp_path / "run", n_agents=6)
    analyse(run, top=1)

    def computed(*args, **kwargs):
        raise AssertionError("the report computed an analysis")

    for module, name in ((regression, "run_regressions"), (regression, "fit_ols"), (outliers, "run_outliers"),
                         (outliers, "rank_outliers"), (dossier, "explain"), (vfield, "vector_fields")):
        monkeypatch.setattr(module, name, computed)
    html = build_report(run, top=1).read_text()
    section = {k: html.split(f'<section id="{k}">', 1)[1].split("</section>", 1)[0] for k in ("regression", "outliers",
                                                                                             "dossiers")}
    assert "OLS with HC3" in section["regression"] and "combined ranking" in section["outliers"]
    assert "dossiers/agent-" in section["dossiers"] and "vfield-" in section["dossiers"]
    for name in ("regression", "regression_diagnostics", "regression_points", "regression_notes", "outliers"):
        TABLES[name].path(run).unlink()
    html = build_report(run, top=1).read_text()
    section = {k: html.split(f'<section id="{k}">', 1)[1].split("</section>", 1)[0] for k in ("regression", "outliers",
                                                                                             "dossiers")}
    assert f"run `gmg regress --run-dir {run}` (stage regress writes `regression`)" in section["regression"]
    assert f"run `gmg outliers --run-dir {run}` (stage outliers writes `outliers`)" in section["outliers"]
    assert "OLS with HC3" not in html and "no outlier ranking" in section["dossiers"]


def test_report_with_only_intervention_episodes_or_stale_figures_says_what_is_missing(tmp_path):
    from gmg.experiments.report.page import build_report

    run = make_run(tmp_path / "run", n_agents=6, reliance=False, probes=False)
    with ResultsStore(run) as store:
        store.con.execute("UPDATE episodes SET intervention = 'isolate:g'")
    (run / "plots").mkdir()
    # a figure a former reliance run left behind: no reliance table now
    import matplotlib.pyplot as plt

    plt.imsave(run / "plots" / "reliance_agent0.png", np.zeros((4, 4)))
    html = build_report(run, device="cpu").read_text()
    assert "no un-intervened episodes" in html
    reliance = html.split('<section id="reliance">', 1)[1].split("</section>", 1)[0]
    assert "not run yet" in reliance and "reliance_agent0" not in reliance
    assert "Other figures" in html  # the stale figure is not lost, only not passed off as current


def test_population_metrics_from_episodes(tmp_path):
    run = make_run(tmp_path, n_agents=4, reliance=False, probes=False, agents=False)
    with ResultsStore(run) as store:
        eps = store.table("episodes")
    m = population_metrics(eps).set_index(["agent", "setting"])
    one = eps[(eps.agent == 1) & (eps.setting == X_SETTING)]
    n1, n2 = (one.outcome == "obj1").sum(), (one.outcome == "obj2").sum()
    assert m.loc[(1, X_SETTING), "preference"] == pytest.approx(n1 / (n1 + n2))
    assert m.loc[(1, X_SETTING), "capability"] == pytest.approx(one.steps.mean())


# ------------------------------------------------------------------ dossier and report
class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]
# counts images that failed to decode after the load event; the page itself logs nothing
CHECK_SCRIPT = ("<script>window.addEventListener('load',()=>{const b=[...document.images]"
                ".filter(i=>!i.complete||i.naturalWidth===0).length;document.title='broken:'+b+' of '+"
                "document.images.length;});</script>")


def _need_chromium() -> str:
    """The system Chromium; in CI (where the set-up installs it) its absence fails instead of skipping."""
    import os

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: scripts/setup.sh test installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}", *args], capture_output=True, text=True,
                          timeout=120)


def test_regression_panels_plot_the_regressor_that_was_fitted_and_heatmap_text_reads():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gmg.experiments.analysis.regression import panel_data as regression_panel_data
    from gmg.experiments.report.page import text_colour_on

    rng = np.random.default_rng(0)
    # an unused column first in the frame: the panel must not take it for the regressor
    data = pd.DataFrame({"y": rng.random(20), "log_odds": rng.normal(size=20), "walk": rng.random(20)})
    one = fit_ols(data, "y ~ walk")
    one.gmg_labels = {"log_odds": "channel model log-odds", "walk": "walk model"}
    d, x_title, _ = regression_panel_data(one)
    assert x_title == "walk model" and np.allclose(d["x"], data["walk"])
    assert np.allclose(d["fit"], one.params["Intercept"] + one.params["walk"] * d["x"])  # its straight line
    two = fit_ols(data, "y ~ walk + log_odds")
    d, x_title, y_title = regression_panel_data(two)
    assert x_title == "predicted by y ~ walk + log_odds" and "observed" in y_title
    assert np.allclose(d["x"], two.fittedvalues) and np.allclose(d["fit"], d["x"])  # the identity line
    fig, ax = plt.subplots()
    div = ax.imshow(np.zeros((1, 1)), cmap="RdBu", vmin=-1, vmax=1)
    seq = ax.imshow(np.zeros((1, 1)), cmap="viridis", vmin=0, vmax=1)
    assert text_colour_on(div, 0.0) == "black" and text_colour_on(div, -1.0) == "white"  # near-white, dark red
    assert text_colour_on(seq, 0.0) == "white" and text_colour_on(seq, 1.0) == "black"  # dark purple, yellow
    plt.close(fig)


def test_dossier_and_report_in_headless_chromium(tmp_path, capsys):
    run = make_run(tmp_path / "run", n_agents=8)
    analyse(run, top=1)
    assert main(["explain", "3", "--run-dir", str(run), "--device", "cpu"]) == 0
    dossier = Path(capsys.readouterr().out.strip())
    names = {p.name for p in dossier.parent.iterdir()}
    assert {"index.html", "percentiles.png", "reliance.png", "probes.png", "policy-0.png", "policy-1.png",
            "occupancy.png"} <= names
    assert 'src="occupancy.png"' in dossier.read_text() and "expected visits per cell" in dossier.read_text()
    assert "yellow_line-vs-black_gem" in dossier.read_text()  # the setting that makes agent 3 unusual

    assert main(["report", "--run-dir", str(run), "--device", "cpu", "--top", "1"]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page == run / "report" / "index.html"
    html = page.read_text()
    for title in ("Training curves", "Settings", "Channel reliance", "Probes", "Regression", "Outliers", "Dossiers"):
        assert title in html
    assert "not run yet: run `gmg train`" in html  # tiny agents have empty train.csv files
    assert "not run yet" not in html.split('id="scatters"')[1]
    parser = _Images()
    parser.feed(html)
    assert len(parser.src) >= 10
    for src in parser.src:
        assert (page.parent / src).is_file(), src
        assert not src.startswith("/")

    # a run that only has evaluations: the later sections name their verbs
    bare = make_run(tmp_path / "bare", n_agents=4, reliance=False, probes=False, agents=False)
    from gmg.experiments.report.page import build_report

    bare_html = build_report(bare, top=1).read_text()
    assert "not run yet: run `gmg reliance" in bare_html and "not run yet: run `gmg probe" in bare_html

    _need_chromium()
    check = page.parent / "check.html"
    check.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", check.as_uri()], tmp_path / "ud1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>([^<]*)</title>", dom.stdout).group(1)
    assert title == f"broken:0 of {len(parser.src)}", title
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    # as drawn in the browser: each regression panel's x-axis names the regressor that was fitted,
    # or says "predicted by" with the formula for a model of several regressors
    drawn = html_lib.unescape(dom.stdout.split('id="fig-regressions"', 1)[1].split('class="static"', 1)[0])
    panels = re.findall(r"role-title[^>]*>.*?<text[^>]*>(.*?)</text>", drawn)
    x_axes = re.findall(r"aria-label=\"X-axis titled '(.*?)' for", drawn)
    assert [p.split(":")[0] for p in panels] == ["behavioural", "mechanistic"] and len(x_axes) == 2, (panels, x_axes)
    assert x_axes[0] == f"preference: {X_SETTING}"
    assert x_axes[1] == "predicted by y ~ reliance + detectability"
    shot = tmp_path / "shot.png"
    res = _chromium(["--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()], tmp_path / "ud2")
    assert res.returncode == 0 and shot.stat().st_size > 10_000


# ------------------------------------------------------------------ populations compared
def test_asymmetry_and_permutation_test_on_known_populations():
    from gmg.experiments.analysis.compare import GREEN, RED, asymmetry, permutation_p

    rng = np.random.default_rng(0)
    textured = pd.DataFrame({GREEN: rng.normal(0.8, 0.05, 24), RED: rng.normal(0.2, 0.05, 24)})
    black = pd.DataFrame({GREEN: rng.normal(0.5, 0.05, 24), RED: rng.normal(0.5, 0.05, 24)})
    a, b = asymmetry(textured), asymmetry(black)
    assert a["ci_low"] < a["asymmetry"] < a["ci_high"] and 0.5 < a["ci_low"] and a["ci_high"] < 0.7
    assert b["ci_low"] < 0 < b["ci_high"] and a["n_agents"] == 24
    d_t, d_b = (textured[GREEN] - textured[RED]).to_numpy(), (black[GREEN] - black[RED]).to_numpy()
    assert permutation_p(d_t, d_b) < 0.001
    assert permutation_p(d_b, d_b.copy()) > 0.9  # no difference at all
    with pytest.raises(UserError, match="at least 2 agents"):
        asymmetry(textured.iloc[:1])


def test_compare_plays_each_population_on_its_own_background_and_the_report_shows_it(tmp_path):
    from gmg.experiments.analysis.compare import compare_populations
    from gmg.experiments.report.page import build_report

    for seed in range(3):
        make_agent_dir(tmp_path / "plain" / "agents", seed)
        make_agent_dir(tmp_path / "tex" / "agents", seed, background="textured")
    run = tmp_path / "study"
    out = compare_populations([tmp_path / "plain", tmp_path / "tex"], run_dir=run / "compare", device="cpu",
                              n_levels=6, progress=False)
    assert set(out["metrics"]) == {"plain", "tex"}
    assert all(s.endswith("@textured") for s in out["metrics"]["tex"]["setting"])
    assert not any("@" in s for s in out["metrics"]["plain"]["setting"])
    asym = out["asymmetry"].set_index("population")
    assert list(asym["background"]) == ["black", "textured"] and (asym["n_agents"] <= 3).all()
    assert 0 <= out["tests"]["p_permutation"].iloc[0] <= 1 and out["figure"].is_file()
    html = build_report(run, device="cpu").read_text()
    assert '<section id="populations">' in html and "compare_populations.png" in html


# ------------------------------------------------------------------ findings
def test_the_reports_findings_are_computed_from_the_store(tmp_path):
    from gmg.experiments.report.findings import bimodality, disagreement
    from gmg.experiments.report.page import build_report

    run = make_run(tmp_path / "run", n_agents=8)
    analyse(run, top=1)
    html = build_report(run, top=1, device="cpu").read_text()
    found = html.split('<section id="findings">', 1)[1].split("</section>", 1)[0]
    # recompute two of its numbers from the store, independently of the report's code path
    with ResultsStore(run) as store:
        eps = store.table("episodes")
    decided = eps[eps.outcome != "timeout"]
    pref = decided.assign(o1=decided.outcome == "obj1").groupby(["setting", "agent"])["o1"].mean()
    iqr = {s: np.subtract(*np.percentile(p, [75, 25])) for s, p in pref.groupby(level=0)}
    widest = max(iqr, key=iqr.get)
    lo, hi = pref[widest].min(), pref[widest].max()
    assert f"8 agents disagree most in {widest}" in found
    assert f"ranges {lo:.2f}-{hi:.2f}" in found
    assert 'href="#scatters"' in found and 'href="#regression"' in found and 'href="#outliers"' in found
    assert "tables/metrics.csv" in html and (run / "report" / "tables" / "metrics.csv").is_file()
    assert "<table" not in html.split('<section id="probes">', 1)[1].split("</section>", 1)[0]  # a heatmap, not 16 columns
    # bimodality: two clusters score above 5/9, one bell below
    rng = np.random.default_rng(0)
    assert bimodality(np.r_[rng.normal(0.1, 0.03, 20), rng.normal(0.9, 0.03, 20)]) > 5 / 9
    assert bimodality(rng.normal(0.5, 0.05, 40)) < 5 / 9
    m = pd.DataFrame({"agent": [0, 1, 2, 3], "setting": "red_line-vs-yellow_gem", "preference": [0.1, 0.2, 0.8, 0.9]})
    row = disagreement(m).iloc[0]
    assert (row.prefer_obj1, row.prefer_obj2, row["min"], row["max"]) == (2, 2, 0.1, 0.9)
    # timeouts are judged in the two-object settings: a profile's invisible goal times out by design
    from gmg.experiments.report.findings import findings

    m = pd.concat([m.assign(timeout_rate=0.01), m.assign(setting="train:invisible_line", timeout_rate=0.4)])
    said = " ".join(f.text for f in findings(m))
    assert "4 of 4 agents time out in at most 5% of episodes in every two-object setting (worst agent: 1%)" in said


def test_the_interactive_report_as_a_person_uses_it(tmp_path):
    """Playwright drives the system Chromium: no console error, every image and link alive,
    every figure drawn, hovering a point names its agent, clicking it opens the dossier."""
    exe = _need_chromium()
    from playwright.sync_api import sync_playwright

    from gmg.experiments.report.page import build_report

    run = make_run(tmp_path / "run", n_agents=8)
    analyse(run, top=2)
    page_path = build_report(run, top=2, device="cpu")
    assert (page_path.parent / "js" / "vega.js").is_file() and "cdn" not in page_path.read_text().lower()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        for fid in ("fig-scatters", "fig-regressions", "fig-outliers"):
            page.wait_for_selector(f"#{fid} svg g.mark-symbol path", timeout=20_000)
            assert page.locator(f"#{fid} svg g.mark-symbol path").count() >= 8, fid
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, broken
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
        for href in hrefs:
            if href.startswith("#"):
                assert page.locator(f"[id='{href[1:]}']").count() == 1, href
            else:
                assert (page_path.parent / href).is_file(), href
        # a point of the settings scatter names its agent, its preference CI and capability
        page.locator("#fig-scatters svg g.mark-symbol path").first.hover()
        tip = page.locator("#vg-tooltip-element")
        tip.wait_for(state="visible", timeout=5_000)
        assert re.search(r"agent\s*\d+", tip.inner_text()) and "preference [95% CI]" in tip.inner_text()
        # the outlier map lists the most abnormal agent first: it has a dossier
        top = int(pd.read_csv(page_path.parent / "tables" / "outliers.csv")["agent"].iloc[0])
        point = page.locator("#fig-outliers svg g.mark-symbol path").first
        point.hover()
        tooltip = page.locator("#vg-tooltip-element")
        tooltip.wait_for(state="visible", timeout=5_000)
        assert f"agent{top}combined" in re.sub(r"\s+", "", tooltip.inner_text())
        point.click()
        page.wait_for_url(f"**/dossiers/agent-{top:04d}/index.html", timeout=10_000)
        assert f"agent {top}" in page.content().lower()
        browser.close()
    assert not errors, errors


def _channel_data(n=30, signal=True, seed=0):
    rng = np.random.default_rng(seed)
    prof = pd.DataFrame({"agent": range(n), "E0": 0.4, "E_red": 0.4 + rng.uniform(0.05, 0.5, n),
                         "E_green": 0.4 + rng.uniform(0.05, 0.5, n), "E_blue": 0.4 + rng.uniform(0, 0.1, n),
                         "E_goal": 0.95, "E_gem": 0.7})
    # a yellow gem against a red line: the gem's strength grows with red and green, the line's with red
    pref = (prof["E_green"] - prof["E_red"]) * 1.2 + 0.5 if signal else pd.Series(rng.uniform(0.2, 0.8, n))
    prefs = pd.DataFrame({"agent": range(n), "setting": "yellow_gem-vs-red_line",
                          "preference": np.clip(pref + rng.normal(0, 0.02, n), 0, 1)})
    return prefs, prof


def test_the_channel_regression_chooses_its_regressors_out_of_sample_and_scores_noise_at_chance():
    from gmg.experiments.analysis.regression import CHANNEL_FORMULAS, channel_regression, tidy

    prefs, prof = _channel_data()
    res = channel_regression(prefs, prof)
    assert set(res.gmg_candidates) == set(CHANNEL_FORMULAS) and res.gmg_r2_cv == max(res.gmg_candidates.values())
    assert res.gmg_r2_cv > 0.9 and res.gmg_r2_cv <= res.rsquared
    assert tidy(res)["r2_cv"].iloc[0] == res.gmg_r2_cv
    prefs, prof = _channel_data(signal=False, seed=1)
    noise = channel_regression(prefs, prof)
    assert noise.gmg_r2_cv < 0.1  # in sample it still fits something: out of sample it cannot
    assert noise.rsquared > noise.gmg_r2_cv


def test_network_regressors_join_the_channel_regression_only_when_they_cover_every_agent():
    from gmg.experiments.analysis.regression import EXTRA_FORMULAS, channel_regression, selectivity

    prefs, prof = _channel_data(signal=False, seed=2)
    rng = np.random.default_rng(3)
    ig = pd.DataFrame({"ig_red_minus_green": rng.uniform(-0.2, 0.2, len(prof))}, index=prof["agent"])
    # the preference follows the attribution: the candidate with it must win, out of sample
    prefs["preference"] = 0.5 - 1.5 * ig["ig_red_minus_green"].to_numpy() + rng.normal(0, 0.01, len(prof))
    res = channel_regression(prefs, prof, extra=ig)
    assert set(EXTRA_FORMULAS["ig_red_minus_green"]) <= set(res.gmg_candidates)
    assert "ig_red_minus_green" in res.params.index and res.gmg_r2_cv > 0.9
    partial = ig.iloc[:-3]
    res = channel_regression(prefs, prof, extra=partial)
    assert "ig_red_minus_green" not in " ".join(res.gmg_candidates) and "covers 27 of 30" in res.gmg_notes[0]
    probes = pd.DataFrame({"agent": [0, 0, 1, 1], "probe": "cell_logistic", "object": "red_line",
                           "layer": ["conv1", "fc", "conv1", "fc"], "accuracy": [0.9, 0.8, 0.9, 0.6],
                           "selectivity_random": [0.05, 0.3, 0.0, 0.1]})
    assert selectivity(probes, "red_line").to_dict() == {0: 0.3, 1: 0.1}
    with pytest.raises(Exception, match="random-network control"):
        selectivity(probes.drop(columns="selectivity_random"), "red_line")
