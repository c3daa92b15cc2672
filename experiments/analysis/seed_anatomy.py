"""The anatomy of a seed: does the initialisation or the order of training levels decide an
agent's channel, and when in training is it decided?

On a grid of agents trained with every initialisation seed x every data seed
(``gmg train --seeds 0-5 --data-seeds 101-103``; meta.json names both):

- **Outcomes** per agent (``agent_outcomes``): preference for the red line over the yellow
  gem, for the green line over the red line, and a channel-reliance score,
  ``green_minus_red`` = path efficiency toward a pure green line alone minus toward a pure
  red line alone (the floor of ``gmg.experiments.analysis.predict``'s profile cancels).
- **Variance decomposition** (``decompose``): a two-way random-effects model without
  replication, ``y_ij = mu + a_i + b_j + e_ij`` (a: initialisation, b: data order), its
  variance components from the ANOVA mean squares: ``var_init = (MS_init -
  MS_resid) / n_data``, ``var_data = (MS_data - MS_resid) / n_init`` (0 if negative), shares of
  their sum with ``var_resid``. ``share_init`` is the intraclass correlation of agents that
  share an initialisation (ICC(2,1) by inits). Bootstrap CIs resample initialisations and data
  orders (both, independently); each share's permutation p-value shuffles the agents across
  initialisations within each data order (or across data orders within each initialisation).
- **Commitment** (``commitment``): with snapshots kept during training (``gmg train
  --snapshot-every N``), each outcome at each kept point; an agent has committed at the
  earliest fraction of training after which every kept point stays within ``tol`` (0.05) of
  its final value.
- **Before training** (``before_training``): each outcome predicted from the untrained network,
  leaving out one initialisation at a time.

Agents that are no grid (one seed each, or imported from the original study with their
checkpoints as snapshots) get all but the decomposition: before_training then leaves out one
agent at a time, and is skipped where an untrained network cannot be rebuilt (imported without
a ``model_0.pth``); ``run_anatomy`` says what it skipped and why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.rundir import no_intervention
from gmg.experiments.settings import base_names
from gmg.training.errors import UserError

SETTINGS = ("red_line-vs-yellow_gem", "green_line-vs-red_line")
CHANNEL_SETTINGS = ("train:red_line", "train:green_line")
OUTCOMES = {"pref_red_line_vs_yellow_gem": "preference, red line over yellow gem",
            "pref_green_line_vs_red_line": "preference, green line over red line",
            "green_minus_red": "efficiency toward a green line minus a red line, each alone"}
SNAPSHOT_ID = 1000  # a snapshot's id in a store: agent id x 1000 + update


def grid_of(refs) -> pd.DataFrame:
    """agent, init_seed, data_seed of each agent (from meta.json); one line unless they form
    a crossed grid of at least 2 x 2 with every pair present once."""
    rows = [{"agent": r.agent_id, "init_seed": r.meta.get("init_seed"), "data_seed": r.meta.get("data_seed")}
            for r in refs]
    d = pd.DataFrame(rows)
    if d.empty or d[["init_seed", "data_seed"]].isna().any().any():
        raise UserError("a seed grid needs agents trained with separate data seeds (`gmg train --seeds 0-5 "
                        "--data-seeds 101-103`); these agents' seeds set both their weights and their data")
    d[["init_seed", "data_seed"]] = d[["init_seed", "data_seed"]].astype(int)
    n_i, n_d = d["init_seed"].nunique(), d["data_seed"].nunique()
    if n_i < 2 or n_d < 2 or len(d) != n_i * n_d or d.duplicated(["init_seed", "data_seed"]).any():
        raise UserError(f"the agents do not form a complete grid ({len(d)} agents, {n_i} initialisations x {n_d} "
                        "data orders): train every seed with every data seed, at least 2 x 2")
    return d


def settings_for(background: str):
    from gmg.experiments.settings import resolve_settings

    return resolve_settings([*SETTINGS, *CHANNEL_SETTINGS], background)


def agent_outcomes(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per agent: ``OUTCOMES`` from its un-intervened episodes of ``SETTINGS`` and
    ``CHANNEL_SETTINGS`` (any background suffix ``@...`` is ignored)."""
    from gmg.experiments.analysis.predict import efficiencies
    from gmg.experiments.evaluate import metrics

    eps = no_intervention(episodes)
    eps = eps.assign(setting=base_names(eps["setting"]))
    missing = {*SETTINGS, *CHANNEL_SETTINGS} - set(eps["setting"])
    if missing:
        raise UserError(f"no episodes of {', '.join(sorted(missing))}: evaluate them first")
    m = metrics(eps[eps["setting"].isin(SETTINGS)]).pivot(index="agent", columns="setting", values="preference")
    out = pd.DataFrame({f"pref_{s.replace('-vs-', '_vs_')}": m[s] for s in SETTINGS})
    ch = eps[eps["setting"].isin(CHANNEL_SETTINGS)]
    eff = ch.assign(eff=efficiencies(ch)).groupby(["agent", "setting"])["eff"].mean().unstack()
    out["green_minus_red"] = eff["train:green_line"] - eff["train:red_line"]
    return out.reset_index()


