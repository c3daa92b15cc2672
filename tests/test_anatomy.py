"""The anatomy of a seed: variance decomposition, commitment and the whole study on a tiny grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config as tiny

from gmg.experiments.analysis.seed_anatomy import (
    OUTCOMES,
    commitment,
    decompose,
    grid_matrix,
    grid_of,
    run_anatomy,
    variance_components,
)
from gmg.training.errors import UserError


def synthetic_grid(init_sd: float, data_sd: float, noise_sd: float, n_init: int = 6, n_data: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, init_sd, n_init), rng.normal(0, data_sd, n_data)
    rows = [{"agent": i * 10000 + 101 + j, "init_seed": i, "data_seed": 101 + j,
             "y": 0.5 + a[i] + b[j] + rng.normal(0, noise_sd)} for i in range(n_init) for j in range(n_data)]
    return pd.DataFrame(rows)


def test_the_decomposition_finds_the_part_of_the_seed_that_decides():
    by_init = decompose(synthetic_grid(0.2, 0.0, 0.02), outcomes=("y",), n_boot=200, n_permutations=199).iloc[0]
    assert by_init["share_init"] > 0.9 and by_init["p_init"] < 0.01 and by_init["p_data"] > 0.05
    assert by_init["share_init_lo"] > 0.5 and by_init["share_init_lo"] <= by_init["share_init"] <= by_init["share_init_hi"]
    by_data = decompose(synthetic_grid(0.0, 0.2, 0.02, seed=2), outcomes=("y",), n_boot=200, n_permutations=199).iloc[0]
    assert by_data["share_data"] > 0.8 and by_data["p_data"] < 0.05 and by_data["p_init"] > 0.05
    neither = decompose(synthetic_grid(0.0, 0.0, 0.1, seed=2), outcomes=("y",), n_boot=200, n_permutations=199).iloc[0]
    assert neither["share_resid"] > 0.5 and neither["p_init"] > 0.05
    # equal means across initialisations give no init variance at all
    flat = synthetic_grid(0.0, 0.0, 0.0).assign(y=lambda d: d["data_seed"] * 0.01)
    v = variance_components(grid_matrix(flat, "y"))
    assert v["share_init"] == 0.0 and v["share_data"] == pytest.approx(1.0)


def test_the_closed_form_mean_squares_are_statsmodels_anova():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    d = synthetic_grid(0.1, 0.05, 0.05, seed=3)
    table = anova_lm(smf.ols("y ~ C(init_seed) + C(data_seed)", d).fit(), typ=2)
    ms = table["sum_sq"] / table["df"]
    v = variance_components(grid_matrix(d, "y"))
    assert v["var_resid"] == pytest.approx(ms["Residual"], rel=1e-9)
    assert v["var_init"] == pytest.approx((ms["C(init_seed)"] - ms["Residual"]) / 3, rel=1e-9)
    assert v["var_data"] == pytest.approx(max((ms["C(data_seed)"] - ms["Residual"]) / 6, 0.0), abs=1e-12)


def test_commitment_is_the_earliest_point_after_which_the_agent_stays_near_its_final_value():
    frac = [0.1, 0.2, 0.5, 0.8, 1.0]
    traj = pd.DataFrame({"agent": [1] * 5 + [2] * 5, "fraction": frac * 2,
                         "pref_red_line_vs_yellow_gem": [0.5, 0.9, 0.71, 0.74, 0.72, 0.3, 0.31, 0.33, 0.29, 0.3],
                         "pref_green_line_vs_red_line": [np.nan, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9],
                         "green_minus_red": [0.0] * 10})
    c = commitment(traj).set_index(["agent", "outcome"])["committed_at"]
    assert c[(1, "pref_red_line_vs_yellow_gem")] == 0.5  # 0.9 at 0.2 was a detour
    assert c[(2, "pref_red_line_vs_yellow_gem")] == 0.1  # there from the first point kept
    assert c[(1, "pref_green_line_vs_red_line")] == 0.2  # no decided episode (NaN) is not yet committed
    assert c[(2, "pref_green_line_vs_red_line")] == 1.0  # only the last point


def test_agents_that_are_not_a_grid_are_one_line():
    from gmg.experiments.population import population

    with pytest.raises(UserError, match="separate data seeds"):
        grid_of(population("zoo:yellow-line"))


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    from gmg.training.seed_groups import train

    root = tmp_path_factory.mktemp("grid")
    cfg = tiny(total_timesteps=64 * 4, snapshot_every=2, timeout=60)  # short episodes: a quick study
    train(cfg, root / "train", [0, 1, 2], device="cpu", progress=False, data_seeds=[7, 8])
    return root


def test_the_study_runs_on_a_tiny_grid_with_snapshots_and_resumes(tiny_grid):
    run = tiny_grid / "study"
    out = run_anatomy(tiny_grid / "train", run, "cpu", n_levels=6, snapshot_levels=4, n_boot=50, n_permutations=49,
                      progress=False)
    assert sorted(out["grid"]["init_seed"].unique()) == [0, 1, 2] and len(out["outcomes"]) == 6
    assert list(out["decomposition"]["outcome"]) == list(OUTCOMES)
    traj = out["trajectory"]
    assert sorted(traj["update"].unique()) == [2, 4] and traj.groupby("agent").size().eq(2).all()
    assert set(traj["fraction"]) == {0.5, 1.0}
    assert set(out["commitment"]["agent"]) == set(out["grid"]["agent"])
    assert out["notes"] == [] and sorted(p.name for p in (run / "anatomy").iterdir()) == [  # a grid skips nothing
        "before_training.csv", "commitment.csv", "commitment.png", "decomposition.csv", "outcomes.csv", "shares.png",
        "trajectory.csv"]
    assert set(out["before_training"]["agents"]) == {"grid"}
    again = run_anatomy(tiny_grid / "train", run, "cpu", n_levels=6, snapshot_levels=4, n_boot=50, n_permutations=49,
                        progress=False)
    pd.testing.assert_frame_equal(again["outcomes"], out["outcomes"])  # the stores answer; nothing replayed twice


def test_before_training_leaves_out_a_whole_initialisation_so_a_shared_network_cannot_leak():
    """Agents of one initialisation share its untrained network: predicting one from a fit
    that saw its siblings would score an arbitrary target. Left out by initialisation, it cannot."""
    from gmg.experiments.analysis.before_training import predict

    rng = np.random.default_rng(0)
    inits = np.repeat(np.arange(8), 3)
    per_init_x, per_init_y = rng.normal(size=(8, 2)), rng.normal(size=8)  # no relation between them
    agents = np.arange(24)
    feats = pd.DataFrame({"agent": agents, "f1": per_init_x[inits, 0], "f2": per_init_x[inits, 1]})
    target = pd.Series(per_init_y[inits] + rng.normal(0, 0.01, 24), index=agents)
    grouped = predict(feats, target, columns=("f1", "f2"), groups=pd.Series(inits, index=agents), n_permutations=99)
    assert grouped["r2_cv"] < 0.2 and grouped["p_permutation"] > 0.05
    signal = pd.Series(2 * per_init_x[inits, 0] + rng.normal(0, 0.05, 24), index=agents)
    found = predict(feats, signal, columns=("f1", "f2"), groups=pd.Series(inits, index=agents), n_permutations=99)
    assert found["r2_cv"] > 0.9 and found["p_permutation"] <= 0.02


def test_the_report_shows_the_anatomy_with_its_finding(tiny_grid):
    from gmg.experiments.report.page import build_report

    run = tiny_grid / "report-run"
    run_anatomy(tiny_grid / "train", run, "cpu", n_levels=6, snapshot_levels=4, n_boot=50, n_permutations=49,
                progress=False)
    html = build_report(run).read_text()
    assert 'id="anatomy"' in html and "anatomy_commitment.png" in html and "anatomy_shares.png" in html
    assert "grid agents: the initialisation explains" in html  # the finding, in words


# ---------------------------------------------------------------- agents that are no grid: imported ones

def test_before_training_leaves_out_an_initialisation_the_agents_share_and_else_one_agent():
    from gmg.experiments.analysis.seed_anatomy import init_groups
    from gmg.experiments.population import AgentRef

    refs = [AgentRef(30101, None, {"init_seed": 3, "data_seed": 101}), AgentRef(30102, None, {"init_seed": 3}),
            AgentRef(8998, None, {"origin": {"source": "original", "seed": 8998}}),
            AgentRef(18998, None, {"origin": {"source": "original", "seed": 8998}}),  # the same seed run again
            AgentRef(5, None, {"seed": 5})]
    assert init_groups(refs).to_dict() == {30101: 3, 30102: 3, 8998: 8998, 18998: 8998, 5: 5}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Eight agents imported from a stand-in of the original's archive with two checkpoints each:
    once before their model_0.pth is in the archive (``without``), once after (``with``)."""
    import json

    from test_import_original import STEPS_5M, make_archive, original_policy, save_original

    from gmg.experiments.original.agents import import_original

    root = tmp_path_factory.mktemp("imported")
    folders = make_archive(root / "archive", seeds=tuple(range(1, 9)), steps=STEPS_5M[-2:])
    import_original(root / "archive", root / "without")
    for k, folder in enumerate(folders):
        save_original(folder / "model_0.pth", original_policy(500 + k))
    import_original(root / "archive", root / "with")
    for path in root.glob("with*/**/meta.json"):  # random networks wander to the timeout: a short one is seconds
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, "env": {**meta["env"], "timeout": 12}}))
    return {k: root / k / "maze-5x5" for k in ("without", "with")}


