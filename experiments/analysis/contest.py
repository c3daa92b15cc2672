"""The contest model (issue 39, item 2): the walk model's walker, each object's pull in a pair
derived from the pulls measured alone through a handful of shared constants, fitted leave one
setting out.

The state-by-state readout (``gmg.experiments.analysis.competition``, docs/analysis.md) found
that pulls do not add: beside another object an object keeps 0.6-0.8 of its pull, best
described as its own pull less about a fifth of the partner's; the yellow gem keeps only ~0.3
beside a goal-coloured line; far from both objects obj2's cell loses pull. The variants
(``VARIANTS``) put each finding into the walker, nested, every pull in a pair at least 0:

- ``walk``: the walk model itself (``profile_objects.pull``: a mixed colour from its best channel);
- ``measured``: the same walker, every object the channel rule would build (a mixed colour, a
  gem of another colour than the goal's: ``predict.measured_objects``) measured alone instead;
- ``shrink``: in a pair each pull is ``alpha`` times its pull alone (one constant);
- ``compete``: ``alpha b_i - gamma b_j``, the readout's subtraction (two);
- ``gate``: ``alpha b_i - (gamma + delta G) b_j``, ``G`` = 1 where both objects show every
  channel of the goal's colour (``goal_gate``): two goal-coloured objects compete for one read-out (three);
- ``near``: ``compete`` beyond one step of either object, the pulls alone within it (pulls that
  depend on the walker's cell: ``walk.first_hit`` with per-cell pulls).

**Fitting, leave one setting out** (``loso``): each variant's constants run over a grid
(``Variant.grid``); the squared error of the predictions against the observed preferences is
computed once per (constants, setting), and each setting is predicted with the constants that
minimise the error summed over the *other* settings, so a setting's own data never choose the
constants it is scored with. While fitting, a walker's preference for pulls off the grid of
``PairTable`` is interpolated (bicubic; the table's nodes are exact chains); the predictions
scored are solved exactly (``walk.preference``) at the constants chosen.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.profile_objects import pull
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.analysis.walk import Mazes, preference
from gmg.experiments.settings import parse_setting
from gmg.training.errors import UserError
from gmg.training.objects import parse_object

ALPHA = np.round(np.arange(0.1, 1.5001, 0.025), 4)  # a pull kept in a pair: none to half again
GAMMA = np.round(np.arange(-0.3, 0.5001, 0.05), 4)  # a share of the partner's pull: given (<0) or taken (>0)


@dataclass(frozen=True)
class Variant:
    """A way to derive an object's pull in a pair from the pulls alone: the constants' names
    (of ``alpha``, ``gamma``, ``delta``) with the values searched, whether objects the channel
    rule would build are measured alone, and whether the constants act only beyond one step of
    either object (``near``)."""

    constants: tuple[str, ...] = ()
    grid: tuple[np.ndarray, ...] = ()
    measured: bool = True
    near: bool = False

    def combos(self) -> np.ndarray:
        """(C, n_constants): every combination of the grid's values (one empty row without constants)."""
        c = list(itertools.product(*self.grid))
        return np.array(c, dtype=float).reshape(len(c), len(self.constants))


VARIANTS = {
    "walk": Variant(measured=False),
    "measured": Variant(),
    "shrink": Variant(("alpha",), (ALPHA,)),
    "compete": Variant(("alpha", "gamma"), (ALPHA, GAMMA)),
    "gate": Variant(("alpha", "gamma", "delta"), (ALPHA, GAMMA, GAMMA)),
    # exact chains at every grid point (no table for per-cell pulls): a coarse grid
    "near": Variant(("alpha", "gamma"), (np.round(np.arange(0.1, 0.601, 0.05), 2), np.array([0.0, 0.1])), near=True),
}
CONTEST = "shrink"  # the variant ``gmg predict`` reports beside the walk model (docs/analysis.md, issue 39)


def own_pull(b: pd.Series | dict, obj: str, goal: str, measured: bool = True) -> float:
    """An object's pull alone above the floor for the agent of pull-profile row ``b``: measured
    (``b_OBJ`` less ``b0``, at least 0) where the row holds it and ``measured``, else the walk
    model's ``profile_objects.pull`` (channels)."""
    o = parse_object(obj)
    col = f"b_{o.name}"
    if measured and o.rgb is not None and col in b and pd.notna(b[col]):
        return max(float(b[col]) - float(b["b0"]), 0.0)
    return pull(b, obj, goal)


def goal_gate(obj1: str, obj2: str, goal: str) -> float:
    """1 where both objects show every channel of the goal's colour (yellow and white against a
    yellow goal), else 0."""
    g = parse_object(goal).rgb or (0, 0, 0)

    def full(obj: str) -> bool:
        rgb = parse_object(obj).rgb
        return rgb is not None and any(rgb) and all(c >= k for c, k in zip(rgb, g) if k)

    return float(full(obj1) and full(obj2))


