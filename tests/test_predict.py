"""The channel model on synthetic agents whose channel weights are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gmg.experiments.analysis.predict import (
    expressible,
    noise_ceiling,
    predict_ratio,
    predict_walk,
    profile,
    pull_profile,
    score,
)
from gmg.experiments.analysis.profile_objects import profile_settings, pull, strength
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.analysis.walk import PULL_GRID, efficiency_curve, first_hit, mazes
from gmg.experiments.evaluate import metrics
from gmg.training.errors import UserError

E0 = 0.4
# agent -> efficiency with the goal alone as a pure red, green, blue line, the yellow line, the yellow gem
AGENTS = {0: (0.9, 0.9, E0, 0.95, 0.9), 1: (E0, 0.95, E0, 0.95, 0.85), 2: (0.95, E0 + 0.1, E0, 0.95, 0.5),
          3: (0.7, 0.6, E0, 0.95, 0.95), 4: (0.55, 0.85, E0, 0.95, 0.7)}
PAIRS = ("red_line-vs-yellow_gem", "green_line-vs-yellow_gem", "green_line-vs-red_line", "white_line-vs-yellow_gem",
         "cyan_line-vs-red_line")


def _episodes(n_levels: int = 400, seed: int = 0) -> pd.DataFrame:
    """Single-object episodes with exactly the agents' efficiencies, two-object outcomes drawn
    from the strengths' Bradley-Terry probabilities."""
    rng = np.random.default_rng(seed)
    rows = []
    levels = np.arange(n_levels)
    for agent, (er, eg, eb, ey, egem) in AGENTS.items():
        effs = dict(zip(profile_settings("yellow_line"), (er, eg, eb, ey, egem, E0)))
        for setting, e in effs.items():
            rows.append(pd.DataFrame({"agent": agent, "setting": setting, "intervention": "none", "level": levels,
                                      "outcome": "obj1", "steps": np.full(n_levels, 100.0) / 1.0,
                                      "path_len_obj1": np.full(n_levels, 100.0 * e),
                                      "path_len_obj2": pd.array([pd.NA] * n_levels, dtype="Int64")}))
        p = pd.Series({"agent": agent, "E_red": er, "E_green": eg, "E_blue": eb, "E_goal": ey, "E_gem": egem, "E0": E0})
        for setting in PAIRS:
            o1, o2 = setting.split("-vs-")
            s1, s2 = strength(p, o1), strength(p, o2)
            first = rng.random(n_levels) < s1 / (s1 + s2)
            rows.append(pd.DataFrame({"agent": agent, "setting": setting, "intervention": "none", "level": levels,
                                      "outcome": np.where(first, "obj1", "obj2"), "steps": 10.0,
                                      "path_len_obj1": 5.0, "path_len_obj2": pd.array([5] * n_levels, dtype="Int64")}))
    return pd.concat(rows, ignore_index=True)


def test_the_profile_recovers_the_channel_efficiencies_with_their_cis():
    prof = profile(_episodes(), "yellow_line").set_index("agent")
    for agent, (er, eg, eb, ey, egem) in AGENTS.items():
        assert prof.loc[agent, ["E_red", "E_green", "E_blue", "E_goal", "E_gem", "E0"]].tolist() == pytest.approx(
            [er, eg, eb, ey, egem, E0])
        assert prof.loc[agent, "E_red_lo"] - 1e-9 <= er <= prof.loc[agent, "E_red_hi"] + 1e-9


def test_a_green_only_detector_is_predicted_to_ignore_a_red_line():
    prof = profile(_episodes(), "yellow_line")
    green_only = prof.set_index("agent").loc[1]
    assert strength(green_only, "red_line") == pytest.approx(strength(green_only, "invisible_line"))
    pred = predict_ratio(prof, ["red_line-vs-yellow_gem", "invisible_line-vs-yellow_gem"]).set_index(["agent", "setting"])
    assert pred.loc[(1, "red_line-vs-yellow_gem"), "predicted"] == pytest.approx(
        pred.loc[(1, "invisible_line-vs-yellow_gem"), "predicted"])
    # a red-first agent (strong red, weak green) takes the red line far more often
    assert pred.loc[(2, "red_line-vs-yellow_gem"), "predicted"] > pred.loc[(1, "red_line-vs-yellow_gem"), "predicted"] + 0.2


