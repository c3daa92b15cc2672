"""Batched evaluation of agent populations in many settings, and its metrics.

For one setting, a batch of agents plays the fixed evaluation levels in one ``MazeEnv``
of ``n_agents x n_levels`` envs (env j: agent j // n_levels, level j % n_levels); every
env plays its first episode only, finished envs are dropped from the batch as they end,
and each agent's network runs on its own contiguous slice. Sampling uses Gumbel-max with
noise hashed from (seed, agent, setting, level, step, action), so an agent's episodes do
not depend on the batch, the batch size or the device's random state.

One row per episode goes to the ``episodes`` table of the run's results store, one
(agent, setting, intervention) chunk per transaction; chunks already present are skipped,
so a killed run resumes where it stopped and a finished run does no work.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from gmg.experiments.forward import enter_intervention, forward_groups
from gmg.experiments.population import AgentRef, Population, population
from gmg.experiments.settings import Setting, resolve_settings
from gmg.experiments.store import ResultsStore
from gmg.training.env import (
    OBS_SIZE,
    TIMEOUT,
    WORLD_DIM,
    EnvConfig,
    EvaluationLevels,
    MazeEnv,
    check_levels,
    check_n_levels,
)
from gmg.training.errors import UserError
from gmg.training.levels import S_ACTIONS, path_efficiency, uniform
from gmg.training.render import RENDERS

EPISODES = "episodes"
CHUNK_KEY = ("agent", "setting", "intervention")
OUTCOMES = ("timeout", "obj1", "obj2")  # indexed by the env's ``reached`` code
LOG_FILE = "evaluate.log"

# policy(env, envs int64 (n,) original env index) -> int64 (n,) actions; the frames it needs it
# draws with ``env.observe(mask)`` (the env is lazy: nothing is drawn unless asked)
Policy = Callable[[MazeEnv, torch.Tensor], torch.Tensor]


def play(
    setting: Setting,
    policy: Policy,
    n_groups: int = 1,
    n_levels: int = 1000,
    device: torch.device | str = "cpu",
    world_dim: int = WORLD_DIM,
    size: int = OBS_SIZE,
    timeout: int = TIMEOUT,
    levels: str = "hashed",
    render: str = "box",
) -> dict[str, np.ndarray]:
    """First episode of every (group, level) env of one setting, all advancing together.

    Env j is group j // n_levels on evaluation level j % n_levels (of the level source ``levels``). The policy sees only
    the envs still playing, in original order, in a lazy env (``MazeEnv(lazy=True)``: it draws
    the frames it needs with ``env.observe(mask)``). Returns numpy arrays of length
    ``n_groups * n_levels``: ``group``, ``level``, ``reached`` (0 timeout, 1 obj1,
    2 obj2), ``steps``, and ``path_len`` of shape (n_groups * n_levels, K).
    """
    device = torch.device(device)
    config = EnvConfig(objects=setting.objects, world_dim=world_dim, size=size,
                       background=setting.background, timeout=timeout, levels=levels, render=render)
    total = n_groups * n_levels
    env = MazeEnv(total, config, EvaluationLevels(n=n_levels, levels=levels), device, lazy=True)
    rows = torch.arange(total, device=device) % n_levels
    env.reset(rows)
    path_len = env.bank.path_len[rows]
    reached = torch.full((total,), -1, dtype=torch.int64, device=device)
    steps = torch.zeros(total, dtype=torch.int64, device=device)
    envs = torch.arange(total, device=device)
    for _ in range(timeout):  # every env is truncated at the timeout at the latest
        actions = policy(env, envs)
        _, _, _, _, info = env.step(actions)
        done = info["done"]
        if bool(done.any()):
            ended = envs[done]
            reached[ended] = info["reached"][done]
            steps[ended] = info["length"][done]
            keep = ~done
            envs = envs[keep]
            env.keep(keep)
            if envs.numel() == 0:
                break
    assert bool((reached >= 0).all()), "an env did not finish within the timeout"
    idx = torch.arange(total)
    return {
        "group": (idx // n_levels).numpy(),
        "level": (idx % n_levels).numpy(),
        "reached": reached.cpu().numpy(),
        "steps": steps.cpu().numpy(),
        "path_len": path_len.cpu().numpy(),
    }


def setting_key(setting: Setting | str) -> int:
    """A stable 32-bit key of a setting's name (part of the action-noise hash)."""
    name = setting.name if isinstance(setting, Setting) else setting
    return zlib.crc32(name.encode())


