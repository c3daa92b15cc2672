"""The contest model (issue 39): planted constants recovered leave one setting out, a held-out
setting's data never touching its own constants, the goal gate, measured objects, per-cell pulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gmg.experiments.analysis.contest import (
    VARIANTS,
    cell_pulls,
    contest_rows,
    exact,
    goal_gate,
    loso,
    own_pull,
    pair_table,
    predict_contest,
)
from gmg.experiments.analysis.predict import measured_objects
from gmg.experiments.analysis.scoring import r2
from gmg.experiments.analysis.walk import first_hit, mazes, preference

SETTINGS = ["red_line-vs-green_line", "red_line-vs-yellow_gem", "yellow_gem-vs-red_line", "green_line-vs-yellow_gem",
            "white_line-vs-yellow_gem", "yellow_line-vs-yellow_gem"]


@pytest.fixture(scope="module")
def two():
    return mazes(24, 2)


@pytest.fixture(scope="module")
def table(two):
    return pair_table(two)


def _pulls(n_agents: int = 10, seed: int = 0) -> pd.DataFrame:
    """A pull profile of agents that differ in every channel, the goal's line and gem, the floor
    and a measured white line."""
    rng = np.random.default_rng(seed)
    b0 = rng.uniform(0.1, 0.3, n_agents)
    return pd.DataFrame({"agent": np.arange(n_agents), "b_red": b0 + rng.uniform(0.2, 2.0, n_agents),
                         "b_green": b0 + rng.uniform(0.2, 2.0, n_agents), "b_blue": b0 + rng.uniform(0.0, 1.0, n_agents),
                         "b_goal": b0 + rng.uniform(1.5, 2.6, n_agents), "b_gem": b0 + rng.uniform(0.5, 1.8, n_agents),
                         "b0": b0, "b_white_line": b0 + rng.uniform(0.5, 2.5, n_agents)})


def _planted(two, name: str, constants: list[float]) -> pd.DataFrame:
    """Contest rows whose observed preferences are variant ``name``'s with ``constants``, exactly."""
    rows = contest_rows(_pulls(), SETTINGS, "yellow_line")
    return rows.assign(observed=exact(VARIANTS[name], rows, np.array(constants), two))


@pytest.mark.parametrize("name, constants", [("shrink", [0.45]), ("compete", [0.6, 0.1]), ("gate", [0.7, 0.05, 0.3])])
def test_planted_constants_are_recovered_leave_one_setting_out(two, table, name, constants):
    rows = _planted(two, name, constants)
    pred, consts = loso(VARIANTS[name], rows, two, table)
    v = VARIANTS[name]
    # every held-out setting is predicted with the planted constants (on the grid: within one step)
    steps = [np.diff(g).min() for g in v.grid]
    for c, truth, step in zip(v.constants, constants, steps):
        assert np.abs(consts[c].to_numpy() - truth).max() <= step + 1e-9, (c, consts)
    for setting, g in rows.assign(pred=pred).groupby("setting"):
        assert r2(g["pred"], g["observed"]) > 0.97, setting
    assert (pred - rows["observed"]).abs().max() < 0.005
    # the walker with the pulls alone (no constant) misses them: the constants matter
    walk, _ = loso(VARIANTS["measured"], rows, two, table)
    assert (walk - rows["observed"]).abs().mean() > 0.01


def test_a_held_out_settings_own_data_never_choose_its_constants(two, table):
    rows = _planted(two, "compete", [0.6, 0.1])
    held = rows["setting"] == "red_line-vs-yellow_gem"
    scrambled = rows.copy()
    scrambled.loc[held, "observed"] = np.random.default_rng(1).permutation(rows.loc[held, "observed"].to_numpy()) * 0.3
    v = VARIANTS["compete"]
    pred_a, c_a = loso(v, rows, two, table)
    pred_b, c_b = loso(v, scrambled, two, table)
    a, b = c_a.set_index("setting"), c_b.set_index("setting")
    assert a.loc["red_line-vs-yellow_gem"].tolist() == b.loc["red_line-vs-yellow_gem"].tolist()
    assert pred_a[held].to_numpy() == pytest.approx(pred_b[held].to_numpy())
    # the other settings' constants are fitted on the scrambled setting among others: they move
    assert not a.drop("red_line-vs-yellow_gem").equals(b.drop("red_line-vs-yellow_gem"))