def test_imported_agents_get_their_commitment_and_a_line_for_what_needs_a_grid_or_model_0(imported, tmp_path):
    from test_import_original import STEPS_5M

    from gmg.experiments.report.page import build_report
    from gmg.experiments.rundir import notes_of

    run = tmp_path / "run"
    out = run_anatomy(imported["without"], run, "cpu", n_levels=3, snapshot_levels=3, n_permutations=19,
                      progress=False)
    files = sorted(p.name for p in (run / "anatomy").iterdir())
    assert files == ["commitment.csv", "commitment.png", "notes.csv", "outcomes.csv", "trajectory.csv"]
    assert out["grid"] is None and "decomposition" not in out and "before_training" not in out
    c = pd.read_csv(run / "anatomy" / "commitment.csv")
    assert len(c) == 8 * len(OUTCOMES) and set(zip(c["agent"], c["outcome"])) == {
        (a, o) for a in range(1, 9) for o in OUTCOMES}
    traj = out["trajectory"]
    assert traj.groupby("agent")["steps"].apply(list).eq([list(STEPS_5M[-2:])] * 8).all()
    assert set(traj["fraction"]) == {STEPS_5M[-2] / STEPS_5M[-1], 1.0}
    assert len(out["notes"]) == 2 and notes_of(run, "anatomy_notes") == out["notes"]
    decomposition, before = out["notes"]
    assert decomposition.startswith("decomposition skipped: a seed grid needs") and "\n" not in decomposition
    assert before.startswith("before_training skipped: ") and "without a model_0.pth" in before
    html = build_report(run).read_text()
    assert 'id="anatomy"' in html and "anatomy_commitment.png" in html and "without a model_0.pth" in html