def agent_policy(
    models: list[torch.nn.Module],
    agent_ids: list[int],
    setting: Setting,
    n_levels: int,
    greedy: bool = False,
    seed: int = 0,
    memo: bool = True,
    stats: dict | None = None,
    masked: list | None = None,
) -> Policy:
    """Each model acts on the envs of its group; sampled with hashed Gumbel noise or greedy.

    With ``memo`` the logits of each (env, agent cell, mirrored) state are computed once:
    in a fixed level the frame is a function of that state alone, so an agent that
    wanders for 500 steps costs at most 2 x W x W forward passes (exact for deterministic
    networks and interventions). ``stats["forwards"]`` (if given) counts network evaluations.
    ``masked[k]``, if given, is model k's object-local intervention (``ObjectLocal``): it gets
    the object masks of the frames model k sees on each forward pass.
    """
    keys = torch.tensor(agent_ids, dtype=torch.int64)
    skey = setting_key(setting)
    cache: dict[str, torch.Tensor] = {}

    local = masked if masked is not None and any(m is not None for m in masked) else None

    def forward(obs: torch.Tensor, group: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return forward_groups(models, obs, group, masks, local, stats)

    @torch.inference_mode()
    def policy(env: MazeEnv, envs: torch.Tensor) -> torch.Tensor:
        group = envs // n_levels
        if memo:
            n_states = 2 * env.free.shape[-1] ** 2
            if not cache:  # the first call sees every env
                cache["known"] = torch.zeros(int(envs.max()) + 1, n_states, dtype=torch.bool, device=env.device)
                cache["logits"] = torch.zeros(int(envs.max()) + 1, n_states, 0, device=env.device)
            state = env.agent * 2 + env.mirrored.long()
            miss = ~cache["known"][envs, state]
            if bool(miss.any()):
                masks = env.object_masks(env.row[miss]) if local else None
                fresh = forward(env.observe(miss), group[miss], masks)
                if cache["logits"].shape[2] == 0:
                    cache["logits"] = torch.zeros(*cache["known"].shape, fresh.shape[1], device=env.device)
                cache["logits"][envs[miss], state[miss]] = fresh
                cache["known"][envs[miss], state[miss]] = True
            logits = cache["logits"][envs, state]
        else:
            logits = forward(env.observe(), group, env.object_masks() if local else None)
        if greedy:
            return logits.argmax(1)
        act = torch.arange(logits.shape[1], device=logits.device)[None, :]
        u = uniform(seed, S_ACTIONS, keys.to(logits.device)[group][:, None], skey,
                    env.level_ids[:, None], env.steps[:, None], act)
        gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1.0)))
        return (logits.double() + gumbel).argmax(1)

    return policy


def episodes_frame(result: dict[str, np.ndarray], agent_ids: list[int], setting: Setting,
                   intervention: str = "none") -> pd.DataFrame:
    """The ``episodes`` rows of a ``play`` result, one per (agent, level)."""
    path = result["path_len"]
    obj2 = pd.array(path[:, 1], dtype="Int64") if path.shape[1] > 1 else pd.array([pd.NA] * len(path), dtype="Int64")
    return pd.DataFrame({
        "agent": np.asarray(agent_ids, dtype=np.int64)[result["group"]],
        "setting": setting.name,
        "intervention": intervention,
        "level": result["level"].astype(np.int64),
        "outcome": np.asarray(OUTCOMES)[result["reached"]],
        "steps": result["steps"].astype(np.int64),
        "path_len_obj1": path[:, 0].astype(np.int64),
        "path_len_obj2": obj2,
    })


