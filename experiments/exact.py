"""Exact evaluation: a policy's own Markov chain on each level, solved without sampling.

On a fixed level the frame an agent sees is a function of its cell and of whether the mouse
is mirrored (``MazeEnv.state_frames``), so the policy, under any intervention, defines a
Markov chain on at most 2 W² states ``s = cell * 2 + mirrored``. Each state's 15 action
probabilities fold into five moves (stay, left, right, up, down: ``MOVE_ACTIONS``) whose
successors follow the env's own move rule (``gmg.training.env.move``); the objects absorb.

States are expanded lazily from the start state: round by round, the states not yet drawn
whose expected number of entries (discounted by ``1 - 1/horizon`` per step, from one
linear solve per level) exceeds ``eps`` get their frames rendered and one batched forward
pass, over all levels and agents at once. A state never expanded absorbs whatever reaches
it as *unresolved* mass: every probability below is exact up to ``p_unresolved`` (reported
per level; 0 when every reachable state was drawn). Then the finite-horizon chain runs
``horizon`` steps in float64: P(obj1 first), P(obj2 first), P(timeout), E[steps] (a
timeout counts as the horizon, as in rollouts), E[path_len / steps; object k reached]
(whose sum over levels, over the summed probability of reaching an object, is the sampled
evaluation's path efficiency in expectation) and, optionally, expected visits per cell.
"""

from __future__ import annotations

import torch

from gmg.training.env import NUM_ACTIONS, MazeEnv, action_deltas, move
from gmg.training.levels import path_efficiency, start_cell

MOVE_ACTIONS = (4, 1, 7, 5, 3)  # one action of each distinct move: stay, left, right, up, down
EXACT = "exact"  # the store table of exact rows, one per (agent, setting, intervention, level)
EPS = 1e-4  # expand a state whose expected (discounted) entries exceed this
RENDER_FRAMES = 2048  # frames drawn at once (~25 MB at 64 px)
CHAIN_PAIRS = 4096  # (agent, level) chains solved at once (dense 50 x 50 float64 each)


def move_classes() -> torch.Tensor:
    """float64 (15, 5): which of ``MOVE_ACTIONS``' moves each action makes (by its delta)."""
    d = action_deltas()
    rep = d[list(MOVE_ACTIONS)]
    return (d[:, None, :] == rep[None, :, :]).all(-1).to(torch.float64)