def test_the_model_predicts_unmeasured_colours_out_of_sample_near_the_noise_ceiling():
    eps = _episodes()
    prof = profile(eps, "yellow_line")
    out = score(predict_ratio(prof, list(PAIRS)), metrics(eps), eps)
    table = out["settings"].set_index("setting")
    # white and cyan lines were never measured alone: only their R, G, B components were
    assert table.loc["white_line-vs-yellow_gem", "r2_ratio"] > 0.7 and table.loc["cyan_line-vs-red_line", "r2_ratio"] > 0.7
    assert out["pooled"]["r2_ratio"] > 0.9 and out["pooled"]["r2_logit_loso"] > 0.85
    assert (table["noise_ceiling"] > 0.7).all()  # 5 agents, 400 levels: measurable everywhere
    # no walk column here: its R² and interval are NaN, not a number made up
    assert table["r2_walk"].isna().all() and table["r2_walk_lo"].isna().all()
    assert abs(table.loc["red_line-vs-yellow_gem", "ratio_mean"] - table.loc["red_line-vs-yellow_gem", "observed_mean"]) < 0.05


def test_a_setting_the_model_cannot_express_is_one_clear_line():
    for bad, message in (("invisible_line-vs-invisible_gem", "both objects are invisible"),
                         ("black_gem-vs-black_gem", "both objects are invisible"), ("train:red_line", "one object")):
        with pytest.raises(UserError, match=message) as e:
            expressible(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="needs the single-object settings"):
        profile(_episodes().query("setting != 'train:invisible_line'"), "yellow_line")


def test_the_walk_model_reads_planted_pulls_back_and_predicts_each_contest_level_by_level():
    """Synthetic agents whose single-object efficiencies are those of walkers with known pulls
    (channels combined by their maximum) and whose contests are drawn from those walkers."""
    n = 60
    one, two = mazes(n, 1), mazes(n, 2)
    planted = {0: (1.5, 0.2, 0.2, 2.5, 1.5), 1: (0.2, 1.8, 0.2, 2.5, 1.2), 2: (1.0, 1.0, 0.6, 2.5, 2.0),
               3: (0.6, 1.4, 0.2, 2.5, 0.8), 4: (1.9, 0.7, 1.0, 2.5, 1.0)}  # red, green, blue, goal line, goal gem
    floor = 0.2
    effs = {a: efficiency_curve(one, [*b, floor]) for a, b in planted.items()}
    prof = pd.DataFrame([{"agent": a, **dict(zip(["E_red", "E_green", "E_blue", "E_goal", "E_gem", "E0"], e))}
                         for a, e in effs.items()])
    pulls = pull_profile(prof, efficiency_curve(one, PULL_GRID), n).set_index("agent")
    for a, b in planted.items():
        assert pulls.loc[a, ["b_red", "b_green", "b_blue", "b_goal", "b_gem", "b0"]].tolist() == pytest.approx(
            [*b, floor], abs=0.06)
    settings = ["red_line-vs-yellow_gem", "green_line-vs-red_line", "purple_line-vs-yellow_gem"]
    pred = predict_walk(pulls.reset_index(), settings, "yellow_line", two).set_index(["agent", "setting"])
    red, gem = planted[0][0] - floor, planted[0][4] - floor
    truth = first_hit(two, torch.tensor([red, gem]))
    assert pred.loc[(0, "red_line-vs-yellow_gem"), "walk"] == pytest.approx(float(truth[:, 0].mean()), abs=0.02)
    # purple = red + blue, read through its stronger channel
    assert pred.loc[(4, "purple_line-vs-yellow_gem"), "b1"] == pytest.approx(planted[4][0] - floor, abs=0.06)
    assert pred.loc[(0, "green_line-vs-red_line"), "walk"] < 0.3 < 0.7 < pred.loc[(1, "green_line-vs-red_line"), "walk"]


