"""The policy-composition model (issue 39, item 2): a pair's move distribution at each state
composed from the network's own moves with each object alone and with neither.

Item 1 (``gmg.experiments.analysis.competition``) found that an object's pull is no single
number: it depends on the state, and two objects do not add. So no walker here: at every state
``s`` of the exact chain (``competition.Readout``) the network's five move probabilities are
read with obj1 alone at its cell (``P1``), obj2 alone at its cell (``P2``) and neither
(``P0``), all one-object (or empty) frames, and the pair's are composed (``compose``):

- ``sum``: log-linear pooling with weight 1, ``log P = log P0 + (log P1 - log P0) + (log P2 -
  log P0) + c(s)``: the network's own single-object policies added in log space (no constant);
- ``scaled``: the same with a shared weight ``alpha`` on both deviations (item 1: a pull kept
  in a pair is a share of its pull alone);
- ``compete``: ``alpha`` on both deviations less ``gamma`` times the partner's pull at this
  state pointed at the object's own cell, ``- gamma (b2(s) t1 + b1(s) t2)`` (item 1's
  subtraction, per state: ``b_k(s)`` the slope of ``log Pk - log P0`` on ``t_k``, +1 toward
  object k's cell, -1 away, over the state's free moves);
- ``mixture``: ``w P1 + (1 - w) P2``, ``w = sigmoid(kappa (b1(s) - b2(s)))``: at each state the
  agent follows one object's policy, the stronger there more often (item 1(b): far from both
  objects the stronger one takes the contest).

The composed moves go into the pair's exact chain (``competition.solve_moves``: ``exact.solve``,
timeout as in evaluation) on each level, so each agent's predicted preference comes from
one-object frames of its own network, with no rollout of any two-object setting. Shared
constants run over a grid (``COMPOSITIONS``); each setting is predicted with the grid point that
fits the *other* settings best (``contest.loso_constants``), against the observed preferences or
the network's own chain on the pair frames (``own_chain``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.competition import NONE, Readout, alone, read_network, readout_env, solve_moves
from gmg.experiments.analysis.contest import Variant, loso_constants
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.settings import parse_setting
from gmg.training.errors import UserError

FLOOR = 1e-7  # a move probability below this counts as this in log space (the readout is float32)
COMPOSITIONS = {  # grids around item 1's shares kept (0.6-0.9) and subtraction (0.9 own - 0.2 partner)
    "sum": Variant(),
    "scaled": Variant(("alpha",), (np.array([0.5, 0.625, 0.75, 0.875, 1.0, 1.25]),)),
    "compete": Variant(("alpha", "gamma"), (np.array([0.75, 1.0]), np.array([0.0, 0.2, 0.4]))),
    "mixture": Variant(("kappa",), (np.array([1.0, 4.0]),)),
}


def read_cached(agents, sets: list[str], n_levels: int, path: str | Path, progress: bool = False) -> Readout:
    """``read_network`` of ``sets``, one frame set at a time, each saved to ``path`` as it is read
    (a killed read resumes with the sets not yet there)."""
    path = Path(path)
    r = Readout.load(path) if path.exists() else None
    if r is not None and int(r.states["level"].max()) + 1 != n_levels:
        raise UserError(f"{path} holds another number of levels: name another file or --n-levels "
                        f"{int(r.states['level'].max()) + 1}")
    for name in sets:
        if r is not None and name in r.sets:
            continue
        new = read_network(agents, [name], n_levels, progress=progress)
        r = new if r is None else r.extend(new)
        r.save(path)
    return r


def state_pulls(d: torch.Tensor, toward: torch.Tensor) -> torch.Tensor:
    """(A, n): per state, the slope of ``d`` (A, n, 5: a log ratio of move probabilities) on
    ``toward`` (n, 5: +1, -1, 0 moves), least squares over the state's free moves (``toward`` != 0)
    with a constant; 0 where the free moves do not differ in ``toward``."""
    free = (toward != 0).to(torch.float64)
    t = toward.to(torch.float64)
    n = free.sum(-1).clamp_min(1)
    tc = (t - (t * free).sum(-1, keepdim=True) / n[:, None]) * free
    dc = (d - (d * free).sum(-1, keepdim=True) / n[:, None]) * free
    var = (tc**2).sum(-1)
    return torch.where(var > 0, (dc * tc).sum(-1) / var.clamp_min(1e-12), 0.0)


def compose(kind: str, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, toward: torch.Tensor,
            c=()) -> torch.Tensor:
    """float64 (A, n, 5): the pair's moves composed (``kind`` of ``COMPOSITIONS``, constants ``c``
    in its order) from ``p0`` (neither), ``p1`` (obj1 alone), ``p2`` (obj2 alone), each (A, n, 5),
    at states whose moves go ``toward`` (n, 5, 2) the two cells."""
    if kind not in COMPOSITIONS:
        raise UserError(f"unknown composition {kind!r}: use one of {', '.join(COMPOSITIONS)}")
    named = dict(zip(COMPOSITIONS[kind].constants, np.atleast_1d(np.asarray(c, float)).tolist()))
    l0, l1, l2 = (p.to(torch.float64).clamp_min(FLOOR).log() for p in (p0, p1, p2))
    d1, d2 = l1 - l0, l2 - l0
    t = toward.to(torch.float64)
    if kind == "mixture":
        w = torch.sigmoid(named["kappa"] * (state_pulls(d1, toward[..., 0]) - state_pulls(d2, toward[..., 1])))
        return w[..., None] * p1.to(torch.float64) + (1 - w[..., None]) * p2.to(torch.float64)
    logits = l0 + named.get("alpha", 1.0) * (d1 + d2)
    if named.get("gamma", 0.0):
        b1, b2 = state_pulls(d1, toward[..., 0]), state_pulls(d2, toward[..., 1])
        logits = logits - named["gamma"] * (b2[..., None] * t[..., 0] + b1[..., None] * t[..., 1])
    return torch.softmax(logits, -1)


def preferences(r: Readout, moves: torch.Tensor, env) -> np.ndarray:
    """(G,): each group's exact preference for obj1 over the readout's levels, ``sum P(obj1) /
    sum (P(obj1) + P(obj2))``, from its moves (G, n, 5) at the readout's states."""
    n_l = env.bank.free.shape[0]
    res = solve_moves(r, moves, env)
    p1, p2 = res["p_obj1"].view(-1, n_l).sum(1), res["p_obj2"].view(-1, n_l).sum(1)
    return (p1 / (p1 + p2)).numpy()


