"""A channel model of preference: each agent's profile of goal perception, measured without
the two-object settings, predicts its preference in every two-object setting.

**Profile** (single-object settings on the agents' background, ``PROFILE``: sampled episodes, or
solved exactly by ``gmg.experiments.exact``): the path efficiency ``E`` of reaching the goal alone when it is a
pure red, green or blue line, the training goal, the goal colour as a gem, and an invisible
line (the floor ``E0``: agents find an unseen goal by exploring). An episode's efficiency is
shortest path / steps if it reached the goal within the timeout, else 0 (solved: its expected
value on each level); each mean comes with a bootstrap 95% CI over levels.

**Strength** of an object for an agent, its attraction above the floor: for a line of colour
rgb ``s = sum_k (rgb_k / 255) (E_k - E0)`` (``E_k``: the pure channel-k line; additive in the
channels), times ``(E(goal gem) - E0) / (E(goal line) - E0)`` for a gem (the one shape
measurement); the goal's own colour is measured, so its line is ``E(goal line) - E0`` and its
gem ``E(goal gem) - E0``; an invisible object, or one no better than it, ``FLOOR_STRENGTH``.

**Models** (compared by out-of-sample fit, ``score``):
- ``walk``: each agent a walker on the evaluation mazes (``gmg.experiments.analysis.walk``),
  pulled toward each object it sees; an object's **pull** is found from the profile the way
  its strength is (the pull whose walker matches the measured efficiency, above the
  invisible line's pull; channels combined as ``COMBINE``), and the preference is the exact
  probability, level by level, that the walker reaches obj1 first: chance encounters and
  which object lies on the way come from the mazes. No parameter;
- ``contest`` (``gmg.experiments.analysis.contest``, issue 39): the same walker with mixed
  colours measured alone (``measured_objects``, added to the profile's settings) and each pull
  in a pair derived from the pulls alone through shared constants, fitted on the other
  settings (leave one setting out);
- ``ratio``: ``preference = s1 / (s1 + s2)`` (Bradley-Terry with the strengths; no parameter);
- ``logit``: ``logit(preference) = b0 + b1 (log s1 - log s2)``, fitted across settings.

Scores: per setting the across-agent R² of predicted vs observed preference beside that
setting's noise ceiling (split-half reliability over odd and even levels, Spearman-Brown
corrected); pooled over settings; and for ``logit`` leave-one-setting-out and
leave-one-agent-out fits (``ratio`` has no parameter: its in-sample score is out of sample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gmg.experiments.analysis.profile_objects import (
    COMBINE,
    PROFILE_COLUMNS,
    PULL_COLUMNS,
    check_combine,
    profile_settings,
    pull,
    strength,
)
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.analysis.walk import PULL_GRID, Mazes, efficiency_curve, mazes, preference, pull_from_efficiency
from gmg.experiments.rundir import no_intervention
from gmg.experiments.settings import base_name, base_names, parse_setting
from gmg.training.errors import UserError
from gmg.training.levels import path_efficiency
from gmg.training.objects import parse_object


def efficiencies(episodes: pd.DataFrame) -> pd.Series:
    """Per-episode path efficiency (reaching obj1): shortest path / steps, 0 otherwise; of exact
    rows (``gmg.experiments.exact``), its expected value on each level."""
    if "e_eff_obj1" in episodes.columns:
        return episodes["e_eff_obj1"].astype(float)
    eff = path_efficiency(episodes["path_len_obj1"].to_numpy(dtype=float), episodes["steps"].to_numpy(dtype=float),
                          episodes["outcome"].eq("obj1").to_numpy())
    return pd.Series(eff, index=episodes.index)


def profile(episodes: pd.DataFrame, goal: str, n_boot: int = 1000, seed: int = 0, extra=()) -> pd.DataFrame:
    """One row per agent: ``E_red``, ``E_green``, ``E_blue``, ``E_goal``, ``E_gem``, ``E0`` and a
    bootstrap 95% CI (``_lo``, ``_hi``, levels resampled) for each, from the un-intervened
    episodes (or exact rows) of ``profile_settings(goal)``; ``E_OBJ`` likewise for each object
    of ``extra`` alone (``train:OBJ``; ``measured_objects``)."""
    # pairs, not a dict: for a red-line goal the goal line and the pure red line are one setting
    names = list(zip(profile_settings(goal), PROFILE_COLUMNS)) + [(f"train:{o}", f"E_{o}") for o in extra]
    eps = no_intervention(episodes)
    eps = eps.assign(base=base_names(eps["setting"]))
    eps = eps[eps["base"].isin([s for s, _ in names])]
    missing = {s for s, _ in names} - set(eps["base"])
    if missing:
        raise UserError(f"the profile needs the single-object settings {', '.join(sorted(missing))}: "
                        f"run `gmg predict` (it evaluates them) or `gmg evaluate --settings ...`")
    eps = eps.assign(eff=efficiencies(eps))
    rng = np.random.default_rng(seed)
    rows = []
    for agent, d in eps.groupby("agent"):
        row = {"agent": int(agent)}
        for setting, col in names:
            v = d.loc[d["base"] == setting, "eff"].to_numpy()
            boot = rng.choice(v, size=(n_boot, len(v))).mean(1) if len(v) else np.array([np.nan])
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = float(v.mean()), *np.percentile(boot, [2.5, 97.5]).tolist()
        rows.append(row)
    return pd.DataFrame(rows)


PROFILE_SOURCES = ("rollouts", "exact", "network")  # sampled episodes, exact chains, the network's readout


def pull_profile(prof: pd.DataFrame, curve: np.ndarray, n_levels: int) -> pd.DataFrame:
    """The profile's efficiencies as walk-model pulls: one row per agent, ``b_red``, ``b_green``,
    ``b_blue``, ``b_goal``, ``b_gem``, ``b0`` and ``b_OBJ`` for each measured object's ``E_OBJ``
    (``walk.pull_from_efficiency`` on ``curve``, the walker's efficiency over the same
    ``n_levels`` levels for each pull of ``walk.PULL_GRID``).

    A perfect efficiency fits any large pull, so efficiencies are read at most as
    ``1 - 1 / (2 n_levels)``: perfect on n levels says no more than that."""
    top = 1 - 1 / (2 * n_levels)
    out = pd.DataFrame({"agent": prof["agent"].astype(int)})
    extra = [c for c in prof.columns if c.startswith("E_") and c not in PROFILE_COLUMNS and not c.endswith(("_lo", "_hi"))]
    for col, name in [*zip(PROFILE_COLUMNS, PULL_COLUMNS), *((c, "b_" + c[2:]) for c in extra)]:
        out[name] = pull_from_efficiency(prof[col].to_numpy(dtype=float).clip(0, top), curve)
    return out


def measured_objects(settings, goal: str) -> list[str]:
    """The objects of two-object ``settings`` whose pull the profile's channel rule would build
    (a mixed colour, or a gem of a colour other than the goal's), to be measured alone instead
    (``train:OBJ``, the contest model's profile objects): not invisible or black (nothing to
    see on black; the rule's 0 holds), not the goal's colour, not a line of one pure channel."""
    from gmg.experiments.settings import parse_setting

    g = parse_object(goal)
    out = []
    for setting in settings:
        for obj in parse_setting(setting).objects:
            o = parse_object(obj)
            pure_line = o.shape == "line" and o.rgb is not None and sorted(o.rgb) == [0, 0, 255]
            if o.rgb is None or not any(o.rgb) or o.rgb == g.rgb or pure_line:
                continue
            out.append(o.name)
    return list(dict.fromkeys(out))


def predict_walk(pulls: pd.DataFrame, settings: list[str], goal: str, two: Mazes, combine: str = COMBINE) -> pd.DataFrame:
    """The ``walk`` model's predictions: rows agent, setting, b1, b2, walk (the walker's
    probability of reaching obj1 first, averaged over the levels of ``two``)."""
    import torch

    check_combine(combine)
    agents = pulls["agent"].astype(int).tolist()
    rows = []
    for setting in settings:
        expressible(setting)
        s = parse_setting(setting)
        b = torch.tensor([[pull(r, s.obj1, goal, combine), pull(r, s.obj2, goal, combine)] for _, r in pulls.iterrows()],
                         dtype=torch.float64)
        p1 = preference(two, b)
        rows += [{"agent": a, "setting": setting, "b1": float(bb[0]), "b2": float(bb[1]), "walk": float(p)}
                 for a, bb, p in zip(agents, b, p1)]
    return pd.DataFrame(rows)


def shown_model(pred: pd.DataFrame) -> str:
    """The model whose predictions the report and dossiers show: ``walk`` where the
    ``predictions`` table has it, else ``ratio`` (a run of an older gmg)."""
    return "walk" if "walk" in pred.columns and pred["walk"].notna().any() else "ratio"


def expressible(setting: str) -> None:
    """One clear line for a setting the model cannot express."""
    s = parse_setting(setting)
    if s.single:
        raise UserError(f"{setting} has one object: the model predicts preferences between two")
    if all(parse_object(o).rgb in (None, (0, 0, 0)) for o in s.objects):
        raise UserError(f"{setting}: both objects are invisible on black; no channel can tell them apart, "
                        "so the model has nothing to predict but chance")


def predict_ratio(prof: pd.DataFrame, settings: list[str], goal: str = "yellow_line") -> pd.DataFrame:
    """The ``ratio`` model's predictions: rows agent, setting, s1, s2, predicted."""
    rows = []
    for setting in settings:
        expressible(setting)
        s = parse_setting(setting)
        for _, p in prof.iterrows():
            s1, s2 = strength(p, s.obj1, goal), strength(p, s.obj2, goal)
            rows.append({"agent": int(p["agent"]), "setting": setting, "s1": s1, "s2": s2, "predicted": s1 / (s1 + s2)})
    return pd.DataFrame(rows)


def _logit_fit(d: pd.DataFrame) -> np.ndarray:
    import statsmodels.api as sm

    x = np.log(d["s1"]) - np.log(d["s2"])
    y = d["observed"].clip(0.005, 0.995)
    model = sm.GLM(y, sm.add_constant(x.to_numpy()), family=sm.families.Binomial())
    return np.asarray(model.fit().params)


def _logit_predict(beta: np.ndarray, d: pd.DataFrame) -> np.ndarray:
    z = beta[0] + beta[1] * (np.log(d["s1"]) - np.log(d["s2"]))
    return 1 / (1 + np.exp(-z.to_numpy()))


def noise_ceiling(episodes: pd.DataFrame) -> pd.Series:
    """Per setting: split-half reliability of the agents' preferences (odd vs even levels),
    Spearman-Brown corrected: the R² a perfect model could reach across agents."""
    decided = episodes[episodes["outcome"].isin(["obj1", "obj2"])]
    decided = decided.assign(half=decided["level"] % 2, o1=decided["outcome"].eq("obj1"))
    out = {}
    for setting, d in decided.groupby("setting"):
        halves = d.groupby(["agent", "half"])["o1"].mean().unstack()
        if halves.shape[1] < 2 or len(halves.dropna()) < 3:
            out[setting] = float("nan")
            continue
        r = halves.dropna().corr().iloc[0, 1]
        out[setting] = float(2 * r / (1 + r)) if np.isfinite(r) and r > -1 else float("nan")
    return pd.Series(out, name="noise_ceiling")


def score(pred: pd.DataFrame, observed: pd.DataFrame, episodes: pd.DataFrame) -> dict:
    """Per-setting and pooled R² of the models, with leave-one-setting-out and
    leave-one-agent-out fits of ``logit``, beside each setting's noise ceiling.

    ``pred`` from ``predict_ratio``, with a ``walk`` column (``predict_walk``) and a ``contest``
    column (``contest.predict_contest``, fitted leave one setting out) where those models ran;
    ``observed``: metrics rows (agent, setting, preference)."""
    d = pred.merge(observed[["agent", "setting", "preference"]].rename(columns={"preference": "observed"}),
                   on=["agent", "setting"]).dropna(subset=["observed"])
    if d.empty:
        raise UserError("no observed preferences for the predicted settings: evaluate them first")
    d["ratio"] = d["predicted"]
    d["logit"] = _logit_predict(_logit_fit(d), d)
    d["logit_loso"] = np.nan
    d["logit_loao"] = np.nan
    for setting in d["setting"].unique():
        out = d["setting"] == setting
        if (~out).sum() > 3:
            d.loc[out, "logit_loso"] = _logit_predict(_logit_fit(d[~out]), d[out])
    for agent in d["agent"].unique():
        out = d["agent"] == agent
        if (~out).sum() > 3:
            d.loc[out, "logit_loao"] = _logit_predict(_logit_fit(d[~out]), d[out])
    ceiling = noise_ceiling(episodes)
    rows = []
    for setting, g in d.groupby("setting", sort=False):
        walk = g["walk"] if "walk" in g else pd.Series(np.nan, index=g.index)
        contest = g["contest"] if "contest" in g else pd.Series(np.nan, index=g.index)
        lo, hi = r2_interval(walk.to_numpy(), g["observed"].to_numpy())
        c_lo, c_hi = r2_interval(contest.to_numpy(), g["observed"].to_numpy())
        rows.append({"setting": setting, "n": len(g), "observed_mean": g["observed"].mean(),
                     "walk_mean": walk.mean(), "r2_walk": r2(walk, g["observed"]), "r2_walk_lo": lo, "r2_walk_hi": hi,
                     "contest_mean": contest.mean(), "r2_contest": r2(contest, g["observed"]), "r2_contest_lo": c_lo,
                     "r2_contest_hi": c_hi,
                     "contest_constants": g["contest_constants"].iloc[0] if "contest_constants" in g else "",
                     "ratio_mean": g["ratio"].mean(), "r2_ratio": r2(g["ratio"], g["observed"]),
                     "r2_logit": r2(g["logit"], g["observed"]), "r2_logit_loao": r2(g["logit_loao"], g["observed"]),
                     "r2_logit_loso": r2(g["logit_loso"], g["observed"]),
                     "noise_ceiling": float(ceiling.get(setting, np.nan))})
    table = pd.DataFrame(rows)
    pooled = {"r2_walk": r2(d["walk"], d["observed"]) if "walk" in d else float("nan"),
              "r2_contest": r2(d["contest"], d["observed"]) if "contest" in d else float("nan"),
              "r2_ratio": r2(d["ratio"], d["observed"]), "r2_logit": r2(d["logit"], d["observed"]),
              "r2_logit_loso": r2(d["logit_loso"], d["observed"]), "r2_logit_loao": r2(d["logit_loao"], d["observed"])}
    return {"settings": table, "pooled": pooled, "predictions": d}


def run_predict(agents, run_dir, settings=None, device="auto", n_levels: int = 1000, seed: int = 0,
                progress: bool = True, profile_from: str = "rollouts", readout_levels: int = 50,
                attribution: bool = True, combine: str = COMBINE, run_chunks=None) -> dict:
    """Profile the agents, predict ``settings`` (default: the agents' list) and score the
    predictions against them (evaluated where the store lacks them); the predictions go into
    the store's ``predictions`` table and ``RUN/analysis/predict_*.csv``.

    ``profile_from``: ``rollouts`` (the single-object settings, sampled on ``n_levels``),
    ``exact`` (the same settings solved exactly, ``gmg.experiments.exact``: no action noise, but
    about twice the CPU time on the zoo, docs/benchmarks.md) or ``network`` (``gmg.experiments.analysis.readout``: headings and pulls on ``readout_levels``
    levels of rendered frames, no rollouts). Either way, with ``attribution``, the goal-pixel attributions
    (``readout.goal_attribution``, ``readout_levels`` levels) go into the store's
    ``goal_attribution`` table. ``run_chunks`` plays the evaluations' chunks elsewhere (``evaluate``'s,
    ``gmg.experiments.cluster.chunk_runner``: Ray tasks or local worker processes)."""
    from pathlib import Path

    from gmg.experiments.analysis.contest import predict_contest
    from gmg.experiments.evaluate import evaluate, metrics
    from gmg.experiments.population import population
    from gmg.experiments.settings import default_settings, resolve_settings
    from gmg.experiments.store import ResultsStore

    if profile_from not in PROFILE_SOURCES:
        raise UserError(f"unknown profile source {profile_from!r}: use {', '.join(PROFILE_SOURCES)}")
    check_combine(combine)  # before the rollouts, not after
    agents = population(agents)
    goal, background = agents.trained_on.goal, agents.trained_on.background
    targets = resolve_settings(settings, background) if settings else default_settings(goal, background)
    targets = [s for s in targets if not s.single]
    usable = []
    for s in targets:
        try:
            expressible(s.name)
            usable.append(s)
        except UserError:
            pass
    measured = profile_from != "network"  # the profile from the one-object settings' episodes or chains
    # the contest model's profile objects: what the channel rule would build, measured alone
    extra = measured_objects([s.name for s in usable], goal) if measured else []
    own = resolve_settings(list(dict.fromkeys([*profile_settings(goal), *(f"train:{o}" for o in extra)])),
                           background) if measured else []
    eps = evaluate(agents, usable, run_dir, device, n_levels=n_levels, seed=seed, progress=progress,
                   run_chunks=run_chunks)
    if measured:
        # sampled by default: a sampled episode draws only the states it visits (~4-11 frames per
        # level, cached per state), the chain every state entered with probability above eps (~16-35)
        prof = profile(evaluate(agents, own, run_dir, device, n_levels=n_levels, seed=seed, progress=progress,
                                exact=profile_from == "exact", run_chunks=run_chunks), goal, seed=seed, extra=extra)
    else:
        from gmg.experiments.analysis.readout import readout_profile

        prof = readout_profile(agents, n_levels=readout_levels, device=device)
    base = {s.name: base_name(s.name) for s in usable}
    names = list(dict.fromkeys(base.values()))
    pred = predict_ratio(prof, names, goal)
    world_dim, _, timeout = agents.trained_on.geometry
    source = agents.trained_on.levels  # the walker walks the mazes the episodes were played on
    if measured:  # pulls from the efficiencies; the network readout reads them off the policy
        curve = efficiency_curve(mazes(n_levels, 1, world_dim, source), PULL_GRID, timeout)
        prof = prof.merge(pull_profile(prof, curve, n_levels), on="agent")
    pulls = prof[["agent", *PULL_COLUMNS, *(f"b_{o}" for o in extra)]]
    two = mazes(n_levels, 2, world_dim, source)
    pred = pred.merge(predict_walk(pulls, names, goal, two, combine), on=["agent", "setting"])
    targets_eps = eps[eps["setting"].isin([s.name for s in usable])]
    observed = metrics(targets_eps).assign(setting=lambda m: base_names(m["setting"]))
    # the contest model beside the walk model: its constant fitted on the other settings' preferences
    pred = pred.merge(predict_contest(pulls, observed.rename(columns={"preference": "observed"}).dropna(
        subset=["observed"]), goal, two), on=["agent", "setting"], how="left")
    out = score(pred, observed, targets_eps.assign(setting=base_names(targets_eps["setting"])))
    run_dir = Path(run_dir)
    # the default model's files and table; the others' beside them, named after what differs
    suffix = ("" if profile_from == "rollouts" else f"_{profile_from}") + ("" if combine == COMBINE else f"_{combine}")
    (run_dir / "analysis").mkdir(parents=True, exist_ok=True)
    prof.to_csv(run_dir / "analysis" / f"predict_profile{suffix}.csv", index=False)
    out["settings"].to_csv(run_dir / "analysis" / f"predict_scores{suffix}.csv", index=False)
    if not suffix:  # the store's table holds the default's: the rollout profile, channels by their maximum
        with ResultsStore(run_dir) as store:
            store.write_chunk("predictions", out["predictions"][["agent", "setting", "s1", "s2", "b1", "b2", "observed",
                                                                 "walk", "contest", "ratio", "logit",
                                                                 "logit_loso", "logit_loao"]], {})
    if attribution:  # network-only: a candidate regressor of ``gmg regress`` beside the profile
        from gmg.experiments.analysis.readout import goal_attribution

        out["goal_attribution"] = goal_attribution(agents, n_levels=readout_levels, device=device)
        out["goal_attribution"].to_csv(run_dir / "analysis" / "predict_goal_attribution.csv", index=False)
        with ResultsStore(run_dir) as store:
            store.write_chunk("goal_attribution", out["goal_attribution"], {})
    out["profile"] = prof
    out["skipped"] = [s.name for s in targets if s not in usable]
    return out