def successors(env: MazeEnv, rows: torch.Tensor | None = None, free: torch.Tensor | None = None) -> torch.Tensor:
    """int64 (L, S, 5): the state after each of ``MOVE_ACTIONS``' moves from every state of bank
    rows ``rows`` (default all), by the env's move rule; ``free`` (bool (L, W, W)) replaces the
    bank's walkable cells (tests build wrong chains with it)."""
    w = env.config.world_dim
    free = (env.bank.free if free is None else free).reshape(env.bank.free.shape[0], -1)
    rows = torch.arange(free.shape[0], device=free.device) if rows is None else rows
    n_l, n_s, n_m = rows.shape[0], 2 * w * w, len(MOVE_ACTIONS)
    s = torch.arange(n_s, device=free.device)
    cell = (s // 2).repeat(n_l * n_m)
    mir = (s % 2 == 1).repeat(n_l * n_m)
    deltas = action_deltas(free.device)[list(MOVE_ACTIONS)].repeat_interleave(n_s, 0).repeat(n_l, 1)
    lv = rows.repeat_interleave(n_s * n_m)
    nc, nm = move(free[lv], cell, mir, deltas, w)
    return (nc * 2 + nm.long()).view(n_l, n_m, n_s).transpose(1, 2).contiguous()


def _entries(probs: torch.Tensor, nxt: torch.Tensor, start: int, gamma: float) -> torch.Tensor:
    """(A, S) expected discounted entries into every state from the start state, states without
    probabilities absorbing: x = e_start (I - gamma M)^-1, one dense solve per chain."""
    a, s, m = probs.shape
    mat = torch.zeros(a, s, s, dtype=torch.float64, device=probs.device)
    mat.scatter_add_(2, nxt, probs)
    eye = torch.eye(s, dtype=torch.float64, device=probs.device)
    rhs = torch.zeros(a, s, 1, dtype=torch.float64, device=probs.device)
    rhs[:, start] = 1.0
    return torch.linalg.solve((eye - gamma * mat).transpose(1, 2), rhs)[..., 0]


def solve(env: MazeEnv, n_groups: int, probs_fn, eps: float = EPS, horizon: int | None = None,
          next_states: torch.Tensor | None = None, occupancy: bool = False, stats: dict | None = None) -> dict:
    """The exact chains of ``n_groups`` policies on every level of ``env``'s bank.

    Chain i is group i // L on bank row i % L (L levels). ``probs_fn(pair, state)`` gives float64
    (n, 15) action probabilities of the (chain, state) pairs asked (sorted by chain, so by group).
    ``next_states`` (int64 (L, S, 5)) replaces the env's move rule (tests build wrong chains with
    it). Returns (n_groups * L,) float64 tensors ``p_obj1``, ``p_obj2``, ``p_timeout``,
    ``p_unresolved``, ``e_steps``, ``e_eff_obj1``, ``e_eff_obj2``, int64 ``frames`` (states
    drawn), ``rounds`` (int) and, with ``occupancy``, ``visits`` (n, W*W): the expected number of
    times t = 0..T (T the episode's length: the start and the cell where it ends included) at which
    the mouse is in each cell (an unresolved state's entry is not counted), so a row sums to
    E[steps] + 1 - p_unresolved, and an object's cell holds the probability of reaching it first.
    """
    dev = env.device
    horizon = int(horizon or env.config.timeout)
    w = env.config.world_dim
    n_l, n_s = env.bank.free.shape[0], 2 * w * w
    n_p = n_groups * n_l
    nxt = successors(env) if next_states is None else next_states.to(dev)
    objs = env.bank.objects  # (L, K)
    obj_state = torch.zeros(objs.shape[1], n_l, n_s, dtype=torch.bool, device=dev)
    for k in range(objs.shape[1]):
        obj_state[k].scatter_(1, objs[:, k : k + 1] * 2, True)
        obj_state[k].scatter_(1, objs[:, k : k + 1] * 2 + 1, True)
    any_obj = obj_state.any(0)
    start = start_cell(w) * 2
    classes = move_classes().to(dev)
    gamma = 1.0 - 1.0 / horizon

    known = torch.zeros(n_p, n_s, dtype=torch.bool, device=dev)
    probs = torch.zeros(n_p, n_s, len(MOVE_ACTIONS), dtype=torch.float64, device=dev)
    frontier = torch.zeros_like(known)
    frontier[:, start] = True
    rounds = 0
    while bool(frontier.any()):
        rounds += 1
        pair, state = frontier.nonzero(as_tuple=True)
        probs[pair, state] = probs_fn(pair, state).to(dev, torch.float64) @ classes
        known |= frontier
        active = torch.unique(pair)
        frontier = torch.zeros_like(known)
        for lo in range(0, active.numel(), CHAIN_PAIRS):
            act = active[lo : lo + CHAIN_PAIRS]
            rows = act % n_l
            x = _entries(probs[act], nxt[rows], start, gamma)
            frontier[act] = ~known[act] & ~any_obj[rows] & (x > eps)

    out = {k: torch.zeros(n_p, dtype=torch.float64, device=dev)
           for k in ("p_obj1", "p_obj2", "p_timeout", "p_unresolved", "e_steps", "e_eff_obj1", "e_eff_obj2")}
    visits = torch.zeros(n_p, w * w, dtype=torch.float64, device=dev) if occupancy else None
    path_len = env.bank.path_len.to(torch.float64)
    for lo in range(0, n_p, CHAIN_PAIRS):
        idx = torch.arange(lo, min(lo + CHAIN_PAIRS, n_p), device=dev)
        rows = idx % n_l
        a = idx.numel()
        pr, nx, live = probs[idx], nxt[rows].view(a, -1), known[idx].to(torch.float64)
        m1 = obj_state[0][rows].to(torch.float64)
        m2 = obj_state[1][rows].to(torch.float64) if objs.shape[1] > 1 else torch.zeros_like(m1)
        mu = (~known[idx] & ~any_obj[rows]).to(torch.float64)
        len1 = path_len[rows, 0]
        len2 = path_len[rows, 1] if objs.shape[1] > 1 else torch.zeros_like(len1)
        dist = torch.zeros(a, n_s, dtype=torch.float64, device=dev)
        dist[:, start] = 1.0
        acc = {k: torch.zeros(a, dtype=torch.float64, device=dev) for k in out}
        occ = torch.zeros(a, n_s, dtype=torch.float64, device=dev) if occupancy else None
        if occ is not None:
            occ += dist
        for t in range(1, horizon + 1):
            new = torch.zeros_like(dist).scatter_add_(1, nx, (dist[:, :, None] * pr).view(a, -1))
            a1, a2, au = (new * m1).sum(1), (new * m2).sum(1), (new * mu).sum(1)
            acc["p_obj1"] += a1
            acc["p_obj2"] += a2
            acc["p_unresolved"] += au
            acc["e_steps"] += t * (a1 + a2 + au)
            acc["e_eff_obj1"] += a1 * path_efficiency(len1, t)
            acc["e_eff_obj2"] += a2 * path_efficiency(len2, t)
            if occ is not None:
                occ += new * (1.0 - mu)
            dist = new * live
            if t % 8 == 0 and float(dist.sum(1).max()) < 1e-15:  # every chain has ended
                break
        left = dist.sum(1)
        acc["p_timeout"] = left
        acc["e_steps"] += horizon * left
        for k in out:
            out[k][idx] = acc[k]
        if occ is not None:
            visits[idx] = occ.view(a, w * w, 2).sum(-1)
    out["frames"] = known.sum(1)
    out["rounds"] = rounds
    if stats is not None:
        stats["frames"] = stats.get("frames", 0) + int(known.sum())
        stats["rounds"] = stats.get("rounds", 0) + rounds
    if visits is not None:
        out["visits"] = visits
    return out


def network_probs(env: MazeEnv, models: list[torch.nn.Module], greedy: bool = False, local: list | None = None,
                  stats: dict | None = None):
    """``probs_fn`` of ``solve`` for ``models`` (group k = model k): each asked state's frame as a
    rollout draws it (``MazeEnv.state_frames``), object-local interventions given the frame's
    object masks, softmax of the logits in float64 (the sampler's distribution), or the argmax's
    one-hot if ``greedy``."""
    from gmg.experiments.forward import forward_groups

    n_l = env.bank.free.shape[0]

    @torch.inference_mode()
    def fn(pair: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        out = []
        for lo in range(0, pair.numel(), RENDER_FRAMES):
            p, s = pair[lo : lo + RENDER_FRAMES], state[lo : lo + RENDER_FRAMES]
            rows = p % n_l
            frames = env.state_frames(rows, s // 2, s % 2 == 1)
            masks = env.object_masks(rows) if local else None
            logits = forward_groups(models, frames, p // n_l, masks, local, stats).double()
            if greedy:
                out.append(torch.nn.functional.one_hot(logits.argmax(1), NUM_ACTIONS).double())
            else:
                out.append(torch.softmax(logits, 1))
        return torch.cat(out)

    return fn


def exact_frame(result: dict, agent_ids: list[int], setting, n_levels: int, path_len: torch.Tensor,
                intervention: str = "none"):
    """The ``exact`` table's rows of a ``solve`` result: one per (agent, level)."""
    import numpy as np
    import pandas as pd

    n = len(agent_ids) * n_levels
    idx = np.arange(n)
    path = path_len.cpu().numpy()[idx % n_levels]
    obj2 = pd.array(path[:, 1], dtype="Int64") if path.shape[1] > 1 else pd.array([pd.NA] * n, dtype="Int64")
    cols = {k: result[k].cpu().numpy() for k in ("p_obj1", "p_obj2", "p_timeout", "p_unresolved", "e_steps",
                                                 "e_eff_obj1", "e_eff_obj2")}
    return pd.DataFrame({
        "agent": np.asarray(agent_ids, dtype=np.int64)[idx // n_levels],
        "setting": setting.name,
        "intervention": intervention,
        "level": (idx % n_levels).astype(np.int64),
        **cols,
        "frames": result["frames"].cpu().numpy().astype(np.int64),
        "path_len_obj1": path[:, 0].astype(np.int64),
        "path_len_obj2": obj2,
    })


def exact_chunk(refs: list, setting, device, n_levels: int, greedy: bool, seed: int, intervention,
                intervention_name: str, geometry: tuple[int, int, int], eps: float = EPS,
                stats: dict | None = None, levels: str = "hashed", render: str = "box"):
    """``play_chunk``'s counterpart: the ``exact`` rows of one batch of agents in one setting
    (``seed`` is unused: nothing is sampled)."""
    import contextlib

    from gmg.experiments.forward import enter_intervention
    from gmg.training.env import EnvConfig, EvaluationLevels
    from gmg.training.runtime import resolve_device

    device = resolve_device(device)
    world_dim, size, timeout = geometry
    config = EnvConfig(objects=setting.objects, world_dim=world_dim, size=size, background=setting.background,
                       timeout=timeout, levels=levels, render=render)
    env = MazeEnv(1, config, EvaluationLevels(n=n_levels, levels=levels), device, lazy=True)  # each level drawn once
    ids = [r.agent_id for r in refs]
    models = [r.load(device) for r in refs]
    with contextlib.ExitStack() as stack:
        for m in models:
            enter_intervention(intervention, m, stack)
        local = [intervention] * len(models) if getattr(intervention, "needs_masks", False) else None
        result = solve(env, len(models), network_probs(env, models, greedy, local, stats), eps, timeout, stats=stats)
    return exact_frame(result, ids, setting, n_levels, env.bank.path_len, intervention_name)


def sampled_interval(rows, z: float = 1.96) -> tuple[float, float]:
    """Where a sampled evaluation's preference (one episode per level) falls around the exact one,
    from the exact rows of one (agent, setting, intervention): ``R +- z sd``, R = sum P(obj1) / sum
    (P(obj1) + P(obj2)) and sd the delta method's over the levels' independent outcomes (each level's
    obj1 - R (obj1 + obj2) has mean p1 - R (p1 + p2) and variance p1 (1 - R)^2 + p2 R^2 - mean^2)."""
    import numpy as np

    p1, p2 = rows["p_obj1"].to_numpy(float), rows["p_obj2"].to_numpy(float)
    if (p1 + p2).sum() <= 0:
        return float("nan"), float("nan")
    r = p1.sum() / (p1 + p2).sum()
    mean = p1 - r * (p1 + p2)
    var = p1 * (1 - r) ** 2 + p2 * r**2 - mean**2
    sd = float(np.sqrt(var.sum()) / (p1 + p2).sum())
    return r - z * sd, r + z * sd
