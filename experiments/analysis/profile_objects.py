"""The probe objects of a channel profile: which single-object settings it measures, under
which column names (shared by the rollout profile, ``predict``, and the network readout,
``readout``)."""

from __future__ import annotations

from gmg.training.objects import parse_object

CHANNELS = ("red", "green", "blue")
PROFILE_COLUMNS = ("E_red", "E_green", "E_blue", "E_goal", "E_gem", "E0")  # one per profile setting, in order
PULL_COLUMNS = ("b_red", "b_green", "b_blue", "b_goal", "b_gem", "b0")  # the walk model's pull toward each


def profile_settings(goal: str) -> list[str]:
    """The single-object settings a profile needs (on the agents' background)."""
    g = parse_object(goal)
    colour = g.name.rsplit("_", 1)[0]
    return [*(f"train:{c}_line" for c in CHANNELS), f"train:{colour}_line", f"train:{colour}_gem",
            "train:invisible_line"]
