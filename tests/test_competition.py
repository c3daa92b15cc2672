"""The state-by-state readout of issue 39: pulls fitted on a known walker come back, the
contrasts have the walker's values, and the readout of a real agent is its network's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gmg.experiments.analysis.competition import (
    NONE,
    Readout,
    additivity,
    alone,
    bank_mazes,
    chain_check,
    competition_fit,
    effective_pulls,
    fit_pulls,
    frame_sets,
    kept,
    level_states,
    log_linear_pulls,
    move_toward,
    read_moves,
    walker_moves,
)
from gmg.experiments.analysis.walk import mazes, transitions
from gmg.experiments.exact import move_classes, network_probs
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv
from gmg.training.errors import UserError

N_LEVELS = 6


def _env(objects=("red_line", "yellow_gem"), n_levels: int = N_LEVELS) -> MazeEnv:
    return MazeEnv(1, EnvConfig(objects=objects), EvaluationLevels(n=n_levels), torch.device("cpu"))


@pytest.fixture(scope="module")
def walker():
    """(toward, move probabilities) of walkers with known pulls at every state of the readout,
    the probabilities taken from the walk model's own chain (``walk.transitions``)."""
    env = _env()
    m = bank_mazes(env)
    walk_m = mazes(N_LEVELS, 2, env.config.world_dim)  # the walk model's own levels: the same mazes
    assert torch.equal(m.objects, walk_m.objects) and torch.equal(m.free, walk_m.free) and torch.equal(m.dist, walk_m.dist)
    rows, states = level_states(env)
    toward = move_toward(env, rows, states)
    from gmg.experiments.exact import successors

    nxt = successors(env)[rows, states] // 2
    pulls = torch.tensor([[0.7, -0.3], [2.0, 1.5], [-0.4, 0.9]], dtype=torch.float64)
    probs = []
    for b in pulls:
        step = transitions(m, b.expand(N_LEVELS, 2))  # (N, S, S)
        p = step[rows[:, None], (states // 2)[:, None], nxt]
        probs.append(torch.where(nxt == (states // 2)[:, None], 0.0, p))  # stay, wall: the walker never does
    return toward, torch.stack(probs), pulls, rows, states


def test_walker_form_is_the_walk_models(walker):
    toward, probs, pulls, *_ = walker
    assert torch.allclose(walker_moves(pulls, toward), probs, atol=1e-12)
    assert torch.allclose(probs.sum(-1), torch.ones_like(probs[..., 0]))


def test_fit_recovers_known_pulls(walker):
    toward, probs, pulls, *_ = walker
    assert torch.allclose(fit_pulls(probs, toward), pulls, atol=1e-6)
    # stay and blocked moves are not the walker's: mass put there does not move the fit
    noisy = probs * 0.6
    noisy[..., 0] += 0.4
    assert torch.allclose(fit_pulls(noisy, toward), pulls, atol=1e-6)
    # a sign error in toward would fit the opposite pulls
    assert torch.allclose(fit_pulls(probs, -toward), -pulls, atol=1e-6)


def test_log_linear_recovers_known_pulls(walker):
    toward, probs, pulls, *_ = walker
    assert torch.allclose(log_linear_pulls(probs, toward), pulls, atol=1e-6)
    assert torch.allclose(log_linear_pulls(probs, -toward), -pulls, atol=1e-6)


def _walker_readout(walker, sets):
    """The walkers' moves in every frame set but ``NONE``, where they walk blind (pulls 0)."""
    toward, probs, pulls, rows, states = walker
    table = pd.DataFrame({"level": rows.numpy(), "cell": (states // 2).numpy(), "mirrored": (states % 2).numpy(),
                          "d1": 0, "d2": 0})
    blind = walker_moves(torch.zeros_like(pulls), toward)
    return Readout([0, 1, 2], list(sets), table, toward, torch.stack([blind if s == NONE else probs for s in sets]).float())


def test_chain_check_on_a_walker(walker):
    """A network that walks: its exact chain, solved from the readout, is the walker's first hit
    (up to the chain's timeout), and pulls alone and paired agree."""
    pair = "red_line-vs-yellow_gem"
    r = _walker_readout(walker, [pair, alone("red_line", 0), alone("yellow_gem", 1), NONE])
    pulls = effective_pulls(r)
    assert torch.allclose(torch.tensor(pulls[pulls["frames"] == pair][["b1", "b2"]].to_numpy()), walker[2], atol=1e-5)
    c = chain_check(r, pulls, "zoo:yellow-line", [pair])
    assert len(c) == 3
    assert (c["network"] - c["walk_paired"]).abs().max() < 5e-3
    assert (c["walk_alone"] - c["walk_paired"]).abs().max() < 1e-6
    assert c["network"].std() > 0.05  # the three walkers choose differently
    t = additivity(pulls, [pair])
    assert t["own"].sub(t["paired"]).abs().max() < 1e-5  # the same pulls in every frame set: nothing lost
    assert kept(t)["kept"].sub(1).abs().max() < 1e-5


def test_readout_of_a_zoo_agent_is_its_network():
    """Agent 1 read beside agent 0 equals ``network_probs`` of agent 1 alone on the same frames,
    and its own forward pass on the rendered frames."""
    from gmg.experiments.population import population

    refs = population("zoo:yellow-line")[:2]
    models = [r.load("cpu").eval() for r in refs]
    env = _env(n_levels=1)
    rows, states = level_states(env)
    both = read_moves(env, models, rows, states)
    alone_probs = network_probs(env, models[1:])(rows, states) @ move_classes()
    assert both.shape == (2, rows.numel(), 5)
    assert torch.allclose(both[1], alone_probs, atol=1e-6)
    with torch.inference_mode():
        logits = models[1](env.state_frames(rows, states // 2, states % 2 == 1))[0].double()
    assert torch.allclose(both[1], torch.softmax(logits, 1) @ move_classes(), atol=1e-5)
    assert not torch.allclose(both[0], both[1], atol=1e-3)  # two agents, two policies
    # every state is a free cell without an object, both facings
    free = env.bank.free.reshape(-1)
    assert bool(free[states // 2].all()) and not set((states // 2).tolist()) & set(env.bank.objects[0].tolist())
    assert rows.numel() == 2 * (int(free.sum()) - 2)


def test_frame_sets_and_additivity_table():
    sets = frame_sets(["red_line-vs-yellow_gem"])
    assert sets[:3] == ["red_line-vs-yellow_gem", "red_line-vs-invisible_line", "invisible_line-vs-yellow_gem"]
    assert NONE in sets and "yellow_gem-vs-invisible_line" in sets  # the profile's gem, at obj1's cell
    with pytest.raises(UserError):
        frame_sets(["train:red_line"])
    pulls = pd.DataFrame([{"agent": 3, "frames": f, "b1": 10.0 * i, "b2": 10.0 * i + 1} for i, f in enumerate(sets)])
    t = additivity(pulls, ["red_line-vs-yellow_gem"]).set_index("k")
    row = {f: i for i, f in enumerate(sets)}
    assert t.loc[1, "b_pair"] == 0 and t.loc[2, "b_pair"] == 1
    assert t.loc[1, "b_alone"] == 10 * row[alone("red_line", 0)]
    assert t.loc[2, "b_alone"] == 10 * row[alone("yellow_gem", 1)] + 1
    assert t.loc[1, "floor"] == 10 * row[NONE] and t.loc[2, "floor"] == 10 * row[NONE] + 1
    assert t.loc[1, "own"] == t.loc[1, "b_alone"] - t.loc[1, "floor"] and t.loc[1, "partner_own"] == t.loc[2, "own"]
    assert t.loc[2, "empty"] == 10 * row[alone("red_line", 0)] + 1


def test_competition_fit_finds_a_planted_subtraction():
    """Pair pulls made as 0.9 own - 0.2 partner: the subtractive model finds them exactly, the
    additive one cannot (its R² is lower), and leaving a pair out changes nothing."""
    rng = np.random.default_rng(0)
    rows = []
    for pair in ("a-vs-b", "c-vs-d", "e-vs-f"):
        for agent in range(20):
            own, partner = rng.uniform(0.1, 1.0, 2)
            rows += [{"agent": agent, "pair": pair, "k": 1, "own": own, "partner_own": partner},
                     {"agent": agent, "pair": pair, "k": 2, "own": partner, "partner_own": own}]
    t = pd.DataFrame(rows)
    t["paired"] = 0.9 * t["own"] - 0.2 * t["partner_own"]
    f = competition_fit(t).set_index(["model", "term"])
    assert f.loc[("subtractive", "own"), "coef"] == pytest.approx(0.9)
    assert f.loc[("subtractive", "partner_own"), "coef"] == pytest.approx(-0.2)
    assert f.loc[("subtractive", "own"), "r2_leave_pair_out"] == pytest.approx(1.0)
    assert f.loc[("additive", "own"), "r2"] < 0.95


def test_readout_round_trip_extend_subset(tmp_path):
    states = pd.DataFrame({"level": [0, 1], "d1": [2, 3]})
    toward = torch.tensor([[[0, 0], [1, -1], [-1, 1], [0, 0], [1, 1]]] * 2)
    r = Readout([0, 5], ["a-vs-b"], states, toward, torch.rand(1, 2, 2, 5))
    back = Readout.load(r.save(tmp_path / "r.npz"))
    assert back.agents == [0, 5] and back.sets == ["a-vs-b"] and back.states.equals(r.states)
    assert torch.equal(back.toward, r.toward) and torch.equal(back.probs, r.probs)
    with pytest.raises(UserError):
        back.of("c-vs-d")
    more = back.extend(Readout([0, 5], ["a-vs-b", "c-vs-d"], states, toward, torch.rand(2, 2, 2, 5)))
    assert more.sets == ["a-vs-b", "c-vs-d"] and torch.equal(more.of("a-vs-b"), back.of("a-vs-b"))
    with pytest.raises(UserError):
        back.extend(Readout([0, 6], ["c-vs-d"], states, toward, torch.rand(1, 2, 2, 5)))
    one = more.subset(np.array([False, True]))
    assert one.states["level"].tolist() == [1] and torch.equal(one.of("c-vs-d")[:, 0], more.of("c-vs-d")[:, 1])
