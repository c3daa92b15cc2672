"""The walk model against an independent Monte Carlo walker and against the mazes' geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmg.experiments.analysis.walk import PULL_GRID, efficiency_curve, first_hit, mazes, pull_from_efficiency
from gmg.training.levels import start_cell


def _simulate(m, level: int, pulls: tuple[float, ...], n: int = 4000, timeout: int = 500, seed: int = 0):
    """Walk ``n`` walkers step by step on one level (plain numpy, no shared code with the chain):
    (fraction reaching each object first, mean efficiency toward obj1)."""
    rng = np.random.default_rng(seed)
    w = m.world_dim
    free = m.free[level].numpy()
    dist = m.dist[level].numpy()
    objects = m.objects[level].tolist()
    first = np.zeros(len(objects))
    eff = 0.0
    for _ in range(n):
        cell = start_cell(w)
        for t in range(1, timeout + 1):
            r, c = divmod(cell, w)
            nbs = [rr * w + cc for rr, cc in ((r, c - 1), (r + 1, c), (r - 1, c), (r, c + 1))
                   if 0 <= rr < w and 0 <= cc < w and free[rr * w + cc]]
            logits = np.array([sum(p * np.sign(dist[k, cell] - dist[k, nb]) for k, p in enumerate(pulls)) for nb in nbs])
            prob = np.exp(logits - logits.max())
            cell = nbs[rng.choice(len(nbs), p=prob / prob.sum())]
            if cell in objects:
                first[objects.index(cell)] += 1
                eff += (m.path_len[level, 0].item() / t) if objects.index(cell) == 0 else 0.0
                break
    return first / n, eff / n


@pytest.fixture(scope="module")
def two():
    return mazes(12, 2)


def test_first_hit_matches_a_monte_carlo_walker(two):
    for level, pulls in ((0, (0.0, 0.0)), (3, (1.5, 0.3)), (7, (0.0, 2.0))):
        exact = first_hit(two, torch.tensor(pulls))[level].numpy()
        simulated, _ = _simulate(two, level, pulls)
        assert exact.sum() == pytest.approx(1.0)
        assert exact == pytest.approx(simulated, abs=0.03)  # 4000 walkers: standard error <= 0.008


def test_the_efficiency_curve_matches_a_monte_carlo_walker_and_rises_with_the_pull():
    one = mazes(4, 1)
    curve = efficiency_curve(one, [0.0, 1.0, 8.0])
    simulated = np.mean([_simulate(one, level, (1.0,), n=1500, seed=level)[1] for level in range(4)])
    assert curve[1] == pytest.approx(simulated, abs=0.03)
    assert curve[0] < curve[1] < curve[2] and curve[2] == pytest.approx(1.0, abs=1e-3)  # pulled hard: shortest path


def test_a_strongly_pulled_walker_meets_the_other_object_only_where_it_blocks_every_shortest_path(two):
    from gmg.training.levels import distance_map

    hit = first_hit(two, torch.tensor([0.0, 12.0]))[:, 0].numpy()  # pulled to obj2, blind to obj1
    free = two.free.view(-1, two.world_dim, two.world_dim)
    starts = torch.full((len(two),), start_cell(two.world_dim))
    plain = distance_map(free, starts).view(len(two), -1).gather(1, two.objects[:, 1:2])[:, 0]
    blocks = (two.path_len[:, 1] > plain).numpy()  # going around obj1 is longer: obj1 is on every shortest path
    # elsewhere obj1 lies on some shortest paths at most: the walker splits evenly between them
    assert blocks.any() and np.all(hit[blocks] > 0.99)
    assert np.all(hit[~blocks] <= 0.5 + 1e-9) and (hit[~blocks] < 1e-6).any()


def test_pulls_are_read_back_from_the_efficiencies_they_produce():
    one = mazes(20, 1)
    curve = efficiency_curve(one, PULL_GRID)
    assert np.all(np.diff(curve) >= 0)
    planted = np.array([0.0, 0.4, 1.3, 2.2])
    assert pull_from_efficiency(efficiency_curve(one, planted), curve) == pytest.approx(planted, abs=0.03)


@pytest.mark.parametrize("n_objects", [1, 2])
def test_procgen_mazes_are_the_levels_the_env_plays_on_that_source(n_objects):
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    n = 8
    objects = ("yellow_line", "red_gem")[:n_objects]
    env = MazeEnv(n, EnvConfig(objects=objects, levels="procgen"), EvaluationLevels(n=n, levels="procgen"))
    m = mazes(n, n_objects, levels="procgen")
    w = m.world_dim
    assert env.level_ids.tolist() == list(range(100_000, 100_000 + n))  # the original's test levels
    assert torch.equal(m.free, env.free.reshape(n, -1))
    assert torch.equal(m.objects, env.objects)
    assert torch.equal(m.path_len, env.bank.path_len[env.row])
    assert (env.agent == start_cell(w)).all()  # the walker starts where the env's mouse does
    hashed = mazes(n, n_objects)
    assert not torch.equal(hashed.free, m.free) and not torch.equal(hashed.objects, m.objects)
