"""The channel profile read off the network alone: no rollouts.

For each probe object of ``predict.profile_settings`` (a pure red, green and blue line, the
training goal, its colour as a gem, an invisible line), the first ``n_levels`` evaluation
levels are rendered with that object alone and the mouse in every free cell
(``gmg.experiments.vfield.level_frames``). The agent's **heading** toward the object is the
policy's probability of a move that shortens the maze distance to it, averaged over cells
and levels (one forward pass per frame). The headings take the place of the rollout
efficiencies in the profile (``E_red`` ... ``E0``, the invisible line's heading the floor),
so ``predict.strength`` and the ratio model predict preferences from them unchanged.
"""

from __future__ import annotations

import pandas as pd
import torch

from gmg.experiments.analysis.profile_objects import PROFILE_COLUMNS, profile_settings
from gmg.training.env import action_deltas
from gmg.training.levels import distance_map


def probe_views(goal: str, background: str, n_levels: int, world_dim: int = 5, size: int = 64) -> dict[str, list[dict]]:
    """Profile column -> the rendered views (``level_frames``) of its single-object setting."""
    from gmg.experiments.settings import resolve_settings
    from gmg.experiments.vfield import level_frames

    settings = resolve_settings(profile_settings(goal), background)
    return {col: [level_frames(s, level, world_dim, size) for level in range(n_levels)]
            for col, s in zip(PROFILE_COLUMNS, settings)}


def good_moves(view: dict) -> torch.Tensor:
    """bool (n_cells, n_moves): which of the maze's distinct moves (``action_deltas``, unique)
    shortens the distance from each mouse cell of ``view`` to its (only) object."""
    free = view["free"][None]
    w = free.shape[-1]
    dist = distance_map(free, view["objects"][:1])[0]
    moves = torch.unique(action_deltas(), dim=0)
    r, c = view["cells"] // w, view["cells"] % w
    rr, cc = r[:, None] + moves[None, :, 0], c[:, None] + moves[None, :, 1]
    inside = (rr >= 0) & (rr < w) & (cc >= 0) & (cc < w)
    rr, cc = rr.clamp(0, w - 1), cc.clamp(0, w - 1)
    to = torch.where(inside & view["free"][rr, cc], dist[rr, cc], dist[r, c][:, None])  # a blocked move stays
    return (to >= 0) & (to < dist[r, c][:, None])


@torch.inference_mode()
def heading(model: torch.nn.Module, views: list[dict]) -> float:
    """Mean probability of a distance-shortening move over every cell of ``views``."""
    moves, move_of_action = torch.unique(action_deltas(), dim=0, return_inverse=True)
    device = next(model.parameters()).device
    frames = torch.cat([v["frames"] for v in views]).to(device)
    good = torch.cat([good_moves(v) for v in views]).float().to(device)
    probs = torch.softmax(model(frames)[0].float(), -1)
    per_move = torch.zeros(len(frames), len(moves), device=device).index_add_(1, move_of_action.to(device), probs)
    return float((per_move * good).sum(1).mean())


def readout_profile(agents, n_levels: int = 50, device: str = "cpu", progress: bool = False) -> pd.DataFrame:
    """One row per agent: the headings under the profile's column names (see the module docstring)."""
    from gmg.experiments.population import population

    agents = population(agents)
    t = agents.trained_on
    views = probe_views(t.goal, t.background, n_levels, t.world_dim, t.size)
    rows = []
    for ref in agents:
        model = ref.load(device).eval()
        rows.append({"agent": ref.agent_id, **{col: heading(model, v) for col, v in views.items()}})
    return pd.DataFrame(rows)


def heading_of_random_policy(views: list[dict]) -> float:
    """The heading of a uniform policy over the 15 actions: the floor a network must beat."""
    moves, move_of_action = torch.unique(action_deltas(), dim=0, return_inverse=True)
    share = torch.bincount(move_of_action, minlength=len(moves)).float() / len(move_of_action)
    good = torch.cat([good_moves(v) for v in views]).float()
    return float((good * share).sum(1).mean())

