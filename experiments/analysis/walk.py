"""The walk model: an agent as a walker on the evaluation mazes, pulled toward what it sees.

From a cell the walker steps to a free neighbour with probability proportional to
``exp(sum_j pull_j * toward_j)``, where ``toward_j`` is +1 if the step shortens the maze
distance to object ``j`` and -1 if it lengthens it. A pull of 0 is a blind random walk: it
still reaches an object by chance, so chance encounters and the geometry of each level (which
object is nearer, which lies on the way to the other) come with the model instead of being
fitted. Everything is exact: a Markov chain on the W x W cells of each level, solved with
torch, no sampling.

- ``efficiency_curve``: mean path efficiency over the levels (shortest path / steps if the
  object is reached within the timeout, else 0) of a walker with one object and pull b;
  monotone in b, so an agent's measured efficiency toward an object alone gives its pull
  (``pull_from_efficiency``).
- ``first_hit``: for two objects and their pulls, the probability, level by level, that
  each is reached first; ``preference``: its mean over the levels, the predicted preference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gmg.training.env import TIMEOUT, WORLD_DIM, EvaluationLevels, level_bank
from gmg.training.levels import distance_map, neighbour_table, path_efficiency, start_cell


@dataclass(frozen=True)
class Mazes:
    """The evaluation levels' geometry for ``n_objects`` objects (as ``gmg evaluate`` plays them)."""

    free: torch.Tensor  # bool (N, S): walkable cells, S = W * W
    objects: torch.Tensor  # int64 (N, K): flat cell of obj1..objK
    path_len: torch.Tensor  # int64 (N, K): shortest path from the start to each object
    dist: torch.Tensor  # int64 (N, K, S): maze distance from each object to every cell
    world_dim: int

    def __len__(self) -> int:
        return self.free.shape[0]


def mazes(n_levels: int, n_objects: int, world_dim: int = WORLD_DIM, levels: str = "hashed") -> Mazes:
    """The first ``n_levels`` evaluation levels of the level source ``levels`` with ``n_objects``
    objects: the level bank ``MazeEnv`` plays on ``EvaluationLevels`` (pass the population's
    ``TrainedOn.levels``, as ``gmg evaluate`` does).

    obj1 sits on the same cell with one object or two, so single-object episodes and
    two-object ones share their mazes level by level."""
    lv = level_bank(EvaluationLevels(n=n_levels, levels=levels), world_dim, n_objects, torch.device("cpu"), levels)
    n = len(lv)
    dist = torch.stack([distance_map(lv.free, lv.objects[:, k]).view(n, -1) for k in range(n_objects)], 1)
    return Mazes(lv.free.view(n, -1), lv.objects, lv.path_len, dist, world_dim)


def transitions(m: Mazes, pulls: torch.Tensor) -> torch.Tensor:
    """(N, S, S) step probabilities of walkers with ``pulls`` toward each object: (N, K), or
    (N, K, S) for pulls that depend on the cell the walker steps from."""
    n, s = m.free.shape
    nb = neighbour_table(m.world_dim)  # (S, 4), -1 off-world
    to = nb.clamp(min=0)
    ok = (nb >= 0)[None] & m.free[:, to]  # (N, S, 4)
    d = m.dist.to(torch.float64)
    toward = d[:, :, :, None] - d[:, :, to]  # (N, K, S, 4): +1 closer, -1 farther
    b = pulls.to(torch.float64)
    b = b[:, :, None, None] if b.dim() == 2 else b[..., None]
    logits = (b * toward.clamp(-1, 1)).sum(1)
    p = torch.softmax(logits.masked_fill(~ok, -torch.inf), -1).nan_to_num(0.0)  # walls: no moves
    return torch.zeros(n, s, s, dtype=torch.float64).scatter_add_(2, to[None].expand(n, s, 4), p)


