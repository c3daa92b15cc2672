"""Can an agent's channel be read off its untrained network? Features of the network its
seed initialises (before any training) against what the trained agent does, cross-validated
across agents.

``untrained_features``: per agent, its initial network rebuilt from the seed
(``gmg.training.ppo.initial_model``, exactly what training started from): the first conv
layer's filter mass per input channel (share of sum |W| on R, G, B), and the untrained
network's response to its goal seen as a pure red vs a pure green line (mean value and
the total-variation distance between its action distributions, on the first frames of
evaluation levels). ``predict`` fits a linear model of a target (say a preference) on them
with leave-one-agent-out (or leave-one-initialisation-out) predictions, the out-of-sample R² with a bootstrap 95% CI over
agents and a permutation p-value. A null result is a result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gmg.experiments.population import Population, population
from gmg.training.config import config_from_dict
from gmg.training.errors import UserError
from gmg.training.ppo import initial_model

FEATURES = ("filter_share_r", "filter_share_g", "filter_share_b", "value_red_minus_green", "tv_red_green")


def untrained_network(ref) -> torch.nn.Module:
    """The network ``ref``'s seed initialised before training (from its meta.json config; an
    agent imported from the original study: its imported ``model_0.pth``, refused without one)."""
    from gmg.experiments.original.agents import initial_network, is_original

    if is_original(ref.meta):
        return initial_network(ref.path).eval()
    return initial_model(config_from_dict(ref.meta["train"])).eval()


@torch.inference_mode()
def untrained_features(agents: Population | str | list, n_frames: int = 32) -> pd.DataFrame:
    """One row per agent: ``FEATURES`` of its untrained network."""
    from gmg.experiments.reliance import first_frames

    agents = population(agents)
    red = first_frames(agents.trained_on, n_frames, objects=("red_line",))
    green = first_frames(agents.trained_on, n_frames, objects=("green_line",))
    rows = []
    for ref in agents:
        net = untrained_network(ref)
        w = net.blocks[0].conv.weight.abs().sum(dim=(0, 2, 3))
        share = (w / w.sum()).tolist()
        (lr, vr), (lg, vg) = net(red), net(green)
        tv = 0.5 * (torch.softmax(lr, -1) - torch.softmax(lg, -1)).abs().sum(-1).mean()
        rows.append({"agent": ref.agent_id, "filter_share_r": share[0], "filter_share_g": share[1],
                     "filter_share_b": share[2], "value_red_minus_green": float((vr - vg).mean()),
                     "tv_red_green": float(tv)})
    return pd.DataFrame(rows)


def predict(features: pd.DataFrame, target: pd.Series, columns=FEATURES, n_boot: int = 2000,
            n_permutations: int = 999, seed: int = 0, groups: pd.Series | None = None) -> dict:
    """Out-of-sample linear predictions of ``target`` (indexed by agent) from ``columns``:
    leave-one-agent-out, or with ``groups`` (agent -> group, say its initialisation seed)
    leave-one-group-out, so that no agent is predicted by a fit that saw its own initial
    network. The permutation test shuffles the targets across agents and refits.

    Returns {"r2_cv", "ci_low", "ci_high", "p_permutation", "n", "predictions" (agent, observed, predicted)}."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

    d = features.set_index("agent")[list(columns)].join(target.rename("target"), how="inner").dropna()
    if len(d) < 5:
        raise UserError(f"predicting from the untrained network needs at least 5 agents with a target, got {len(d)}")
    X, y = d[list(columns)].to_numpy(float), d["target"].to_numpy(float)
    g = d.index.to_numpy() if groups is None else groups.reindex(d.index).to_numpy()
    if pd.isna(g).any() or len(set(g)) < 3:
        raise UserError("leave-one-group-out needs a group for every agent and at least 3 groups")

    def cv(values):
        return cross_val_predict(LinearRegression(), X, values, cv=LeaveOneGroupOut(), groups=g)

    def r2(obs, fit):
        tot = ((obs - obs.mean()) ** 2).sum()
        return 1 - ((obs - fit) ** 2).sum() / tot if tot > 0 else np.nan

    pred = cv(y)
    score = r2(y, pred)
    rng = np.random.default_rng(seed)
    boots = [r2(y[i], pred[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))]
    null = [r2(perm, cv(perm)) for perm in (rng.permutation(y) for _ in range(n_permutations))]
    p = (1 + sum(x >= score for x in null)) / (1 + n_permutations)
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return {"r2_cv": float(score), "ci_low": float(lo), "ci_high": float(hi), "p_permutation": float(p),
            "n": int(len(y)), "predictions": pd.DataFrame({"agent": d.index, "observed": y, "predicted": pred})}
