"""The colour-shape maze: level generation, step semantics, rendering, gymnasium adapter,
pictures, benchmark and the user-facing errors. Expectations are written out here
independently (a BFS, procgen's action table) rather than taken from the code."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch

from gmg.training.env import EVAL_START, EnvConfig, EvaluationLevels, MazeEnv, TrainingLevels
from gmg.training.errors import UserError
from gmg.training.levels import LevelError, generate, start_cell
from gmg.training.objects import ObjectSpecError, parse_object
from gmg.training.render import RenderError, cell_bounds

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"  # crops of procgen's own frames
W = 5
# procgen's 15 actions as (d_row, d_col) in a maze: diagonals go sideways; 4 and 9-14 do nothing
PROCGEN_MOVES = {
    0: (0, -1), 1: (0, -1), 2: (0, -1),  # left+down, left, left+up
    3: (1, 0), 5: (-1, 0),               # down, up
    6: (0, 1), 7: (0, 1), 8: (0, 1),     # right+down, right, right+up
}
NOOPS = (4, 9, 10, 11, 12, 13, 14)


def bfs(free: np.ndarray, source: int, blocked: set[int] = frozenset()) -> dict[int, int]:
    """Steps from ``source`` to every reachable free cell of a (W, W) grid."""
    w = free.shape[0]
    dist, queue = {source: 0}, deque([source])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, w)
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            nxt = rr * w + cc
            if 0 <= rr < w and 0 <= cc < w and free[rr, cc] and nxt not in dist and nxt not in blocked:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def free_neighbours(free: np.ndarray, r: int, c: int) -> int:
    w = free.shape[0]
    return sum(
        1 for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
        if 0 <= r + dr < w and 0 <= c + dc < w and free[r + dr, c + dc]
    )



@pytest.fixture(scope="module")
def levels():
    return generate(torch.arange(300), W, 2)


# ------------------------------------------------------------------ generation
def test_level_is_the_same_alone_and_in_any_batch(levels):
    for i in (0, 7, 123, 299):
        alone = generate(torch.tensor([i]), W, 2)
        assert torch.equal(alone.free[0], levels.free[i])
        assert torch.equal(alone.objects[0], levels.objects[i])
        assert torch.equal(alone.path_len[0], levels.path_len[i])
        assert alone.background[0] == levels.background[i] and alone.bg_offset[0] == levels.bg_offset[i]
    # obj1 does not depend on how many objects the level holds
    assert torch.equal(generate(torch.arange(300), W, 1).objects[:, 0], levels.objects[:, 0])
    # and levels differ from each other (a 5x5 maze has only a few wall layouts)
    assert len({levels.free[i].numpy().tobytes() for i in range(300)}) > 5
    assert len({(levels.free[i].numpy().tobytes(), tuple(levels.objects[i].tolist())) for i in range(300)}) > 150


def test_env_trajectory_is_independent_of_batch_size():
    gen = torch.Generator().manual_seed(0)
    actions0 = torch.randint(0, 15, (500,), generator=gen)
    runs = []
    for n in (3, 7):
        env = MazeEnv(n, EnvConfig(), TrainingLevels(1000, seed=5))
        frames, cells = [env.observe()[0]], []
        for t in range(500):
            acts = torch.randint(0, 15, (n,), generator=gen)
            acts[0] = actions0[t]
            obs, reward, term, trunc, info = env.step(acts)
            cells.append(int(info["agent"][0]))
            if info["done"][0]:
                end = (int(info["level"][0]), float(reward[0]), bool(term[0]), int(info["length"][0]))
                break
            frames.append(obs[0])
        runs.append((torch.stack(frames), cells, end))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]


def test_no_dead_ends_and_every_free_cell_reachable():
    for w, n in ((3, 50), (5, 300), (7, 100), (11, 20)):
        lv = generate(torch.arange(n), w, 1)
        for free in lv.free.numpy():
            cells = {r * w + c for r in range(w) for c in range(w) if free[r, c]}
            assert set(bfs(free, start_cell(w))) == cells
            for cell in cells:
                assert free_neighbours(free, *divmod(cell, w)) >= 2, f"dead end at {divmod(cell, w)}"


def test_objects_on_distinct_free_cells_never_the_start(levels):
    start = start_cell(W)
    for free, objs in zip(levels.free.numpy(), levels.objects.numpy()):
        assert len(set(objs)) == len(objs)
        assert start not in objs
        assert all(free.reshape(-1)[o] for o in objs)
    # objects land on many different cells across levels
    assert len(set(levels.objects[:, 0].tolist())) > 8


def test_shortest_path_lengths_match_bfs(levels):
    start = start_cell(W)
    for free, objs, path in zip(levels.free.numpy(), levels.objects.tolist(), levels.path_len.tolist()):
        for k, obj in enumerate(objs):
            others = set(objs) - {obj}
            d = bfs(free, start, others).get(obj, bfs(free, start)[obj])
            assert path[k] == d
    # one object: the plain shortest path
    lv = generate(torch.arange(50), W, 1)
    for free, objs, path in zip(lv.free.numpy(), lv.objects.tolist(), lv.path_len.tolist()):
        assert path[0] == bfs(free, start)[objs[0]]


# ------------------------------------------------------------------ stepping
def _moves_from_random_states(n=300, seed=0):
    """Place the agent on random free cells of n levels and try every action."""
    env = MazeEnv(n, EnvConfig(timeout=10_000), EvaluationLevels(torch.arange(n)))
    rows, free = env.row.clone(), env.free.numpy()
    rng = np.random.default_rng(seed)
    starts = np.array([rng.choice(np.flatnonzero(f.reshape(-1))) for f in free])
    out = {}
    for a in range(15):
        env.reset(rows)  # reaching an object moved some envs on to another level
        env.agent = torch.as_tensor(starts)
        _, _, _, _, info = env.step(torch.full((n,), a))
        out[a] = info["agent"].numpy()
    return free, starts, out


@pytest.fixture(scope="module")
def moves():
    return _moves_from_random_states()


def _expected(free, cell, action):
    w = free.shape[0]
    if action not in PROCGEN_MOVES:
        return cell
    r, c = divmod(int(cell), w)
    dr, dc = PROCGEN_MOVES[action]
    rr, cc = r + dr, c + dc
    if not (0 <= rr < w and 0 <= cc < w) or not free[rr, cc]:
        return cell
    return rr * w + cc


def test_walls_and_world_edge_block_moves(moves):
    free, starts, out = moves
    blocked_wall = blocked_edge = moved = 0
    for a in PROCGEN_MOVES:
        for f, s, got in zip(free, starts, out[a]):
            r, c = divmod(int(s), W)
            dr, dc = PROCGEN_MOVES[a]
            inside = 0 <= r + dr < W and 0 <= c + dc < W
            assert got == _expected(f, s, a), (a, divmod(int(s), W))
            blocked_edge += not inside
            blocked_wall += inside and not f[r + dr, c + dc]
            moved += got != s
    assert blocked_wall > 50 and blocked_edge > 50 and moved > 500


def test_diagonal_actions_move_horizontally(moves):
    free, starts, out = moves
    checked = 0
    for a, dc in ((0, -1), (2, -1), (6, 1), (8, 1)):
        for f, s, got in zip(free, starts, out[a]):
            r, c = divmod(int(s), W)
            if 0 <= c + dc < W and f[r, c + dc]:
                assert got == s + dc
                checked += 1
            else:  # never falls back to the vertical component
                assert got == s
    assert checked > 100


def test_noop_actions_do_not_move(moves):
    free, starts, out = moves
    for a in NOOPS:
        assert np.array_equal(out[a], starts), a


def test_timeout_small():
    env = MazeEnv(4, EnvConfig(timeout=5), EvaluationLevels(torch.arange(8)))
    first = env.level_ids.clone()
    for t in range(1, 6):
        obs, reward, term, trunc, info = env.step(torch.full((4,), 4))
        assert not term.any()
        assert bool(trunc.all()) == (t == 5)
        assert (reward == 0).all()
    assert (info["length"] == 5).all() and (info["reached"] == 0).all()
    assert torch.equal(info["level"], first)
    assert torch.equal(info["level_now"], torch.arange(4, 8))  # evaluation list, in order
    assert (env.steps == 0).all()


def test_timeout_is_500_steps():
    env = MazeEnv(2, EnvConfig(), EvaluationLevels(torch.arange(2)))
    for t in range(1, 501):
        _, _, term, trunc, info = env.step(torch.full((2,), 4))
        assert not term.any()
        assert bool(trunc.all()) == (t == 500), t
    assert (info["length"] == 500).all()


def test_two_objects_terminate_with_plus_and_minus_ten():
    n = 60
    env = MazeEnv(n, EnvConfig(objects=("red_line", "yellow_gem")), EvaluationLevels(n=n))
    rows, free, objs = env.row.clone(), env.free.numpy(), env.objects.numpy()
    toward = {(0, 1): 7, (0, -1): 1, (1, 0): 3, (-1, 0): 5}  # object - agent -> action
    for k, (want_reward, want_reached) in enumerate(((10.0, 1), (-10.0, 2))):
        agents, actions = [], []
        for f, o in zip(free, objs):
            r, c = divmod(int(o[k]), W)
            for (dr, dc), a in toward.items():
                rr, cc = r - dr, c - dc
                if 0 <= rr < W and 0 <= cc < W and f[rr, cc] and rr * W + cc not in o:
                    agents.append(rr * W + cc)
                    actions.append(a)
                    break
        assert len(agents) == n
        env.reset(rows)
        env.agent = torch.tensor(agents)
        _, reward, term, trunc, info = env.step(torch.tensor(actions))
        assert (reward == want_reward).all() and term.all() and not trunc.any()
        assert (info["reached"] == want_reached).all() and (info["length"] == 1).all()
        assert (env.agent == start_cell(W)).all()  # reset in the same step
    # a plain move ends nothing
    env.reset(rows)
    _, reward, term, trunc, _ = env.step(torch.full((n,), 4))
    assert (reward == 0).all() and not term.any()


# ------------------------------------------------------------------ rendering
@pytest.mark.parametrize("name, ref", [
    ("red_line", "red_line_diag"), ("yellow_line", "yellow_line_diag"),
    ("yellow_gem", "yellow_gem"), ("white_gem", "white_gem"),
])
def test_reference_crops_equal_pixel_for_pixel(name, ref):
    from PIL import Image

    from gmg.experiments.plots.levels import level_frames

    want = np.asarray(Image.open(REFERENCE / f"object-{ref}-black-bg.png").convert("RGBA"))[..., :3]
    b = cell_bounds(W, 64)
    lv = generate(torch.arange(200), W, 1)
    thirteen = [i for i in range(W) if b[i + 1] - b[i] == 13]
    ids = [i for i, o in enumerate(lv.objects[:, 0].tolist()) if o // W in thirteen and o % W in thirteen]
    assert len(ids) >= 5
    frames = level_frames(ids[:20], (name,), "black", render="box")  # procgen's: tests/test_procgen_render.py
    for frame, i in zip(frames, ids[:20]):
        r, c = divmod(int(lv.objects[i, 0]), W)
        crop = frame[b[r] : b[r + 1], b[c] : b[c + 1]]
        assert np.array_equal(crop, want), (name, i, r, c)


def test_channel_split_is_exact():
    from gmg.experiments.plots.levels import channel_images, channel_split, level_frames

    frame = level_frames([3], ("red_line", "yellow_gem"), "textured")[0]
    tint = channel_images(frame, "tint")
    grey = channel_images(frame, "grey")
    assert np.array_equal(tint.sum(0, dtype=np.int64), frame)
    for c in range(3):
        assert np.array_equal(tint[c, ..., c], frame[..., c])
        assert not np.delete(tint[c], c, axis=-1).any()
        for k in range(3):
            assert np.array_equal(grey[c, ..., k], frame[..., c])
    sheet = channel_split(frame, "grey", scale=2, gap=4)
    # panel 2 (the G channel) of row 0 starts after two panels and three gaps
    x = 4 + 2 * (128 + 4)
    assert np.array_equal(sheet[4 : 4 + 128, x : x + 128], grey[1].repeat(2, 0).repeat(2, 1))
    with pytest.raises(UserError, match="channel mode"):
        channel_images(frame, "red")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad, exc, match", [
    ("pink_line", ObjectSpecError, "unknown colour 'pink'"),
    ("yellow_star", ObjectSpecError, "star"),
])
def test_unknown_colour_or_shape(bad, exc, match):
    with pytest.raises(exc, match=match):
        parse_object(bad)
    with pytest.raises(exc):
        MazeEnv(1, EnvConfig(objects=(bad,)), EvaluationLevels(n=1))


@pytest.mark.parametrize("world_dim", [4, 1, 27, 0, 5.0])
def test_bad_world_dim(world_dim):
    with pytest.raises(LevelError, match="odd integer from 3 to 25"):
        generate(torch.arange(2), world_dim, 1)
    with pytest.raises(LevelError):
        MazeEnv(1, EnvConfig(world_dim=world_dim), EvaluationLevels(n=1))


def test_more_objects_than_free_cells():
    with pytest.raises(LevelError, match="do not fit"):
        generate(torch.arange(10), 3, 7)


def test_unknown_background():
    with pytest.raises(RenderError, match="unknown background"):
        MazeEnv(1, EnvConfig(background="pink"), EvaluationLevels(n=1))


def test_procgen_missing(monkeypatch):
    from gmg.training import assets

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "procgen" else real(name, *a))
    assets.asset_dir.cache_clear()
    try:
        with pytest.raises(assets.AssetsNotFound, match="procgen is not installed; install"):
            assets.asset_dir()
        with pytest.raises(assets.AssetsNotFound):
            MazeEnv(1, EnvConfig(), EvaluationLevels(n=1))
    finally:
        assets.asset_dir.cache_clear()


@pytest.mark.parametrize("argv, match", [
    (["render", "--objects", "pink_line"], "unknown colour"),
    (["render", "--world-dim", "4"], "odd integer"),
    (["render", "--objects", "red_line,yellow_line,white_gem,black_gem,red_gem,blue_gem,green_gem",
      "--world-dim", "3"], "do not fit"),
    (["render", "--objects", ","], "at least one object"),
    (["render", "--size", "4"], "use a size of at least 5"),
    (["render", "--scale", "0"], "scale must be"),
    (["render", "--levels", "15-0"], "ends before it starts: write 0-15"),
    (["rollout", "--agent", "0", "--timeout", "-1", "--out", "{tmp}/r.gif", "--device", "cpu"], "timeout must be at least 1"),
    (["bench", "env", "--num-envs", "0", "--steps", "1", "--no-procgen", "--device", "cpu",
      "--out", "{tmp}/b.json"], "num_envs must be at least 1"),
    (["bench", "env", "--num-envs", "2", "--steps", "1", "--no-procgen", "--device", "cpu", "--threads", "1",
      "--num-levels", "50",
      "--out", "{tmp}/b.json"], None),
])
def test_cli_errors_are_one_line(argv, match, tmp_path, capsys):
    from gmg.experiments.cli.main import main

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "render":
        argv += ["--out", str(tmp_path), "--device", "cpu"]
    code = main(argv)
    err = capsys.readouterr().err
    if match is None:
        assert code == 0 and err == ""
    else:
        assert code == 2 and match in err and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------------ gymnasium
def test_gymnasium_checker_passes(monkeypatch):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from gmg.training.gym_env import ENV_ID, TEST_ENV_ID, register_envs

    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert register_envs() == (ENV_ID, TEST_ENV_ID)
    register_envs()  # idempotent
    env = gym.make(ENV_ID, render_mode="rgb_array", levels=TrainingLevels(500))
    check_env(env.unwrapped)
    frame = env.unwrapped.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert env.unwrapped.frame(512).shape == (512, 512, 3)
    obs, info = gym.make(TEST_ENV_ID).reset(seed=0)
    assert obs.shape == (64, 64, 3) and info["level"] == EVAL_START and info["path_len"].shape == (2,)


def test_single_env_episode_shows_its_last_frame_then_moves_on():
    from gmg.training.gym_env import MazeGymEnv

    env = MazeGymEnv(levels=EvaluationLevels(torch.arange(10)), timeout=3)
    first, info = env.reset(seed=1)
    assert info["level"] == 0
    for t in range(3):
        obs, reward, term, trunc, info = env.step(4)
        assert np.array_equal(obs, first)  # no-ops: the same frame, including the last one
    assert trunc and not term and reward == 0.0 and info["length"] == 3 and info["reached"] == 0
    assert env.reset()[1]["level"] == 1
    assert env.reset(seed=1)[1]["level"] == 0
    big = env.frame(512)
    # the large view is the same scene: downsampled by block means it is close to the agent's view
    small = big.reshape(64, 8, 64, 8, 3).mean((1, 3))
    assert np.abs(small - first.astype(float)).mean() < 12


def test_vector_env_spaces_infos_and_final_obs():
    from gymnasium.vector import AutoresetMode

    from gmg.training.gym_env import MazeVectorEnv

    n = 5
    env = MazeVectorEnv(n, levels=EvaluationLevels(torch.arange(20)), timeout=3, render_mode="rgb_array")
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_observation_space.shape == (64, 64, 3) and env.single_observation_space.dtype == np.uint8
    assert env.single_action_space.n == 15
    assert env.observation_space.shape == (n, 64, 64, 3) and tuple(env.action_space.nvec) == (15,) * n
    first, infos = env.reset(seed=0)
    assert first.shape == (n, 64, 64, 3) and infos["level_now"].tolist() == list(range(n))
    for t in range(3):
        obs, rew, term, trunc, infos = env.step(np.full(n, 4))
    assert isinstance(obs, np.ndarray) and rew.dtype == np.float32 and trunc.all()
    assert infos["_length"].all() and (infos["length"] == 3).all() and infos["path_len"].shape == (n, 1)
    assert np.array_equal(infos["final_obs"], first)  # nothing moved: last frames = first frames
    assert infos["level_now"].tolist() == list(range(n, 2 * n))
    final = infos["final_info"]  # gymnasium's same-step layout, as SyncVectorEnv writes it
    assert infos["_final_info"].all() and (final["length"] == 3).all() and final["_reached"].all()
    assert not np.array_equal(obs, first)
    assert len(env.render()) == n and np.array_equal(env.render()[0], obs[0])
    _, _, _, _, infos = env.step(np.full(n, 4))  # one step into fresh episodes: none ends
    assert not infos["_length"].any() and "final_info" not in infos and "final_obs" not in infos
    for bad in (np.full(n, 15), np.full(n, -1), np.zeros(n + 1, int)):
        with pytest.raises(ValueError, match="actions must be 5 ints in 0-14"):
            env.step(bad)
    # a later reset goes on to the sampler's next levels; a seeded one starts again
    counter = int(env.env.counter)
    assert env.reset()[1]["level_now"].tolist() == [(counter + i) % 20 for i in range(n)]
    assert env.reset(seed=0)[1]["level_now"].tolist() == list(range(n))


# ------------------------------------------------------------------ pictures and bench
def test_render_pictures_writes_the_agent_view(tmp_path):
    from PIL import Image

    from gmg.experiments.plots.levels import level_frames, render_pictures

    paths = render_pictures(tmp_path, ("red_line", "yellow_gem"), "grey", n_levels=6, first_level=10, scale=3)
    assert set(paths) == {"view", "channels", "grid"} and all(p.is_file() for p in paths.values())
    view = np.asarray(Image.open(paths["view"]))
    frame = level_frames([10], ("red_line", "yellow_gem"), "grey")[0]
    assert np.array_equal(view, frame.repeat(3, 0).repeat(3, 1))
    assert Image.open(paths["channels"]).size == (4 * 192 + 5 * 4, 4 * 192 + 5 * 4)
    assert Image.open(paths["grid"]).size[0] == 3 * 64 + 4 * 2  # ceil(sqrt(6)) columns, scale 3 // 2


def test_bench_env_side_by_side(tmp_path, monkeypatch):
    from gmg.experiments.bench.run import BENCHES, run_bench
    from gmg.experiments.cli.tables import format_table

    assert "env" in BENCHES
    result = run_bench("env", tmp_path / "env.json", device="cpu", num_envs=3, steps=2, threads=1, num_levels=50)
    ours = result["rows"][0]
    assert ours["num_envs"] == 3 and ours["steps_per_s"] > 0 and ours["obs_shape"] == [64, 64, 3]
    names = [row["env"] for row in json.loads((tmp_path / "env.json").read_text())["rows"]]
    assert names[:2] == ["gmg MazeEnv (procgen render)", "gmg MazeEnv (box render)"]  # both renderers
    if "error" not in result["rows"][2]:
        assert result["rows"][2]["steps_per_s"] > 0 and result["ratio"] > 0
    # procgen's runtime unimportable: the row says so and ours is still measured
    monkeypatch.setitem(sys.modules, "procgen", None)
    result = run_bench("env", None, device="cpu", num_envs=2, steps=1, threads=1, num_levels=50)
    assert "cannot be imported" in result["rows"][2]["error"] and result["rows"][0]["steps_per_s"] > 0
    assert "cannot be imported" in format_table(result)
    with pytest.raises(UserError, match="unknown benchmark"):
        run_bench("nope")


def test_the_accelerator_reset_path_draws_the_same_frames_on_cpu():
    """The sync-free reset of a GPU (redraw all, select) run on the CPU against the CPU path."""
    cfg = EnvConfig(objects=("red_line", "yellow_gem"), background="textured", timeout=12)
    a, b = MazeEnv(32, cfg, TrainingLevels(500, 3)), MazeEnv(32, cfg, TrainingLevels(500, 3))
    b.redraw_all = True
    acts = torch.randint(0, 15, (60, 32), generator=torch.Generator().manual_seed(0))
    resets = 0
    for t in range(60):
        oa, ra, ta, ua, ia = a.step(acts[t])
        ob, rb, tb, ub, ib = b.step(acts[t])
        resets += int(ia["done"].sum())
        assert torch.equal(oa, ob) and torch.equal(ra, rb) and torch.equal(ia["level_now"], ib["level_now"])
    assert resets > 32  # timeouts and goals made many resets


@pytest.mark.parametrize("render", ["box", "procgen"])
def test_a_lazy_env_draws_the_eager_frames_of_the_envs_asked_and_keeps_finished_episodes(render):
    """Evaluation's lazy env: the frames of any subset of envs, drawn on demand, equal the eager
    env's pixel for pixel (textured backgrounds, both renderers), and a finished env keeps its
    last state (its frame is the one an eager env shows before resetting) until dropped."""
    if render == "procgen":
        pytest.importorskip("procgen")
    cfg = EnvConfig(objects=("red_line", "yellow_gem"), background="textured", timeout=30, render=render)
    n = 24
    eager = MazeEnv(n, cfg, EvaluationLevels(n=8))
    lazy = MazeEnv(n, cfg, EvaluationLevels(n=8), lazy=True)
    rows = torch.arange(n) % 8
    obs = eager.reset(rows)
    assert lazy.reset(rows) is None
    assert torch.equal(lazy.observe(), obs)
    acts = torch.randint(0, 15, (30, n), generator=torch.Generator().manual_seed(1))
    ended = 0
    for t in range(30):
        some = torch.arange(lazy.num_envs) % 3 == t % 3
        assert torch.equal(lazy.observe(some), obs[some])
        before = eager.static.clone()
        obs, r, term, trunc, info = eager.step(acts[t][: eager.num_envs])
        lz, rl, terml, truncl, infol = lazy.step(acts[t][: lazy.num_envs])
        assert lz is None and torch.equal(rl, r) and torch.equal(infol["reached"], info["reached"])
        done = info["done"]
        # an eager env shows its next level by now; the lazy one still stands where it ended
        last = eager.renderer.with_agent(before, info["agent"], info["mirrored"])
        assert torch.equal(lazy.observe()[done], last[done])
        ended += int(done.sum())
        if bool(done.any()):
            eager.keep(~done)
            lazy.keep(~done)
            obs = obs[~done]
            if lazy.num_envs == 0:
                break
    assert ended > 0
    # objects moved after frames were drawn: the kept levels are drawn again, not reused
    eager, lazy = MazeEnv(2, cfg, EvaluationLevels(n=8)), MazeEnv(2, cfg, EvaluationLevels(n=8), lazy=True)
    for e in (eager, lazy):
        e.reset(torch.tensor([7, 3]))
    lazy.observe()
    free = eager.bank.free[3].reshape(-1).nonzero().squeeze(1)
    cells = free[free != start_cell(W)][-2:]
    for e in (eager, lazy):
        e.place_objects(cells)
    assert torch.equal(lazy.observe(), eager.observe())
    with pytest.raises(UserError, match="EvaluationLevels"):
        MazeEnv(2, cfg, TrainingLevels(10, 0), lazy=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_levels_and_frames_on_gpu():
    ids = torch.arange(200)
    cpu, gpu = generate(ids, W, 2), generate(ids.cuda(), W, 2)
    for f in ("free", "objects", "path_len", "background", "bg_offset"):
        assert torch.equal(getattr(cpu, f), getattr(gpu, f).cpu()), f
    cfg = EnvConfig(objects=("red_line", "yellow_gem"), background="textured")
    a, b = MazeEnv(64, cfg, EvaluationLevels(n=64)), MazeEnv(64, cfg, EvaluationLevels(n=64), "cuda")
    acts = torch.randint(0, 15, (50, 64))
    for t in range(50):
        oa, ra, *_ = a.step(acts[t])
        ob, rb, *_ = b.step(acts[t].cuda())
        assert torch.equal(oa, ob.cpu()) and torch.equal(ra, rb.cpu())
