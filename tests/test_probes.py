"""Probe datasets, activations, estimators, controls, the population runner and `gmg probe`."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from gmg.experiments.cli.main import main
from gmg.experiments.probing import ProbeRunConfig, detectability_profile, probe_population
from gmg.probes.activations import collect_activations, layer_names, read_activations, write_activations
from gmg.probes.controls import pixel_channel, random_network_like, shuffled_labels
from gmg.probes.datasets import PROBE_START, ProbeError, probe_scenes
from gmg.probes.linear import LinearProbe, PositionReadout, RidgeProbe, holdout_score, split, wilson_interval
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent, ModelConfig
from gmg.training.objects import COLOURS

FAST = dict(Cs=(0.01, 1.0), cv=2, n_components=32, max_iter=100)


@pytest.fixture(scope="module")
def red_lines():
    """300 black-background scenes, one red line each, agent at the start."""
    return probe_scenes("red_line", 300, agent="start", seed=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ---- datasets -------------------------------------------------------------------------

def test_scene_labels_match_pixels(red_lines):
    obs, lab = red_lines.obs.numpy(), red_lines.labels
    assert obs.shape == (300, 64, 64, 3) and obs.dtype == np.uint8
    assert (lab["level"] >= PROBE_START).all()
    assert (lab["present"] == 1).all() and (lab["cell"] != 20).all()  # never the start cell
    bounds = np.floor(np.arange(6) * 64 / 5 + 0.5).astype(int)
    for i in range(20):
        r, c = int(lab["y"][i]), int(lab["x"][i])
        assert lab["cell"][i] == r * 5 + c
        tile = obs[i, bounds[r]:bounds[r + 1], bounds[c]:bounds[c + 1]]
        pure_red = (tile == np.array(COLOURS["red"], np.uint8)).all(-1)
        assert pure_red.sum() > 20  # the diagonal is drawn in that cell
    # the whole frame holds no pure red outside the labelled cell
    i = 0
    mask = np.ones((64, 64), bool)
    r, c = int(lab["y"][i]), int(lab["x"][i])
    mask[bounds[r]:bounds[r + 1], bounds[c]:bounds[c + 1]] = False
    assert not ((obs[i] == np.array(COLOURS["red"], np.uint8)).all(-1) & mask).any()


def test_two_object_and_absent_scenes():
    ds = probe_scenes("yellow_line", 64, distractors=["red_gem"], p_absent=0.5, seed=3)
    lab = ds.labels
    assert set(lab["present"]) == {0, 1}
    assert (lab.loc[lab["present"] == 0, "cell"] == -1).all() and lab.loc[lab["present"] == 0, "x"].isna().all()
    assert (lab["distractor_cell"] >= 0).all()
    assert (lab.loc[lab["present"] == 1, "cell"] != lab.loc[lab["present"] == 1, "distractor_cell"]).all()
    yellow = (ds.obs.numpy() == np.array(COLOURS["yellow"], np.uint8)).all(-1).reshape(64, -1).any(1)
    assert np.array_equal(yellow, lab["present"].to_numpy() == 1)
    again = probe_scenes("yellow_line", 64, distractors=["red_gem"], p_absent=0.5, seed=3)
    assert torch.equal(ds.obs, again.obs)


# ---- the required behaviours ----------------------------------------------------

def test_red_line_cell_decodable_from_r_and_chance_from_b(red_lines):
    y = red_lines.label("cell")
    tr, te = split(len(y), seed=0, stratify=y)
    r, _ = holdout_score(LinearProbe(**FAST), pixel_channel(red_lines.obs, "r", pool=16), y, tr, te)
    b, _ = holdout_score(LinearProbe(**FAST), pixel_channel(red_lines.obs, "b", pool=16), y, tr, te)
    n_cells = len(np.unique(y))
    assert r.accuracy > 0.9 and r.ci_low > 0.8
    assert b.accuracy < 3.0 / n_cells  # chance is about 1/n_cells
    assert b.ci_low < 1.0 / n_cells + 0.05


def test_shuffled_label_control_is_at_chance(red_lines):
    y = red_lines.label("cell")
    tr, te = split(len(y), seed=0, stratify=y)
    X = pixel_channel(red_lines.obs, "r", pool=16)
    real, _ = holdout_score(LinearProbe(**FAST), X, y, tr, te)
    control, _ = holdout_score(LinearProbe(**FAST), X, shuffled_labels(y, seed=1), tr, te)
    assert real.accuracy > 0.9
    assert control.accuracy < 3.0 / len(np.unique(y))
    assert not np.array_equal(shuffled_labels(y, 1), y)


def test_same_seed_same_probe(red_lines):
    y = red_lines.label("cell")
    X = pixel_channel(red_lines.obs, "r", pool=16)
    a = LinearProbe(**FAST, random_state=7).fit(X, y)
    b = LinearProbe(**FAST, random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    assert a.coef_.shape == (len(np.unique(y)), X.shape[1])


def test_composed_coef_reproduces_the_pipeline(red_lines):
    y = red_lines.label("cell")
    X = pixel_channel(red_lines.obs, "r", pool=16)
    p = LinearProbe(**FAST).fit(X, y)
    np.testing.assert_allclose(X @ p.coef_.T + p.intercept_, p.decision_function(X), rtol=1e-4, atol=1e-4)
    xy = red_lines.labels[["x", "y"]].to_numpy()
    r = RidgeProbe(n_components=20).fit(X, xy)
    np.testing.assert_allclose(X @ r.coef_.T + r.intercept_, r.predict(X), rtol=1e-4, atol=1e-4)
    assert r.score(X, xy) > 0.9


def test_position_readout_agrees_with_flattened_probe(red_lines):
    """Easy case: the RGB input pooled to 8x8 positions, a (3, 8, 8) conv map."""
    obs = red_lines.obs.permute(0, 3, 1, 2).float().div(255)
    X = torch.nn.functional.adaptive_avg_pool2d(obs, (8, 8)).reshape(len(obs), -1).numpy()
    y = red_lines.label("cell")
    tr, te = split(len(y), seed=0, stratify=y)
    pos_score, pos = holdout_score(PositionReadout(map_shape=(3, 8, 8)), X, y, tr, te)
    flat_score, flat = holdout_score(LinearProbe(**FAST), X, y, tr, te)
    assert pos_score.accuracy > 0.9 and flat_score.accuracy > 0.9
    agree = (pos.predict(X[te]) == flat.predict(X[te])).mean()
    assert agree > 0.9
    assert pos.coef_.shape == (1, 3)
    assert pos.coef_[0, 0] > pos.coef_[0, 1]  # red evidence up, green (sand walls) down


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(9, 10)[0] > 0.5


# ---- bad input: one clear line -----------------------------------------------------------

def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert isinstance(exc.value, ValueError) and "\n" not in msg and msg
    return msg


def test_bad_input_messages():
    model = ImpalaAgent(ModelConfig(widths=(4, 8, 8)))
    with pytest.raises(ProbeError) as e:
        layer_names(model, ["blocks.9.hook_conv"])
    assert "blocks.9.hook_conv" in _one_line(e)
    with pytest.raises(ProbeError) as e:
        collect_activations(model, torch.zeros(0, 64, 64, 3, dtype=torch.uint8))
    assert "empty" in _one_line(e)
    with pytest.raises(ProbeError) as e:
        probe_scenes("red_line", 0)
    _one_line(e)
    with pytest.raises(ProbeError) as e:
        LinearProbe().fit(np.random.default_rng(0).normal(size=(20, 4)), np.ones(20, int))
    assert "two classes" in _one_line(e)
    with pytest.raises(ProbeError) as e:
        holdout_score(LinearProbe(), np.zeros((0, 3)), np.zeros(0), [], [])
    assert "empty" in _one_line(e)
    with pytest.raises(ProbeError) as e:
        PositionReadout(map_shape=(2, 4, 4)).fit(np.zeros((4, 5)), [0, 1, 0, 1])
    _one_line(e)


def test_cli_bad_layer_exits_2(tiny_population, tmp_path, capsys):
    rc = main(["probe", "--agents", str(tiny_population), "--run-dir", str(tmp_path / "p"),
               "--layers", "nope", "--objects", "red_line", "--scenes", "40", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "unknown layer 'nope'" in err
    rc = main(["probe", "--agents", str(tiny_population), "--run-dir", str(tmp_path / "p"), "--jobs", "0",
               "--objects", "red_line", "--scenes", "40", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--jobs must be a number of processes" in err


# ---- activations -------------------------------------------------------------------------

def assert_within_one_float16_step(a: np.ndarray, b: np.ndarray) -> None:
    """float16 arrays equal up to one float16 step at the larger value's magnitude."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    step = np.spacing(np.maximum(np.abs(a), np.abs(b))).astype(np.float32)
    off = np.abs(a32 - b32) > step
    assert not off.any(), f"{off.sum()} values differ by more than one float16 step, e.g. {a32[off][:3]} vs {b32[off][:3]}"


