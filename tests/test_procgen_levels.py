"""The original's levels by id (gmg.training.procgen_levels).

The parts procgen's standard ``maze`` shares with the original's fork (RandGen, the draw
order, Kruskal, placement) are checked grid for grid against procgen's own runtime, read
through ``get_state()`` with ``tests/procgen_state.py`` (written from the C++ ``serialize`` methods).
The fork-only parts (5x5 world, no dead ends, two objects) are checked for their invariants.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from procgen_state import decode

from gmg.training.errors import UserError
from gmg.training.levels import LevelError, distance_map, start_cell
from gmg.training.procgen_levels import (
    SPACE,
    WALL,
    MazeGen,
    RandGen,
    fork_level,
    generate_procgen,
    maze_level,
)

N_SEEDS = 1000
CHASER_WALL = 5  # chaser's MAZE_WALL


def mt_state(text: str) -> tuple[list[int], int]:
    """libstdc++'s text form of a std::mt19937: 624 words, then the position."""
    words = [int(v) for v in text.split()]
    assert len(words) == 625
    return words[:624], words[624]


@pytest.fixture(scope="module")
def procgen_states():
    procgen = pytest.importorskip("procgen")
    t0 = time.perf_counter()
    states = []
    for seed in range(N_SEEDS):
        env = procgen.ProcgenGym3Env(num=1, env_name="maze", distribution_mode="easy",
                                     start_level=seed, num_levels=1)
        states.append(decode(env.get_state()[0]))
    print(f"{N_SEEDS} procgen maze states in {time.perf_counter() - t0:.1f} s")
    return states


def test_randgen_is_std_mt19937():
    # the C++ standard fixes std::mt19937's 10000th output for the default seed 5489
    rng = RandGen(5489)
    for _ in range(9999):
        rng.next32()
    assert rng.next32() == 4123659995 and rng.draws == 10000
    r = RandGen(7)
    assert 0 <= r.rand01() < 1 and r.randint(10, 13) in (10, 11, 12) and r.randn(9) in range(9)


def test_maze_levels_match_procgen_grid_for_grid(procgen_states):
    t0 = time.perf_counter()
    sizes = set()
    for seed, st in enumerate(procgen_states):
        ours = maze_level(seed, st["world_dim"])
        assert st["current_level_seed"] == seed and st["main_width"] == st["main_height"] == 15
        np.testing.assert_array_equal(ours.grid, st["grid"], err_msg=f"seed {seed}")
        assert ours.maze_dim == st["maze_dim"], seed
        assert ours.background_index == st["background_index"], seed
        assert ours.bg_pct_x == st["bg_pct_x"], seed  # both float32
        (mouse,) = st["entities"]
        x, y = mouse["x"], mouse["y"]
        assert ours.agent == (int(x), int(y)), seed
        assert st["grid"][ours.objects[0][1], ours.objects[0][0]] == 2
        sizes.add(ours.maze_dim)
    assert sizes == {3, 5, 7, 9, 11, 13, 15}  # every maze size was exercised
    print(f"{N_SEEDS} levels generated and compared in {time.perf_counter() - t0:.1f} s")


def test_maze_levels_use_as_many_draws_as_procgen(procgen_states):
    # procgen's generator after the reset is where ours is after the same number of draws:
    # no draw is missing or extra (checked on every 10th seed)
    for seed in range(0, N_SEEDS, 10):
        words, pos = mt_state(procgen_states[seed]["rand_gen"][1].decode())
        bits = np.random.MT19937()
        bits._legacy_seeding(seed)
        bits.random_raw(maze_level(seed).draws)
        state = bits.state["state"]
        assert (state["key"].tolist(), state["pos"]) == (words, pos), seed


def test_hard_mode_levels_match_procgen():
    procgen = pytest.importorskip("procgen")
    for seed in (0, 1, 2, 100_000, 2**31 - 1):
        env = procgen.ProcgenGym3Env(num=1, env_name="maze", distribution_mode="hard",
                                     start_level=seed, num_levels=1)
        st = decode(env.get_state()[0])
        assert st["world_dim"] == 25
        np.testing.assert_array_equal(maze_level(seed, 25).grid, st["grid"], err_msg=f"seed {seed}")


