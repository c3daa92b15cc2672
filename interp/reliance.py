"""Channel-reliance measures: which RGB channel does an agent see its goal through?

Pure functions over episode records and observations; running them over a population
and storing the result is ``gmg.experiments.reliance``. Three kinds of evidence per agent:

1. **Behaviour** in the training setting under each of ``CONDITIONS`` (no edit, each
   channel ablated, each channel isolated): success rate, mean episode length and mean
   *path efficiency*, where an episode's efficiency is ``shortest path / steps taken`` if
   it reached the goal within the timeout and 0 otherwise (1 = perfect; a uniformly random
   policy scores 0.09 on the 1000 evaluation levels of the 5x5 maze, reaching 87%).
2. **Policy sensitivity**: mean total-variation distance between the clean action
   distribution and the one with channel c zero-ablated, over a batch of observations.
3. **Attribution shares**: each channel's share of the absolute Integrated-Gradients
   attribution of the chosen action's logit (``gmg.interp.attribution``).

The one summary score (used by the regression)::

    green_vs_red = (E[isolate:g] - E[isolate:r]) / (E[isolate:g] + E[isolate:r])

with E the mean path efficiency. It lies in [-1, 1]: +1 means the agent still navigates
to its goal seeing only the green channel and is helpless seeing only red (a yellow
goal detected through green), -1 the reverse, 0 equal; NaN when both are 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from gmg.interp.interventions import Ablate, parse_intervention
from gmg.interp.patching import total_variation
from gmg.training.levels import path_efficiency

CONDITIONS = ("none", "ablate:r", "ablate:g", "ablate:b", "isolate:r", "isolate:g", "isolate:b")
CHANNEL_NAMES = ("r", "g", "b")


def column_prefix(condition: str) -> str:
    """``"isolate:g"`` -> ``"isolate_g"`` (the column prefix in the ``reliance`` table)."""
    return condition.replace(":", "_").replace("=", "_")


def summarise_episodes(reached: np.ndarray, length: np.ndarray, path_len: np.ndarray) -> dict[str, float]:
    """Success rate, mean length, mean path efficiency and timeout rate of N episodes.

    ``reached``: (N,) 0 timeout / 1 goal (obj1) / 2 other object; ``length`` (N,) steps;
    ``path_len`` (N,) shortest path from the start to the goal.
    """
    reached = np.asarray(reached)
    if reached.size == 0:
        raise ValueError("no episodes to summarise")
    goal = reached == 1
    return {
        "success": float(goal.mean()),
        "mean_length": float(np.asarray(length, dtype=np.float64).mean()),
        "efficiency": float(path_efficiency(path_len, length, goal).mean()),
        "timeout": float((reached == 0).mean()),
    }


def green_vs_red(efficiency_isolate_g: float, efficiency_isolate_r: float) -> float:
    """The summary score in [-1, 1] (see the module docstring); NaN when both are 0."""
    g, r = float(efficiency_isolate_g), float(efficiency_isolate_r)
    if g < 0 or r < 0:
        raise ValueError(f"efficiencies must be non-negative, got g={g}, r={r}")
    return (g - r) / (g + r) if g + r > 0 else math.nan


def normalise(values: Sequence[float]) -> np.ndarray:
    """Non-negative values scaled to sum to 1 (all zeros stay zeros)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    s = v.sum()
    return v / s if s > 0 else np.zeros_like(v)


@torch.no_grad()
def policy_sensitivity(model: nn.Module, obs: torch.Tensor, value: str | float = "zero") -> np.ndarray:
    """(3,) mean total variation between clean and channel-ablated action distributions.

    ``obs``: uint8 (B, H, W, 3) or float (B, 3, H, W). Entry c is how much the policy
    moves when channel c (r, g, b) is ablated to ``value``.
    """
    clean = model(obs)[0]
    out = []
    for c in CHANNEL_NAMES:
        with Ablate(c, value, reference=obs if value == "mean" else None)(model):
            edited = model(obs)[0]
        out.append(float(total_variation(clean, edited).mean()))
    return np.array(out)


def profile_row(behaviour: dict[str, dict[str, float]], sensitivity: Sequence[float], attribution: Sequence[float]) -> dict:
    """One wide row of the ``reliance`` table from the three kinds of evidence.

    ``behaviour``: condition -> :func:`summarise_episodes` dict for every condition in
    ``CONDITIONS``; ``sensitivity`` and ``attribution``: (3,) per channel r, g, b.
    Columns: ``{condition}_{success,mean_length,efficiency,timeout}`` (condition with ``_``
    for ``:``), ``drop_{c}`` = 1 - E[ablate:c] / E[none] (behavioural reliance on c, NaN if
    E[none] = 0), ``tv_{c}``, ``tv_share_{c}``, ``attr_share_{c}``, and ``green_vs_red``.
    """
    missing = [c for c in CONDITIONS if c not in behaviour]
    if missing:
        raise ValueError(f"behaviour lacks conditions {missing}")
    row: dict[str, float] = {}
    for cond in CONDITIONS:
        for k, v in behaviour[cond].items():
            row[f"{column_prefix(cond)}_{k}"] = float(v)
    base = behaviour["none"]["efficiency"]
    tv_share = normalise(sensitivity)
    attr_share = normalise(attribution)
    for i, c in enumerate(CHANNEL_NAMES):
        row[f"drop_{c}"] = 1.0 - behaviour[f"ablate:{c}"]["efficiency"] / base if base > 0 else math.nan
        row[f"tv_{c}"] = float(sensitivity[i])
        row[f"tv_share_{c}"] = float(tv_share[i])
        row[f"attr_share_{c}"] = float(attr_share[i])
    row["green_vs_red"] = green_vs_red(behaviour["isolate:g"]["efficiency"], behaviour["isolate:r"]["efficiency"])
    return row


def condition_interventions() -> dict[str, object]:
    """Condition name -> intervention object, for every entry of ``CONDITIONS``."""
    return {c: parse_intervention(c) for c in CONDITIONS}