def test_streamed_activations_match_in_memory(tmp_path):
    torch.manual_seed(0)
    model = ImpalaAgent(ModelConfig(widths=(4, 8, 8))).eval()
    obs = probe_scenes("green_gem", 37, seed=1).obs
    names = ["hook_obs", "blocks.0.hook_conv", "hook_hidden"]
    mem = collect_activations(model, obs, names, batch_size=10, pool=8)
    files = write_activations(model, obs, tmp_path, names, batch_size=16, pool=8, layers_per_pass=2)
    assert set(files) == set(names)
    for n in names:
        disk = read_activations(tmp_path, n)
        assert disk.dtype == np.float16 and disk.shape == mem[n].shape
        # batches of 10 and of 16 may take other oneDNN kernels (by batch size and CPU): float32 sums
        # then differ in the last bits, and a value may round to the neighbouring float16
        assert_within_one_float16_step(np.asarray(disk), mem[n])
    assert mem["blocks.0.hook_conv"].shape == (37, 4, 8, 8)  # pooled from 64x64
    assert mem["hook_hidden"].shape == (37, 256)
    full = collect_activations(model, obs[:3], ["hook_obs"], pool=None)["hook_obs"]
    np.testing.assert_allclose(full, obs[:3].permute(0, 3, 1, 2).numpy() / 255, atol=1e-3)


