"""The policy-composition model of issue 39: one-object policies of known walkers compose into
the walker of both pulls, a planted composition is recovered leave one setting out, and a
setting's own data never choose its constants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gmg.experiments.analysis.competition import (
    NONE,
    Readout,
    alone,
    bank_mazes,
    frame_sets,
    level_states,
    move_toward,
    readout_env,
    walker_moves,
)
from gmg.experiments.analysis.composition import (
    COMPOSITIONS,
    compose,
    grid_predictions,
    loso_predictions,
    own_chain,
    preferences,
    score,
    state_pulls,
)
from gmg.experiments.analysis.walk import first_hit
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv
from gmg.training.errors import UserError

AGENTS = "zoo:yellow-line"  # its levels and timeout: the env of the chains
N_LEVELS = 6
SETTINGS = ["red_line-vs-yellow_gem", "green_line-vs-yellow_gem", "blue_line-vs-yellow_gem"]


@pytest.fixture(scope="module")
def maze():
    env = MazeEnv(1, EnvConfig(objects=("red_line", "yellow_gem")), EvaluationLevels(n=N_LEVELS), torch.device("cpu"))
    rows, states = level_states(env)
    table = pd.DataFrame({"level": rows.numpy(), "cell": (states // 2).numpy(), "mirrored": (states % 2).numpy(),
                          "d1": 0, "d2": 0})
    return env, table, move_toward(env, rows, states)


def _walkers(pulls, toward) -> torch.Tensor:
    return walker_moves(torch.as_tensor(pulls, dtype=torch.float64), toward)


def _readout(maze, frames: dict[str, torch.Tensor], agents) -> Readout:
    _, table, toward = maze
    return Readout(list(agents), list(frames), table, toward, torch.stack(list(frames.values())).float())


def test_one_object_walkers_compose_into_the_walker_of_both(maze):
    """P0 the blind walker (pull 0: uniform over free moves), Pk the walker with pull b_k toward
    object k alone: ``sum`` composes the walk model's walker with pulls (b1, b2), and its chain is
    the walker's first hit (the pull-0 walker where every policy is uniform)."""
    env, _, toward = maze
    b = torch.tensor([[0.0, 0.0], [0.8, -0.2], [1.5, 1.0]], dtype=torch.float64)
    p0 = _walkers(torch.zeros(3, 2), toward)
    p1 = _walkers(torch.stack([b[:, 0], torch.zeros(3)], 1), toward)
    p2 = _walkers(torch.stack([torch.zeros(3), b[:, 1]], 1), toward)
    moves = compose("sum", p0, p1, p2, toward)
    assert torch.allclose(moves, _walkers(b, toward), atol=1e-5)
    assert not torch.allclose(compose("scaled", p0, p1, p2, toward, [0.5])[1:], _walkers(b, toward)[1:], atol=1e-2)
    # item 1's per-state pull: the walker's own pull at every state with a choice
    some = (toward[..., 0] != 0).sum(-1) > 1
    d1 = p1.clamp_min(1e-7).log() - p0.clamp_min(1e-7).log()
    got = state_pulls(d1, toward[..., 0])[:, some & ((toward[..., 0] == 1).any(-1)) & ((toward[..., 0] == -1).any(-1))]
    assert torch.allclose(got, b[:, :1].expand_as(got), atol=1e-5)
    r = _readout(maze, {NONE: p0}, [0, 1, 2])
    pref = preferences(r, moves, readout_env(AGENTS, NONE, N_LEVELS))
    hits = [first_hit(bank_mazes(env), w) for w in b]  # (levels, 2) per walker
    walk = np.array([float(h[:, 0].sum() / h.sum()) for h in hits])
    assert np.abs(pref - walk).max() < 5e-3
    assert pref.std() > 0.05  # three walkers, three preferences: the check is not vacuous