def grid_matrix(d: pd.DataFrame, outcome: str) -> np.ndarray:
    """``outcome`` as an (initialisations x data orders) matrix, both sorted by seed."""
    return d.pivot(index="init_seed", columns="data_seed", values=outcome).sort_index().sort_index(axis=1).to_numpy(float)


def variance_components(y: np.ndarray) -> dict:
    """Variance components of a complete (initialisations x data orders) matrix ``y`` from the
    mean squares of the two-way ANOVA without replication (the same as statsmodels'
    ``anova_lm`` of ``y ~ C(init) + C(data)``, tested; in closed form here because the
    bootstrap and the permutation tests recompute it thousands of times)."""
    n_i, n_d = y.shape
    if not np.isfinite(y).all() or y.std() == 0:
        return dict.fromkeys(("var_init", "var_data", "var_resid", "share_init", "share_data", "share_resid"), np.nan)
    grand, rows, cols = y.mean(), y.mean(1, keepdims=True), y.mean(0, keepdims=True)
    ms_i = n_d * ((rows - grand) ** 2).sum() / (n_i - 1)
    ms_d = n_i * ((cols - grand) ** 2).sum() / (n_d - 1)
    ms_e = ((y - rows - cols + grand) ** 2).sum() / ((n_i - 1) * (n_d - 1))
    v = {"var_init": max((ms_i - ms_e) / n_d, 0.0), "var_data": max((ms_d - ms_e) / n_i, 0.0), "var_resid": ms_e}
    total = sum(v.values())
    return {**v, **{f"share_{k[4:]}": (x / total if total > 0 else np.nan) for k, x in v.items()}}


