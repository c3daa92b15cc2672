"""The report's findings in sentences, computed from the run's own data (no fixed claims).

``findings(...)`` returns ``Finding`` items, each a sentence and the section of the page
whose figure shows it: how far the population disagrees in each setting, which settings
split it, how capable it stays, how well the regressions explain preference, the top
outliers and what makes each unusual, and populations compared side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gmg.experiments.settings import parse_setting

SIDE = 0.4  # an agent prefers obj1 above 1 - SIDE and obj2 below SIDE


@dataclass(frozen=True)
class Finding:
    text: str
    href: str  # the section (``#scatters``) whose figure shows it


def _label(name: str) -> str:
    return name.replace("_", " ")


def bimodality(values: np.ndarray) -> float:
    """Sarle's bimodality coefficient (skewness² + 1) / (excess kurtosis + 3 (n-1)² / ((n-2)(n-3)));
    above 5/9 (its value for a uniform distribution) suggests two modes. NaN for n < 4."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 4 or np.ptp(v) == 0:
        return float("nan")
    g, k = stats.skew(v, bias=False), stats.kurtosis(v, bias=False)
    return float((g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def disagreement(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per two-object setting: agents, preference range, IQR, bimodality, and how many agents
    prefer each object; sorted by the interquartile range, widest first."""
    rows = []
    for setting, d in metrics.groupby("setting", sort=False):
        s = parse_setting(setting)
        p = d["preference"].dropna().to_numpy(dtype=float)
        if s.single or len(p) == 0:
            continue
        q1, q3 = np.percentile(p, [25, 75])
        rows.append({"setting": setting, "obj1": s.obj1, "obj2": s.obj2, "n": len(p), "min": p.min(), "max": p.max(),
                     "q1": q1, "q3": q3, "iqr": q3 - q1, "bimodality": bimodality(p),
                     "prefer_obj1": int((p > 1 - SIDE).sum()), "prefer_obj2": int((p < SIDE).sum())})
    return pd.DataFrame(rows).sort_values("iqr", ascending=False, kind="mergesort") if rows else pd.DataFrame()


def findings(metrics: pd.DataFrame | None, regression: pd.DataFrame | None = None,
             outliers: dict | None = None, asymmetry: pd.DataFrame | None = None,
             decomposition: pd.DataFrame | None = None, predictions: pd.DataFrame | None = None) -> list[Finding]:
    """Sentences about the run: ``metrics`` (``evaluate.metrics`` rows, un-intervened),
    ``regression`` (the tidy table of ``run_regressions``), ``outliers`` (``run_outliers``'s
    output), ``asymmetry`` (``gmg compare``'s table), ``decomposition`` (``gmg anatomy``'s),
    ``predictions`` (``gmg predict``'s per-setting scores)."""
    out: list[Finding] = []
    if metrics is not None and len(metrics):
        d = disagreement(metrics)
        n_agents = metrics["agent"].nunique()
        if len(d):
            top = d.iloc[0]
            out.append(Finding(
                f"{n_agents} agents disagree most in {top.setting}: preference for the {_label(top.obj1)} ranges "
                f"{top['min']:.2f}-{top['max']:.2f} (interquartile {top.q1:.2f}-{top.q3:.2f}); {top.prefer_obj1} prefer "
                f"the {_label(top.obj1)} (> {1 - SIDE:.1f}), {top.prefer_obj2} the {_label(top.obj2)} (< {SIDE:.1f}).",
                "#scatters"))
            split = d[(d.prefer_obj1 > 0) & (d.prefer_obj2 > 0)]
            if len(split):
                out.append(Finding(
                    f"{len(split)} of {len(d)} two-object settings split the population (some agents prefer each "
                    f"object): {', '.join(split.setting)}.", "#scatters"))
            else:
                out.append(Finding(f"No setting splits the population: in each of the {len(d)} two-object settings "
                                   "the agents lean the same way or stay undecided.", "#scatters"))
            modal = d[d.bimodality > 5 / 9]
            if len(modal):
                out.append(Finding(f"Preferences look bimodal (Sarle's coefficient > 5/9) in {', '.join(modal.setting)}.",
                                   "#scatters"))
        # two-object settings only: a profile's single-object settings hide the goal's colour on purpose
        pairs = metrics[metrics["setting"].str.contains("-vs-")]
        if "timeout_rate" in metrics and len(pairs):
            worst = pairs.groupby("agent")["timeout_rate"].max()
            out.append(Finding(f"{int((worst <= 0.05).sum())} of {n_agents} agents time out in at most 5% of episodes "
                               f"in every two-object setting (worst agent: {worst.max():.0%}).", "#scatters"))
    if regression is not None and len(regression):
        for model, d in regression.groupby("model", sort=False):
            slope = d[d["term"] != "Intercept"].iloc[0]
            cv = float(slope.get("r2_cv", np.nan))
            out.append(Finding(
                f"The {model} regression explains R² {float(slope['r2']):.2f} of the preference variance across "
                f"{int(slope['n'])} agents in sample"
                + (f", {cv:.2f} out of sample (each agent left out of the fit)" if np.isfinite(cv) else "")
                + f" (slope of {slope['term']} {float(slope['coef']):.2f}, 95% CI "
                f"{float(slope['ci_low']):.2f} to {float(slope['ci_high']):.2f}).", "#regression"))
    model = None
    if predictions is not None and len(predictions):
        model = "walk" if "r2_walk" in predictions and predictions["r2_walk"].notna().any() else "ratio"
    if model is not None and predictions[f"r2_{model}"].notna().any():  # all NaN: no agent chose an object
        r2 = predictions[f"r2_{model}"]
        best = predictions.loc[r2.idxmax()]
        out.append(Finding(
            f"From each agent's single-object profile alone (no two-object setting), the {model} model predicts "
            f"its preference across agents with R² {r2.median():.2f} in the median of {len(predictions)} settings "
            f"(from {r2.min():.2f} to {r2.max():.2f}, best in {best.setting} against a noise ceiling of "
            f"{best.noise_ceiling:.2f}); the model has no fitted parameter, so these are out of sample.",
            "#predictions"))
    if outliers is not None and len(outliers.get("ranking", [])):
        feats = outliers.get("features", pd.DataFrame())
        for agent in list(outliers["ranking"].index[:3]):
            mine = feats[feats["agent"] == agent] if len(feats) else feats
            why = "; ".join(f"{r.setting} {r.metric} {r.value:.2f} against a median of {r['median']:.2f} "
                            f"(robust z {r.z:+.1f})" for _, r in mine.head(2).iterrows())
            out.append(Finding(f"Agent {agent} is among the most unusual" + (f": {why}." if why else "."), "#outliers"))
    if asymmetry is not None and len(asymmetry):
        parts = [f"{r.population} ({r.background}) {r.asymmetry:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                 for r in asymmetry.itertuples()]
        out.append(Finding("Green line minus red line preference (each vs the yellow gem, 95% CI over agents): "
                           + "; ".join(parts) + ".", "#populations"))
    if decomposition is not None and len(decomposition):
        for r in decomposition.itertuples():
            if not np.isfinite(r.share_init):
                continue
            verdict = ("the initialisation decides more than the data order" if r.p_init < 0.05 <= r.p_data else
                       "the data order decides more than the initialisation" if r.p_data < 0.05 <= r.p_init else
                       "both parts of the seed matter" if r.p_init < 0.05 and r.p_data < 0.05 else
                       "neither part's share is distinguishable from zero")
            out.append(Finding(
                f"{_label(r.outcome)} over {r.n_init} x {r.n_data} grid agents: the initialisation explains "
                f"{r.share_init:.0%} [{r.share_init_lo:.0%}, {r.share_init_hi:.0%}] of the variance (p {r.p_init:.3f}), "
                f"the data order {r.share_data:.0%} [{r.share_data_lo:.0%}, {r.share_data_hi:.0%}] (p {r.p_data:.3f}): "
                f"{verdict}.", "#anatomy"))
    return out