def own_chain(r: Readout, agents, settings) -> pd.DataFrame:
    """One row per (agent, setting): the network's own exact preference from the pair's frames
    (``network``), on the readout's levels."""
    n_l = int(r.states["level"].max()) + 1
    env = readout_env(agents, NONE, n_l)
    moves = torch.cat([r.of(s) for s in settings])
    p = preferences(r, moves, env)
    return pd.DataFrame({"agent": np.tile(r.agents, len(settings)), "setting": np.repeat(list(settings), len(r.agents)),
                         "network": p})


def grid_predictions(r: Readout, agents, settings, kinds=None, solved: dict | None = None) -> pd.DataFrame:
    """One row per (composition, constants, agent, setting): the composed chain's preference
    ``predicted`` at every grid point of each of ``kinds`` (default all), ``combo`` the point's row
    of ``Variant.combos()``. All settings share one maze and object cells per level, so one env
    solves them all; a point that composes the same moves as one solved before (``sum`` and
    ``scaled`` at 1, ``compete`` at gamma 0) is not solved again (``solved`` keeps them across
    calls)."""
    n_l = int(r.states["level"].max()) + 1
    env = readout_env(agents, NONE, n_l)
    p0 = r.of(NONE)
    out, solved = [], {} if solved is None else solved
    for kind in kinds or COMPOSITIONS:
        v = COMPOSITIONS[kind]
        for i, c in enumerate(v.combos()):
            named = dict(zip(v.constants, c.tolist()))
            key = ("mixture", named["kappa"]) if kind == "mixture" else \
                ("pool", named.get("alpha", 1.0), named.get("gamma", 0.0))
            if key not in solved:
                moves = torch.cat([compose(kind, p0, r.of(alone(parse_setting(s).obj1, 0)),
                                           r.of(alone(parse_setting(s).obj2, 1)), r.toward, c) for s in settings])
                solved[key] = preferences(r, moves, env)
            out.append(pd.DataFrame({"model": kind, "combo": i, "agent": np.tile(r.agents, len(settings)),
                                     "setting": np.repeat(list(settings), len(r.agents)), "predicted": solved[key]}))
    return pd.concat(out, ignore_index=True)