def test_a_green_only_detector_has_no_pull_toward_a_red_line_and_meets_it_by_chance_only():
    prof = profile(_episodes(), "yellow_line")
    pulls = pull_profile(prof, efficiency_curve(mazes(40, 1), PULL_GRID), 400)
    green_only = pulls.set_index("agent").loc[1]
    assert pull(green_only, "red_line") == 0.0 == pull(green_only, "invisible_line")
    assert pull(green_only, "green_line") > 0.5
    pred = predict_walk(pulls, ["red_line-vs-yellow_gem", "invisible_line-vs-yellow_gem"], "yellow_line",
                        mazes(40, 2)).set_index(["agent", "setting"])
    chance = pred.loc[(1, "invisible_line-vs-yellow_gem"), "walk"]
    assert pred.loc[(1, "red_line-vs-yellow_gem"), "walk"] == pytest.approx(chance)
    assert 0.0 < chance < 0.3  # the red line is met on the way to the gem, never sought
    with pytest.raises(UserError, match="unknown channel combination"):
        predict_walk(pulls, ["red_line-vs-yellow_gem"], "yellow_line", mazes(4, 2), combine="mean")


def test_the_r2_interval_is_tight_for_a_near_perfect_model_and_spans_zero_for_noise():
    rng = np.random.default_rng(3)
    obs = rng.random(32)
    good = obs + rng.normal(0, 0.03, 32)
    lo, hi = r2_interval(good, obs)
    assert lo < r2(good, obs) < hi and hi - lo < 0.1 and lo > 0.8
    noise = rng.random(32)
    lo, hi = r2_interval(noise, obs)
    assert lo < 0 and hi < 0.5


def test_noise_ceiling_is_high_for_distinct_agents_and_nan_or_low_for_identical_ones():
    rng = np.random.default_rng(1)
    rows = [pd.DataFrame({"agent": a, "setting": "s-vs-t", "level": np.arange(600),
                          "outcome": np.where(rng.random(600) < p, "obj1", "obj2")})
            for a, p in enumerate(np.linspace(0.1, 0.9, 10))]
    assert noise_ceiling(pd.concat(rows))["s-vs-t"] > 0.95
    same = [pd.DataFrame({"agent": a, "setting": "s-vs-t", "level": np.arange(600),
                          "outcome": np.where(rng.random(600) < 0.5, "obj1", "obj2")}) for a in range(10)]
    assert not noise_ceiling(pd.concat(same))["s-vs-t"] > 0.5


@pytest.fixture(scope="module")
def predicted_run(tmp_path_factory):
    """``gmg predict`` once on four tiny agents: (run directory, what it printed, its exit code)."""
    import contextlib
    import io

    from conftest import make_agent_dir

    from gmg.experiments.cli.main import main

    root = tmp_path_factory.mktemp("predict")
    for seed in range(4):
        make_agent_dir(root / "agents", seed)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["predict", "--agents", str(root), "--run-dir", str(root / "run"), "--n-levels", "6",
                     "--settings", "red_line-vs-yellow_gem", "black_gem-vs-black_gem", "--device", "cpu", "--quiet"])
    return root / "run", out.getvalue(), code


def test_gmg_predict_runs_end_to_end_on_tiny_agents(predicted_run):
    from gmg.experiments.store import ResultsStore

    run, out, code = predicted_run
    assert code == 0 and "noise ceiling" in out and "not expressible, skipped: black_gem-vs-black_gem" in out
    with ResultsStore(run) as store:
        pred = store.table("predictions")
    assert set(pred["agent"]) == {0, 1, 2, 3} and set(pred["setting"]) == {"red_line-vs-yellow_gem"}
    assert pred["ratio"].between(0, 1).all() and pred["walk"].between(0, 1).all()
    assert pred["contest"].isna().all()  # one setting: no other to fit the contest model's constant on


