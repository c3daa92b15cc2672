"""How well predicted preferences fit the observed ones across agents: R² and its bootstrap
interval (shared by ``predict``, ``contest``, ``regression`` and the competition study)."""

from __future__ import annotations

import numpy as np


def r2(pred: np.ndarray, obs: np.ndarray) -> float:
    """1 - SS_res / SS_tot of observed values against predictions (can be negative)."""
    pred, obs = np.asarray(pred, float), np.asarray(obs, float)
    ok = np.isfinite(pred) & np.isfinite(obs)
    if ok.sum() < 3:
        return float("nan")
    tot = ((obs[ok] - obs[ok].mean()) ** 2).sum()
    return float(1 - ((obs[ok] - pred[ok]) ** 2).sum() / tot) if tot > 0 else float("nan")


def r2_interval(pred: np.ndarray, obs: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of ``r2`` over agents (pairs resampled); NaN where it is NaN."""
    if not np.isfinite(r2(pred, obs)):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pred), size=(n_boot, len(pred)))
    boots = np.array([r2(pred[i], obs[i]) for i in idx])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return float(lo), float(hi)