def decompose(d: pd.DataFrame, outcomes=tuple(OUTCOMES), n_boot: int = 2000, n_permutations: int = 1999,
              seed: int = 0) -> pd.DataFrame:
    """One row per outcome: variance components and shares of the grid ``d`` (``grid_of``
    merged with ``agent_outcomes``), 95% bootstrap CIs of the shares (initialisations and data
    orders resampled) and permutation p-values (agents shuffled across initialisations within
    each data order, or across data orders within each initialisation)."""
    rng = np.random.default_rng(seed)
    rows = []
    for outcome in outcomes:
        y = grid_matrix(d, outcome)
        n_i, n_d = y.shape
        est = variance_components(y)
        boots = pd.DataFrame([variance_components(y[rng.integers(0, n_i, n_i)][:, rng.integers(0, n_d, n_d)])
                              for _ in range(n_boot)])
        row = {"outcome": outcome, "n_init": n_i, "n_data": n_d, "mean": float(np.nanmean(y)),
               "sd": float(np.nanstd(y, ddof=1)), **est}
        for k in ("share_init", "share_data", "share_resid"):
            row[f"{k}_lo"], row[f"{k}_hi"] = (np.nanpercentile(boots[k], [2.5, 97.5]).tolist()
                                              if boots[k].notna().any() else (np.nan, np.nan))
        for k, axis in (("init", 0), ("data", 1)):  # shuffle along the other factor's levels
            null = [variance_components(rng.permuted(y, axis=axis))[f"share_{k}"] for _ in range(n_permutations)]
            row[f"p_{k}"] = ((1 + sum(x >= est[f"share_{k}"] for x in null)) / (1 + len(null))
                             if np.isfinite(est[f"share_{k}"]) else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- commitment over training

def snapshot_population(agents):
    """Every kept snapshot of ``agents`` as one Population, ids ``agent x SNAPSHOT_ID +
    update``; one line if an agent kept none."""
    from gmg.experiments.population import AgentRef, Population
    from gmg.training.checkpoint import read_meta, snapshot_dirs

    refs = []
    for ref in agents:
        snaps = snapshot_dirs(ref.path)
        if not snaps:
            raise UserError(f"{ref.path} kept no snapshots: train with `gmg train --snapshot-every N` to replay training")
        for p in snaps:
            meta = read_meta(p)
            update = int(meta["snapshot"]["update"])
            if update >= SNAPSHOT_ID:  # its id would be another agent's
                raise UserError(f"{p}: update {update} is past the {SNAPSHOT_ID - 1} updates a snapshot id holds")
            refs.append(AgentRef(ref.agent_id * SNAPSHOT_ID + update, p, meta))
    return Population.of(refs, "snapshots")


def trajectory(episodes: pd.DataFrame, snapshots) -> pd.DataFrame:
    """agent, update, steps, fraction (of the agent's training) and ``OUTCOMES`` at each snapshot."""
    out = agent_outcomes(episodes).rename(columns={"agent": "snapshot"})
    info = pd.DataFrame([{"snapshot": r.agent_id, "agent": r.agent_id // SNAPSHOT_ID,
                          "update": int(r.meta["snapshot"]["update"]), "steps": int(r.meta["snapshot"]["steps"])}
                         for r in snapshots])
    t = info.merge(out, on="snapshot").drop(columns="snapshot")
    t["fraction"] = t["steps"] / t.groupby("agent")["steps"].transform("max")
    return t.sort_values(["agent", "update"]).reset_index(drop=True)


def commitment(traj: pd.DataFrame, outcomes=tuple(OUTCOMES), tol: float = 0.05) -> pd.DataFrame:
    """Per agent and outcome: the final value (the last snapshot) and ``committed_at``, the
    earliest fraction of training after which every kept point is within ``tol`` of it."""
    rows = []
    for agent, g in traj.sort_values("fraction").groupby("agent"):
        for outcome in outcomes:
            v, f = g[outcome].to_numpy(float), g["fraction"].to_numpy(float)
            final = v[-1]
            off = ~(np.abs(v - final) < tol)  # NaN (no decided episode) counts as not yet there
            last_off = np.flatnonzero(off)
            at = f[0] if not len(last_off) else (f[last_off[-1] + 1] if last_off[-1] + 1 < len(f) else 1.0)
            rows.append({"agent": int(agent), "outcome": outcome, "final": final, "committed_at": float(at)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the whole study

TRAJECTORY_FILE = "trajectory.csv"  # a zoo grid ships its measured trajectory beside its agents


def replay(pop, settings, run_dir: Path, device, n_levels: int, seed: int, progress: bool) -> pd.DataFrame:
    """The trajectory of ``pop``: its kept snapshots evaluated, else the one a zoo grid ships
    beside its agents; one line if it has neither."""
    from gmg.experiments.evaluate import evaluate

    shipped = pop.agents[0].path.parent / TRAJECTORY_FILE
    try:
        snaps = snapshot_population(pop)
    except UserError:
        if shipped.is_file():
            return pd.read_csv(shipped)
        raise
    eps = evaluate(snaps, settings, run_dir / "snapshots", device, n_levels=n_levels, seed=seed, progress=progress)
    return trajectory(eps, snaps).assign(n_levels=n_levels)


def init_groups(agents) -> pd.Series:
    """agent -> its initialisation, the agents ``before_training`` leaves out together (they
    share an untrained network): a grid agent's ``init_seed``, an imported agent's original
    seed, else the agent's own seed, its id."""
    return pd.Series({r.agent_id: r.meta.get("init_seed", (r.meta.get("origin") or {}).get("seed", r.agent_id))
                      for r in agents})


def before_training(agents, outcomes: pd.DataFrame, pool=None, pool_outcomes: pd.DataFrame | None = None,
                    seed: int = 0, n_permutations: int = 999, label: str = "grid") -> pd.DataFrame:
    """Each outcome predicted from the untrained network (``before_training.FEATURES``), leaving
    out one initialisation at a time (``init_groups``; on agents that do not share one, one agent):
    on ``agents`` (named ``label``), on the ``pool`` agents, and on both together. One line if an
    untrained network cannot be rebuilt (an imported agent without its ``model_0.pth``)."""
    from gmg.experiments.analysis.before_training import FEATURES, predict, untrained_features

    feats = untrained_features(agents)
    outcomes, groups = outcomes.set_index("agent"), init_groups(agents)
    sets = [(label, feats, outcomes, groups)]
    if pool is not None and pool_outcomes is not None:
        pf, po, pg = untrained_features(pool), pool_outcomes.set_index("agent"), init_groups(pool)
        sets.append(("pool", pf, po, pg))
        offset = 10**9  # pool agents get ids apart from the others' in the pooled fit
        sets.append((f"{label} + pool", pd.concat([feats, pf.assign(agent=pf["agent"] + offset)]),
                     pd.concat([outcomes, po.set_axis(po.index + offset)]),
                     pd.concat([groups, pg.set_axis(pg.index + offset)])))
    rows = []
    for name, f, o, g in sets:
        n_groups = int(g.reindex(o.index).nunique())
        for outcome in OUTCOMES:
            if n_groups < len(FEATURES) + 3:  # a linear fit of every feature on fewer networks is an interpolation
                rows.append({"agents": name, "outcome": outcome, "n": len(o), "groups": n_groups,
                             "note": f"{n_groups} initialisations are too few for a fit on {len(FEATURES)} features"})
                continue
            try:
                r = predict(f, o[outcome], groups=g, seed=seed, n_permutations=n_permutations)
            except UserError as e:
                rows.append({"agents": name, "outcome": outcome, "note": str(e)})
                continue
            rows.append({"agents": name, "outcome": outcome, "n": r["n"], "groups": n_groups,
                         "r2_cv": r["r2_cv"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "p_permutation": r["p_permutation"]})
    return pd.DataFrame(rows)


def run_anatomy(agents, run_dir, device="auto", n_levels: int = 500, snapshot_levels: int = 300, pool=None,
                seed: int = 0, n_boot: int = 2000, n_permutations: int = 1999, progress: bool = True) -> dict:
    """Evaluate ``agents`` (and, with ``pool``, other agents for the before-training fit) and
    write ``RUN/anatomy/``: outcomes; on a seed grid the decomposition (shares.png); with kept
    snapshots (or a zoo grid's shipped trajectory) the trajectory and commitment (commitment.png);
    before_training where the untrained networks can be rebuilt. A part that does not apply is
    skipped with one line in ``result["notes"]`` and ``anatomy/notes.csv``. Rerunning skips what
    the stores hold."""
    from gmg.experiments.evaluate import evaluate
    from gmg.experiments.plots.seeds import plot_commitment, plot_shares
    from gmg.experiments.population import population
    from gmg.experiments.rundir import table, write_notes

    run_dir = Path(run_dir)
    pop = population(agents)
    settings = settings_for(pop.trained_on.background)
    eps = evaluate(pop, settings, run_dir, device, n_levels=n_levels, seed=seed, progress=progress)
    out_dir = run_dir / "anatomy"
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = []

    def attempt(part: str, compute):
        """``compute()``, or None with a note of why ``part`` does not apply to these agents."""
        try:
            return compute()
        except UserError as e:
            notes.append(f"{part} skipped: {e}")
            return None

    grid = attempt("decomposition", lambda: grid_of(pop))
    outcomes = agent_outcomes(eps) if grid is None else grid.merge(agent_outcomes(eps), on="agent")
    outcomes.to_csv(out_dir / "outcomes.csv", index=False)
    result = {"grid": grid, "outcomes": outcomes, "figures": [], "notes": notes}
    if grid is not None:
        result["decomposition"] = decompose(outcomes, n_boot=n_boot, n_permutations=n_permutations, seed=seed)
        result["decomposition"].to_csv(out_dir / "decomposition.csv", index=False)
        result["figures"].append(plot_shares(result["decomposition"], OUTCOMES, out_dir / "shares.png"))

    traj = attempt("commitment", lambda: replay(pop, settings, run_dir, device, snapshot_levels, seed, progress))
    if traj is not None:
        traj.to_csv(out_dir / TRAJECTORY_FILE, index=False)
        result["trajectory"], result["commitment"] = traj, commitment(traj)
        result["commitment"].to_csv(out_dir / "commitment.csv", index=False)
        result["figures"].append(plot_commitment(traj, grid, OUTCOMES, out_dir / "commitment.png"))

    pool_pop = pool_outcomes = None
    if pool is not None:
        pool_pop = population(pool)
        p_eps = evaluate(pool_pop, settings_for(pool_pop.trained_on.background), run_dir / "pool", device,
                         n_levels=n_levels, seed=seed, progress=progress)
        pool_outcomes = agent_outcomes(p_eps)
    bt = attempt("before_training", lambda: before_training(
        pop, outcomes, pool_pop, pool_outcomes, seed=seed, n_permutations=min(n_permutations, 999),
        label="grid" if grid is not None else "agents"))
    if bt is not None:
        result["before_training"] = bt
        bt.to_csv(out_dir / "before_training.csv", index=False)
    if notes:
        write_notes(run_dir, "anatomy_notes", notes)
    else:  # a grid that skips nothing writes the files it always did
        table("anatomy_notes").path(run_dir).unlink(missing_ok=True)
    return result