def test_random_network_control_differs_and_is_reproducible():
    torch.manual_seed(5)
    model = ImpalaAgent(ModelConfig(widths=(4, 8, 8)))
    before = torch.get_rng_state()
    a, b = random_network_like(model, seed=1), random_network_like(model, seed=1)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random stream is untouched
    assert a.config == model.config
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, model.fc.weight)


# ---- population runner + CLI ------------------------------------------------------------

def test_probe_population_store_and_cli(tiny_population, tmp_path):
    cfg = ProbeRunConfig(objects=("red_line", "blue_gem"), layers=("hook_obs", "blocks.0.hook_conv", "hook_hidden"),
                         n_scenes=200, n_components=32)
    run = tmp_path / "probe"
    table = probe_population(tiny_population, run, cfg, ids=[0, 1])
    assert sorted(table["agent"].unique()) == [0, 1]
    need = {"agent", "object", "layer", "probe", "accuracy", "ci_low", "ci_high", "control_random",
            "control_shuffled", "selectivity"}
    assert need <= set(table.columns)
    t0 = table[(table["agent"] == 0) & (table["probe"] == "cell_logistic")]
    assert set(t0["layer"]) == {"hook_obs", "blocks.0.hook_conv", "hook_hidden", "pixels.r", "pixels.g", "pixels.b"}
    obs_row = t0[(t0["object"] == "red_line") & (t0["layer"] == "hook_obs")].iloc[0]
    assert obs_row["accuracy"] > max(0.4, 3 * obs_row["chance"])  # the input shows where the red line is
    # hook_obs is the same for any network: the random control equals the probe there
    assert obs_row["control_random"] == pytest.approx(obs_row["accuracy"])
    assert (t0["ci_low"] <= t0["accuracy"]).all() and (t0["accuracy"] <= t0["ci_high"]).all()
    pix = t0.set_index(["object", "layer"])["accuracy"]
    assert pix[("red_line", "pixels.r")] > pix[("red_line", "pixels.b")] + 0.4
    assert pix[("blue_gem", "pixels.b")] > pix[("blue_gem", "pixels.r")] + 0.3
    assert not (run / "activations" / "agent-0000").exists()  # discarded by default
    profile = detectability_profile(table)
    assert list(profile.columns[:3]) == ["pixels.r", "pixels.g", "pixels.b"] and len(profile) == 4
    # a rerun through the CLI skips probed agents and adds agent 2 only
    rc = main(["probe", "--agents", str(tiny_population), "--run-dir", str(run), "--objects", "red_line,blue_gem",
               "--layers", "hook_obs,blocks.0.hook_conv,hook_hidden", "--scenes", "200", "--components", "32",
               "--device", "cpu", "--quiet", "--plot"])
    assert rc == 0
    # the same run directory with other settings would mix two kinds of probes: refused
    with pytest.raises(UserError, match="holds probes with n_scenes=200 \\(asked 300\\)"):
        probe_population(tiny_population, run, dataclasses.replace(cfg, n_scenes=300))
    from gmg.experiments.store import ResultsStore

    with ResultsStore(run, read_only=True) as store:
        again = store.table("probes")
    assert sorted(again["agent"].unique()) == [0, 1, 2]
    assert len(again[again["agent"] == 0]) == len(table[table["agent"] == 0])
    assert (run / "probe-population.png").stat().st_size > 1000


def test_probe_results_do_not_depend_on_the_number_of_processes(tiny_population, tmp_path):
    cfg = ProbeRunConfig(objects=("red_line",), layers=("hook_obs", "blocks.0.hook_conv", "hook_hidden"),
                         n_scenes=120, n_components=16)
    one = probe_population(tiny_population, tmp_path / "p", dataclasses.replace(cfg, n_jobs=1), ids=[0])
    two = probe_population(tiny_population, tmp_path / "q", dataclasses.replace(cfg, n_jobs=2), ids=[0])
    assert len(one) == 3 * 3 + 3 * 3 - 1  # 3 layers and 3 pixel channels x 3 probes; hook_hidden is no map
    pd.testing.assert_frame_equal(one.drop(columns="seconds"), two.drop(columns="seconds"))
    # how many processes is not a setting of the results: a run goes on with another number
    more = probe_population(tiny_population, tmp_path / "p", dataclasses.replace(cfg, n_jobs=2), ids=[0, 1])
    assert sorted(more["agent"].unique()) == [0, 1]


# ---- scikit-learn conformance -------------------------------------------------------------

@parametrize_with_checks([LinearProbe(Cs=(0.1, 1.0), cv=2, n_components=None), RidgeProbe(), PositionReadout()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