def default_batch_envs(device: torch.device) -> int:
    # CPU: 8 agents x 1000 levels to a batch (a chunk of work for a worker process); GPUs take far more
    return 8192 if device.type == "cpu" else 131072


def play_chunk(refs: list[AgentRef], setting: Setting, device: str | torch.device, n_levels: int, greedy: bool,
               seed: int, intervention, intervention_name: str, geometry: tuple[int, int, int],
               stats: dict | None = None, levels: str = "hashed", render: str = "box") -> pd.DataFrame:
    """The episodes of one batch of agents in one setting (no store: the caller writes them).

    ``geometry`` is (world_dim, size, timeout); ``levels`` the level source; ``render`` the renderer. This is the unit of work both in-process
    and in a Ray task or local worker process (``gmg.experiments.cluster``), so they give the same rows.
    """
    from gmg.training.runtime import resolve_device

    device = resolve_device(device)
    world_dim, size, timeout = geometry
    ids = [r.agent_id for r in refs]
    models = [r.load(device) for r in refs]
    with contextlib.ExitStack() as stack:
        for m in models:
            enter_intervention(intervention, m, stack)
        local = intervention if getattr(intervention, "needs_masks", False) else None
        policy = agent_policy(models, ids, setting, n_levels, greedy, seed, stats=stats, masked=[local] * len(models))
        result = play(setting, policy, len(refs), n_levels, device, world_dim, size, timeout, levels, render)
    return episodes_frame(result, ids, setting, intervention_name)


