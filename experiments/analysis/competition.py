"""Where the walk model is wrong, state by state: the network's moves on two-object frames
against its moves on each object alone (issue 39).

The walk model (``gmg.experiments.analysis.walk``) steps from a cell to a free neighbour with
probability ``∝ exp(sum_j b_j toward_j)`` and takes each object's pull ``b_j`` from that
object alone. Here the network is read directly: on the first ``n_levels`` evaluation levels,
at every state of the exact chain (``gmg.experiments.exact``: a free cell that holds no
object, either mouse facing), its five move probabilities (``network_probs`` folded by
``move_classes``) in a set of **frames**, two-object settings that share one maze and two
object cells per level (``frame_sets``):

- the pair itself (``red_line-vs-yellow_gem``);
- each object alone at its own cell, the other invisible (``red_line-vs-invisible_line``,
  ``invisible_line-vs-yellow_gem``), and neither (``invisible_line-vs-invisible_line``: the
  floor, how much the agent heads for an empty cell);
- the profile objects alone at obj1's cell (the frames of ``gmg predict``'s single-object
  settings less the state at obj2's cell: an invisible object draws nothing).

**Effective pulls**: per agent and frame set, the walker's pulls ``(b1, b2)`` toward the two
cells that fit the network's moves: ``fit_pulls``, maximum likelihood of each state's move
distribution among its moves into free cells; ``log_linear_pulls``, least squares on the log
move probabilities (for one object, ``readout.pull_of_moves``: the network readout's pulls).
The walk model is additive: an object's pull in the pair equals its pull alone at the same
cell. ``additivity`` sets them side by side, ``competition_fit`` fits the pair's pulls from
the pulls alone, ``binned_additivity`` does it again within groups of states
(``state_groups``: which object is nearer, how near) and ``chain_check`` asks whether pulls
fitted in the pair, put back into the walker, give the network's own exact preference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.profile_objects import profile_settings
from gmg.experiments.exact import MOVE_ACTIONS, move_classes, network_probs, successors
from gmg.training.errors import UserError
from gmg.training.levels import distance_map

PAIRS = ("red_line-vs-yellow_gem", "yellow_gem-vs-red_line", "green_line-vs-yellow_gem", "green_line-vs-red_line",
         "yellow_line-vs-yellow_gem", "white_line-vs-yellow_gem")
HIDDEN = "invisible_line"
NONE = f"{HIDDEN}-vs-{HIDDEN}"


def alone(obj: str, k: int) -> str:
    """The frame set with ``obj`` alone at object ``k``'s cell (0 or 1), the other invisible."""
    return f"{obj}-vs-{HIDDEN}" if k == 0 else f"{HIDDEN}-vs-{obj}"


def frame_sets(pairs=PAIRS, goal: str | None = "yellow_line") -> list[str]:
    """The settings to read: each pair, each of its objects alone at its cell, neither, and the
    profile objects of ``goal`` alone at obj1's cell (none without a goal)."""
    from gmg.experiments.settings import parse_setting

    out = []
    for p in pairs:
        s = parse_setting(p)
        if s.single:
            raise UserError(f"{p} has one object: name two-object settings (OBJ1-vs-OBJ2)")
        out += [s.name, alone(s.obj1, 0), alone(s.obj2, 1)]
    out += [alone(p.split(":", 1)[1], 0) for p in (profile_settings(goal) if goal else [])]
    return list(dict.fromkeys([*out, NONE]))


