"""Regressions over the population: does what a seed relies on predict what it prefers?

Every regression is a function over a tidy DataFrame and a statsmodels formula that
returns the fitted statsmodels result (OLS with HC3 heteroskedasticity-robust errors by
default); :func:`tidy` turns a result into a table and :func:`diagnostics` gives the
residual checks. Column and setting names are parameters: the defaults follow the
``episodes`` / ``reliance`` / ``probes`` tables of the results store.

    >>> res = behavioural_regression(prefs)          # the original analysis
    >>> tidy(res)                                    # term, coef, se, t, p, ci_low, ci_high, r2, n
    >>> plot_regression(res, "runs/x/plots/regress_behavioural.png")
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import pyplot
from gmg.experiments.rundir import (
    MissingStage,
    has_stage,
    missing,
    population_metrics,
    read_stage,
    write_notes,
    write_table,
)
from gmg.experiments.rundir import table as table_of
from gmg.experiments.settings import base_name, base_names
from gmg.training.errors import UserError

# the original behavioural regression: preference(yellow gem vs red line) on
# preference(green line vs red line); the names are resolved against the settings catalogue
BEHAVIOURAL_Y = ("yellow_gem", "red_line")
BEHAVIOURAL_X = ("green_line", "red_line")


def wide(df: pd.DataFrame, value: str, agent_col: str = "agent", setting_col: str = "setting") -> pd.DataFrame:
    """agents x settings table of one metric."""
    return df.pivot_table(index=agent_col, columns=setting_col, values=value, aggfunc="mean")


def find_setting(settings: list[str], objects: tuple[str, str]) -> str | None:
    """The setting among ``settings`` whose name contains both object names in order, else None.

    ``objects`` = (obj1, obj2), e.g. ("yellow_gem", "red_line"); names are compared with
    any of ``_``, ``-`` and spaces treated alike.
    """
    def norm(s: str) -> str:
        return re.sub(r"[\s_\-]+", "_", s.lower())

    a, b = norm(objects[0]), norm(objects[1])
    for s in settings:
        n = norm(s)
        if a in n and b in n and n.index(a) < n.rindex(b):
            return s
    return None


def _resolve(settings: list[str], name: str | None, default: tuple[str, str]) -> str:
    if name is not None:
        if name not in settings:
            raise UserError(f"setting {name!r} not evaluated; evaluated: {', '.join(sorted(settings))}")
        return name
    exact = f"{default[0]}-vs-{default[1]}"  # the catalogue's name (experiments/settings.py)
    found = exact if exact in settings else find_setting(settings, default)
    if found is None:
        raise MissingStage(
            f"no evaluated setting with {default[0]} vs {default[1]}: run `gmg evaluate` with that setting "
            f"(evaluated: {', '.join(sorted(settings)) or 'none'})"
        )
    return found


# ------------------------------------------------------------------ fitting
def fit_ols(data: pd.DataFrame, formula: str, cov_type: str = "HC3"):
    """``statsmodels.formula.api.ols(formula, data).fit(cov_type=cov_type, use_t=True)``; rows
    with NaN dropped. ``use_t``: p-values and intervals from t(n - k), not the normal, which
    statsmodels uses by default with a robust covariance and which is optimistic at n = 16."""
    import statsmodels.formula.api as smf

    if len(data) < 3:
        raise UserError(f"a regression needs at least 3 agents with data, got {len(data)}")
    return smf.ols(formula, data=data).fit(cov_type=cov_type, use_t=True)


def tidy(result, alpha: float = 0.05) -> pd.DataFrame:
    """One row per term: term, coef, se, t, p, ci_low, ci_high, plus r2, r2_adj, n, cov_type."""
    ci = result.conf_int(alpha=alpha)
    out = pd.DataFrame({
        "term": result.params.index,
        "coef": result.params.values,
        "se": result.bse.values,
        "t": result.tvalues.values,
        "p": result.pvalues.values,
        "ci_low": ci.iloc[:, 0].values,
        "ci_high": ci.iloc[:, 1].values,
    })
    out["r2"] = result.rsquared
    out["r2_adj"] = result.rsquared_adj
    out["r2_cv"] = getattr(result, "gmg_r2_cv", np.nan)
    out["n"] = int(result.nobs)
    out["cov_type"] = result.cov_type
    return out


def diagnostics(result) -> dict:
    """Residual checks of an OLS result.

    Breusch-Pagan (heteroskedasticity; p < 0.05 = evidence of it), Jarque-Bera (normal
    residuals), Durbin-Watson (about 2 = no autocorrelation in agent order), Cook's
    distance (influence; ``influential`` lists rows above 4/n).
    """
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.stats.stattools import durbin_watson, jarque_bera

    resid = np.asarray(result.resid)
    exog = result.model.exog
    out = {"n": int(result.nobs)}
    if exog.shape[1] > 1 and np.ptp(resid) > 0:
        lm, lm_p, _, _ = het_breuschpagan(resid, exog)
        out.update(breusch_pagan=float(lm), breusch_pagan_p=float(lm_p))
    else:
        out.update(breusch_pagan=np.nan, breusch_pagan_p=np.nan)
    jb, jb_p, skew, kurt = jarque_bera(resid)
    out.update(jarque_bera=float(jb), jarque_bera_p=float(jb_p), skew=float(skew), kurtosis=float(kurt))
    out["durbin_watson"] = float(durbin_watson(resid))
    # Cook's distance comes from the nonrobust influence measures (its definition uses the OLS hat matrix)
    cooks = result.get_influence().cooks_distance[0]
    # NaN where a tiny population leaves no residual degrees of freedom
    cooks = pd.Series(cooks, index=result.model.data.row_labels).dropna()
    out["max_cooks_d"] = float(cooks.max()) if len(cooks) else np.nan
    out["most_influential"] = cooks.idxmax() if len(cooks) else None
    out["influential"] = list(cooks.index[cooks > 4 / max(len(cooks), 1)])
    return out


def diagnostics_table(results: dict) -> pd.DataFrame:
    """One row per named result: its diagnostics (``influential`` joined as text)."""
    rows = []
    for name, res in results.items():
        d = diagnostics(res)
        d["influential"] = " ".join(map(str, d["influential"]))
        rows.append({"model": name} | d)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the two analyses
def behavioural_regression(
    prefs: pd.DataFrame,
    y_setting: str | None = None,
    x_setting: str | None = None,
    agent_col: str = "agent",
    setting_col: str = "setting",
    value_col: str = "preference",
    cov_type: str = "HC3",
):
    """OLS of preference in ``y_setting`` on preference in ``x_setting`` across agents.

    The original analysis: y = preference(yellow gem vs red line), x = preference(green
    line vs red line); None finds those settings by name among the evaluated ones.
    ``prefs`` is tidy: one row per (agent, setting) with ``value_col``. The result's data
    has columns ``y`` and ``x`` indexed by agent.
    """
    settings = sorted(prefs[setting_col].unique().tolist())
    y_name = _resolve(settings, y_setting, BEHAVIOURAL_Y)
    x_name = _resolve(settings, x_setting, BEHAVIOURAL_X)
    w = wide(prefs, value_col, agent_col, setting_col)
    data = pd.DataFrame({"y": w[y_name], "x": w[x_name]}).dropna()
    res = fit_ols(data, "y ~ x", cov_type)
    res.gmg_labels = {"y": f"preference: {y_name}", "x": f"preference: {x_name}"}
    return res


def pick_column(df: pd.DataFrame, wanted: str | None, hints: tuple[str, ...], what: str) -> str:
    """``wanted`` if given (it must exist), else the first numeric column whose name contains a hint."""
    if wanted is not None:
        if wanted not in df.columns:
            raise UserError(f"no column {wanted!r} in the {what} table; it has {', '.join(map(str, df.columns))}")
        return wanted
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    for hint in hints:
        for c in numeric:
            if hint in str(c).lower():
                return c
    raise UserError(f"cannot tell which {what} column to use; name one (columns: {', '.join(map(str, df.columns))})")


def probe_rows(probes: pd.DataFrame, probe: str = "cell_logistic") -> pd.DataFrame:
    """The rows of one probe kind on the network's layers (pixel baselines dropped), in layer order.

    Columns ``probe``, ``layer_index`` are used when present (``gmg.experiments.probing``'s table).
    """
    df = probes
    if "probe" in df.columns and probe is not None:
        df = df[df["probe"] == probe]
    if "layer" in df.columns:
        df = df[~df["layer"].astype(str).str.startswith("pixels.")]
    if "layer_index" in df.columns:
        df = df.sort_values("layer_index", kind="mergesort")
    return df


def detectability(
    probes: pd.DataFrame,
    obj: str | None = None,
    layer: str | None = None,
    agent_col: str = "agent",
    object_col: str = "object",
    layer_col: str = "layer",
    value_col: str = "accuracy",
) -> pd.Series:
    """Per-agent probe accuracy for ``obj`` at ``layer`` (None: the best layer of each agent).

    Uses the ``cell_logistic`` probe rows on network layers (see :func:`probe_rows`).
    """
    df = probe_rows(probes)
    if obj is not None and object_col in df.columns:
        df = df[df[object_col] == obj]
    if layer is not None and layer_col in df.columns:
        df = df[df[layer_col] == layer]
    if df.empty:
        raise UserError(f"no probe results for object={obj!r} layer={layer!r}: run `gmg probe` for it")
    return df.groupby(agent_col)[value_col].max().rename("detectability")


def mechanistic_regression(
    prefs: pd.DataFrame,
    reliance: pd.DataFrame,
    detectability: pd.Series | pd.DataFrame | None = None,
    setting: str | None = None,
    reliance_col: str | None = None,
    agent_col: str = "agent",
    setting_col: str = "setting",
    value_col: str = "preference",
    cov_type: str = "HC3",
):
    """OLS of out-of-distribution preference in ``setting`` on channel reliance (+ detectability).

    ``prefs``: tidy (agent, setting, preference); ``reliance``: one row per agent with a
    numeric ``reliance_col`` (None: the first column named like reliance/score); optional
    ``detectability``: per-agent Series (or a frame with an agent column) of probe accuracy.
    ``setting`` None = the yellow gem vs red line setting. Formula ``y ~ reliance
    [+ detectability]``.
    """
    settings = sorted(prefs[setting_col].unique().tolist())
    name = _resolve(settings, setting, BEHAVIOURAL_Y)
    col = pick_column(reliance, reliance_col, ("green_vs_red", "reliance", "score"), "reliance")
    y = wide(prefs, value_col, agent_col, setting_col)[name]
    rel = reliance.groupby(agent_col)[col].mean()
    data = pd.DataFrame({"y": y, "reliance": rel})
    formula, notes = "y ~ reliance", []
    if detectability is not None:
        det = detectability
        if isinstance(det, pd.DataFrame):
            det = det.set_index(agent_col)["detectability"] if agent_col in det.columns else det.iloc[:, 0]
        data["detectability"] = det
        agents = data[["y", "reliance"]].dropna().index
        covered = int(data.loc[agents, "detectability"].notna().sum())
        # only over every agent: a fit on the probed few would quietly shrink n; and a
        # second regressor needs residual degrees of freedom to mean anything
        if covered == len(agents) and covered >= 5:
            formula += " + detectability"
        else:
            data = data.drop(columns="detectability")
            notes.append(f"detectability left out of the mechanistic regression: probes cover {covered} of the "
                         f"{len(agents)} agents with preference and reliance" + (" (need at least 5)" if covered < 5 else ""))
    data = data.dropna()
    res = fit_ols(data, formula, cov_type)
    res.gmg_labels = {"y": f"preference: {name}", "reliance": f"reliance ({col})", "detectability": "detectability"}
    res.gmg_notes = notes
    return res


def cv_r2(data: pd.DataFrame, formula: str) -> float:
    """Leave-one-agent-out R² of an OLS ``formula`` on ``data`` (column ``y``): each agent
    predicted by the fit without it; below in-sample R², and negative when the fit predicts
    new agents worse than their mean."""
    import statsmodels.formula.api as smf

    from gmg.experiments.analysis.scoring import r2

    pred = [float(smf.ols(formula, data.drop(index=i)).fit().predict(data.loc[[i]]).iloc[0]) for i in data.index]
    return r2(np.asarray(pred), data["y"].to_numpy(float))


# candidate regressors from the channel profile, chosen per run by cross-validated R²
CHANNEL_FORMULAS = ("y ~ log_odds", "y ~ red + green", "y ~ red + green + blue", "y ~ log_odds + red + green")
# and from the network, where the run holds them (``gmg predict``'s goal-pixel attributions,
# ``gmg probe``'s selectivity over the random-network control)
EXTRA_FORMULAS = {"ig_red_minus_green": ("y ~ ig_red_minus_green", "y ~ log_odds + ig_red_minus_green"),
                  "selectivity": ("y ~ selectivity", "y ~ log_odds + selectivity"),
                  # and the walk model's prediction of this very setting (``gmg predict``, from the profile)
                  "walk": ("y ~ walk",)}


def selectivity(probes: pd.DataFrame, obj: str) -> pd.Series:
    """Per-agent probe selectivity for ``obj``: accuracy minus a random network's on the same
    frames (``selectivity_random``), at the agent's most selective layer; the early layers that
    an untrained network decodes as well score about 0 here, unlike the raw accuracy."""
    if "selectivity_random" not in probes.columns:
        raise UserError("the probes table has no random-network control: rerun `gmg probe` with its controls")
    return detectability(probes, obj, value_col="selectivity_random").rename("selectivity")


def channel_regression(prefs: pd.DataFrame, prof: pd.DataFrame, setting: str | None = None, goal: str = "yellow_line",
                       agent_col: str = "agent", setting_col: str = "setting", value_col: str = "preference",
                       cov_type: str = "HC3", extra: pd.DataFrame | None = None):
    """OLS of preference in ``setting`` (default yellow gem vs red line) on the channel profile
    (``gmg.experiments.analysis.predict.profile``): ``log_odds`` = log s1 - log s2 of the channel
    model's object strengths, and ``red``/``green``/``blue`` = E_k - E0, the efficiency toward a
    pure channel-k line alone above the floor. The formula is the one of ``CHANNEL_FORMULAS``
    with the best leave-one-agent-out R² (``gmg_candidates`` holds them all). ``extra``: per-agent
    columns (index agent) named in ``EXTRA_FORMULAS``; their formulas join the candidates when
    they cover every agent."""
    from gmg.experiments.analysis.profile_objects import strength
    from gmg.experiments.settings import parse_setting

    settings = sorted(prefs[setting_col].unique().tolist())
    name = _resolve(settings, setting, BEHAVIOURAL_Y)
    s = parse_setting(name)
    p = prof.set_index("agent")
    y = wide(prefs, value_col, agent_col, setting_col)[name]
    log_odds = pd.Series({a: np.log(strength(r, s.obj1, goal)) - np.log(strength(r, s.obj2, goal)) for a, r in p.iterrows()})
    data = pd.DataFrame({"y": y, "log_odds": log_odds, **{c: p[f"E_{c}"] - p["E0"] for c in ("red", "green", "blue")}})
    data = data.dropna()
    if len(data) < 6:
        raise UserError(f"the channel regression needs at least 6 agents with a profile, got {len(data)}")
    formulas, notes = list(CHANNEL_FORMULAS), []
    for col, fs in EXTRA_FORMULAS.items():
        if extra is None or col not in extra.columns:
            continue
        v = extra[col].reindex(data.index)
        if v.notna().all() and v.nunique() > 1:
            data[col] = v
            formulas += fs
        elif v.notna().all():
            notes.append(f"{col} left out of the channel regression: it is the same for every agent")
        else:  # a fit on the covered few would quietly shrink n
            notes.append(f"{col} left out of the channel regression: it covers {int(v.notna().sum())} of {len(data)} agents")
    candidates = {f: cv_r2(data, f) for f in formulas}
    best = max(candidates, key=lambda f: candidates[f] if np.isfinite(candidates[f]) else -np.inf)
    res = fit_ols(data, best, cov_type)
    res.gmg_labels = {"y": f"preference: {name}", "log_odds": "channel model log-odds (profile)",
                      "red": "E(red line) - E0", "green": "E(green line) - E0", "blue": "E(blue line) - E0",
                      "ig_red_minus_green": "IG share red - green on the goal's pixels",
                      "selectivity": "probe selectivity over a random network"}
    res.gmg_r2_cv, res.gmg_candidates, res.gmg_notes = candidates[best], candidates, notes
    return res


# ------------------------------------------------------------------ plots
def plot_regression(result, path: str | Path, x: str | None = None, title: str | None = None, alpha: float = 0.05) -> Path:
    """Scatter of the data, the fitted line (other regressors at their mean) and its 1-alpha band."""
    plt = pyplot()

    data = result.model.data.frame
    regressors = [c for c in result.params.index if c != "Intercept"]
    x = x or regressors[0]
    y = result.model.endog_names
    grid = np.linspace(data[x].min(), data[x].max(), 100)
    new = pd.DataFrame({c: np.full_like(grid, data[c].mean()) for c in regressors})
    new[x] = grid
    pred = result.get_prediction(new).summary_frame(alpha=alpha)
    labels = getattr(result, "gmg_labels", {})
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(data[x], data[y], s=18, alpha=0.7, color="tab:blue", label="agents")
    ax.plot(grid, pred["mean"], color="tab:red", label="OLS fit")
    ax.fill_between(grid, pred["mean_ci_lower"], pred["mean_ci_upper"], color="tab:red", alpha=0.2,
                    label=f"{int(100 * (1 - alpha))}% CI ({result.cov_type})")
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y))
    coef, p = result.params[x], result.pvalues[x]
    ax.set_title(title or f"slope {coef:.3f} (p={p:.3g}), R²={result.rsquared:.2f}, n={int(result.nobs)}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    from gmg.experiments.plots.style import save_figure

    return save_figure(fig, path)


def panel_data(res) -> tuple[pd.DataFrame, str, str]:
    """(agent, x, y, fit) of one fitted regression, the x-axis title and the y-axis title.

    One regressor: x is that regressor and fit its straight line. Several: x is the model's
    prediction and fit the identity line (predicted vs observed), since no single regressor's
    axis carries a fit of several.
    """
    frame = res.model.data.frame
    labels = getattr(res, "gmg_labels", {})
    regressors = [c for c in res.params.index if c != "Intercept"]
    y = res.model.endog_names
    d = pd.DataFrame({"agent": frame.index.astype(int), "y": frame[y].astype(float)})
    fitted = res.predict(frame).astype(float).to_numpy()
    if len(regressors) == 1:
        x = regressors[0]
        d["x"], d["fit"] = frame[x].astype(float).to_numpy(), fitted
        x_title = labels.get(x, x)
    else:
        d["x"] = d["fit"] = fitted
        x_title = f"predicted by {res.model.formula}"
    return d, x_title, labels.get(y, "preference") + (" (observed)" if len(regressors) != 1 else "")


def points_table(results: dict) -> pd.DataFrame:
    """Every fitted model's agents as the report draws them: model, agent, x, y, fit, the axis
    titles and the panel's title (``panel_data`` of each)."""
    frames = []
    for name, res in results.items():
        d, x_title, y_title = panel_data(res)
        frames.append(d.assign(model=name, x_title=x_title, y_title=y_title,
                               title=f"{name}: {res.model.formula}, R² {res.rsquared:.2f}, n {int(res.nobs)}"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ------------------------------------------------------------------ the verb
def _profile_of_run(run_dir: Path, prefs: pd.DataFrame) -> tuple[str | None, pd.DataFrame | None]:
    """(goal, channel profile) from the run's single-object episodes, if it holds a goal's
    profile settings; (None, None) if not."""
    from gmg.experiments.analysis.predict import profile, profile_settings

    present = set(base_names(prefs["setting"]))
    goals = [s.split(":", 1)[1] for s in present if s.startswith("train:") and s.endswith("_line")]
    for goal in goals:
        if set(profile_settings(goal)) <= present:
            return goal, profile(read_stage(run_dir, "episodes"), goal)
    return None, None



def run_regressions(
    run_dir: str | Path,
    y_setting: str | None = None,
    x_setting: str | None = None,
    reliance_col: str | None = None,
    probe_object: str | None = "red_line",
    metrics: pd.DataFrame | None = None,
) -> dict:
    """Fit every regression the store has data for; write CSVs and PNGs; return what was done.

    Writes ``regression.csv`` (tidy, one block per model) and ``regression_diagnostics.csv``
    under ``run_dir/analysis/`` and ``regress_<model>.png`` under ``run_dir/plots/``.
    Returns {"results": {name: result}, "notes": [...], "table": DataFrame, "files": [...]}.
    Raises :class:`MissingStage` when no regression can run. ``metrics``: the output of
    :func:`population_metrics` if already computed.
    """
    run_dir = Path(run_dir)
    prefs = metrics if metrics is not None else population_metrics(read_stage(run_dir, "episodes"))
    results, notes = {}, []
    try:
        results["behavioural"] = behavioural_regression(prefs, y_setting, x_setting)
    except MissingStage as e:
        notes.append(f"behavioural regression skipped: {e}")
    if has_stage(run_dir, "reliance"):
        det = None
        if has_stage(run_dir, "probes") and probe_object:
            try:
                det = detectability(read_stage(run_dir, "probes"), probe_object)
            except (UserError, KeyError) as e:
                notes.append(f"detectability not used: {e}")
        try:
            results["mechanistic"] = mechanistic_regression(prefs, read_stage(run_dir, "reliance"), det, y_setting, reliance_col)
            notes += results["mechanistic"].gmg_notes
        except (UserError, KeyError) as e:
            notes.append(f"mechanistic regression skipped: {e}")
    else:
        notes.append(f"mechanistic regression skipped: {missing(run_dir, 'reliance')}")
    goal, prof = _profile_of_run(run_dir, prefs)
    if prof is not None:
        extra = []
        if has_stage(run_dir, "goal_attribution"):
            extra.append(read_stage(run_dir, "goal_attribution").groupby("agent")[["ig_red_minus_green"]].mean())
        if has_stage(run_dir, "predictions"):
            pred = read_stage(run_dir, "predictions")
            try:  # an unresolvable setting is channel_regression's one line to say, below
                y_name = base_name(_resolve(sorted(prefs["setting"].unique().tolist()), y_setting, BEHAVIOURAL_Y))
                if "walk" in pred.columns:
                    extra.append(pred[pred["setting"] == y_name].groupby("agent")[["walk"]].mean())
            except UserError:
                pass
        if has_stage(run_dir, "probes") and probe_object:
            try:
                extra.append(selectivity(read_stage(run_dir, "probes"), probe_object).to_frame())
            except UserError as e:
                notes.append(f"probe selectivity not used: {e}")
        try:
            results["channel"] = channel_regression(prefs, prof, y_setting, goal,
                                                    extra=pd.concat(extra, axis=1) if extra else None)
            notes += results["channel"].gmg_notes
            shown = ", ".join(f"{f}: {v:.2f}" for f, v in results["channel"].gmg_candidates.items())
            notes.append(f"channel regression: regressors chosen by leave-one-agent-out R² ({shown})")
        except (UserError, KeyError) as e:
            notes.append(f"channel regression skipped: {e}")
    else:
        notes.append("channel regression skipped: no single-object profile settings; run `gmg predict --run-dir "
                     f"{run_dir}`")
    for res in results.values():  # out of sample beside in sample, for every model alike
        if not hasattr(res, "gmg_r2_cv"):
            res.gmg_r2_cv = cv_r2(res.model.data.frame, res.model.formula)
    write_notes(run_dir, "regression_notes", notes)  # the report shows them, with the tables or without
    if not results:
        for name in ("regression", "regression_diagnostics", "regression_points"):  # of an earlier run
            table_of(name).path(run_dir).unlink(missing_ok=True)
        raise MissingStage("; ".join(notes))
    table = pd.concat([tidy(r).assign(model=name) for name, r in results.items()], ignore_index=True)
    table = table[["model"] + [c for c in table.columns if c != "model"]]
    files = [write_table(run_dir, "regression", table),
             write_table(run_dir, "regression_diagnostics", diagnostics_table(results)),
             write_table(run_dir, "regression_points", points_table(results))]
    for name, res in results.items():
        files.append(plot_regression(res, run_dir / "plots" / f"regress_{name}.png"))
    for stale in (run_dir / "plots").glob("regress_*.png"):  # of a model not fitted this time
        if stale not in files:
            stale.unlink()
    return {"results": results, "notes": notes, "table": table, "files": files}