def evaluate(
    agents: Population | str | Path | list = "zoo:yellow-line",
    settings: str | Iterable[str | Setting] = ("red_line-vs-yellow_gem",),
    run_dir: str | Path = "runs/eval",
    device: str | torch.device = "auto",
    n_levels: int = 1000,
    greedy: bool = False,
    seed: int = 0,
    intervention=None,
    intervention_name: str = "none",
    batch_envs: int | None = None,
    timeout: int | None = None,
    progress: bool = True,
    stats: dict | None = None,
    run_chunks: Callable | None = None,
    exact: bool = False,
    eps: float | None = None,
    levels: str | None = None,
    render: str | None = None,
) -> pd.DataFrame:
    """Evaluate every agent in every setting on the first ``n_levels`` evaluation levels.

    ``levels`` is the level source (``gmg.training.env.LEVEL_SOURCES``), by default the one the
    agents were trained on: hashed levels from id 10^9, procgen levels from id 100,000 (the
    original's test levels). ``render`` draws the frames (``gmg.training.render.RENDERS``), by
    default as the agents were trained ("box" for the bundled zoo); another is a what-if.

    ``intervention``: None, an object with ``apply(model) -> context manager``, or a
    function ``fn(model) -> context manager``; it is active on every model while it plays
    and recorded under ``intervention_name``. ``timeout`` defaults to the agents' training
    timeout; ``batch_envs`` caps the envs stepped together (agents per batch =
    batch_envs // n_levels, at least 1). ``run_chunks(jobs, device, args, chunk)``, if given, plays
    the batches elsewhere, each as ``chunk(batch, setting, device, **args)`` (``play_chunk``, or
    ``exact.exact_chunk``), and yields ``(setting, batch, frame)`` as they finish
    (``gmg.experiments.cluster.chunk_runner``: Ray tasks or local worker processes; ``stats`` stays
    in-process only); this process alone writes the store. Returns the ``episodes`` rows of these
    agents, settings and intervention (one per episode), read back from the store.

    With ``exact``, each agent's Markov chain on each level is solved instead of sampled
    (``gmg.experiments.exact``; states expanded while their expected entries exceed ``eps``):
    one row per (agent, setting, intervention, level) in the ``exact`` table, returned likewise;
    ``metrics`` reads either.
    """
    from tqdm import tqdm

    from gmg.training.runtime import resolve_device

    refs = population(agents)
    settings = resolve_settings(list(settings) if not isinstance(settings, str) else settings)
    check_n_levels(n_levels)
    # checked before the store records them: a bad value there would block the run directory
    if timeout is not None and timeout < 1:
        raise UserError(f"timeout must be at least 1 step, got {timeout}")
    if batch_envs is not None and batch_envs < 1:
        raise UserError(f"batch_envs must be at least 1, got {batch_envs}")
    if eps is not None and not (exact and 0.0 <= eps < 1.0):
        raise UserError(f"eps is exact evaluation's expansion threshold, from 0 to 1 (got {eps}{'' if exact else ' without exact'})")
    if intervention is None and intervention_name != "none":
        raise UserError(f"intervention {intervention_name!r} named but none given")
    if intervention is not None and intervention_name == "none":
        # rows are keyed by intervention name: unnamed, they would pass for the clean run
        intervention_name = getattr(intervention, "name", None)  # Identity's is "none", rightly
        if not intervention_name:
            raise UserError("an intervention needs a name to be recorded under: pass intervention_name=...")
    # each Ray task or worker resolves the device itself (on its own node; the driver may have no GPU)
    device = resolve_device(device) if run_chunks is None else str(device)
    world_dim, size, trained_timeout = refs.trained_on.geometry
    geometry = (world_dim, size, int(timeout or trained_timeout))
    levels = refs.trained_on.levels if levels is None else levels
    check_levels(levels)
    render = refs.trained_on.render if render is None else render
    if render not in RENDERS:
        raise UserError(f"unknown render {render!r}: use {' or '.join(RENDERS)}")
    # stores and chunk arguments name the level source only when it is not the hashed one, as before it existed
    by_levels = {} if levels == "hashed" else {"levels": levels}
    by_levels |= {} if render == "box" else {"render": render}  # the renderer likewise, unless box
    batch_device = device if run_chunks is None else torch.device("cuda" if device == "cuda" else "cpu")
    per_batch = max(1, (batch_envs or default_batch_envs(batch_device)) // n_levels)
    run_dir = Path(run_dir)
    with ResultsStore(run_dir) as store:
        config = {"n_levels": n_levels, "greedy": greedy, "world_dim": world_dim, "size": size, "timeout": geometry[2],
                  **by_levels}
        if exact:
            from gmg.experiments.exact import EPS, EXACT, exact_chunk

            table, chunk_fn, eps = EXACT, exact_chunk, EPS if eps is None else float(eps)
            store.check_config("exact_config", {**config, "eps": eps}, "an exact evaluation")
        else:
            table, chunk_fn = EPISODES, play_chunk
            store.check_config("eval_config", {**config, "seed": seed}, "an evaluation")
        store.check_agents(refs)
        done = store.chunks(table, list(CHUNK_KEY))
        jobs = []  # (setting, agents of one batch)
        for s in settings:
            pending = [r for r in refs if (r.agent_id, s.name, intervention_name) not in done]
            jobs += [(s, pending[i : i + per_batch]) for i in range(0, len(pending), per_batch)]
        args = dict(n_levels=n_levels, greedy=greedy, seed=seed, intervention=intervention,
                    intervention_name=intervention_name, geometry=geometry, **({"eps": eps} if exact else {}),
                    **by_levels)
        if run_chunks is None:
            results = ((s, batch, chunk_fn(batch, s, device, stats=stats, **args)) for s, batch in jobs)
        else:
            results = run_chunks(jobs, device, args, chunk_fn)
        bar = tqdm(total=sum(len(b) for _, b in jobs), unit="chunk", desc="evaluate", disable=not progress)
        with bar, open(run_dir / LOG_FILE, "a") as log:
            for setting, batch, frame in results:
                bar.set_postfix_str(f"{setting.name} agents {batch[0].agent_id}-{batch[-1].agent_id}")
                for agent_id, rows in frame.groupby("agent", sort=False):
                    key = {"agent": int(agent_id), "setting": setting.name, "intervention": intervention_name}
                    store.write_chunk(table, rows.reset_index(drop=True), key)
                    log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} agent={agent_id} setting={setting.name} "
                              f"intervention={intervention_name} {table}={len(rows)}\n")
                    log.flush()
                    bar.update(1)
        return episodes(store, [r.agent_id for r in refs], [s.name for s in settings], [intervention_name], table)