def test_no_dead_ends_pass_matches_procgen_chaser():
    # procgen's chaser builds its maze with the same generate_maze_no_dead_ends, after the
    # base draws (two, plus two for a random agent start): its walls check the fork's pass
    procgen = pytest.importorskip("procgen")
    opened = 0
    for seed in range(200):
        env = procgen.ProcgenGym3Env(num=1, env_name="chaser", distribution_mode="easy",
                                     start_level=seed, num_levels=1)
        st = decode(env.get_state()[0], "chaser")
        rng = RandGen(seed)
        for _ in range(2 + 2 * st["random_agent_start"]):
            rng.next32()
        m = st["maze_dim"]
        gen = MazeGen(rng, m)
        gen.kruskal()
        before = np.array(gen.grid).reshape(m + 2, m + 2)[1:-1, 1:-1] == WALL
        gen.open_dead_ends()
        ours = np.array(gen.grid).reshape(m + 2, m + 2)[1:-1, 1:-1] == WALL
        np.testing.assert_array_equal(ours, st["grid"] == CHASER_WALL, err_msg=f"seed {seed}")
        opened += int((before & ~ours).sum())
    assert opened > 200  # the pass did open walls


def _dead_ends(free: np.ndarray) -> int:
    w = free.shape[0]
    count = 0
    for r in range(w):
        for c in range(w):
            nb = sum(free[r + dr, c + dc] for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                     if 0 <= r + dr < w and 0 <= c + dc < w)
            count += bool(free[r, c]) and nb == 1
    return count


@pytest.mark.parametrize("world_dim", [5, 7])
def test_fork_levels_have_no_dead_ends_and_objects_on_kruskal_cells(world_dim):
    ids = torch.arange(100_000, 100_300)
    two = generate_procgen(ids, world_dim, 2)
    w = world_dim
    start = start_cell(w)
    for k, level_id in enumerate(ids.tolist()):
        free = two.free[k].numpy()
        assert _dead_ends(free) == 0, level_id
        assert free[-1, 0] and free[::2, ::2].all() and not free[1::2, 1::2].any()
        a, b = two.objects[k].tolist()
        assert a != b and start not in (a, b) and free.flat[a] and free.flat[b]
        # objects sit on cells Kruskal freed: the rooms or the walls that join two rooms of
        # the same row/column; the scan can only add openings next to a dead-end room
        for cell in (a, b):
            r, c = divmod(cell, w)
            assert (r % 2 == 0) or (c % 2 == 0)
    # the start reaches both objects (the maze is connected)
    d = distance_map(two.free, torch.full((len(ids),), start))
    reach = d.view(len(ids), -1).gather(1, two.objects)
    assert (reach > 0).all() and (two.path_len > 0).all()
    assert two.background.min() >= 0 and two.background.max() <= 8 and len(set(two.background.tolist())) == 9
    assert ((two.bg_offset >= 0) & (two.bg_offset < 1)).all()


def test_fork_levels_are_deterministic_and_one_object_is_a_prefix_of_two():
    ids = torch.tensor([0, 1, 5, 99_999, 100_000, 100_999])
    one, again, two = generate_procgen(ids), generate_procgen(ids.flip(0)), generate_procgen(ids, 5, 2)
    for f in ("free", "objects", "path_len", "background", "bg_offset"):
        assert torch.equal(getattr(one, f), getattr(again, f).flip(0)), f
    # obj2 is one more placement after the same draws: same maze, same obj1
    assert torch.equal(one.free, two.free) and torch.equal(one.objects[:, 0], two.objects[:, 0])
    assert fork_level(3, 5, 2).draws > fork_level(3, 5, 1).draws
    lv = fork_level(3)
    assert lv.grid.shape == (5, 5) and lv.agent == (0, 0) and lv.grid[0, 0] == SPACE
    # gmg's orientation: procgen's row y is image row W-1-y
    np.testing.assert_array_equal(generate_procgen(torch.tensor([3])).free[0].numpy(), (lv.grid != WALL)[::-1])