def _planted(maze, alpha: float = 0.5, n_agents: int = 5, seed: int = 0) -> tuple[Readout, list[str]]:
    """Agents whose pair frames ARE ``scaled`` with ``alpha`` of their one-object frames: P0 a
    walker with a habit toward obj2's cell, Pk walkers with random pulls per object."""
    _, _, toward = maze
    rng = np.random.default_rng(seed)
    habit = torch.tensor(rng.uniform(-0.3, 0.3, (n_agents, 2)))
    p0 = _walkers(habit, toward)
    frames = {NONE: p0}
    p2 = _walkers(habit + torch.tensor([[0.0, 1.0]]) * torch.tensor(rng.uniform(0.5, 2.5, (n_agents, 1))), toward)
    frames[alone("yellow_gem", 1)] = p2
    for s in SETTINGS:
        obj = s.split("-vs-")[0]
        p1 = _walkers(habit + torch.tensor([[1.0, 0.0]]) * torch.tensor(rng.uniform(0.2, 3.0, (n_agents, 1))), toward)
        frames[alone(obj, 0)] = p1
        frames[s] = compose("scaled", p0, p1, p2, toward, [alpha])
    return _readout(maze, frames, range(n_agents)), list(SETTINGS)


def test_planted_composition_is_recovered_leave_one_setting_out(maze):
    r, settings = _planted(maze, alpha=0.5)
    assert set(frame_sets(settings, None)) == set(r.sets)
    grid = grid_predictions(r, AGENTS, settings, ["sum", "scaled"])
    target = own_chain(r, AGENTS, settings)
    table, pooled = score(grid, target, pd.Series(dtype=float), "network", ["sum", "scaled"])
    scaled = table[table["model"] == "scaled"]
    assert (scaled["constants"] == "alpha 0.5").all()  # every fold finds the planted constant
    assert scaled["r2"].min() > 0.999 and pooled["scaled"] > 0.999
    assert pooled["sum"] < 0.95  # a = 1 is not the planted network: the score can fail


def test_held_out_setting_never_enters_its_constants(maze):
    r, settings = _planted(maze, alpha=0.75)
    grid = grid_predictions(r, AGENTS, settings, ["scaled"])
    target = own_chain(r, AGENTS, settings)
    pred, consts = loso_predictions(grid, target, "scaled", "network")
    held = settings[0]
    scrambled = target.assign(network=np.where(target["setting"] == held,
                                               np.random.default_rng(1).uniform(0, 1, len(target)), target["network"]))
    pred2, consts2 = loso_predictions(grid, scrambled, "scaled", "network")
    c, c2 = consts.set_index("setting"), consts2.set_index("setting")
    assert c.loc[held, "alpha"] == c2.loc[held, "alpha"] == 0.75
    mine = pred["setting"] == held
    assert np.allclose(pred.loc[mine, "predicted"], pred2.loc[mine, "predicted"])
    # the scrambled setting does move the others' fits (it is in their data)
    assert (c2.drop(held)["alpha"] != 0.75).any()


def test_compositions_and_bad_input(maze):
    _, _, toward = maze
    p = _walkers(torch.tensor([[0.3, 0.4]]), toward)
    for kind, v in COMPOSITIONS.items():
        c = v.combos()[-1]
        out = compose(kind, p, p, p, toward, c)
        assert torch.allclose(out.sum(-1), torch.ones_like(out[..., 0]))
    # a mixture of one policy with itself is that policy, whatever the weights
    assert torch.allclose(compose("mixture", p * 0 + 0.2, p, p, toward, [4.0]), p.double(), atol=1e-12)
    with pytest.raises(UserError):
        compose("product", p, p, p, toward)
    with pytest.raises(UserError):
        frame_sets(["train:red_line"], None)
    grid = pd.DataFrame({"model": "scaled", "combo": 0, "agent": [0, 1, 2], "setting": "red_line-vs-yellow_gem",
                         "predicted": 0.5})
    with pytest.raises(UserError):  # one setting: nothing to fit its constants on
        loso_predictions(grid, grid.rename(columns={"predicted": "observed"}), "scaled")