def contest_rows(pulls: pd.DataFrame, settings: list[str], goal: str) -> pd.DataFrame:
    """One row per (agent, setting) of a pull profile (``predict.pull_profile``, with ``b_OBJ``
    for measured objects): the walk model's pulls ``b1``, ``b2``, the pulls with measured objects
    ``m1``, ``m2``, and ``gate``."""
    rows = []
    for setting in settings:
        s = parse_setting(setting)
        gate = goal_gate(s.obj1, s.obj2, goal)
        for _, b in pulls.iterrows():
            rows.append({"agent": int(b["agent"]), "setting": setting,
                         "b1": pull(b, s.obj1, goal), "b2": pull(b, s.obj2, goal),
                         "m1": own_pull(b, s.obj1, goal), "m2": own_pull(b, s.obj2, goal), "gate": gate})
    return pd.DataFrame(rows)


def paired(v: Variant, rows: pd.DataFrame, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pulls in the pair, (C, R) each, of ``rows`` under each constant set of ``c`` (C, n)."""
    b1, b2 = (rows[["m1", "m2"]] if v.measured else rows[["b1", "b2"]]).to_numpy(dtype=float).T
    named = dict(zip(v.constants, np.atleast_2d(c).T))
    alpha = named.get("alpha", np.ones(len(c)))[:, None]
    gamma = named.get("gamma", np.zeros(len(c)))[:, None] + named.get("delta", np.zeros(len(c)))[:, None] * rows[
        "gate"].to_numpy(dtype=float)
    return np.maximum(alpha * b1 - gamma * b2, 0.0), np.maximum(alpha * b2 - gamma * b1, 0.0)


TABLE_GRID = np.round(np.arange(0.0, 5.0001, 0.1), 4)  # bicubic on this grid: within 2e-4 of the chains


@dataclass(frozen=True)
class PairTable:
    """The walker's preference for obj1 on a set of mazes, exact at every pair of ``grid``'s pulls."""

    grid: np.ndarray
    p: np.ndarray  # (G, G): p[i, j] = preference with pulls (grid[i], grid[j])

    def __call__(self, b1, b2) -> np.ndarray:
        from scipy.interpolate import RectBivariateSpline

        spline = RectBivariateSpline(self.grid, self.grid, self.p, kx=3, ky=3)
        lo, hi = self.grid[0], self.grid[-1]
        b1, b2 = np.broadcast_arrays(np.asarray(b1, float), np.asarray(b2, float))
        return spline.ev(b1.clip(lo, hi), b2.clip(lo, hi)).reshape(b1.shape).clip(0, 1)


def pair_table(two: Mazes, grid: np.ndarray = TABLE_GRID) -> PairTable:
    """``PairTable`` of the two-object mazes ``two`` (every pull pair solved exactly)."""
    b = torch.tensor(list(itertools.product(grid, grid)), dtype=torch.float64)
    return PairTable(grid, preference(two, b).numpy().reshape(len(grid), len(grid)))


def cell_pulls(two: Mazes, own: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """(R, N, 2, S) per-cell pulls for ``near``: ``own`` (R, 2) at cells within one step of
    either object of each level of ``two``, ``pair`` (R, 2) elsewhere."""
    near = (two.dist.min(1).values <= 1)[None, :, None, :]  # (1, N, 1, S)
    return torch.where(near, own[:, None, :, None], pair[:, None, :, None])


def exact(v: Variant, rows: pd.DataFrame, c: np.ndarray, two: Mazes) -> np.ndarray:
    """(R,): the preferences of ``rows`` under one constant set ``c``, solved exactly on ``two``."""
    p1, p2 = paired(v, rows, np.atleast_2d(c) if len(v.constants) else np.zeros((1, 0)))
    pair = torch.tensor(np.stack([p1[0], p2[0]], -1))
    if v.near:  # per-cell pulls, a block of walkers at a time: (R, N, 2, S) for all would be large
        own = torch.tensor((rows[["m1", "m2"]] if v.measured else rows[["b1", "b2"]]).to_numpy(dtype=float))
        return torch.cat([preference(two, cell_pulls(two, own[i:i + 32], pair[i:i + 32]))
                          for i in range(0, len(own), 32)]).numpy()
    return preference(two, pair).numpy()


def errors(v: Variant, rows: pd.DataFrame, observed: np.ndarray, table: PairTable | None, two: Mazes | None,
           chunk: int = 512) -> pd.DataFrame:
    """(C, settings): the squared error summed over each setting's agents for every constant set
    of ``v.combos()`` (``table``'s interpolation, or exact chains on ``two`` for ``near``)."""
    c = v.combos()
    setting = rows["setting"].to_numpy()
    names = list(dict.fromkeys(setting))
    onehot = (setting[:, None] == np.array(names)[None]).astype(float)  # (R, settings)
    out = []
    for i in range(0, len(c), chunk):
        cc = c[i:i + chunk]
        if v.near:
            pred = np.stack([exact(v, rows, x, two) for x in cc])
        else:
            pred = table(*paired(v, rows, cc))
        out.append(((pred - observed[None]) ** 2) @ onehot)
    return pd.DataFrame(np.concatenate(out), columns=names)


def loso_constants(err: pd.DataFrame, v: Variant) -> pd.DataFrame:
    """One row per setting: the constants that minimise the error summed over the other
    settings (``errors``); its own column never enters its choice."""
    c = v.combos()
    total = err.to_numpy().sum(1)
    rows = []
    for setting in err.columns:
        best = int(np.argmin(total - err[setting].to_numpy()))
        rows.append({"setting": setting, **dict(zip(v.constants, c[best]))})
    return pd.DataFrame(rows)


def loso(v: Variant, rows: pd.DataFrame, two: Mazes, table: PairTable | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Leave-one-setting-out predictions of ``rows`` (with ``observed``) under ``v``, solved
    exactly on ``two``, and the constants each setting was predicted with."""
    if len(v.constants) and rows["setting"].nunique() < 2:
        raise UserError("fitting shared constants leave one setting out needs at least two settings: name more")
    if len(v.constants) and not v.near and table is None:
        table = pair_table(two)
    obs = rows["observed"].to_numpy(dtype=float)
    if len(v.constants):
        consts = loso_constants(errors(v, rows, obs, table, two), v)
    else:
        consts = pd.DataFrame({"setting": list(dict.fromkeys(rows["setting"]))})
    pred = pd.Series(np.nan, index=rows.index, name="contest")
    for _, c in consts.iterrows():
        held = rows["setting"] == c["setting"]
        pred[held] = exact(v, rows[held], c[list(v.constants)].to_numpy(dtype=float), two)
    return pred, consts


def score_variants(rows: pd.DataFrame, two: Mazes, ceilings: pd.Series, variants=None,
                   table: PairTable | None = None) -> tuple[pd.DataFrame, dict]:
    """Every variant of ``variants`` (default all) fitted and scored leave one setting out:
    one row per (variant, setting) with R² across agents and its 95% interval (agents
    resampled), the setting's noise ceiling, mean observed and predicted, and the constants
    used; ``pooled`` (variant -> R² over every row). ``rows``: ``contest_rows`` with ``observed``."""
    table = table or pair_table(two)
    out, pooled = [], {}
    for name in variants or VARIANTS:
        v = VARIANTS[name]
        pred, consts = loso(v, rows, two, table)
        d = rows.assign(predicted=pred)
        pooled[name] = r2(d["predicted"], d["observed"])
        for setting, g in d.groupby("setting", sort=False):
            lo, hi = r2_interval(g["predicted"].to_numpy(), g["observed"].to_numpy())
            c = consts.set_index("setting").loc[setting]
            out.append({"model": name, "setting": setting, "r2": r2(g["predicted"], g["observed"]), "r2_lo": lo,
                        "r2_hi": hi, "noise_ceiling": float(ceilings.get(setting, np.nan)),
                        "observed_mean": g["observed"].mean(), "predicted_mean": g["predicted"].mean(),
                        "constants": ", ".join(f"{k} {c[k] + 0.0:.3g}" for k in v.constants)})
    return pd.DataFrame(out), pooled


def predict_contest(pulls: pd.DataFrame, observed: pd.DataFrame, goal: str, two: Mazes,
                    variant: str = CONTEST) -> pd.DataFrame:
    """``gmg predict``'s contest column: rows agent, setting, contest (``variant``'s leave-one-
    setting-out prediction; NaN with fewer than two settings to fit on) and ``contest_constants``.
    ``observed``: rows agent, setting, observed."""
    settings = list(dict.fromkeys(observed["setting"]))
    rows = contest_rows(pulls, settings, goal).merge(observed[["agent", "setting", "observed"]], on=["agent", "setting"])
    v = VARIANTS[variant]
    if len(v.constants) and len(settings) < 2:
        return rows[["agent", "setting"]].assign(contest=np.nan, contest_constants="")
    pred, consts = loso(v, rows, two)
    text = {r["setting"]: ", ".join(f"{k} {r[k] + 0.0:.3g}" for k in v.constants) for _, r in consts.iterrows()}
    return rows[["agent", "setting"]].assign(contest=pred.to_numpy(), contest_constants=rows["setting"].map(text))