def test_fork_objects_are_on_cells_kruskal_freed_not_on_dead_end_openings():
    hits = 0
    for seed in range(200):
        rng = RandGen(seed)
        rng.rand01(), rng.randn(9)
        gen = MazeGen(rng, 5)
        gen.kruskal()
        kruskal = [c for c in range(25) if gen.grid[gen._pad(c)] == SPACE]
        assert sorted(gen.free_cells) == kruskal
        before = list(gen.grid)
        gen.open_dead_ends()
        opened = {c for c in range(25) if before[gen._pad(c)] == WALL and gen.grid[gen._pad(c)] == SPACE}
        cells = gen.place_objects(2) + gen.place_objects(3)
        lv = fork_level(seed, 5, 2)
        assert [(c % 5, c // 5) for c in cells] == lv.objects and rng.draws == lv.draws
        assert all(c in kruskal and c not in opened and c != 0 for c in cells)
        hits += bool(opened)
    assert hits > 50  # the dead-end pass did open cells in many of these levels


def test_too_many_objects_is_a_level_error():
    with pytest.raises(LevelError):
        generate_procgen(torch.tensor([0]), 3, 7)


# ------------------------------------------------------------------ plumbing: levels "hashed" | "procgen"
def test_env_plays_procgen_levels_with_the_original_evaluation_ids():
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv, TrainingLevels, level_bank

    cfg = EnvConfig(objects=("red_line", "yellow_gem"), levels="procgen")
    env = MazeEnv(4, cfg, EvaluationLevels(n=4, levels="procgen"))
    assert env.level_ids.tolist() == [100_000, 100_001, 100_002, 100_003]
    want = generate_procgen(torch.arange(100_000, 100_004), 5, 2)
    assert torch.equal(env.bank.free, want.free) and torch.equal(env.bank.objects, want.objects)
    assert EvaluationLevels(n=2).ids().tolist() == [10**9, 10**9 + 1]  # the hashed default is unchanged
    train = level_bank(TrainingLevels(50), 5, 1, torch.device("cpu"), "procgen")
    assert torch.equal(train.level_ids, torch.arange(50))
    assert torch.equal(train.free, generate_procgen(torch.arange(50)).free)
    hashed = level_bank(TrainingLevels(50), 5, 1, torch.device("cpu"))
    assert not torch.equal(hashed.free, train.free)
    with pytest.raises(UserError, match="unknown levels"):
        MazeEnv(1, EnvConfig(levels="original"), EvaluationLevels(n=1))


def test_config_meta_and_trained_on_carry_the_level_source():
    from gmg.experiments.population import TrainedOn
    from gmg.training.checkpoint import agent_meta
    from gmg.training.config import ConfigError, make_config

    default = make_config("cpu", {})
    assert default.levels == "hashed" and "levels" not in default.to_dict()  # files as before the field
    cfg = make_config("cpu", {"levels": "procgen"}).validate()
    assert cfg.env_config().levels == "procgen" and cfg.to_dict()["levels"] == "procgen"
    meta = agent_meta(cfg, torch.device("cpu"))
    assert meta["env"]["levels"] == "procgen" and TrainedOn.from_meta(meta).levels == "procgen"
    assert TrainedOn.from_meta({"env": {"objects": ["yellow_line"]}}).levels == "hashed"
    with pytest.raises(ConfigError, match="unknown levels"):
        make_config("cpu", {"levels": "original"}).validate()


def test_evaluate_defaults_to_the_agents_level_source(tmp_path):
    from conftest import make_agent_dir

    from gmg.experiments.cli.main import build_parser
    from gmg.experiments.evaluate import evaluate
    from gmg.training.checkpoint import read_meta, write_meta

    folder = make_agent_dir(tmp_path / "agents", 0)
    meta = read_meta(folder)
    meta["env"]["levels"] = "procgen"
    write_meta(folder, meta)
    kw = dict(settings=["red_line-vs-yellow_gem"], device="cpu", n_levels=4, progress=False)
    auto = evaluate(folder, run_dir=tmp_path / "auto", **kw)
    named = evaluate(folder, run_dir=tmp_path / "named", levels="procgen", **kw)
    hashed = evaluate(folder, run_dir=tmp_path / "hashed", levels="hashed", **kw)
    want = generate_procgen(torch.arange(100_000, 100_004), 5, 2).path_len
    assert auto["path_len_obj1"].tolist() == named["path_len_obj1"].tolist() == want[:, 0].tolist()
    assert auto["path_len_obj2"].tolist() == want[:, 1].tolist()
    assert hashed["path_len_obj1"].tolist() != want[:, 0].tolist() or \
        hashed["path_len_obj2"].tolist() != want[:, 1].tolist()
    args = build_parser().parse_args(["evaluate", "--levels", "procgen"])
    assert args.levels == "procgen"
    assert build_parser().parse_args(["train", "--levels", "procgen"]).levels == "procgen"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--levels", "original"])