def test_gmg_predict_reads_the_walk_models_pulls_off_the_network_without_rollouts_of_the_profile(predicted_run):
    import contextlib
    import io

    from gmg.experiments.cli.main import main
    from gmg.experiments.store import ResultsStore

    root = predicted_run[0].parent
    run = root / "network"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["predict", "--agents", str(root / "agents"), "--run-dir", str(run), "--n-levels", "6",
                     "--settings", "red_line-vs-yellow_gem", "--profile", "network", "--readout-levels", "2",
                     "--no-attributions", "--device", "cpu", "--quiet"])
    assert code == 0
    prof = pd.read_csv(run / "analysis" / "predict_profile_network.csv")
    assert np.isfinite(prof[["b_red", "b_green", "b_blue", "b_goal", "b_gem", "b0"]].to_numpy()).all()
    scores = pd.read_csv(run / "analysis" / "predict_scores_network.csv")
    assert scores["walk_mean"].between(0, 1).all()
    with ResultsStore(run) as store:  # only the two-object setting was played: the profile came off the network
        assert set(store.query("SELECT DISTINCT setting FROM episodes")["setting"]) == {"red_line-vs-yellow_gem"}
        assert "goal_attribution" not in store.tables()


def test_gmg_predict_profile_sampled_by_default_or_exact(predicted_run):
    import contextlib
    import io

    from gmg.experiments.analysis.profile_objects import PROFILE_COLUMNS, profile_settings
    from gmg.experiments.cli.main import main
    from gmg.experiments.store import ResultsStore

    own = set(profile_settings("yellow_line"))
    with ResultsStore(predicted_run[0]) as store:  # the default: the profile's settings sampled
        assert own <= set(store.query("SELECT DISTINCT setting FROM episodes")["setting"])
        assert "exact" not in store.tables()
    root = predicted_run[0].parent
    run = root / "exact"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["predict", "--agents", str(root / "agents"), "--run-dir", str(run), "--n-levels", "6",
                     "--settings", "red_line-vs-yellow_gem", "--profile", "exact", "--no-attributions",
                     "--threads", "1", "--device", "cpu", "--quiet"])
    assert code == 0
    with ResultsStore(run) as store:  # solved, not played
        assert set(store.query("SELECT DISTINCT setting FROM exact")["setting"]) == own
        assert set(store.query("SELECT DISTINCT setting FROM episodes")["setting"]) == {"red_line-vs-yellow_gem"}
    prof = pd.read_csv(run / "analysis" / "predict_profile_exact.csv")
    assert set(prof["agent"]) == {0, 1, 2, 3} and prof[list(PROFILE_COLUMNS)].stack().between(0, 1).all()


def test_the_report_shows_predictions_and_the_agents_explained_worst(predicted_run):
    from gmg.experiments.report.page import build_report

    html = build_report(predicted_run[0], top=1, device="cpu").read_text()
    section = html.split('<section id="predictions">', 1)[1].split("</section>", 1)[0]
    assert "explains worst" in section and "predictions.png" in section and "tables/predictions.csv" in section


def _views(n_levels=3):
    from gmg.experiments.analysis.readout import probe_views

    return probe_views("yellow_line", "black", n_levels)


def test_a_good_move_shortens_the_maze_distance_to_the_object_and_every_cell_has_one():
    import torch

    from gmg.experiments.analysis.readout import good_moves
    from gmg.training.env import action_deltas
    from gmg.training.levels import distance_map

    moves = torch.unique(action_deltas(), dim=0)
    for view in _views()["E_red"]:
        good = good_moves(view)
        w = view["free"].shape[0]
        dist = distance_map(view["free"][None], view["objects"][:1])[0]
        assert good.any(1).all()  # the maze is connected: from every cell some move gets closer
        for k, cell in enumerate(view["cells"].tolist()):
            r, c = divmod(cell, w)
            for m in good[k].nonzero().flatten().tolist():
                rr, cc = r + int(moves[m, 0]), c + int(moves[m, 1])
                assert view["free"][rr, cc] and dist[rr, cc] == dist[r, c] - 1
        assert not good[:, (moves == 0).all(1)].any()  # standing still never gets closer


