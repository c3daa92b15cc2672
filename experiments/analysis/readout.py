"""The channel profile read off the network alone: no rollouts.

For each probe object of ``predict.profile_settings`` (a pure red, green and blue line, the
training goal, its colour as a gem, an invisible line), the first ``n_levels`` evaluation
levels of the population's level source are rendered by its renderer with that object alone
and the mouse in every free cell (``gmg.experiments.vfield.level_frames``). The agent's **heading** toward the object is the
policy's probability of a move that shortens the maze distance to it, averaged over cells
and levels (one forward pass per frame). The headings take the place of the rollout
efficiencies in the profile (``E_red`` ... ``E0``, the invisible line's heading the floor),
so ``profile_objects.strength`` and the ratio model predict preferences from them unchanged. From the
same move probabilities come the walk model's **pulls** (``pull_of_moves``: the log odds of a
move toward the object over a move away), which ``predict.predict_walk`` takes as they are.

**Goal-pixel attributions** (``goal_pixel_shares``): on the frames of the training goal alone,
integrated gradients (captum, black baseline) of the logit of the most probable
distance-shortening action, each RGB channel's share of the absolute attribution over the
goal's own pixels (walls, floor and mouse do not count): which channel of the goal the move
toward it reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.profile_objects import PROFILE_COLUMNS, PULL_COLUMNS, profile_settings
from gmg.training.env import OBS_SIZE, WORLD_DIM, action_deltas
from gmg.training.levels import distance_map


def setting_views(setting, n_levels: int, world_dim: int = WORLD_DIM, size: int = OBS_SIZE, render: str = "box",
                  levels: str = "hashed") -> list[dict]:
    """The rendered views (``level_frames``) of ``setting`` on the first ``n_levels`` evaluation
    levels of the level source ``levels``, drawn by ``render``."""
    from gmg.experiments.vfield import level_frames

    return [level_frames(setting, level, world_dim, size, levels=levels, render=render) for level in range(n_levels)]


def probe_views(goal: str, background: str, n_levels: int, world_dim: int = WORLD_DIM, size: int = OBS_SIZE,
                render: str = "box", levels: str = "hashed") -> dict[str, list[dict]]:
    """Profile column -> the rendered views (``setting_views``) of its single-object setting."""
    from gmg.experiments.settings import resolve_settings

    settings = resolve_settings(profile_settings(goal), background)
    return {col: setting_views(s, n_levels, world_dim, size, render, levels) for col, s in zip(PROFILE_COLUMNS, settings)}


def stacked(views: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames, ``moves_toward``) of ``views`` stacked: computed once, read by every agent's
    ``heading`` and ``pull_reading``."""
    return torch.cat([v["frames"] for v in views]), torch.cat([moves_toward(v) for v in views])


def good_moves(view: dict) -> torch.Tensor:
    """bool (n_cells, n_moves): which of the maze's distinct moves (``action_deltas``, unique)
    shortens the distance from each mouse cell of ``view`` to its (only) object."""
    return moves_toward(view) > 0


def moves_toward(view: dict) -> torch.Tensor:
    """int64 (n_cells, n_moves): +1 where a distinct move shortens the distance from the mouse's
    cell to the (only) object of ``view``, -1 where it lengthens it, 0 where it stays (no-op,
    wall or edge)."""
    free = view["free"][None]
    w = free.shape[-1]
    dist = distance_map(free, view["objects"][:1])[0]
    moves = torch.unique(action_deltas(), dim=0)
    r, c = view["cells"] // w, view["cells"] % w
    rr, cc = r[:, None] + moves[None, :, 0], c[:, None] + moves[None, :, 1]
    inside = (rr >= 0) & (rr < w) & (cc >= 0) & (cc < w)
    rr, cc = rr.clamp(0, w - 1), cc.clamp(0, w - 1)
    to = torch.where(inside & view["free"][rr, cc], dist[rr, cc], dist[r, c][:, None])  # a blocked move stays
    return torch.sign(dist[r, c][:, None] - to) * (to >= 0)


def _move_of_action(device) -> tuple[int, torch.Tensor]:
    """(number of distinct moves, int64 (15,) the move of each action), in ``good_moves``'s order."""
    moves, move_of_action = torch.unique(action_deltas(device), dim=0, return_inverse=True)
    return len(moves), move_of_action


def _move_shares(probs: torch.Tensor) -> torch.Tensor:
    """(n, 15) action probabilities -> (n, n_moves) probability of each distinct move."""
    n_moves, move_of_action = _move_of_action(probs.device)
    return torch.zeros(len(probs), n_moves, device=probs.device).index_add_(1, move_of_action, probs)


