"""Outlier agents in the agents x (settings x {preference, capability}) matrix.

Three detectors on robust z-scores of the features (:func:`robust_z`: median / MAD, the
standard deviation where the MAD is 0; not sklearn's ``RobustScaler``, which leaves a column
with zero IQR in raw units, so an agent alone in a column where most agents are equal, the
Agent-439 case, ranked among the ordinary ones):
IsolationForest, LocalOutlierFactor and the robust Mahalanobis distance of a
minimum-covariance-determinant fit (``MinCovDet``). Each gives an abnormality score;
the **combined score is the median of the three per-method rank percentiles** (1.0 = the
most abnormal agent by at least two methods; ties broken by their mean), so no method's
scale dominates and one method alone can neither make nor hide an outlier (IsolationForest,
for one, often misses an agent that is extreme in one feature out of many). For each outlier the features
that make it one are its largest robust z-scores against the population, and
:func:`capable_but_unusual` keeps the Agent-439 kind: capability within the population's
normal range in every setting, preference far from it in some setting.

Small populations: LOF uses ``n_neighbors = min(20, max(2, (n - 1) // 2))``; MinCovDet needs more
agents than features, so when n <= p + 1 (or its covariance is singular) the distance
comes from a Ledoit-Wolf shrunk covariance instead, and ``ranking.attrs["notes"]`` says so.
Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import pyplot
from gmg.training.errors import UserError

METHODS = ("iforest", "lof", "mahalanobis")
# normal consistency constant: 1.4826 * MAD estimates the standard deviation of a normal
MAD_SCALE = 1.4826


def feature_matrix(
    metrics: pd.DataFrame,
    features: tuple[str, ...] = ("preference", "capability"),
    agent_col: str = "agent",
    setting_col: str = "setting",
) -> pd.DataFrame:
    """agents x (setting, metric) matrix (MultiIndex columns) from tidy per-(agent, setting) metrics."""
    missing = [f for f in features if f not in metrics.columns]
    if missing:
        raise UserError(f"metrics lack column(s) {missing}; have {', '.join(map(str, metrics.columns))}")
    m = metrics.pivot_table(index=agent_col, columns=setting_col, values=list(features), aggfunc="mean")
    m.columns = m.columns.swaplevel(0, 1)
    m.columns.names = ["setting", "metric"]
    # a single-object (train:) setting has no preference: an all-NaN column carries nothing
    return m.dropna(axis=1, how="all").sort_index(axis=1)


def _as_multi(matrix: pd.DataFrame) -> pd.DataFrame:
    """Accept MultiIndex (setting, metric) columns or flat "setting|metric" names."""
    if isinstance(matrix.columns, pd.MultiIndex):
        return matrix
    parts = [str(c).rsplit("|", 1) if "|" in str(c) else (str(c), "value") for c in matrix.columns]
    out = matrix.copy()
    out.columns = pd.MultiIndex.from_tuples([tuple(p) for p in parts], names=["setting", "metric"])
    return out


def robust_z(matrix: pd.DataFrame) -> pd.DataFrame:
    """(x - median) / (1.4826 * MAD) per column; where MAD is 0 the standard deviation, else 1.

    Robust statistics so that the outlier itself does not mask its own deviation.
    """
    med = matrix.median()
    scale = MAD_SCALE * (matrix - med).abs().median()
    std = matrix.std(ddof=0)
    scale = scale.where(scale > 1e-12, std).where(lambda s: s > 1e-12, 1.0)
    return (matrix - med) / scale


def _prepare(matrix: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    notes = []
    x = matrix.astype(float)
    if x.isna().any().any():
        n_nan = int(x.isna().sum().sum())
        notes.append(f"{n_nan} missing values (e.g. every episode timed out) imputed with the column median")
        x = x.fillna(x.median()).fillna(0.0)
    constant = x.columns[x.std(ddof=0) < 1e-12]
    if len(constant):
        notes.append(f"{len(constant)} constant feature(s) dropped")
        x = x.drop(columns=constant)
    if x.shape[1] == 0:
        raise UserError("every feature is constant across agents: nothing to rank")
    return robust_z(x).to_numpy(), notes


def _mahalanobis(x: np.ndarray, seed: int, notes: list[str]) -> np.ndarray:
    from sklearn.covariance import LedoitWolf, MinCovDet

    n, p = x.shape
    if n > p + 1:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                mcd = MinCovDet(random_state=seed).fit(x)
                if np.linalg.matrix_rank(mcd.covariance_) == p:
                    return mcd.mahalanobis(x)
            except (ValueError, RuntimeWarning, np.linalg.LinAlgError):
                pass
        notes.append("MinCovDet covariance singular: Mahalanobis distance from a Ledoit-Wolf covariance")
    else:
        notes.append(f"n={n} agents <= p+1={p + 1} features: Mahalanobis distance from a Ledoit-Wolf covariance")
    return LedoitWolf().fit(x).mahalanobis(x)


def rank_outliers(matrix: pd.DataFrame, seed: int = 0, n_estimators: int = 200) -> pd.DataFrame:
    """Score every agent with the three detectors and combine them into one ranking.

    Parameters
    ----------
    matrix : DataFrame of shape (n_agents, n_features), index = agent id.
    seed : seeds IsolationForest and MinCovDet.

    Returns
    -------
    DataFrame indexed by agent, sorted most abnormal first, with ``score_<method>``
    (higher = more abnormal), ``pct_<method>`` (rank percentile in (0, 1]), ``combined``
    (median of the percentiles), ``mean_pct`` and ``rank`` (1 = most abnormal). ``attrs["notes"]`` lists
    any fallback taken.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    n = len(matrix)
    if n < 3:
        raise UserError(f"outlier detection needs at least 3 agents, got {n}")
    x, notes = _prepare(matrix)
    scores = {}
    scores["iforest"] = -IsolationForest(n_estimators=n_estimators, random_state=seed).fit(x).score_samples(x)
    # LOF's default of 20 neighbours; with few agents use half the population so the
    # neighbourhoods stay local (k = n - 1 would compare every agent to everyone)
    k = min(20, max(2, (n - 1) // 2))
    if k < 20:
        notes.append(f"LOF uses n_neighbors={k} (population of {n})")
    lof = LocalOutlierFactor(n_neighbors=k).fit(x)
    scores["lof"] = -lof.negative_outlier_factor_
    scores["mahalanobis"] = _mahalanobis(x, seed, notes)
    out = pd.DataFrame({f"score_{m}": scores[m] for m in METHODS}, index=matrix.index)
    for m in METHODS:
        out[f"pct_{m}"] = out[f"score_{m}"].rank(method="average", pct=True)
    pct = out[[f"pct_{m}" for m in METHODS]]
    out["combined"] = pct.median(axis=1)
    out["mean_pct"] = pct.mean(axis=1)
    # stable sort on (median, mean) from an id-sorted frame: deterministic ties
    out = out.sort_index().sort_values(["combined", "mean_pct"], ascending=[False, False], kind="mergesort")
    out["rank"] = np.arange(1, n + 1)
    out.attrs["notes"] = notes
    return out


def explain_outliers(matrix: pd.DataFrame, agents, k: int = 3) -> pd.DataFrame:
    """For each agent in ``agents``: its ``k`` features with the largest |robust z|.

    Returns rows agent, feature, setting, metric, value, median, z (sorted by agent order
    then |z|).
    """
    m = _as_multi(matrix)
    z = robust_z(m.astype(float))
    med = m.median()
    rows = []
    for agent in agents:
        if agent not in m.index:
            raise UserError(f"agent {agent} is not in the population")
        top = z.loc[agent].abs().sort_values(ascending=False, kind="mergesort").head(k).index
        for col in top:
            rows.append({
                "agent": agent, "feature": f"{col[0]}|{col[1]}", "setting": col[0], "metric": col[1],
                "value": float(m.loc[agent, col]), "median": float(med[col]), "z": float(z.loc[agent, col]),
            })
    return pd.DataFrame(rows)


def capable_but_unusual(
    matrix: pd.DataFrame,
    capability: str = "capability",
    preference: str = "preference",
    capability_z_max: float = 3.0,
    preference_z_min: float = 4.0,
    preference_delta_min: float = 0.25,
) -> pd.DataFrame:
    """Agents as capable as the population everywhere, with an unusual preference somewhere.

    Capability is mean episode length (lower is better), so an agent is "fully capable"
    when its robust z is at most ``capability_z_max`` in every setting (being faster than
    usual is fine); "unusual preference" = |robust z| >= ``preference_z_min`` and
    |preference - population median| >= ``preference_delta_min`` in at least one setting
    (the second condition keeps a tiny deviation in a setting where nearly every agent
    scores 1.0, and so the MAD is tiny, from counting). Returns agent, setting (the most unusual one), preference, median, z,
    worst_capability_z, sorted by |z|.
    """
    m = _as_multi(matrix).astype(float)
    metrics = set(m.columns.get_level_values("metric"))
    if capability not in metrics or preference not in metrics:
        raise UserError(f"the matrix needs {capability!r} and {preference!r} columns; it has {sorted(metrics)}")
    z = robust_z(m)
    cap_z = z.xs(capability, axis=1, level="metric")
    pref_z = z.xs(preference, axis=1, level="metric")
    pref = m.xs(preference, axis=1, level="metric")
    capable = (cap_z.fillna(0) <= capability_z_max).all(axis=1)
    far = (pref - pref.median()).abs() >= preference_delta_min
    worst = pref_z.abs().where(far).fillna(0)
    unusual = worst.max(axis=1) >= preference_z_min
    rows = []
    for agent in m.index[capable & unusual]:
        s = worst.loc[agent].idxmax()
        rows.append({
            "agent": agent, "setting": s, "preference": pref.loc[agent, s], "median": pref[s].median(),
            "z": pref_z.loc[agent, s], "worst_capability_z": cap_z.loc[agent].max(),
        })
    out = pd.DataFrame(rows, columns=["agent", "setting", "preference", "median", "z", "worst_capability_z"])
    return out.reindex(out["z"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def plot_outliers(matrix: pd.DataFrame, ranking: pd.DataFrame, path: str | Path, top: int = 5) -> Path:
    """Two panels: combined score per agent (top ones named) and the robust-z heatmap of the top agents."""
    plt = pyplot()

    m = _as_multi(matrix).astype(float)
    z = robust_z(m)
    heads = list(ranking.index[:top])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.6]})
    ax = axes[0]
    ax.bar(np.arange(len(ranking)), ranking["combined"].to_numpy(), color="tab:gray")
    ax.bar(np.arange(len(heads)), ranking["combined"].to_numpy()[: len(heads)], color="tab:red")
    for i, a in enumerate(heads):
        ax.annotate(str(a), (i, ranking["combined"].iloc[i]), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xlabel("agents, most abnormal first")
    ax.set_ylabel("combined score (median rank percentile)")
    ax.set_ylim(0, 1.1)
    ax = axes[1]
    data = z.loc[heads].to_numpy()
    lim = max(3.0, float(np.nanmax(np.abs(data))) if data.size else 3.0)
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_yticks(range(len(heads)), [f"agent {a}" for a in heads], fontsize=8)
    ax.set_xticks(range(z.shape[1]), [f"{s}|{mt[:4]}" for s, mt in z.columns], rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, label="robust z")
    ax.set_title("top outliers: robust z of each feature", fontsize=9)
    fig.tight_layout()
    from gmg.experiments.plots.style import save_figure

    return save_figure(fig, path)


def run_outliers(run_dir: str | Path, top: int = 5, seed: int = 0, preference_z_min: float = 4.0,
                 metrics: pd.DataFrame | None = None) -> dict:
    """Rank the run's agents, explain the top ``top``, filter the capable-but-unusual ones.

    Reads the ``episodes`` table; writes ``outliers.csv``, ``outlier_features.csv``,
    ``capable_but_unusual.csv`` under ``run_dir/analysis/`` and ``outliers.png`` under
    ``run_dir/plots/``. Returns {"ranking", "features", "capable", "matrix", "notes", "files"}.
    ``metrics``: the output of ``rundir.population_metrics`` if already computed.
    """
    from gmg.experiments.rundir import population_metrics, read_stage, write_notes, write_table

    run_dir = Path(run_dir)
    if metrics is None:
        metrics = population_metrics(read_stage(run_dir, "episodes"))
    matrix = feature_matrix(metrics)
    ranking = rank_outliers(matrix, seed=seed)
    features = explain_outliers(matrix, ranking.index[:top])
    capable = capable_but_unusual(matrix, preference_z_min=preference_z_min)
    files = [write_table(run_dir, "outliers", ranking.rename_axis("agent"), index=True),
             write_table(run_dir, "outlier_features", features), write_table(run_dir, "capable_but_unusual", capable),
             write_notes(run_dir, "outlier_notes", ranking.attrs.get("notes", []))]
    files.append(plot_outliers(matrix, ranking, run_dir / "plots" / "outliers.png", top))
    return {"ranking": ranking, "features": features, "capable": capable, "matrix": matrix,
            "notes": ranking.attrs.get("notes", []), "files": files}