def loso_predictions(grid: pd.DataFrame, target: pd.DataFrame, kind: str, column: str = "observed"
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``kind``'s leave-one-setting-out predictions of ``target`` (rows agent, setting, ``column``)
    from ``grid`` (``grid_predictions``): each setting at the grid point whose squared error over
    the *other* settings is least (``contest.loso_constants``). Returns the rows (agent, setting,
    predicted, ``column``) and the constants each setting was predicted with."""
    v = COMPOSITIONS[kind]
    g = grid[grid["model"] == kind].merge(target[["agent", "setting", column]], on=["agent", "setting"])
    combos = {tuple(c.tolist()): i for i, c in enumerate(v.combos())}
    names = list(dict.fromkeys(g["setting"]))
    if len(v.constants) and len(names) < 2:
        raise UserError("fitting shared constants leave one setting out needs at least two settings: name more")
    sq = (g["predicted"] - g[column]) ** 2
    err = sq.groupby([g["combo"], g["setting"]]).sum().unstack().reindex(index=range(len(combos)), columns=names)
    if err.isna().any().any():
        raise UserError("the grid lacks some (constants, setting): compute it with grid_predictions on these settings")
    if len(v.constants):
        consts = loso_constants(err, v)
    else:
        consts = pd.DataFrame({"setting": names})
    chosen = {row["setting"]: combos[tuple(float(row[k]) for k in v.constants)] for _, row in consts.iterrows()}
    keep = g["combo"] == g["setting"].map(chosen)
    return g[keep][["agent", "setting", "predicted", column]].reset_index(drop=True), consts


def score(grid: pd.DataFrame, target: pd.DataFrame, ceilings: pd.Series, column: str = "observed",
          kinds=None) -> tuple[pd.DataFrame, dict]:
    """Every composition of ``kinds`` (default all) fitted and scored leave one setting out
    against ``target[column]``: one row per (model, setting) with R² across agents, its 95%
    interval (agents resampled), the noise ceiling, the means and the constants used; and
    ``pooled`` (model -> R² over every row)."""
    out, pooled = [], {}
    for kind in kinds or COMPOSITIONS:
        d, consts = loso_predictions(grid, target, kind, column)
        pooled[kind] = r2(d["predicted"], d[column])
        v = COMPOSITIONS[kind]
        for setting, g in d.groupby("setting", sort=False):
            lo, hi = r2_interval(g["predicted"].to_numpy(), g[column].to_numpy())
            c = consts.set_index("setting").loc[setting]
            out.append({"model": kind, "setting": setting, "r2": r2(g["predicted"], g[column]), "r2_lo": lo,
                        "r2_hi": hi, "noise_ceiling": float(ceilings.get(setting, np.nan)),
                        "target_mean": g[column].mean(), "predicted_mean": g["predicted"].mean(),
                        "constants": ", ".join(f"{k} {c[k] + 0.0:.3g}" for k in v.constants)})
    return pd.DataFrame(out), pooled
