"""The probe objects of a channel profile: which single-object settings it measures, under
which column names (shared by the rollout profile, ``predict``, and the network readout,
``readout``), and the channel rule that builds any object's value from them (``predict``'s
models and ``contest``)."""

from __future__ import annotations

import pandas as pd

from gmg.training.errors import UserError
from gmg.training.objects import parse_object

CHANNELS = ("red", "green", "blue")
PROFILE_COLUMNS = ("E_red", "E_green", "E_blue", "E_goal", "E_gem", "E0")  # one per profile setting, in order
PULL_COLUMNS = ("b_red", "b_green", "b_blue", "b_goal", "b_gem", "b0")  # the walk model's pull toward each
FLOOR_STRENGTH = 1e-3  # an object no better than an invisible one: it attracts by chance encounters only
COMBINE = "max"  # how a colour's channels add up to a pull: "max" (its best channel) or "add" (their sum)


def profile_settings(goal: str) -> list[str]:
    """The single-object settings a profile needs (on the agents' background)."""
    g = parse_object(goal)
    colour = g.name.rsplit("_", 1)[0]
    return [*(f"train:{c}_line" for c in CHANNELS), f"train:{colour}_line", f"train:{colour}_gem",
            "train:invisible_line"]


def check_combine(combine: str) -> None:
    if combine not in ("max", "add"):
        raise UserError(f"unknown channel combination {combine!r}: use max or add")


def above_floor(row: pd.Series | dict, cols: tuple[str, ...], obj: str, goal: str, combine: str = "add",
                clip: bool = False) -> float | None:
    """An object's value above the floor from a profile row, the one rule of both models:
    ``cols`` names the row's red, green, blue, goal line, goal gem and floor columns
    (``PROFILE_COLUMNS`` or ``PULL_COLUMNS``). The goal's own colour was measured, as a line
    and as a gem; any other colour comes from its channels (``combine``: their sum or their
    maximum, each weighted by ``rgb_k / 255``; ``clip``: a channel below the floor counts 0), a
    gem scaled by the goal gem's value over the goal line's. None for an invisible object."""
    o, g = parse_object(obj), parse_object(goal)
    if o.rgb is None:
        return None
    red, green, blue, line, gem = (float(row[c]) - float(row[cols[5]]) for c in cols[:5])
    cut = (lambda x: max(x, 0.0)) if clip else (lambda x: x)
    if o.rgb == g.rgb:
        return line if o.shape == "line" else gem
    parts = [c / 255 * cut(v) for c, v in zip(o.rgb, (red, green, blue))]
    a = max(parts) if combine == "max" else sum(parts)
    if o.shape == "gem":
        a *= cut(gem) / line if abs(line) > 1e-9 else 1.0
    return a


def strength(p: pd.Series | dict, obj: str, goal: str = "yellow_line") -> float:
    """An object's attraction above the floor for the agent of profile row ``p`` (see the
    module docstring; channels summed); at least ``FLOOR_STRENGTH``."""
    a = above_floor(p, PROFILE_COLUMNS, obj, goal)
    return FLOOR_STRENGTH if a is None else max(a, FLOOR_STRENGTH)


def pull(b: pd.Series | dict, obj: str, goal: str = "yellow_line", combine: str = COMBINE) -> float:
    """An object's pull above the floor for the agent of pull-profile row ``b`` (``pull_profile``),
    by ``strength``'s rule (``above_floor``) with ``combine`` and channels below the floor at 0;
    0 for an invisible object or one no better than it."""
    a = above_floor(b, PULL_COLUMNS, obj, goal, combine, clip=True)
    return 0.0 if a is None else max(a, 0.0)
