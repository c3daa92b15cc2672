"""Exact evaluation (gmg.experiments.exact): the policy's Markov chain against the walk model, an
oracle, sampled episodes of a zoo agent, and deliberately wrong chains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmg.experiments.analysis.walk import first_hit, mazes
from gmg.experiments.exact import move_classes, network_probs, sampled_interval, solve, successors
from gmg.training.env import EVAL_START, EnvConfig, EvaluationLevels, MazeEnv, action_deltas
from gmg.training.levels import distance_map, start_cell

TWO = ("yellow_line", "red_line")


def _env(n_levels: int, objects=TWO, level_ids=None) -> MazeEnv:
    levels = EvaluationLevels(level_ids) if level_ids is not None else EvaluationLevels(n=n_levels)
    return MazeEnv(1, EnvConfig(objects=objects), levels)


def _four_moves(pair: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    p = torch.zeros(pair.numel(), 15, dtype=torch.float64)
    p[:, [1, 3, 5, 7]] = 0.25  # left, down, up, right: a blind walker's step among its free neighbours
    return p


def test_four_move_walker_matches_walk_model_pull_zero():
    env = _env(40)
    res = solve(env, 1, _four_moves, eps=0.0, horizon=50_000)  # long enough that no walker times out
    hit = first_hit(mazes(40, 2), torch.zeros(2))
    tol = 1e3 * torch.finfo(torch.float64).eps
    assert torch.allclose(res["p_obj1"], hit[:, 0], atol=tol)
    assert torch.allclose(res["p_obj2"], hit[:, 1], atol=tol)
    assert float(res["p_unresolved"].max()) == 0.0
    # at 500 steps the timeouts take their share, and the three outcomes still sum to one
    short = solve(env, 1, _four_moves, eps=0.0, occupancy=True)
    total = short["p_obj1"] + short["p_obj2"] + short["p_timeout"]
    assert torch.allclose(total, torch.ones_like(total), atol=tol)
    assert float(short["p_timeout"].max()) > 0.0
    assert bool((short["e_steps"] <= 500).all())
    # expected visits: the times 0..T in each cell, so they sum to E[steps] + 1 (timeouts too), and an
    # object's cell holds the probability of reaching it first
    visits = short["visits"]
    assert torch.allclose(visits.sum(1), short["e_steps"] + 1, rtol=1e3 * torch.finfo(torch.float64).eps)
    objs = env.bank.objects
    assert torch.allclose(visits.gather(1, objs[:, :1])[:, 0], short["p_obj1"], atol=tol)
    assert torch.allclose(visits.gather(1, objs[:, 1:])[:, 0], short["p_obj2"], atol=tol)
    assert bool((visits[env.bank.free.view(40, -1) == 0] == 0).all())  # never inside a wall


def test_oracle_reaches_obj1_on_a_shortest_path():
    env = _env(30)
    w = env.config.world_dim
    free, objs = env.bank.free, env.bank.objects
    blocked = torch.zeros_like(free).view(len(objs), -1).scatter_(1, objs[:, 1:], True).view_as(free)
    dist = distance_map(free, objs[:, 0], blocked).view(len(objs), -1)  # around obj2, as path_len is
    deltas = action_deltas()

    def oracle(pair, state):
        cell = state // 2
        r, c = cell // w, cell % w
        p = torch.zeros(pair.numel(), 15, dtype=torch.float64)
        for i in range(pair.numel()):
            for a in (1, 3, 5, 7):
                rr, cc = int(r[i] + deltas[a, 0]), int(c[i] + deltas[a, 1])
                if 0 <= rr < w and 0 <= cc < w and 0 <= dist[pair[i], rr * w + cc] == dist[pair[i], cell[i]] - 1:
                    p[i, a] = 1.0
                    break
        return p

    res = solve(env, 1, oracle, eps=0.0, occupancy=True)
    assert torch.equal(res["p_obj1"], torch.ones(30, dtype=torch.float64))
    assert torch.equal(res["e_steps"], env.bank.path_len[:, 0].to(torch.float64))
    assert torch.allclose(res["e_eff_obj1"], torch.ones(30, dtype=torch.float64))
    # a deterministic walker draws only the states on its path (lazy expansion)
    assert torch.equal(res["frames"], env.bank.path_len[:, 0])
    # it visits each cell of one shortest path once (start and obj1 included) and no other cell
    visits = res["visits"]
    assert bool(((visits == 0) | (visits == 1)).all())
    assert torch.equal(visits.sum(1), res["e_steps"] + 1)
    for lv in range(30):
        on_path = sorted(dist[lv, visits[lv] == 1].tolist())
        assert on_path == list(range(int(env.bank.path_len[lv, 0]) + 1)), (lv, on_path)
    assert bool((visits[:, start_cell(w)] == 1).all()) and bool((visits.gather(1, objs[:, :1]) == 1).all())


def test_successors_follow_env_step():
    env = MazeEnv(50 * 15, EnvConfig(objects=TWO), EvaluationLevels(n=5))
    nxt = successors(env)  # (5, 50, 5)
    for state in (0, 11, 24, 37, 41):
        rows = torch.arange(5).repeat_interleave(150)
        actions = torch.arange(15).repeat(50)
        env.load_state({"row": rows, "agent": torch.full((750,), state // 2), "mirrored": torch.full((750,), state % 2 == 1),
                        "steps": torch.zeros(750, dtype=torch.int64), "counter": torch.zeros((), dtype=torch.int64)})
        _, _, _, _, info = env.step(actions)
        got = info["agent"] * 2 + info["mirrored"].long()
        want = nxt[rows, state, move_classes().argmax(1)[actions]]
        assert torch.equal(got, want)


@pytest.mark.parametrize("source", [{}, {"levels": "procgen", "render": "procgen"}])
def test_state_frames_are_the_rollout_frames(source):
    env = MazeEnv(6, EnvConfig(objects=TWO, **source), EvaluationLevels(n=6, levels=source.get("levels", "hashed")))
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        obs, *_ = env.step(torch.randint(0, 15, (6,), generator=gen))
        state = env.state()
        assert torch.equal(env.state_frames(state["row"], state["agent"], state["mirrored"]), obs)


def _sample(model, env: MazeEnv, n: int, seed: int = 0) -> np.ndarray:
    """Outcome codes of n first episodes on the env's one level, actions drawn from the softmax
    (an implementation of its own: the frames are the env's observations, no exact machinery)."""
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset(torch.zeros(n, dtype=torch.int64))
    outcome = torch.full((n,), -1)
    alive = torch.ones(n, dtype=torch.bool)
    cache: dict[int, torch.Tensor] = {}
    for _ in range(env.config.timeout):
        state = env.agent * 2 + env.mirrored.long()
        with torch.inference_mode():
            for s in state.unique().tolist():
                if s not in cache:
                    first = int((state == s).nonzero()[0, 0])
                    cache[s] = torch.softmax(model(obs[first : first + 1])[0].double(), 1)[0]
        probs = torch.stack([cache[s] for s in state.tolist()])
        obs, _, _, _, info = env.step(torch.multinomial(probs, 1, generator=gen)[:, 0])
        ended = info["done"] & alive
        outcome[ended] = info["reached"][ended]
        alive &= ~info["done"]
        if not bool(alive.any()):
            break
    return outcome.numpy()


@pytest.fixture(scope="module")
def zoo_agent():
    from gmg.experiments.population import population

    return population("zoo:yellow-line")[0].load("cpu")


def test_zoo_agent_sampled_agrees_and_wrong_chains_fail(zoo_agent):
    """Level 16 of yellow_line-vs-yellow_line, agent 0: the mouse's facing moves P(obj1) by ~0.4."""
    from scipy.stats import binomtest

    objects, level = ("yellow_line", "yellow_line"), [EVAL_START + 16]
    one = _env(1, objects, level)
    fn = network_probs(one, [zoo_agent])
    exact = float(solve(one, 1, fn)["p_obj1"][0])
    n = 2000
    outcome = _sample(zoo_agent, MazeEnv(n, EnvConfig(objects=objects), EvaluationLevels(level)), n)
    k = int((outcome == 1).sum())
    assert binomtest(k, n, exact).pvalue > 1e-3, (k, exact)
    nxt = successors(one)
    no_facing = float(solve(one, 1, fn, next_states=nxt - nxt % 2)["p_obj1"][0])  # the mouse never mirrored
    assert binomtest(k, n, no_facing).pvalue < 1e-6, (k, no_facing)
    no_walls = torch.ones_like(one.bank.free)  # moves pass through walls
    through = float(solve(one, 1, fn, next_states=successors(one, free=no_walls))["p_obj1"][0])
    assert binomtest(k, n, through).pvalue < 1e-3, (k, through)  # rejected at the level the right chain passes


@pytest.mark.parametrize("spec", ["none", "isolate:g", "isolate:r@obj1"])
def test_sampled_preference_inside_exact_interval(tmp_path, spec):
    from gmg.experiments.evaluate import evaluate
    from gmg.experiments.population import population
    from gmg.interp.interventions import parse_intervention

    refs = population("zoo:yellow-line")[:1]
    iv = None if spec == "none" else parse_intervention(spec)
    kw = dict(n_levels=60, progress=False, intervention=iv)
    sampled = evaluate(refs, ["red_line-vs-yellow_gem"], tmp_path, "cpu", **kw)
    exact = evaluate(refs, ["red_line-vs-yellow_gem"], tmp_path, "cpu", exact=True, **kw)
    decided = sampled["outcome"].isin(["obj1", "obj2"]).sum()
    pref = (sampled["outcome"] == "obj1").sum() / decided
    lo, hi = sampled_interval(exact, z=3.5)
    assert lo <= pref <= hi, (pref, lo, hi)
    assert hi - lo < 0.5  # the interval says something