def episodes(store: ResultsStore, agents: list[int] | None = None, settings: list[str] | None = None,
             interventions: list[str] | None = None, table: str = EPISODES) -> pd.DataFrame:
    """Rows of ``episodes`` (all, or those of the given agents/settings/interventions); with
    ``table="exact"``, the exact evaluation's rows (one per level) instead."""
    if table not in store.tables():
        flag = " --exact" if table != EPISODES else ""
        raise UserError(f"{store.run_dir} has no {table} rows yet; run `gmg evaluate{flag}` first")
    where, params = [], []
    for col, values in (("agent", agents), ("setting", settings), ("intervention", interventions)):
        if values is not None:
            where.append(f"{col} IN ({', '.join('?' * len(values))})")
            params += list(values)
    sql = f"SELECT * FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "")
    df = store.query(sql + " ORDER BY agent, setting, intervention, level", params)
    df["path_len_obj2"] = df["path_len_obj2"].astype("Int64")
    return df


# ------------------------------------------------------------------------- metrics
METRICS = ("n", "n_obj1", "n_obj2", "n_timeout", "preference", "preference_lo", "preference_hi", "success",
           "capability", "capability_lo", "capability_hi", "timeout_rate", "path_efficiency")


def metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Per (agent, setting, intervention) metrics of ``episodes`` rows; see ``docs/evaluation.md``.

    preference = n_obj1 / (n_obj1 + n_obj2) with a Wilson 95% interval (NaN in
    single-object settings or when every episode timed out); success = n_obj1 / n;
    capability = mean steps over all episodes with a 95% t interval; timeout_rate =
    n_timeout / n; path_efficiency = mean(shortest path to the reached object / steps)
    over episodes that reached an object.
    """
    from scipy import stats
    from statsmodels.stats.proportion import proportion_confint

    if "p_obj1" in df.columns:
        return exact_metrics(df)
    keys = [k for k in CHUNK_KEY if k in df.columns]
    d = df.assign(
        _obj1=df["outcome"].eq("obj1"),
        _obj2=df["outcome"].eq("obj2"),
        _timeout=df["outcome"].eq("timeout"),
        _single=df["path_len_obj2"].isna(),
    )
    reached_len = np.where(d["_obj1"], d["path_len_obj1"], d["path_len_obj2"].astype("float64"))
    d["_eff"] = np.where(d["_timeout"], np.nan, path_efficiency(reached_len, d["steps"].to_numpy()))
    g = d.groupby(keys, sort=False)
    out = g.agg(n=("steps", "size"), n_obj1=("_obj1", "sum"), n_obj2=("_obj2", "sum"),
                n_timeout=("_timeout", "sum"), single=("_single", "all"), capability=("steps", "mean"),
                _sd=("steps", "std"), path_efficiency=("_eff", "mean")).reset_index()
    decided = out["n_obj1"] + out["n_obj2"]
    ok = (decided > 0) & ~out["single"]
    pref = np.full(len(out), np.nan)
    lo, hi = pref.copy(), pref.copy()
    if ok.any():
        pref[ok] = out.loc[ok, "n_obj1"] / decided[ok]
        lo[ok], hi[ok] = proportion_confint(out.loc[ok, "n_obj1"], decided[ok], alpha=0.05, method="wilson")
    out["preference"], out["preference_lo"], out["preference_hi"] = pref, lo, hi
    out["success"] = out["n_obj1"] / out["n"]
    half = stats.t.ppf(0.975, (out["n"] - 1).clip(lower=1)) * out["_sd"] / np.sqrt(out["n"])
    out["capability_lo"], out["capability_hi"] = out["capability"] - half, out["capability"] + half
    out["timeout_rate"] = out["n_timeout"] / out["n"]
    for c in ("n", "n_obj1", "n_obj2", "n_timeout"):
        out[c] = out[c].astype(np.int64)
    return out[keys + list(METRICS)]


def exact_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` of exact rows (one per level, ``gmg.experiments.exact``), as expected values:
    n = levels, n_obj1 / n_obj2 / n_timeout the expected counts, preference = sum P(obj1) /
    sum (P(obj1) + P(obj2)), path_efficiency = sum E[eff; reached] / sum P(reached) (the sampled
    ratios in expectation), success = mean P(obj1), capability = mean E[steps]; 95% intervals over
    levels (t for means, the delta method for ratios). ``p_unresolved``: the largest mass a level
    left to states never drawn (every probability is exact up to it); ``frames``: mean per level."""
    from scipy import stats

    keys = [k for k in CHUNK_KEY if k in df.columns]
    rows = []
    for key, g in df.groupby(keys, sort=False):
        n = len(g)
        z = stats.t.ppf(0.975, max(n - 1, 1))

        def mean_ci(x: np.ndarray) -> tuple[float, float, float]:
            m, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
            return m, m - z * se, m + z * se

        def ratio_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
            if b.sum() <= 0:
                return np.nan, np.nan, np.nan
            r = a.sum() / b.sum()
            se = float(np.std(a - r * b, ddof=1) / np.sqrt(n) / b.mean()) if n > 1 else 0.0
            return r, r - z * se, r + z * se

        p1, p2 = g["p_obj1"].to_numpy(float), g["p_obj2"].to_numpy(float)
        single = bool(g["path_len_obj2"].isna().all())
        pref = (np.nan,) * 3 if single else ratio_ci(p1, p2 + p1)
        cap, succ = mean_ci(g["e_steps"].to_numpy(float)), mean_ci(p1)
        eff = ratio_ci((g["e_eff_obj1"] + g["e_eff_obj2"]).to_numpy(float), p1 + p2)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "n": n, "n_obj1": p1.sum(),
                     "n_obj2": p2.sum(), "n_timeout": float(g["p_timeout"].sum()),
                     "preference": pref[0], "preference_lo": pref[1], "preference_hi": pref[2],
                     "success": succ[0], "capability": cap[0], "capability_lo": cap[1], "capability_hi": cap[2],
                     "timeout_rate": float(g["p_timeout"].mean()), "path_efficiency": eff[0],
                     "success_lo": succ[1], "success_hi": succ[2], "p_unresolved": float(g["p_unresolved"].max()),
                     "frames": float(g["frames"].mean())})
    return pd.DataFrame(rows, columns=keys + list(METRICS) + ["success_lo", "success_hi", "p_unresolved", "frames"])


def matrix(df: pd.DataFrame, values: tuple[str, ...] = ("preference", "capability"),
           intervention: str | None = "none") -> pd.DataFrame:
    """Agents x (setting, metric) wide table of ``episodes`` rows or of ``metrics`` output.

    Columns are a MultiIndex (setting, metric) in the order settings first appear; rows
    are agent ids. ``intervention`` picks one intervention's rows (None: the data must
    hold one only).
    """
    m = df if "preference" in df.columns else metrics(df)
    if "intervention" in m.columns:
        if intervention is not None:
            m = m[m["intervention"] == intervention]
        elif m["intervention"].nunique() > 1:
            raise UserError("the data holds several interventions; pick one")
    if m.empty:
        raise UserError(f"no evaluation rows for intervention {intervention!r}")
    wide = m.pivot(index="agent", columns="setting", values=list(values))
    order = list(dict.fromkeys(m["setting"]))
    wide = wide.swaplevel(0, 1, axis=1)
    cols = pd.MultiIndex.from_tuples([(s, v) for s in order for v in values], names=["setting", "metric"])
    return wide.reindex(columns=cols).sort_index()