def test_imported_agents_with_model_0_are_predicted_before_training_one_agent_left_out_at_a_time(imported, tmp_path,
                                                                                                capsys):
    from gmg.experiments.analysis.before_training import untrained_features
    from gmg.experiments.analysis.seed_anatomy import before_training
    from gmg.experiments.cli.main import main
    from gmg.experiments.population import population

    run = tmp_path / "run"
    assert main(["anatomy", "--agents", str(imported["with"]), "--run-dir", str(run), "--n-levels", "3",
                 "--snapshot-levels", "3", "--permutations", "19", "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "decomposition skipped" in printed and "before_training skipped" not in printed
    assert "predicted from the untrained network" in printed
    bt = pd.read_csv(run / "anatomy" / "before_training.csv")
    assert list(bt["outcome"]) == list(OUTCOMES) and set(bt["agents"]) == {"agents"}
    assert pd.read_csv(run / "anatomy" / "notes.csv")["note"].str.startswith("decomposition skipped").tolist() == [True]
    assert not (run / "anatomy" / "decomposition.csv").exists() and (run / "anatomy" / "commitment.png").is_file()
    # random stand-ins barely move, so the fit itself is checked on outcomes their model_0 networks decide
    pop = population(imported["with"])
    feats = untrained_features(pop).set_index("agent")
    decided = 3 * feats["filter_share_r"] - feats["tv_red_green"]
    outcomes = pd.DataFrame({"agent": feats.index, **dict.fromkeys(OUTCOMES, decided.to_numpy())})
    fit = before_training(pop, outcomes, n_permutations=19, label="agents")
    assert (fit["groups"] == 8).all() and (fit["n"] == 8).all()  # eight initialisations: each agent left out alone
    assert (fit["r2_cv"] > 0.99).all() and (fit["p_permutation"] <= 0.1).all()
