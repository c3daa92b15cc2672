"""Probe datasets: rendered maze scenes with chosen objects at known cells, and labels.

A probe scene is a maze level from a range disjoint from training and evaluation
(``PROBE_START + i``), its walls as generated, and objects placed by *us* on distinct
free cells drawn uniformly (never the start cell, never under the agent), so every free
cell is equally likely to hold the target. Scenes are rendered exactly as the agent sees
them (``gmg.training.render.make_renderer``).

Labels (one row per scene, ``ProbeDataset.labels``):

    present   int 0/1   the target is drawn (absent scenes draw it invisible)
    cell      int       flat cell of the target (row * W + col), -1 when absent
    x, y      float     the target's column and row (row 0 at the top), NaN when absent
    agent     int       the agent's cell
    level     int       the level id
    distractor_cell     flat cell of the first distractor (-1 if none)

    >>> ds = probe_scenes("red_line", 512, seed=0)
    >>> ds.obs.shape, ds.labels["cell"].to_numpy()[:3]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from gmg.training.env import OBS_SIZE, WORLD_DIM
from gmg.training.errors import UserError
from gmg.training.levels import generate, start_cell
from gmg.training.objects import ObjectSpec, parse_object
from gmg.training.render import make_renderer

PROBE_START = 2_000_000_000  # probe level ids start here: disjoint from training and evaluation
AGENT_PLACEMENT = ("start", "random")


class ProbeError(UserError, ValueError):
    """A probe request that cannot be served (unknown layer, empty data, one class)."""


@dataclass
class ProbeDataset:
    """Rendered probe scenes and their labels.

    obs:    uint8 tensor (N, size, size, 3), as the agent sees them.
    labels: DataFrame with N rows (see the module docstring).
    meta:   how the scenes were made (target, distractors, background, seed, ...).
    """

    obs: torch.Tensor
    labels: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def label(self, name: str) -> np.ndarray:
        """One label column as a numpy array of shape (N,)."""
        if name not in self.labels.columns:
            raise ProbeError(f"no label {name!r}; labels are {', '.join(self.labels.columns)}")
        return self.labels[name].to_numpy()


def _choose_cells(available: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """(N, k) distinct cells drawn uniformly among True entries of available (N, C)."""
    keys = torch.rand(available.shape, generator=gen)
    keys = torch.where(available, keys, torch.full_like(keys, 2.0))
    picked = torch.argsort(keys, dim=1)[:, :k]
    ok = available.gather(1, picked).all()
    assert bool(ok), "a level has fewer free cells than objects to place"
    return picked


def probe_scenes(
    target: str | ObjectSpec,
    n: int,
    *,
    distractors: Sequence[str | ObjectSpec] = (),
    p_absent: float = 0.0,
    agent: str = "random",
    world_dim: int = WORLD_DIM,
    size: int = OBS_SIZE,
    background: str = "black",
    seed: int = 0,
    device: torch.device | str = "cpu",
    render: str = "box",
) -> ProbeDataset:
    """Render ``n`` scenes holding ``target`` (and ``distractors``) at known random cells.

    Parameters
    ----------
    target : object name such as ``"red_line"`` or an ``ObjectSpec``.
    n : number of scenes (>= 1).
    distractors : further objects, each on its own free cell (two-object scenes).
    p_absent : fraction of scenes whose target is not drawn (for the ``present`` label).
    agent : ``"random"`` (any free cell left over, random facing) or ``"start"``.
    background : ``"black"``, ``"grey"`` or ``"textured"`` (texture chosen per level).
    render : how scenes are drawn, as the probed agents' frames were (``gmg.training.render.RENDERS``).
    seed : fixes the levels (``PROBE_START + seed * 10_000_000 + i``) and all placements.

    Returns
    -------
    ProbeDataset with obs uint8 (n, size, size, 3).
    """
    if int(n) < 1:
        raise ProbeError(f"a probe dataset needs at least one scene, got n={n}")
    if not 0.0 <= p_absent < 1.0:
        raise ProbeError(f"p_absent must be in [0, 1), got {p_absent}")
    if agent not in AGENT_PLACEMENT:
        raise ProbeError(f"unknown agent placement {agent!r}: use one of {', '.join(AGENT_PLACEMENT)}")
    spec = parse_object(target)
    others = [parse_object(d) for d in distractors]
    device = torch.device(device)
    gen = torch.Generator().manual_seed(int(seed))
    ids = PROBE_START + int(seed) * 10_000_000 + torch.arange(int(n), dtype=torch.int64)
    levels = generate(ids, world_dim=world_dim, n_objects=1)
    w = world_dim
    wall = ~levels.free.reshape(n, w * w)
    start = start_cell(w)

    available = ~wall
    available[:, start] = False
    k = 1 + len(others)
    cells = _choose_cells(available, k, gen)  # (N, k): target first
    if agent == "start":
        agent_cell = torch.full((n,), start, dtype=torch.int64)
    else:
        rest = ~wall
        rest.scatter_(1, cells, False)
        agent_cell = _choose_cells(rest, 1, gen)[:, 0]
    mirrored = torch.rand(n, generator=gen) < 0.5 if agent == "random" else torch.zeros(n, dtype=torch.bool)
    present = torch.rand(n, generator=gen) >= p_absent

    obs = torch.empty(n, size, size, 3, dtype=torch.uint8)
    for is_present in (True, False):
        rows = torch.nonzero(present == is_present).reshape(-1)
        if rows.numel() == 0:
            continue
        shown = spec if is_present else ObjectSpec(spec.shape, None)
        renderer = make_renderer(render, w, size, background, (shown, *others), device)
        bg = renderer.background_frames(levels.background[rows].to(device), levels.bg_offset[rows].to(device))
        static = renderer.static(wall[rows].to(device), cells[rows].to(device), bg)
        obs[rows] = renderer.with_agent(static, agent_cell[rows].to(device), mirrored[rows].to(device)).cpu()

    target_cell = cells[:, 0].numpy()
    pres = present.numpy()
    labels = pd.DataFrame({
        "present": pres.astype(np.int64),
        "cell": np.where(pres, target_cell, -1).astype(np.int64),
        "x": np.where(pres, target_cell % w, np.nan).astype(np.float64),
        "y": np.where(pres, target_cell // w, np.nan).astype(np.float64),
        "agent": agent_cell.numpy().astype(np.int64),
        "level": ids.numpy(),
        "distractor_cell": (cells[:, 1].numpy() if others else np.full(n, -1)).astype(np.int64),
    })
    meta = {
        "target": spec.name, "distractors": [o.name for o in others], "p_absent": float(p_absent),
        "agent": agent, "world_dim": w, "size": size, "background": background, "seed": int(seed), "n": int(n),
    }
    return ProbeDataset(obs=obs, labels=labels, meta=meta)