def first_hit(m: Mazes, pulls: torch.Tensor) -> torch.Tensor:
    """(N, K): probability that each object is the first one reached, from the start cell.

    ``pulls`` (N, K), (K,) or per cell (N, K, S). Solves ``(I - Q) h = r`` on each level
    (absorbing objects)."""
    n, s = m.free.shape
    k = m.objects.shape[1]
    pulls = torch.as_tensor(pulls, dtype=torch.float64)
    pulls = pulls if pulls.dim() == 3 else pulls.expand(n, k)
    absorbing = ~m.free.clone()
    absorbing.scatter_(1, m.objects, True)
    step = torch.where(absorbing[:, :, None], 0.0, transitions(m, pulls))
    a = torch.eye(s, dtype=torch.float64).expand(n, s, s) - step
    r = torch.zeros(n, s, k, dtype=torch.float64)
    r.scatter_(1, m.objects[:, None, :], torch.ones(n, 1, k, dtype=torch.float64))  # r[level, obj_j, j] = 1
    return torch.linalg.solve(a, r)[:, start_cell(m.world_dim), :]


def preference(m: Mazes, pulls, max_chains: int = 32_000) -> torch.Tensor:
    """(R,): for each of R walkers, the probability that it reaches obj1 before obj2 (of the
    two, ``first_hit`` normalised), averaged over ``m``'s levels. ``pulls``: (R, K), or per level
    and cell (R, N, K, S). At most ``max_chains`` levels' chains are solved at once."""
    pulls = torch.as_tensor(pulls, dtype=torch.float64)
    n = len(m)
    per = max(1, max_chains // n)
    out = []
    for i in range(0, pulls.shape[0], per):
        b = pulls[i:i + per]
        k = b.shape[0]
        every = Mazes(m.free.repeat(k, 1), m.objects.repeat(k, 1), m.path_len.repeat(k, 1), m.dist.repeat(k, 1, 1),
                      m.world_dim)
        hit = first_hit(every, b.repeat_interleave(n, 0) if b.dim() == 2 else b.reshape(k * n, *b.shape[2:]))
        hit = hit.view(k, n, -1)
        out.append((hit[..., 0] / hit[..., :2].sum(-1).clamp_min(1e-12)).mean(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def efficiency_curve(m: Mazes, pulls: np.ndarray | torch.Tensor, timeout: int = TIMEOUT) -> np.ndarray:
    """Mean path efficiency over ``m``'s levels (one object) of a walker with each pull:
    E[shortest / T, 0 if T > timeout], T the steps to the object."""
    n, s = m.free.shape
    target = m.objects[:, 0]
    rows = torch.arange(n)
    shortest = m.path_len[:, 0]
    out = []
    for b in torch.as_tensor(pulls, dtype=torch.float64).reshape(-1):
        step = transitions(m, b.expand(n, 1))
        step[rows, target] = 0.0  # absorbed
        here = torch.zeros(n, s, dtype=torch.float64)
        here[:, start_cell(m.world_dim)] = 1.0
        eff = torch.zeros(n, dtype=torch.float64)
        for t in range(1, timeout + 1):
            here = torch.bmm(here[:, None, :], step)[:, 0]
            eff += here[rows, target] * path_efficiency(shortest, t)
            here[rows, target] = 0.0
            if float(here.sum(1).max()) < 1e-9:  # every level's walker has arrived
                break
        out.append(float(eff.mean()))
    return np.asarray(out)


PULL_GRID = np.linspace(-2.0, 8.0, 201)  # pulls past 8 reach the object on a shortest path every time


def pull_from_efficiency(efficiency, curve: np.ndarray, grid: np.ndarray = PULL_GRID) -> np.ndarray:
    """The pull whose walker has the measured mean ``efficiency`` (interpolated on the
    monotone ``curve`` of ``efficiency_curve(m, grid)``; clipped to the grid's ends)."""
    return np.interp(np.asarray(efficiency, dtype=float), curve, grid)
