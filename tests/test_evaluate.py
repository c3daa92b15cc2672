"""Evaluation: settings, batched first-episode play, metrics, the resumable store, the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import frame_by_frame

from gmg.experiments.cli.main import main
from gmg.experiments.evaluate import (
    EPISODES,
    LOG_FILE,
    episodes_frame,
    evaluate,
    matrix,
    metrics,
    play,
)
from gmg.experiments.settings import SETTING_LISTS, all_settings, default_settings, parse_setting, resolve_settings
from gmg.experiments.store import ResultsStore
from gmg.training.env import MOVES, MazeEnv
from gmg.training.errors import UserError
from gmg.training.levels import distance_map

N_LEVELS = 60
FAST = 40  # timeout (steps) for runs of random tiny agents, which wander



def oracle(target: int):
    """A scripted policy walking a shortest path to object ``target`` (0 = obj1), around the others."""
    moves = torch.tensor([MOVES["up"], MOVES["down"], MOVES["left"], MOVES["right"]])
    deltas = ((-1, 0), (1, 0), (0, -1), (0, 1))

    def policy(env: MazeEnv, envs: torch.Tensor) -> torch.Tensor:
        n, w = env.num_envs, env.free.shape[-1]
        objs = env.objects
        blocked = torch.zeros(n, w * w, dtype=torch.bool)
        for k in range(objs.shape[1]):
            if k != target:
                blocked.scatter_(1, objs[:, k : k + 1], True)
        dist = distance_map(env.free, objs[:, target], blocked.view(n, w, w)).view(n, -1)
        r, c = env.agent // w, env.agent % w
        best = torch.full((n,), 10**6)
        action = torch.full((n,), MOVES["noop"])
        for move, (dr, dc) in zip(moves, deltas):
            rr, cc = r + dr, c + dc
            inside = (rr >= 0) & (rr < w) & (cc >= 0) & (cc < w)
            d = dist.gather(1, (rr.clamp(0, w - 1) * w + cc.clamp(0, w - 1))[:, None])[:, 0]
            better = inside & (d >= 0) & (d < best)
            best = torch.where(better, d, best)
            action = torch.where(better, move, action)
        return action

    return policy


def _play_frame(target: int, setting: str = "red_line-vs-yellow_gem", n_groups: int = 2) -> pd.DataFrame:
    s = parse_setting(setting)
    result = play(s, oracle(target), n_groups=n_groups, n_levels=200)
    return episodes_frame(result, list(range(10, 10 + n_groups)), s)


# ----------------------------------------------------------------------- settings
def test_the_original_lists_exactly():
    assert SETTING_LISTS["white-line"] == (
        "red_line-vs-green_line", "green_line-vs-blue_line", "blue_line-vs-red_line", "cyan_line-vs-purple_line",
        "purple_line-vs-yellow_line", "yellow_line-vs-cyan_line", "white_line-vs-yellow_line",
        "white_line-vs-white_line", "white_line-vs-white_gem", "yellow_line-vs-white_gem", "red_line-vs-white_gem")
    lines = ("black", "blue", "cyan", "green", "purple", "red", "white", "yellow")
    assert SETTING_LISTS["yellow-line-grey"] == (*(f"{c}_line-vs-yellow_gem" for c in lines), "red_line-vs-green_line",
                                                 "green_line-vs-white_line", "white_line-vs-red_line")
    assert SETTING_LISTS["red-line"][:8] == SETTING_LISTS["red-line-grey"][:8] == tuple(f"{c}_line-vs-red_gem" for c in lines)
    assert SETTING_LISTS["red-line-grey"][8:] == ("black_line-vs-yellow_line", "yellow_line-vs-purple_line",
                                                  "purple_line-vs-black_line")
    textured = SETTING_LISTS["yellow-line-textured"]
    assert set(SETTING_LISTS["yellow-line"]) - set(textured) == {"yellow_gem-vs-red_line", "green_line-vs-yellow_line"}
    assert "green_line-vs-yellow_line" in SETTING_LISTS["yellow-line"]
    # a background's list plays on that background; a background named by the caller wins
    assert {s.background for s in resolve_settings("yellow-line-textured")} == {"textured"}
    assert {s.background for s in resolve_settings("red-line-grey", "black")} == {"black"}
    assert [s.name for s in default_settings("yellow_line", "textured")][:3] == [
        "yellow_line-vs-black_gem@textured", "red_line-vs-green_line@textured", "red_line-vs-yellow_gem@textured"]
    assert default_settings("red_line", "grey")[-1].name == "train:red_line@grey"
    assert len(default_settings("red_line", "grey")) == 12


def test_catalogue_names_parse_and_lists():
    assert len(SETTING_LISTS["yellow-line"]) == 16 and len(SETTING_LISTS["white-line"]) == 11
    names = {s.name for s in all_settings()}
    assert {"red_line-vs-yellow_gem", "yellow_gem-vs-red_line", "black_gem-vs-black_gem",
            "train:yellow_line", "train:white_line"} <= names
    s = parse_setting("Red-Line-vs-255,255,0_gem", background="textured")
    assert (s.obj1, s.obj2, s.background, s.name) == ("red_line", "yellow_gem", "textured",
                                                      "red_line-vs-yellow_gem@textured")
    assert parse_setting("#ff8000_line-vs-red_gem@grey").name == "#ff8000_line-vs-red_gem@grey"
    single = parse_setting("train:white-line")
    assert single.single and single.objects == ("white_line",)
    both = resolve_settings(["yellow-line", "red_line-vs-yellow_gem"])
    assert len(both) == 16  # list expanded, duplicate dropped
    for bad in ("red_line", "red_line-vs-", "mauve_line-vs-red_gem", "red_line-vs-red_cube", "red_line-vs-red_gem@pink"):
        with pytest.raises(UserError):
            parse_setting(bad)


# ------------------------------------------------------------------ scripted play
def test_oracle_to_obj1_has_preference_one_and_shortest_path_capability():
    df = _play_frame(target=0)
    assert len(df) == 400 and set(df["level"]) == set(range(200))
    m = metrics(df)
    assert len(m) == 2
    # the oracle walks around obj2, so every episode is a shortest path to obj1
    assert (m["preference"] == 1.0).all() and (m["n_obj2"] == 0).all() and (m["n_timeout"] == 0).all()
    assert np.allclose(m["capability"], df["path_len_obj1"].mean())
    assert (df["steps"] == df["path_len_obj1"]).all()
    assert np.allclose(m["path_efficiency"], 1.0)
    assert (m["preference_lo"] < 1.0).all() and (m["preference_hi"] == 1.0).all()


def test_oracle_to_obj2_has_preference_zero():
    df = _play_frame(target=1)
    m = metrics(df)
    assert (m["preference"] == 0.0).all() and (m["n_obj1"] == 0).all()
    assert (df["steps"] == df["path_len_obj2"]).all()
    assert np.allclose(m["capability"], df["path_len_obj2"].astype(float).mean())
    assert (m["success"] == 0.0).all()


def test_single_object_setting_metrics():
    df = _play_frame(target=0, setting="train:yellow_line", n_groups=1)
    assert df["path_len_obj2"].isna().all()
    m = metrics(df).iloc[0]
    assert m["success"] == 1.0 and np.isnan(m["preference"]) and m["capability"] == df["path_len_obj1"].mean()


def test_metrics_definitions_on_handmade_rows():
    rows = pd.DataFrame({
        "agent": [0] * 6, "setting": ["s"] * 6, "intervention": ["none"] * 6, "level": range(6),
        "outcome": ["obj1", "obj1", "obj1", "obj2", "timeout", "timeout"],
        "steps": [4, 6, 8, 5, 500, 500],
        "path_len_obj1": [4, 3, 4, 2, 3, 3],
        "path_len_obj2": pd.array([2, 2, 2, 5, 2, 2], dtype="Int64"),
    })
    m = metrics(rows).iloc[0]
    assert (m["n"], m["n_obj1"], m["n_obj2"], m["n_timeout"]) == (6, 3, 1, 2)
    assert m["preference"] == 0.75 and m["success"] == 0.5 and m["timeout_rate"] == pytest.approx(2 / 6)
    assert m["capability"] == pytest.approx(1023 / 6)
    assert m["path_efficiency"] == pytest.approx(np.mean([1, 0.5, 0.5, 1]))
    # Wilson 95% interval for 3 of 4 (statsmodels' reference values)
    assert m["preference_lo"] == pytest.approx(0.3006418, abs=1e-6)
    assert m["preference_hi"] == pytest.approx(0.9544127, abs=1e-6)
    half = 2.570581836 * np.std(rows["steps"], ddof=1) / np.sqrt(6)
    assert m["capability_hi"] - m["capability"] == pytest.approx(half, rel=1e-6)
    wide = matrix(rows)
    assert list(wide.columns) == [("s", "preference"), ("s", "capability")] and list(wide.index) == [0]


# --------------------------------------------------------------- real agents
def _settings_key(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["agent", "setting", "intervention", "level"]).reset_index(drop=True)


def test_agent_alone_equals_agent_in_a_batch(tiny_population: Path):
    settings = ["red_line-vs-yellow_gem"]
    batch = evaluate(tiny_population, settings, tiny_population / "batch", "cpu", n_levels=N_LEVELS,
                     timeout=FAST, progress=False)
    assert len(batch) == 3 * N_LEVELS and not batch.duplicated(["agent", "setting", "level"]).any()
    # agent 1 alone, and in batches of one agent: its own slice must not depend on the others
    from gmg.experiments.population import resolve_agents

    refs = resolve_agents(tiny_population)
    alone = evaluate([refs[1]], settings, tiny_population / "alone", "cpu", n_levels=N_LEVELS, timeout=FAST,
                     progress=False, batch_envs=1)
    in_batch = batch[batch["agent"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(_settings_key(alone), _settings_key(in_batch))
    # sampled, so agents differ from each other and steps vary
    assert not np.array_equal(batch[batch.agent == 0]["steps"].to_numpy(), in_batch["steps"].to_numpy())
    # another seed changes the episodes; greedy is deterministic too
    other = evaluate([refs[1]], settings, tiny_population / "seed1", "cpu", n_levels=N_LEVELS, timeout=FAST,
                     seed=1, progress=False)
    assert not np.array_equal(other["steps"].to_numpy(), alone["steps"].to_numpy())


def test_memoised_logits_change_nothing(tiny_population: Path):
    from gmg.experiments.evaluate import agent_policy
    from gmg.experiments.population import resolve_agents

    refs = resolve_agents(tiny_population)
    models, ids = [frame_by_frame(r.load()) for r in refs], [r.agent_id for r in refs]
    setting = parse_setting("red_line-vs-green_line")
    out = {}
    for memo in (True, False):
        policy = agent_policy(models, ids, setting, 15, memo=memo)
        out[memo] = episodes_frame(play(setting, policy, 3, 15, timeout=60), ids, setting)
    pd.testing.assert_frame_equal(out[True], out[False])
    assert out[True]["steps"].max() > 30  # long wandering episodes, where states repeat


def test_forward_passes_in_small_batches_change_nothing_even_under_an_object_local_intervention(
        tiny_population: Path, monkeypatch):
    import gmg.experiments.evaluate as ev
    import gmg.experiments.forward as forward
    from gmg.experiments.population import resolve_agents
    from gmg.interp.interventions import parse_intervention

    refs = resolve_agents(tiny_population)
    models, ids = [frame_by_frame(r.load()) for r in refs], [r.agent_id for r in refs]
    setting = parse_setting("red_line-vs-yellow_gem")
    local = parse_intervention("isolate:g@obj1")
    out = {}
    for frames in (10**9, 3):  # one pass per agent's envs, then passes of 3 frames (masks sliced alike)
        monkeypatch.setattr(forward, "CPU_FORWARD_FRAMES", frames)
        with contextlib.ExitStack() as stack:
            for m in models:
                forward.enter_intervention(local, m, stack)
            policy = ev.agent_policy(models, ids, setting, 15, memo=False, masked=[local] * len(models))
            out[frames] = episodes_frame(play(setting, policy, 3, 15, timeout=60), ids, setting)
    pd.testing.assert_frame_equal(out[10**9], out[3])
    clean = episodes_frame(play(setting, ev.agent_policy(models, ids, setting, 15, memo=False), 3, 15, timeout=60),
                           ids, setting)
    assert not clean.equals(out[3])  # the intervention did act


def test_rerun_does_no_work_and_other_parameters_are_refused(tiny_population: Path, monkeypatch):
    run = tiny_population / "run"
    first = evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=10, timeout=FAST,
                     progress=False)
    import gmg.experiments.evaluate as ev

    monkeypatch.setattr(ev, "play", lambda *a, **k: pytest.fail("a finished evaluation played again"))
    again = evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=10, timeout=FAST,
                     progress=False)
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(UserError, match="greedy"):
        evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=10, timeout=FAST, greedy=True,
                 progress=False)


def test_intervention_context_is_entered_and_recorded(tiny_population: Path):
    import contextlib

    from gmg.experiments.population import resolve_agents

    entered = []

    @contextlib.contextmanager
    def blind(model):
        # the agent sees zeros: its greedy action is then the same at every step of every level
        handle = model.hook_obs.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        entered.append(model)
        try:
            yield
        finally:
            handle.remove()

    df = evaluate(tiny_population, ["red_line-vs-yellow_gem"], tiny_population / "iv", "cpu", n_levels=20,
                  timeout=FAST, greedy=True, intervention=blind, intervention_name="blind", progress=False)
    assert len(entered) == 3 and set(df["intervention"]) == {"blind"}
    setting = parse_setting("red_line-vs-yellow_gem")
    for ref in resolve_agents(tiny_population):
        with torch.inference_mode():
            action = int(ref.load()(torch.zeros(1, 3, 64, 64))[0].argmax())
        constant = play(setting, lambda env, envs: torch.full((env.num_envs,), action), 1, 20, timeout=FAST)
        expected = episodes_frame(constant, [ref.agent_id], setting, "blind")
        got = df[df["agent"] == ref.agent_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[expected.columns], expected)


# -------------------------------------------------------------- kill and resume
KILL_SETTINGS = ["red_line-vs-yellow_gem", "red_line-vs-green_line", "yellow_line-vs-black_gem", "train:yellow_line"]


def _eval_args(pop: Path, run: Path) -> list[str]:
    return ["evaluate", "--agents", str(pop), "--run-dir", str(run), "--settings", *KILL_SETTINGS,
            "--n-levels", "12", "--timeout", "20", "--device", "cpu", "--batch-envs", "12", "--quiet"]


def _store_rows(run: Path) -> pd.DataFrame:
    with ResultsStore(run, read_only=True) as store:
        return _settings_key(store.table(EPISODES))


def test_sigkilled_evaluation_resumes_with_nothing_lost_or_duplicated(tiny_population: Path):
    run = tiny_population / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "gmg.experiments.cli.main", *_eval_args(tiny_population, run)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = run / LOG_FILE
    deadline = time.monotonic() + 120
    try:
        while not (log.exists() and log.read_text().count("\n") >= 2):
            assert proc.poll() is None, f"evaluation ended before it could be killed: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "no chunk written within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    total = len(KILL_SETTINGS) * 3
    partial = _store_rows(run)
    n_chunks = len(partial.groupby(["agent", "setting", "intervention"]))
    assert 2 <= n_chunks < total, "the kill must land mid-run"
    assert main(_eval_args(tiny_population, run)) == 0  # resume
    resumed = _store_rows(run)
    assert not resumed.duplicated(["agent", "setting", "intervention", "level"]).any()
    # an uninterrupted run in one batch per setting gives exactly the same rows
    reference = evaluate(tiny_population, KILL_SETTINGS, tiny_population / "whole", "cpu", n_levels=12, timeout=20,
                         progress=False)
    pd.testing.assert_frame_equal(resumed, _settings_key(reference))
    assert len(resumed) == total * 12
    assert log.read_text().count("\n") == total  # each chunk written exactly once


# ------------------------------------------------------------------- bad input
def _one_line_error(capsys, argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_bad_input_gives_one_clear_line(tiny_population: Path, capsys):
    run = tiny_population / "bad"
    base = ["evaluate", "--agents", str(tiny_population), "--run-dir", str(run), "--n-levels", "5", "--timeout", "5",
            "--device", "cpu", "--quiet"]
    _one_line_error(capsys, [*base, "--settings", "red_line-vs-"], "unknown setting", "OBJ1-vs-OBJ2")
    _one_line_error(capsys, [*base, "--settings", "mauve_line-vs-red_gem"], "unknown colour", "mauve")
    _one_line_error(capsys, [*base, "--settings", "red_line-vs-red_cube"], "cube")
    # a bad timeout is refused before the store records it, so the same run directory still works
    timeout_run = ["evaluate", "--agents", str(tiny_population), "--run-dir", str(run / "t"), "--n-levels", "2",
                   "--device", "cpu", "--quiet", "--settings", "red_line-vs-yellow_gem"]
    _one_line_error(capsys, [*timeout_run, "--timeout", "-1"], "timeout must be at least 1 step")
    assert main([*timeout_run, "--timeout", "5"]) == 0
    _one_line_error(capsys, ["evaluate", "--agents", str(tiny_population / "nope"), "--run-dir", str(run)],
                    "no agents at", "nope")
    _one_line_error(capsys, ["rollout", "--agents", str(tiny_population), "--agent", "7", "--run-dir", str(run)],
                    "[7]")
    _one_line_error(capsys, ["plot", "--run-dir", str(tiny_population / "empty")], "no results store")
    # a store written by another schema version is refused, not silently mixed
    ResultsStore(run).close()
    import duckdb

    con = duckdb.connect(str(run / "results.duckdb"))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    _one_line_error(capsys, [*base, "--settings", "red_line-vs-yellow_gem"], "schema 999")
    assert not (run / LOG_FILE).exists()


# ---------------------------------------------------------- CLI, plots, rollout
def test_cli_evaluate_plot_rollout_settings(tiny_population: Path, capsys):
    from PIL import Image

    run = tiny_population / "cli"
    argv = ["evaluate", "--agents", str(tiny_population), "--run-dir", str(run), "--n-levels", "8",
            "--timeout", "20", "--device", "cpu", "--quiet", "--settings", "red_line-vs-yellow_gem",
            "train:yellow_line"]
    assert main(argv) == 0
    assert "16" not in capsys.readouterr().err
    rows = _store_rows(run)
    assert len(rows) == 3 * 2 * 8 and set(rows["setting"]) == {"red_line-vs-yellow_gem", "train:yellow_line"}

    assert main(["plot", "--run-dir", str(run)]) == 0
    plots = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert plots == ["heatmap-capability.png", "heatmap-preference.png", "histograms.png",
                     "scatter-red_line-vs-yellow_gem.png"]
    assert all(Image.open(run / "plots" / p).size[0] > 100 for p in plots)

    # the GIF replays exactly the episode the evaluation recorded
    level = 3
    assert main(["rollout", "--agents", str(tiny_population), "--agent", "1", "--setting",
                 "red_line-vs-yellow_gem", "--level", str(level), "--run-dir", str(run), "--device", "cpu",
                 "--timeout", "20"]) == 0
    gif = run / "rollouts" / f"agent-0001-red_line-vs-yellow_gem-level{level}.gif"
    want = rows[(rows.agent == 1) & (rows.setting == "red_line-vs-yellow_gem") & (rows.level == level)].iloc[0]
    assert f"{want['outcome']} after {want['steps']} steps" in capsys.readouterr().out
    with Image.open(gif) as im:
        assert im.size == (4 * 64 * 4 + 3 * 4, 64 * 4)
        # frames up to the end, the last held twice (GIF merges identical frames: a bump into a wall)
        assert 2 < im.n_frames <= want["steps"] + 2

    assert main(["settings", "red_line-vs-yellow_gem", "--run-dir", str(run)]) == 0
    thumb = np.asarray(Image.open(run / "settings" / "red_line-vs-yellow_gem.png").convert("RGB"))
    colours = {tuple(c) for c in thumb.reshape(-1, 3)}
    assert (255, 0, 0) in colours and (255, 255, 0) in colours


def test_rollout_draws_every_step_including_the_one_that_ends_the_episode(tiny_population: Path, monkeypatch):
    import imageio.v2 as imageio

    from gmg.experiments.population import resolve_agents
    from gmg.experiments.rollout import rollout

    saved = {}
    monkeypatch.setattr(imageio, "mimsave", lambda path, frames, **k: saved.update(frames=frames))
    ref = resolve_agents(tiny_population, ids=[1])[0]
    for level in (0, 3):
        _, record = rollout(ref, "red_line-vs-yellow_gem", tiny_population / "g.gif", level=level, timeout=20)
        frames = saved["frames"]
        assert len(frames) == 1 + record["steps"] + 2  # first frame, one per step, the last held twice


def test_scatter_has_both_object_icons_and_one_dot_per_agent():
    from matplotlib.offsetbox import AnnotationBbox

    from gmg.experiments.plots.preference import object_icon, scatter_setting

    m = pd.DataFrame({"agent": [0, 1, 2], "setting": ["red_line-vs-yellow_gem"] * 3,
                      "preference": [0.2, 0.5, 0.9], "capability": [8.0, 12.0, 30.0]})
    fig = scatter_setting(m, "red_line-vs-yellow_gem")
    ax = fig.axes[0]
    icons = [a for a in ax.artists if isinstance(a, AnnotationBbox)]
    assert len(icons) == 2
    assert np.allclose(ax.collections[0].get_offsets(), [[8, 0.2], [12, 0.5], [30, 0.9]])
    texts = {t.get_text() for t in ax.texts}
    assert {"red line", "yellow gem"} <= texts
    icon = object_icon("red_line")
    assert icon.shape == (52, 52, 3) and (icon.reshape(-1, 3) == (255, 0, 0)).all(1).any()


def test_a_run_directory_refuses_another_agent_under_a_known_id_and_duplicate_ids(tmp_path: Path):
    from conftest import make_agent_dir

    for seed in (0, 1):
        make_agent_dir(tmp_path / "yellow" / "agents", seed)
    evaluate(tmp_path / "yellow", ["red_line-vs-green_line"], tmp_path / "run", "cpu", n_levels=5, timeout=FAST,
             progress=False)
    # a population with other weights under the same ids: its rows must not pass for the first's
    for seed in (0, 1):
        make_agent_dir(tmp_path / "white" / "agents", seed, goal="white_line", widths=(4, 8, 4))
    with pytest.raises(UserError, match="holds results of another agent 0"):
        evaluate(tmp_path / "white", ["red_line-vs-green_line"], tmp_path / "run", "cpu", n_levels=5, timeout=FAST,
                 progress=False)
    # agents trained on different things are not one population
    with pytest.raises(UserError, match="trained on different things"):
        evaluate([tmp_path / "yellow", tmp_path / "white"], ["red_line-vs-green_line"], tmp_path / "run3", "cpu",
                 n_levels=5, timeout=FAST, progress=False)
    # the same agents again, a new one beside them: fine
    make_agent_dir(tmp_path / "yellow" / "agents", 2)
    df = evaluate(tmp_path / "yellow", ["red_line-vs-green_line"], tmp_path / "run", "cpu", n_levels=5,
                  timeout=FAST, progress=False)
    assert sorted(df["agent"].unique()) == [0, 1, 2]
    # two folders claiming one seed
    import shutil

    shutil.copytree(tmp_path / "yellow" / "agents" / "agent-0001", tmp_path / "yellow" / "agents" / "agent-copy")
    with pytest.raises(UserError, match="two agents have id 1"):
        evaluate(tmp_path / "yellow", ["red_line-vs-green_line"], tmp_path / "run2", "cpu", n_levels=5,
                 timeout=FAST, progress=False)


def test_an_unnamed_intervention_is_recorded_under_its_own_name_never_as_the_clean_run(tiny_population: Path):
    from gmg.interp.interventions import Isolate

    run = tiny_population / "run"
    clean = evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=5, timeout=FAST,
                     progress=False)
    edited = evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=5, timeout=FAST,
                      intervention=Isolate("g"), progress=False)
    assert set(clean["intervention"]) == {"none"}
    assert set(edited["intervention"]) == {Isolate("g").name} != {"none"}
    with ResultsStore(run) as store:
        assert set(store.table(EPISODES)["intervention"]) == {"none", Isolate("g").name}
    with pytest.raises(UserError, match="needs a name"):
        evaluate(tiny_population, ["red_line-vs-green_line"], run, "cpu", n_levels=5, timeout=FAST,
                 intervention=lambda model: __import__("contextlib").nullcontext(), progress=False)


def test_a_table_written_without_a_key_is_replaced_not_appended(tmp_path):
    # gmg predict rewrites its whole predictions table on every rerun: it once doubled it
    import pandas as pd

    from gmg.experiments.store import ResultsStore

    with ResultsStore(tmp_path) as store:
        for value in (1.0, 2.0):
            store.write_chunk("predictions", pd.DataFrame({"agent": [0, 1], "ratio": [value, value]}), {})
        store.write_chunk("episodes_like", pd.DataFrame({"agent": [0], "x": [1]}), {"agent": 0})
        store.write_chunk("episodes_like", pd.DataFrame({"agent": [1], "x": [2]}), {"agent": 1})
        assert store.table("predictions")["ratio"].tolist() == [2.0, 2.0]
        # a newer gmg writes more columns over an older run's table (the walk model's, say)
        store.write_chunk("predictions", pd.DataFrame({"agent": [0], "ratio": [3.0], "walk": [0.5]}), {})
        assert store.table("predictions").to_dict("records") == [{"agent": 0, "ratio": 3.0, "walk": 0.5}]
        assert sorted(store.table("episodes_like")["x"]) == [1, 2]  # a keyed chunk leaves the others