def test_the_network_readout_scores_an_oracle_at_one_and_a_uniform_policy_at_its_floor():
    import torch

    from gmg.experiments.analysis.readout import good_moves, heading, heading_of_random_policy, stacked
    from gmg.training.env import action_deltas

    views = _views()["E_green"]
    probe = stacked(views)
    moves, move_of_action = torch.unique(action_deltas(), dim=0, return_inverse=True)
    good = torch.cat([good_moves(v) for v in views])
    first_action = {m: move_of_action.tolist().index(m) for m in range(len(moves))}
    best = torch.tensor([first_action[int(g.nonzero()[0])] for g in good])

    class Fixed(torch.nn.Module):  # a policy given as logits per frame, in the order heading() stacks them
        def __init__(self, logits):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.logits = logits

        def forward(self, frames):
            return self.logits[: len(frames)], torch.zeros(len(frames), 1)

    oracle = torch.full((len(best), 15), -1e4).scatter_(1, best[:, None], 0.0)
    assert heading(Fixed(oracle), probe) == pytest.approx(1.0)
    uniform = torch.zeros(len(best), 15)
    assert heading(Fixed(uniform), probe) == pytest.approx(heading_of_random_policy(probe), abs=1e-6)
    assert heading_of_random_policy(probe) < 0.3

    # a policy that walks like the walk model's walker with pull b reads back as pull b
    from gmg.experiments.analysis.readout import pull_reading

    toward = probe[1]
    firsts = torch.tensor([first_action[m] for m in range(len(moves))])
    for b in (0.0, 0.7, 2.0):
        move_logits = torch.where(toward == 0, -1e4, b * toward.double()).float()
        walker = torch.full((len(toward), 15), -1e4).scatter_(1, firsts.expand(len(toward), -1), move_logits)
        heading_b, pull_b = pull_reading(Fixed(walker), probe)
        assert pull_b == pytest.approx(b, abs=1e-4) and heading_b == pytest.approx(heading(Fixed(walker), probe))



class _Linear(torch.nn.Module):
    """A policy whose every logit is a fixed multiple of the input's channels weighted by
    ``w``: integrated gradients of it are exact (w_k times the pixel), so each channel's share
    over the goal's pixels is known."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float32))

    def forward(self, frames):
        from gmg.interp.interventions import as_float_obs

        x = as_float_obs(frames)
        drive = (x * self.w[None, :, None, None]).sum((1, 2, 3))
        return drive[:, None] * torch.arange(1.0, 16.0)[None], torch.zeros(len(x), 1)


def test_goal_pixel_attributions_recover_the_channel_a_policy_reads_on_the_goal_only():
    from gmg.experiments.analysis.readout import goal_pixel_shares, goal_probe

    probe = goal_probe(_views(2)["E_goal"], max_frames=20)
    frames, _, masks = probe
    assert len(frames) == 20 and masks.any((1, 2)).all()
    assert goal_pixel_shares(_Linear([1.0, 0.0, 0.0]), probe) == pytest.approx([1.0, 0.0, 0.0])
    assert goal_pixel_shares(_Linear([0.0, 1.0, 0.0]), probe) == pytest.approx([0.0, 1.0, 0.0])
    # reading blue, which a yellow goal does not have, leaves nothing on the goal's pixels
    # (walls and floor do hold blue: they must not count)
    assert (frames[..., 2].float() * ~masks).sum() > 0
    assert np.isnan(goal_pixel_shares(_Linear([0.0, 0.0, 1.0]), probe)).all()
    # both channels: each frame's share is its goal pixels' red over red + 2 green (exact here)
    x = frames.float().permute(0, 3, 1, 2) / 255 * masks[:, None]
    r, g = x[:, 0].sum((1, 2)), 2 * x[:, 1].sum((1, 2))
    expected = float((r / (r + g)).mean())
    assert goal_pixel_shares(_Linear([1.0, 2.0, 0.0]), probe)[0] == pytest.approx(expected, abs=1e-4)


# ------------------------------------------------------------------ agents on procgen's levels
def _procgen_population(root, seeds=(0,)):
    """Tiny agents whose metadata says procgen's levels and frames, as an imported agent's does."""
    from conftest import make_agent_dir

    from gmg.experiments.population import population
    from gmg.training.checkpoint import read_meta, write_meta

    for seed in seeds:
        folder = make_agent_dir(root / "agents", seed)
        meta = read_meta(folder)
        meta["env"].update(levels="procgen", render="procgen")
        write_meta(folder, meta)
    agents = population(str(root))
    assert (agents.trained_on.levels, agents.trained_on.render) == ("procgen", "procgen")
    return agents


def _env_frames(setting, n_levels, **source):
    """uint8: the frames ``MazeEnv`` draws on its first ``n_levels`` evaluation levels of ``source``
    (levels=, render=) with the mouse on every free cell but the objects', facing left, level by level."""
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    config = EnvConfig(objects=setting.objects, background=setting.background, **source)
    env = MazeEnv(n_levels, config, EvaluationLevels(n=n_levels, levels=source.get("levels", "hashed")))
    out = []
    for level in range(n_levels):
        free = env.free[level].reshape(-1).clone()
        free[env.objects[level]] = False
        cells = free.nonzero().squeeze(1)
        rows = torch.full_like(cells, level)
        out.append(env.state_frames(rows, cells, torch.zeros(len(cells), dtype=torch.bool)))
    return torch.cat(out)