def test_the_goal_gate_opens_only_where_both_objects_show_every_goal_channel():
    assert goal_gate("yellow_line", "yellow_gem", "yellow_line") == 1.0
    assert goal_gate("white_line", "yellow_gem", "yellow_line") == 1.0
    assert goal_gate("red_line", "yellow_gem", "yellow_line") == 0.0  # one goal channel of two
    assert goal_gate("invisible_line", "yellow_gem", "yellow_line") == 0.0
    assert goal_gate("black_line", "yellow_gem", "yellow_line") == 0.0
    assert goal_gate("yellow_line", "white_gem", "white_line") == 0.0  # no blue
    assert goal_gate("white_line", "white_gem", "white_line") == 1.0


def test_mixed_colours_are_measured_alone_and_fall_back_to_channels_where_not():
    assert measured_objects(["white_line-vs-yellow_gem", "red_line-vs-green_line", "black_line-vs-yellow_gem",
                             "cyan_line-vs-red_gem"], "yellow_line") == ["white_line", "cyan_line", "red_gem"]
    assert measured_objects(["yellow_line-vs-white_gem", "purple_line-vs-blue_line"], "white_line") == [
        "yellow_line", "purple_line"]
    b = _pulls().iloc[0]
    assert own_pull(b, "white_line", "yellow_line") == pytest.approx(b["b_white_line"] - b["b0"])
    channels = max(b["b_red"], b["b_green"], b["b_blue"]) - b["b0"]  # the walk model's rule: the best channel
    assert own_pull(b, "white_line", "yellow_line", measured=False) == pytest.approx(channels)
    assert own_pull(b.drop("b_white_line"), "white_line", "yellow_line") == pytest.approx(channels)
    assert own_pull(b, "invisible_line", "yellow_line") == 0.0


def test_the_walk_variant_is_the_walk_model(two):
    rows = contest_rows(_pulls(4), ["red_line-vs-yellow_gem", "white_line-vs-yellow_gem"], "yellow_line")
    got = exact(VARIANTS["walk"], rows, np.zeros(0), two)
    want = [float(first_hit(two, torch.tensor([r.b1, r.b2]))[:, 0].mean()) for r in rows.itertuples()]
    assert got == pytest.approx(want, abs=1e-3)  # first_hit sums to 1 but for the walker's rare timeouts


def test_per_cell_pulls_match_constant_ones_and_the_near_rule_keeps_pulls_alone_beside_an_object(two):
    own = torch.tensor([[1.2, 0.8], [0.4, 1.5]], dtype=torch.float64)
    same = cell_pulls(two, own, own)
    assert preference(two, same).numpy() == pytest.approx(preference(two, own).numpy(), abs=1e-12)
    # the pair's pulls far away only: between the pulls alone everywhere and the pair's everywhere
    pair = torch.tensor([[0.1, 0.1], [0.1, 0.1]], dtype=torch.float64)
    mixed = preference(two, cell_pulls(two, own, pair)).numpy()
    far, alone = preference(two, pair).numpy(), preference(two, own).numpy()
    assert np.all((mixed - far) * (alone - far) >= -1e-9) and not np.allclose(mixed, far)
    near = cell_pulls(two, own, pair)[0, 0]  # level 0: cells one step from either object keep the pulls alone
    d = two.dist[0].min(0).values
    assert torch.equal(near[:, d <= 1], own[0][:, None].expand(2, int((d <= 1).sum())))
    assert torch.equal(near[:, d > 1], pair[0][:, None].expand(2, int((d > 1).sum())))


def test_gmg_predicts_contest_column_needs_two_settings(two):
    pulls = _pulls(5)
    rows = contest_rows(pulls, SETTINGS[:3], "yellow_line")
    observed = rows[["agent", "setting"]].assign(observed=exact(VARIANTS["shrink"], rows, np.array([0.5]), two))
    out = predict_contest(pulls, observed, "yellow_line", two)
    assert out["contest"].between(0, 1).all() and out["contest_constants"].str.startswith("alpha ").all()
    assert out["contest"].to_numpy() == pytest.approx(observed["observed"].to_numpy(), abs=0.01)
    one = predict_contest(pulls, observed[observed["setting"] == SETTINGS[0]], "yellow_line", two)
    assert one["contest"].isna().all()  # nothing else to fit on: no prediction rather than an in-sample one
