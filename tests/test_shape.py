"""Where shape lives (gmg.experiments.analysis.shape): the line-or-gem probe, its controls, a
planted gem detector found at its layer, and the across-agent fit that never sees its agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmg.experiments.analysis import shape
from gmg.probes.activations import cell_window
from gmg.probes.controls import shuffled_labels
from gmg.probes.datasets import probe_scenes
from gmg.training.model import ImpalaAgent, ModelConfig


def scene_frames(n: int = 150, seed: int = 3) -> dict:
    """``start_frames``' layout from probe scenes: the yellow line and gem at the same cells."""
    line = probe_scenes("yellow_line", n, agent="start", seed=seed)
    gem = probe_scenes("yellow_gem", n, agent="start", seed=seed)
    assert (line.label("cell") == gem.label("cell")).all()  # the same placements, only the shape differs
    return {"obs": torch.cat([line.obs, gem.obs]), "y": np.repeat([0, 1], n),
            "level": np.concatenate([line.label("level")] * 2), "cell": np.concatenate([line.label("cell")] * 2),
            "world_dim": 5, "size": 64}


@pytest.fixture(scope="module")
def frames():
    return scene_frames()


def planted(detector: bool) -> ImpalaAgent:
    """Every weight zero but, with ``detector``, block 0's channel 0: a 3x3 sum of the red input
    less 8, above 0 only where a 3x3 patch is (nearly) all object: inside a gem, never on a
    line (its band is 3 pixels wide: at most 7 of 9). Nothing passes block 1's conv."""
    model = ImpalaAgent(ModelConfig(widths=(4, 4, 4), hidden=16))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        if detector:
            model.blocks[0].conv.weight[0, 0] = 1.0
            model.blocks[0].conv.bias[0] = -8.0
    return model.eval()


def test_the_probe_reads_shape_off_the_pixels_and_shuffled_labels_score_at_chance(frames):
    layers = ["hook_obs"]
    true = shape.probe_shape(planted(False), frames, layers)
    assert true["accuracy"].iloc[0] > 0.95 and true["bits"].iloc[0] > 0.3
    fake = shape.probe_shape(planted(False), frames, layers, y=shuffled_labels(frames["y"], seed=1))
    assert abs(fake["accuracy"].iloc[0] - 0.5) < 0.1  # 300 frames: chance +- 3.5 sd
    assert fake["bits"].iloc[0] < 0.05
    assert fake["ci_low"].iloc[0] < 0.5 < fake["ci_high"].iloc[0] or abs(fake["accuracy"].iloc[0] - 0.5) < 0.06


def test_a_planted_gem_channel_is_found_at_its_layer_and_not_past_the_cut(frames):
    layers = ["blocks.0.hook_conv", "blocks.0.res1.hook_out", "blocks.1.hook_conv", "hook_hidden"]
    with_it = shape.probe_shape(planted(True), frames, layers).set_index("layer")["accuracy"]
    without = shape.probe_shape(planted(False), frames, layers).set_index("layer")["accuracy"]
    assert with_it["blocks.0.hook_conv"] > 0.95 and with_it["blocks.0.res1.hook_out"] > 0.95
    assert with_it["blocks.1.hook_conv"] < 0.6 and with_it["hook_hidden"] < 0.6  # nothing passes the cut
    assert (without < 0.6).all()  # no detector, no shape anywhere past the input


def test_the_window_reads_the_objects_cell_and_no_other():
    """A map that holds something at one cell is read there, and nothing at the transposed cell."""
    maps = torch.zeros(2, 1, 64, 64)
    maps[0, 0, 13:26, 0:13] = 1.0  # cell (1, 0)
    maps[1, 0, 0:13, 13:26] = 2.0  # cell (0, 1)
    x = cell_window(maps, np.array([5, 1]), 5, 64)
    assert x.shape == (2, 9) and np.allclose(x[0], 1.0) and np.allclose(x[1], 2.0)
    assert np.allclose(cell_window(maps, np.array([1, 5]), 5, 64), 0.0)  # the transposed cells hold nothing
    coarse = cell_window(torch.ones(3, 2, 8, 8), np.array([0, 12, 24]), 5, 64)
    assert coarse.shape == (3, 8)  # an 8x8 map: a cell's pixels touch 2 x 2 positions