class _Recording(_Linear):
    """``_Linear`` that keeps every batch of frames (uint8) it is given."""

    def __init__(self):
        super().__init__([1.0, 1.0, 1.0])
        self.seen = []

    def forward(self, frames):
        if frames.dtype == torch.uint8:
            self.seen.append(frames.clone())
        return super().forward(frames)


def test_the_readout_of_a_procgen_population_reads_the_frames_the_env_draws_on_procgen_levels(tmp_path, monkeypatch):
    from gmg.experiments.analysis.readout import goal_attribution, readout_profile
    from gmg.experiments.population import AgentRef
    from gmg.experiments.settings import resolve_settings

    agents = _procgen_population(tmp_path)
    model = _Recording()
    monkeypatch.setattr(AgentRef, "load", lambda self, device="cpu": model)
    n = 2
    readout_profile(agents, n_levels=n)
    settings = resolve_settings(profile_settings("yellow_line"), "black")
    want = torch.cat([_env_frames(s, n, levels="procgen", render="procgen") for s in settings])
    assert torch.equal(torch.cat(model.seen), want)
    hashed = torch.cat([_env_frames(s, n) for s in settings])
    assert want.shape != hashed.shape or not torch.equal(want, hashed)  # the test tells the sources apart

    model.seen.clear()
    goal_attribution(agents, n_levels=n, max_frames=10_000)
    goal = resolve_settings(["train:yellow_line"], "black")[0]
    assert torch.equal(torch.cat(model.seen), _env_frames(goal, n, levels="procgen", render="procgen"))


def test_gmg_predict_walks_a_procgen_population_on_procgen_mazes(tmp_path):
    from gmg.experiments.analysis.predict import run_predict
    from gmg.experiments.analysis.profile_objects import PULL_COLUMNS

    agents = _procgen_population(tmp_path, seeds=(0, 1))
    setting = "red_line-vs-yellow_gem"
    out = run_predict(agents, tmp_path / "run", [setting], "cpu", n_levels=6, progress=False, profile_from="network",
                      readout_levels=1, attribution=False)
    pulls = out["profile"][["agent", *PULL_COLUMNS]]
    got = out["predictions"].set_index("agent")["walk"].sort_index()

    def walk(m):
        return predict_walk(pulls, [setting], "yellow_line", m).set_index("agent")["walk"].sort_index()

    assert got.to_numpy() == pytest.approx(walk(mazes(6, 2, levels="procgen")).to_numpy(), abs=1e-12)
    assert not np.allclose(got.to_numpy(), walk(mazes(6, 2)).to_numpy(), atol=1e-6)  # not the hashed mazes