def level_states(env) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, states): every state ``cell * 2 + mirrored`` of every level of ``env``'s bank whose
    cell is free and holds no object (both facings), sorted by level."""
    n_l = env.bank.free.shape[0]
    free = env.bank.free.reshape(n_l, -1).clone()
    free.scatter_(1, env.bank.objects, False)
    rows, cells = free.nonzero(as_tuple=True)
    return rows.repeat_interleave(2), (cells[:, None] * 2 + torch.arange(2)).reshape(-1)


def move_toward(env, rows: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """int64 (n, 5, K): for each state and each of ``MOVE_ACTIONS``' moves, +1 if it shortens the
    maze distance to object k, -1 if it lengthens it, 0 if it keeps the cell (stay, wall, edge)."""
    n_l, w = env.bank.free.shape[0], env.config.world_dim
    nxt = successors(env)[rows, states] // 2  # (n, 5) next cells
    here = states // 2
    out = []
    for k in range(env.bank.objects.shape[1]):
        d = distance_map(env.bank.free, env.bank.objects[:, k]).reshape(n_l, w * w)[rows]
        out.append(torch.sign(d.gather(1, here[:, None]) - d.gather(1, nxt)))
    return torch.stack(out, -1)


def read_moves(env, models: list[torch.nn.Module], rows: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """float64 (A, n, 5): each model's move probabilities (``MOVE_ACTIONS``' order) at the states,
    from the frames exact evaluation draws (``network_probs``)."""
    n_l, n = env.bank.free.shape[0], rows.numel()
    fn = network_probs(env, models)
    group = torch.arange(len(models)).repeat_interleave(n)
    probs = fn(group * n_l + rows.repeat(len(models)), states.repeat(len(models)))
    return (probs @ move_classes()).view(len(models), n, len(MOVE_ACTIONS))


def walker_moves(pulls: torch.Tensor, toward: torch.Tensor) -> torch.Tensor:
    """float64 (A, n, 5): the walker's move probabilities with ``pulls`` (A, K) at states whose
    moves go ``toward`` (n, 5, K) the objects: ``∝ exp(sum_k b_k toward_k)`` over the moves into
    free cells (a free move changes every distance by one), 0 on the others."""
    free = toward[..., 0] != 0
    logits = torch.einsum("ak,nmk->anm", pulls.to(torch.float64), toward.to(torch.float64))
    return torch.softmax(logits.masked_fill(~free, -torch.inf), -1).nan_to_num(0.0)


def fit_pulls(probs: torch.Tensor, toward: torch.Tensor, ridge: float = 1e-6, iters: int = 50) -> torch.Tensor:
    """float64 (A, K): the walker's pulls that fit ``probs`` (A, n, 5) best: maximum likelihood of
    each state's move distribution among its free moves (renormalised; states weighted alike),
    by Newton's method (the log likelihood is concave; ``ridge`` keeps it strictly so where a
    pull is not identified)."""
    free = toward[..., 0] != 0
    keep = free.sum(1) > 1  # a state with one free move says nothing about pulls
    t = toward[keep].to(torch.float64)
    q = probs[:, keep].to(torch.float64) * free[keep]
    q = q / q.sum(-1, keepdim=True).clamp_min(1e-300)
    a, k = probs.shape[0], toward.shape[-1]
    eq = torch.einsum("anm,nmk->ak", q, t)  # the network's summed expected toward
    b = torch.zeros(a, k, dtype=torch.float64)
    for _ in range(iters):
        p = walker_moves(b, toward[keep])
        mean = torch.einsum("anm,nmk->ank", p, t)
        grad = eq - mean.sum(1) - ridge * b
        second = torch.einsum("anm,nmk,nml->akl", p, t, t) - torch.einsum("ank,anl->akl", mean, mean)
        hess = second + ridge * torch.eye(k, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad[..., None])[..., 0]
        b = b + step
        if float(step.abs().max()) < 1e-10:
            break
    return b


def log_linear_pulls(probs: torch.Tensor, toward: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """float64 (A, K): the pulls of least squares on the log move probabilities (each at least
    ``floor``), ``log p(move) = c_state + sum_k b_k toward_k`` over each state's free moves: with
    one object, per state, half the log ratio of the move toward it over the moves away, pooled
    (``readout.pull_of_moves``'s reading, which weights a confident state by its log odds, where
    ``fit_pulls`` weights it by its probabilities)."""
    free = (toward[..., 0] != 0).to(torch.float64)
    keep = free.sum(1) > 1
    f, t = free[keep], toward[keep].to(torch.float64)
    n = f.sum(-1, keepdim=True)
    y = probs[:, keep].to(torch.float64).clamp_min(floor).log() * f
    y = (y - y.sum(-1, keepdim=True) / n) * f  # centred within each state: c_state drops out
    x = (t - (t * f[..., None]).sum(1, keepdim=True) / n[..., None]) * f[..., None]
    return torch.linalg.solve(torch.einsum("nmk,nml->kl", x, x), torch.einsum("nmk,anm->ka", x, y)).T


PULL_METHODS = {"ml": fit_pulls, "loglinear": log_linear_pulls}


@dataclass
class Readout:
    """The network's moves at every state of the levels, in every frame set."""

    agents: list[int]
    sets: list[str]
    states: pd.DataFrame  # one row per state: level, cell, mirrored, d1, d2 (maze distance to each cell)
    toward: torch.Tensor  # int64 (n, 5, 2)
    probs: torch.Tensor  # float32 (n_sets, A, n, 5)

    def of(self, name: str) -> torch.Tensor:
        """float64 (A, n, 5): the moves in frame set ``name``."""
        if name not in self.sets:
            raise UserError(f"frame set {name} was not read: read it with `frame_sets` holding it")
        return self.probs[self.sets.index(name)].to(torch.float64)

    def subset(self, keep: np.ndarray) -> Readout:
        """The readout at the states where ``keep`` (bool (n,)) holds."""
        k = torch.from_numpy(np.asarray(keep, dtype=bool))
        return Readout(self.agents, self.sets, self.states[k.numpy()].reset_index(drop=True), self.toward[k],
                       self.probs[:, :, k])

    def extend(self, other: Readout) -> Readout:
        """This readout with ``other``'s frame sets added (the same agents and states)."""
        if other.agents != self.agents or not other.states.equals(self.states):
            raise UserError("the readouts hold other agents or states: read them with the same agents and levels")
        new = [i for i, s in enumerate(other.sets) if s not in self.sets]
        return Readout(self.agents, self.sets + [other.sets[i] for i in new], self.states, self.toward,
                       torch.cat([self.probs, other.probs[new]]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, agents=np.asarray(self.agents), sets=np.asarray(self.sets),
                            toward=self.toward.numpy().astype(np.int8), probs=self.probs.numpy(),
                            **{f"state_{c}": self.states[c].to_numpy() for c in self.states.columns})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Readout:
        z = np.load(path)
        states = pd.DataFrame({k[6:]: z[k] for k in z.files if k.startswith("state_")})
        return cls([int(a) for a in z["agents"]], [str(s) for s in z["sets"]], states,
                   torch.from_numpy(z["toward"].astype(np.int64)), torch.from_numpy(z["probs"]))


def read_network(agents, sets: list[str], n_levels: int = 50, device: str = "cpu", progress: bool = False) -> Readout:
    """``Readout`` of ``agents`` (a population) on ``sets`` (two-object settings), ``n_levels``
    evaluation levels of the population's level source, drawn by its renderer."""
    from gmg.experiments.population import population
    from gmg.experiments.settings import resolve_settings
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv
    from gmg.training.runtime import resolve_device

    agents = population(agents)
    t = agents.trained_on
    dev = resolve_device(device)
    settings = resolve_settings(list(sets), t.background)
    if any(s.single for s in settings):
        raise UserError("every frame set needs two objects (one may be invisible_line): the states are shared")
    models = [r.load(dev).eval() for r in agents]
    probs, rows, cells_of = [], None, None
    for s in settings:
        config = EnvConfig(objects=s.objects, world_dim=t.world_dim, size=t.size, background=s.background,
                           timeout=t.timeout, levels=t.levels, render=t.render)
        env = MazeEnv(1, config, EvaluationLevels(n=n_levels, levels=t.levels), dev)
        if rows is not None and not torch.equal(env.bank.objects, cells_of):
            raise UserError(f"{s.name} puts its objects elsewhere than {settings[0].name}: read them apart")
        if rows is None:
            cells_of = env.bank.objects
            rows, states = level_states(env)
            toward = move_toward(env, rows, states).cpu()
            cells = (states // 2).cpu()
            w = t.world_dim
            dist = [distance_map(env.bank.free, env.bank.objects[:, k]).reshape(n_levels, w * w)[rows, states // 2]
                    for k in range(2)]
            table = pd.DataFrame({"level": rows.cpu().numpy(), "cell": cells.numpy(), "mirrored": (states % 2).cpu().numpy(),
                                  "d1": dist[0].cpu().numpy(), "d2": dist[1].cpu().numpy()})
        probs.append(read_moves(env, models, rows, states).float().cpu())
        if progress:
            print(f"read {s.name}: {len(models)} agents x {rows.numel()} states", flush=True)
    return Readout([r.agent_id for r in agents], [s.name for s in settings], table, toward, torch.stack(probs))


def effective_pulls(r: Readout, method: str = "ml") -> pd.DataFrame:
    """One row per (agent, frame set): the pulls ``b1``, ``b2`` toward the two cells that fit the
    network's moves (``PULL_METHODS[method]``)."""
    if method not in PULL_METHODS:
        raise UserError(f"unknown pull method {method!r}: use {' or '.join(PULL_METHODS)}")
    rows = []
    for name in r.sets:
        b = PULL_METHODS[method](r.of(name), r.toward).numpy()
        rows += [{"agent": a, "frames": name, "b1": float(x[0]), "b2": float(x[1])} for a, x in zip(r.agents, b)]
    return pd.DataFrame(rows)


def additivity(pulls: pd.DataFrame, pairs=PAIRS) -> pd.DataFrame:
    """One row per (agent, pair, object k, 1 or 2): the object's pull in the pair (``b_pair``),
    alone at its cell (``b_alone``), toward its cell with neither object shown (``floor``) and
    with only the partner shown (``empty``); above the floor, ``own`` (alone), ``paired`` (in the
    pair) and ``partner_own`` (the partner's ``own`` at its cell). Additive: paired = own."""
    from gmg.experiments.settings import parse_setting

    b = pulls.set_index(["frames", "agent"])
    rows = []
    for p in pairs:
        s = parse_setting(p)
        objs = (s.obj1, s.obj2)
        for k, (col, other) in enumerate((("b1", "b2"), ("b2", "b1"))):
            d = pd.DataFrame({"b_pair": b.loc[s.name, col], "b_alone": b.loc[alone(objs[k], k), col],
                              "floor": b.loc[NONE, col], "empty": b.loc[alone(objs[1 - k], 1 - k), col],
                              "partner_own": b.loc[alone(objs[1 - k], 1 - k), other] - b.loc[NONE, other]})
            rows.append(d.reset_index().assign(pair=s.name, k=k + 1, object=objs[k], partner=objs[1 - k]))
    out = pd.concat(rows, ignore_index=True)
    out["own"] = out["b_alone"] - out["floor"]
    out["paired"] = out["b_pair"] - out["floor"]
    return out[["agent", "pair", "k", "object", "partner", "b_pair", "b_alone", "floor", "empty", "own", "paired",
                "partner_own"]]


def kept(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (pair, k) of an ``additivity`` table: the share of an object's pull (above the floor)
    that it keeps in the pair, ``sum paired / sum own`` over agents, with a 95% interval over
    agents (resampled), and the mean ``own``, ``paired`` and ``partner_own``."""
    rng = np.random.default_rng(seed)
    rows = []
    for (pair, k), g in table.groupby(["pair", "k"], sort=False):
        paired, own = g["paired"].to_numpy(), g["own"].to_numpy()
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))
        boot = paired[idx].sum(1) / own[idx].sum(1)
        rows.append({"pair": pair, "k": k, "object": g["object"].iloc[0], "partner": g["partner"].iloc[0],
                     "own": own.mean(), "paired": paired.mean(), "partner_own": g["partner_own"].mean(),
                     "kept": paired.sum() / own.sum(), "kept_lo": np.percentile(boot, 2.5),
                     "kept_hi": np.percentile(boot, 97.5)})
    return pd.DataFrame(rows)


COMPETITION_MODELS = {  # the pair's pull above the floor from the pulls alone (no intercept: nothing alone, nothing paired)
    "additive": "paired ~ 0 + own",  # one shared shrinkage; the walk model is own alone with slope 1
    "subtractive": "paired ~ 0 + own + partner_own",
    "divisive": "paired ~ 0 + own + own:partner_own",
}


def competition_fit(table: pd.DataFrame) -> pd.DataFrame:
    """Each of ``COMPETITION_MODELS`` fitted by least squares on an ``additivity`` table (every
    agent, pair and object): one row per (model, term) with the coefficient, its 95% interval
    (standard errors clustered by agent) and the model's R² and leave-one-pair-out R² (fitted on
    the other pairs, scored on the pair left out; pooled)."""
    import statsmodels.formula.api as smf

    rows = []
    for name, formula in COMPETITION_MODELS.items():
        fit = smf.ols(formula, table).fit(cov_type="cluster", cov_kwds={"groups": table["agent"]})
        out = pd.Series(np.nan, index=table.index)
        for pair in table["pair"].unique():
            held = table["pair"] == pair
            out[held] = smf.ols(formula, table[~held]).fit().predict(table[held])
        y = table["paired"]
        loso = 1 - ((y - out) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        ci = fit.conf_int()
        rows += [{"model": name, "term": term, "coef": fit.params[term], "lo": ci.loc[term, 0], "hi": ci.loc[term, 1],
                  "r2": 1 - fit.ssr / ((y - y.mean()) ** 2).sum(), "r2_leave_pair_out": loso} for term in fit.params.index]
    return pd.DataFrame(rows)


def state_groups(r: Readout) -> dict[str, np.ndarray]:
    """Labels of the readout's states by feature: ``nearer`` (obj1, obj2 or tie: which cell is
    fewer steps away), ``distance`` (steps to the nearer one: 1, 2, 3, 4+)."""
    d1, d2 = r.states["d1"].to_numpy(), r.states["d2"].to_numpy()
    near = np.minimum(d1, d2)
    return {"nearer": np.where(d1 < d2, "obj1", np.where(d1 > d2, "obj2", "tie")),
            "distance": np.where(near >= 4, "4+", near.astype(str))}


def binned_additivity(r: Readout, pairs=PAIRS, method: str = "ml") -> pd.DataFrame:
    """``additivity`` with pulls fitted within each group of states of ``state_groups`` (columns
    ``feature``, ``group``; ``own_nearer``: the row's object is the nearer one)."""
    out = []
    for feature, labels in state_groups(r).items():
        for group in np.unique(labels):
            t = additivity(effective_pulls(r.subset(labels == group), method), pairs)
            out.append(t.assign(feature=feature, group=group))
    out = pd.concat(out, ignore_index=True)
    out["own_nearer"] = (out["feature"] == "nearer") & (out["group"] == "obj" + out["k"].astype(str))
    return out


def bank_mazes(env):
    """The ``walk.Mazes`` of ``env``'s level bank (the levels its agents play, any level source)."""
    from gmg.experiments.analysis.walk import Mazes

    n, w = env.bank.free.shape[0], env.config.world_dim
    dist = torch.stack([distance_map(env.bank.free, env.bank.objects[:, k]).view(n, -1)
                        for k in range(env.bank.objects.shape[1])], 1)
    return Mazes(env.bank.free.reshape(n, -1).cpu(), env.bank.objects.cpu(), env.bank.path_len.cpu(), dist.cpu(), w)


def solve_moves(r: Readout, moves: torch.Tensor, env) -> dict:
    """``exact.solve`` of ``G`` policies given by their move probabilities at the readout's
    states, ``moves`` float64 (G, n, 5) in ``MOVE_ACTIONS``' order (no forward pass), on the
    levels of ``env``, whose bank must hold the readout's mazes and object cells: chain i is
    group i // L on level i % L."""
    from gmg.experiments.exact import solve
    from gmg.training.env import NUM_ACTIONS

    n_l = env.bank.free.shape[0]
    index = torch.full((n_l, 2 * env.config.world_dim**2), -1, dtype=torch.int64)
    index[torch.tensor(r.states["level"].to_numpy()),
          torch.tensor(r.states["cell"].to_numpy() * 2 + r.states["mirrored"].to_numpy())] = torch.arange(len(r.states))

    def probs_fn(pair: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        i = index[pair % n_l, state]
        if bool((i < 0).any()):
            raise UserError("the chain reached a state the readout lacks: read the same levels")
        p = torch.zeros(len(pair), NUM_ACTIONS, dtype=torch.float64)
        p[:, list(MOVE_ACTIONS)] = moves[pair // n_l, i]  # one action per move: move_classes folds it back
        return p

    return solve(env, moves.shape[0], probs_fn)


def readout_env(agents, setting, n_levels: int):
    """The CPU ``MazeEnv`` of ``setting`` on the first ``n_levels`` evaluation levels of ``agents``'
    level source (the readout's mazes)."""
    from gmg.experiments.population import population
    from gmg.experiments.settings import resolve_settings
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    t = population(agents).trained_on
    s = resolve_settings([setting], t.background)[0]
    return MazeEnv(1, EnvConfig(objects=s.objects, world_dim=t.world_dim, size=t.size, background=s.background,
                                timeout=t.timeout, levels=t.levels, render=t.render),
                   EvaluationLevels(n=n_levels, levels=t.levels), torch.device("cpu"))


def chain_check(r: Readout, pulls: pd.DataFrame, agents, pairs=PAIRS) -> pd.DataFrame:
    """Is the walker right once its pulls are right? One row per (agent, pair): the network's own
    exact preference on the readout's levels (``exact.solve`` on the moves read, no new forward
    pass: ``network``), and the walker's (``walk.first_hit``) with the objects' pulls alone at
    their cells (``walk_alone``) and with the pulls fitted in the pair (``walk_paired``)."""
    from gmg.experiments.analysis.walk import first_hit
    from gmg.experiments.population import population
    from gmg.experiments.settings import resolve_settings

    n_l = int(r.states["level"].max()) + 1
    b = pulls.set_index(["frames", "agent"])
    out = []
    for s in resolve_settings(list(pairs), population(agents).trained_on.background):
        env = readout_env(agents, s.name, n_l)
        res = solve_moves(r, r.of(s.name), env)
        p1, p2 = res["p_obj1"].view(-1, n_l).sum(1), res["p_obj2"].view(-1, n_l).sum(1)
        m = bank_mazes(env)
        one, two = alone(s.obj1, 0), alone(s.obj2, 1)
        for a, net in zip(r.agents, (p1 / (p1 + p2)).tolist()):
            row = {"agent": a, "pair": s.name, "network": net}
            for col, (f1, f2) in (("walk_alone", (one, two)), ("walk_paired", (s.name, s.name))):
                hit = first_hit(m, torch.tensor([b.loc[(f1, a), "b1"], b.loc[(f2, a), "b2"]]))
                row[col] = float(hit[:, 0].sum() / hit.sum())
            out.append(row)
    return pd.DataFrame(out)


def walk_pulls(agents, objects: list[str], n_levels: int = 50, device: str = "cpu") -> pd.DataFrame:
    """The walk model's own pulls (``profile_objects.pull`` above the floor, channels by ``profile_objects.COMBINE``)
    of ``objects`` for each agent, from its profile solved exactly (``gmg.experiments.exact``) on
    the same ``n_levels`` levels: one row per (agent, object), column ``b_walk``."""
    from gmg.experiments.analysis.predict import profile, pull_profile
    from gmg.experiments.analysis.profile_objects import pull
    from gmg.experiments.analysis.walk import PULL_GRID, efficiency_curve
    from gmg.experiments.exact import exact_chunk
    from gmg.experiments.population import population
    from gmg.experiments.settings import resolve_settings
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    agents = population(agents)
    t = agents.trained_on
    refs = list(agents)
    settings = resolve_settings(profile_settings(t.goal), t.background)
    rows = [exact_chunk(refs, s, device, n_levels, False, 0, None, "none", t.geometry, levels=t.levels, render=t.render)
            for s in settings]
    prof = profile(pd.concat(rows, ignore_index=True), t.goal)
    one = MazeEnv(1, EnvConfig(objects=settings[0].objects, world_dim=t.world_dim, levels=t.levels),
                  EvaluationLevels(n=n_levels, levels=t.levels), torch.device("cpu"))
    curve = efficiency_curve(bank_mazes(one), PULL_GRID, t.timeout)
    b = pull_profile(prof, curve, n_levels)
    return pd.DataFrame([{"agent": int(row["agent"]), "object": o, "b_walk": pull(row, o, t.goal)}
                         for _, row in b.iterrows() for o in objects])


def alone_against_walk(pulls: pd.DataFrame, walk: pd.DataFrame) -> pd.DataFrame:
    """``walk`` (``walk_pulls``) with ``b_network``: each object's pull alone at obj1's cell above
    the floor, from the network's moves (``effective_pulls``)."""
    b = pulls.set_index(["frames", "agent"])["b1"]
    net = [b[(alone(o, 0), a)] - b[(NONE, a)] for a, o in zip(walk["agent"], walk["object"])]
    return walk.assign(b_network=net)