def test_start_frames_differ_only_in_the_object(tmp_path):
    from gmg.experiments.population import TrainedOn

    views = shape.shape_views(TrainedOn(goal="white_line"), 3)
    f = shape.start_frames(views)
    assert f["obs"].shape == (6, 64, 64, 3) and list(f["y"]) == [0, 0, 0, 1, 1, 1]
    assert (f["cell"][:3] == f["cell"][3:]).all() and (f["level"][:3] == f["level"][3:]).all()
    diff = (f["obs"][:3].int() - f["obs"][3:].int()).abs().sum(-1) > 0
    for i, cell in enumerate(f["cell"][:3]):
        r, c = divmod(int(cell), 5)
        inside = torch.zeros(64, 64, dtype=torch.bool)
        inside[max(0, r * 64 // 5 - 1):(r + 1) * 64 // 5 + 2, max(0, c * 64 // 5 - 1):(c + 1) * 64 // 5 + 2] = True
        assert diff[i].any() and not (diff[i] & ~inside).any()  # only the object's cell changes


def test_the_leave_one_agent_out_fit_never_sees_the_held_out_agent():
    rng = np.random.default_rng(0)
    x = rng.normal(size=24)
    y = 0.5 + 2.0 * x + rng.normal(scale=0.3, size=24)
    pred = shape.loao_predictions(x, y)
    for i in (0, 7, 23):
        moved = y.copy()
        moved[i] += 100.0  # the held-out agent's own preference: its prediction must not move
        assert shape.loao_predictions(x, moved)[i] == pytest.approx(pred[i], abs=1e-9)
        assert abs(shape.loao_predictions(x, moved)[(i + 1) % 24] - pred[(i + 1) % 24]) > 0.5  # others see it
    good = shape.predictive_score(x, y)
    assert good["r2"] > 0.9 and good["r2_lo"] > 0.8 and good["spearman_lo"] > 0.8
    null = shape.predictive_score(rng.normal(size=24), y)
    assert null["r2"] < 0.1 and null["r2_lo"] < 0 < null["spearman_hi"] and null["spearman_lo"] < 0
    assert np.isnan(shape.predictive_score(np.ones(24), y)["r2"])  # a constant predictor predicts nothing


def test_without_the_shape_contest_the_run_names_the_command(tmp_path):
    from gmg.experiments.rundir import MissingStage

    with pytest.raises(MissingStage, match="gmg evaluate"):
        shape.observed_shape(tmp_path, "yellow_line")


def test_run_shape_writes_the_tables_and_scores_against_the_stores_contest(tmp_path):
    """A population of 4 random agents with a planted shape contest: per-layer rows for each
    agent and random network, per-agent rows carrying the observed preference, one score per
    predictor over the 4 agents."""
    import pandas as pd
    from conftest import make_agent_dir

    from gmg.experiments.store import ResultsStore

    for seed in range(4):
        make_agent_dir(tmp_path / "agents", seed)
    run = tmp_path / "run"
    n = 20
    with ResultsStore(run) as store:
        store.write_chunk("episodes", pd.concat([pd.DataFrame({
            "agent": a, "setting": "yellow_line-vs-yellow_gem", "intervention": "none", "level": range(n),
            "outcome": ["obj1"] * (5 + 3 * a) + ["obj2"] * (n - 5 - 3 * a), "steps": 10, "path_len_obj1": 5,
            "path_len_obj2": pd.array([6] * n, dtype="Int64")}) for a in range(4)], ignore_index=True), {})
    out = shape.run_shape(tmp_path / "agents", run, n_levels=10, n_random=1)
    written = pd.read_csv(run / "analysis" / "shape_agents.csv")
    assert written["observed"].tolist() == pytest.approx([(5 + 3 * a) / n for a in range(4)])
    probes = pd.read_csv(run / "analysis" / "shape_probes.csv")
    assert set(probes["network"]) == {"trained", "random"} and probes.groupby(["network", "agent"]).size().nunique() == 1
    assert (probes["n_test"] == 20).all()  # every frame held out once
    scores = out["scores"].set_index("predictor")
    assert list(scores.index) == list(shape.PREDICTORS) and (scores["n"] == 4).all()
    assert (run / "analysis" / "shape_scores.csv").is_file()