def heading(model: torch.nn.Module, probe: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean probability of a distance-shortening move over every frame of ``probe`` (``stacked``)."""
    return pull_reading(model, probe)[0]


def pull_of_moves(shares: torch.Tensor, toward: torch.Tensor) -> float:
    """The walk model's pull (``gmg.experiments.analysis.walk``) that a policy's move shares
    (n, n_moves) imply: among the moves into free cells, a walker with pull b takes each move
    toward the object ``e^{2b}`` times as often as each move away, so per frame
    ``b = (log(p_toward / n_toward) - log(p_away / n_away)) / 2``, averaged over the frames that
    have both kinds of move (no-ops and blocked moves do not count)."""
    good, bad = (toward > 0).float(), (toward < 0).float()
    both = (good.sum(1) > 0) & (bad.sum(1) > 0)
    p_good = (shares * good).sum(1).clamp_min(1e-6) / good.sum(1).clamp_min(1)
    p_bad = (shares * bad).sum(1).clamp_min(1e-6) / bad.sum(1).clamp_min(1)
    return float((0.5 * (p_good.log() - p_bad.log()))[both].mean()) if both.any() else float("nan")


@torch.inference_mode()
def pull_reading(model: torch.nn.Module, probe: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """(heading, pull) of ``model`` on the frames of ``probe`` (``stacked``), one forward pass."""
    from gmg.experiments.forward import CPU_FORWARD_FRAMES

    frames, toward = probe
    device = next(model.parameters()).device
    step = CPU_FORWARD_FRAMES if device.type == "cpu" else len(frames)  # small batches stay in a CPU's cache
    logits = torch.cat([model(f.to(device))[0].float() for f in frames.split(max(step, 1))])
    shares = _move_shares(torch.softmax(logits, -1))
    toward = toward.to(device)
    return float((shares * (toward > 0)).sum(1).mean()), pull_of_moves(shares, toward)


def goal_probe(views: list[dict], max_frames: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames, good moves, the object's pixel masks) of ``views`` (one object each), at most
    ``max_frames`` of them, evenly spaced, so the attribution's cost does not grow with levels."""
    frames, toward = stacked(views)
    good = toward > 0
    masks = torch.cat([v["masks"][..., 0] for v in views])
    keep = torch.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().long()
    return frames[keep], good[keep], masks[keep]


def goal_pixel_shares(model: torch.nn.Module, probe: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                      n_steps: int = 16) -> np.ndarray:
    """(3,) mean share of each RGB channel in the integrated-gradients attribution over the
    object's own pixels (``goal_probe``), of the logit of the most probable move that shortens
    the distance to it; frames whose object pixels hold no attribution are left out."""
    from gmg.interp.attribution import attribute, masked_channel_shares

    frames, good, masks = probe
    device = next(model.parameters()).device
    with torch.inference_mode():
        probs = torch.softmax(model(frames.to(device))[0].float(), -1)
    target = probs.masked_fill(~good.to(device)[:, _move_of_action(device)[1]], -1.0).argmax(-1)
    attr = attribute(model, frames.to(device), "ig", target=target, n_steps=n_steps, internal_batch_size=512)
    shares = masked_channel_shares(attr.attributions, masks.to(device))
    held = shares.sum(1) > 0
    return shares[held].mean(0).cpu().numpy() if held.any() else np.full(3, np.nan)


def goal_attribution(agents, n_levels: int = 50, device: str = "cpu", max_frames: int = 256) -> pd.DataFrame:
    """One row per agent: ``ig_red``, ``ig_green``, ``ig_blue`` (``goal_pixel_shares`` on the
    training goal alone, ``n_levels`` levels) and ``ig_red_minus_green``."""
    from gmg.experiments.population import population
    from gmg.experiments.settings import resolve_settings

    agents = population(agents)
    t = agents.trained_on
    setting = resolve_settings([f"train:{t.goal}"], t.background)[0]
    probe = goal_probe(setting_views(setting, n_levels, t.world_dim, t.size, t.render, t.levels), max_frames)
    rows = []
    for ref in agents:
        r, g, b = goal_pixel_shares(ref.load(device).eval(), probe)
        rows.append({"agent": ref.agent_id, "ig_red": r, "ig_green": g, "ig_blue": b, "ig_red_minus_green": r - g})
    return pd.DataFrame(rows)


def readout_profile(agents, n_levels: int = 50, device: str = "cpu") -> pd.DataFrame:
    """One row per agent: the headings under the profile's column names (see the module
    docstring) and, from the same forward passes, the walk model's pulls under the pull
    profile's (``b_red`` ... ``b0``: ``pull_of_moves``)."""
    from gmg.experiments.population import population

    agents = population(agents)
    t = agents.trained_on
    probes = {col: stacked(v) for col, v in probe_views(t.goal, t.background, n_levels, t.world_dim, t.size,
                                                                 t.render, t.levels).items()}
    rows = []
    for ref in agents:
        model = ref.load(device).eval()
        row = {"agent": ref.agent_id}
        for (col, p), pull_col in zip(probes.items(), PULL_COLUMNS):
            row[col], row[pull_col] = pull_reading(model, p)
        rows.append(row)
    return pd.DataFrame(rows)


def heading_of_random_policy(probe: tuple[torch.Tensor, torch.Tensor]) -> float:
    """The heading of a uniform policy over the 15 actions: the floor a network must beat."""
    frames, toward = probe
    uniform = torch.full((len(frames), len(action_deltas())), 1.0 / len(action_deltas()))
    return float((_move_shares(uniform) * (toward > 0)).sum(1).mean())
