"""Where shape lives in the network (issue 39, item 3), and whether it predicts the shape contest.

**Frames.** On the first ``n_levels`` evaluation levels of the population's level source, drawn
by its renderer (``readout.setting_views``), the goal's colour as a line and as a gem at the
level's own object cell, the mouse at its start (bottom left): one frame per level and shape,
the line and gem frames of a level differing only in the object's shape.

**Probe** (``probe_shape``): at each layer (``gmg.probes.activations.layer_names``), the
activations over the object's cell (``cell_window``: the positions covering its pixels pooled
to at most 3 x 3, the layout kept; fc and hidden whole) and the linear probe of ``gmg probe``
(``LinearProbe``: standardise, PCA 64, cross-validated L2 logistic regression) for line (0) or
gem (1), scored by 5-fold cross-validation with whole levels held out (``grouped_score``: 95%
Wilson interval). The same on randomly initialised networks of the same architecture
(``random_network_like``): what the pixels and the architecture alone give.

**The policy's shape readout** (``shape_readout``): the walk model's pull read off the policy
(``readout.pull_reading``: log odds of a move toward the object over a move away, the mouse in
every free cell) toward the line and toward the gem alone, and ``shape_pull = b_line - b_gem``.
Chosen because it is defined on single-object frames only and is in the units a walker turns
into a choice between two objects: the contest of the line against the gem, in these units, is
their pull difference.

**Across agents** (``across_agents``): does an agent's shape information (``best_accuracy``: its
best layer's probe accuracy past the input; ``hidden_accuracy``: the layer the policy reads; the
same in held-out bits, ``information_bits``, graded where accuracy saturates at 1) or
its ``shape_pull`` predict its observed preference for the line over the gem? A line fitted
leave one agent out (``loao_predictions``: the held-out agent's values never enter its fit),
out-of-sample R² with a bootstrap 95% interval over agents, and Spearman's rho with its
bootstrap interval.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from gmg.probes.activations import cell_window, collect_activations, layer_names
from gmg.probes.linear import LinearProbe, grouped_score, information_bits
from gmg.training.errors import UserError
from gmg.training.levels import start_cell
from gmg.training.objects import parse_object

SHAPES = ("line", "gem")  # labels 0 and 1
PREDICTORS = ("best_accuracy", "hidden_accuracy", "best_bits", "hidden_bits", "shape_pull")
INPUT_LAYER = "hook_obs"


def goal_colour(goal: str) -> str:
    return parse_object(goal).name.rsplit("_", 1)[0]


def shape_setting(goal: str) -> str:
    """The shape contest of ``goal``'s colour: ``COLOUR_line-vs-COLOUR_gem``."""
    c = goal_colour(goal)
    return f"{c}_line-vs-{c}_gem"


def shape_views(trained, n_levels: int) -> dict[str, list[dict]]:
    """Shape -> the views (``readout.setting_views``) of the goal's colour as that shape alone,
    on the population's levels, renderer and background (``trained``: its ``TrainedOn``)."""
    from gmg.experiments.analysis.readout import setting_views
    from gmg.experiments.settings import resolve_settings

    c = goal_colour(trained.goal)
    settings = resolve_settings([f"train:{c}_{s}" for s in SHAPES], trained.background)
    return {s: setting_views(st, n_levels, trained.world_dim, trained.size, trained.render, trained.levels)
            for s, st in zip(SHAPES, settings)}


def start_frames(views: dict[str, list[dict]]) -> dict:
    """The probe's frames: per level and shape the frame with the mouse at its start.

    Returns {"obs": uint8 (N, H, W, 3), "y": (N,) 0 line / 1 gem, "level": (N,), "cell": (N,) the
    object's flat cell, "world_dim", "size"}."""
    obs, y, level, cell = [], [], [], []
    for label, shape in enumerate(SHAPES):
        for v in views[shape]:
            at = (v["cells"] == start_cell(v["world_dim"])).nonzero().reshape(-1)
            if at.numel() != 1:
                raise UserError(f"level {v['level']} has no free start cell to put the mouse on")
            obs.append(v["frames"][at])
            y.append(label)
            level.append(v["level"])
            cell.append(int(v["objects"][0]))
    first = views[SHAPES[0]][0]
    return {"obs": torch.cat(obs), "y": np.array(y), "level": np.array(level), "cell": np.array(cell),
            "world_dim": first["world_dim"], "size": first["size"]}


def probe_shape(model: torch.nn.Module, frames: dict, layers="main", *, y=None, side: int = 3, n_splits: int = 5,
                seed: int = 0, device="cpu") -> pd.DataFrame:
    """One row per layer: held-out accuracy of the line-or-gem probe at the object's cell
    (``accuracy``, ``ci_low``, ``ci_high``, ``n_test``, ``n_features``); ``y`` replaces the labels
    (a control: shuffled labels score at chance)."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    labels = frames["y"] if y is None else np.asarray(y)
    names = layer_names(model, layers)
    acts = collect_activations(model.eval(), frames["obs"], names, pool=None, device=device)
    rows = []
    # many small fits: one BLAS thread each is the fast way on a busy CPU (docs/probes.md)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for index, name in enumerate(names):
            X = cell_window(acts.pop(name), frames["cell"], frames["world_dim"], frames["size"], side)
            score, proba = grouped_score(LinearProbe(n_components=64, random_state=seed), X, labels, frames["level"],
                                         n_splits)
            rows.append({"layer": name, "layer_index": index, "accuracy": score.accuracy, "ci_low": score.ci_low,
                         "ci_high": score.ci_high, "bits": information_bits(proba, labels), "n_test": score.n_test,
                         "n_features": X.shape[1]})
    return pd.DataFrame(rows)


def readout_frames(views: dict[str, list[dict]]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Shape -> ``readout.stacked`` frames (the mouse in every free cell): computed once."""
    from gmg.experiments.analysis.readout import stacked

    return {s: stacked(v) for s, v in views.items()}


def shape_readout(model: torch.nn.Module, probes: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """``b_line``, ``b_gem`` (``readout.pull_reading``) and ``shape_pull = b_line - b_gem``."""
    from gmg.experiments.analysis.readout import pull_reading

    b = {s: pull_reading(model.eval(), probes[s])[1] for s in SHAPES}
    return {"b_line": b["line"], "b_gem": b["gem"], "shape_pull": b["line"] - b["gem"]}


def best_layers(probes: pd.DataFrame) -> pd.DataFrame:
    """Per network: ``best_layer`` and ``best_accuracy`` / ``best_bits`` (the highest past the input,
    which every network of an architecture shares), ``hidden_accuracy`` / ``hidden_bits``
    (``hook_hidden``, what the policy reads; NaN if not probed)."""
    rows = []
    for key, d in probes.groupby(["network", "agent"], sort=False):
        inner = d[d["layer"] != INPUT_LAYER]
        hidden = d[d["layer"] == "hook_hidden"]
        row = {"network": key[0], "agent": key[1],
               "best_layer": inner.loc[inner["accuracy"].idxmax(), "layer"] if len(inner) else None}
        for m in ("accuracy", "bits"):
            row[f"best_{m}"] = float(inner[m].max()) if len(inner) else np.nan
            row[f"hidden_{m}"] = float(hidden[m].iloc[0]) if len(hidden) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def shape_study(agents, n_levels: int = 500, layers="main", n_random: int = 3, seed: int = 0, device="cpu",
                progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(probes, per_agent) for a population: ``probes`` one row per network and layer (``network``
    ``trained`` with its agent id, or ``random`` with its seed in ``agent``); ``per_agent`` one row
    per agent with ``b_line``, ``b_gem``, ``shape_pull``, ``best_layer``, ``best_accuracy``,
    ``hidden_accuracy``."""
    from gmg.experiments.population import population
    from gmg.probes.controls import random_network_like

    say = progress or (lambda msg: None)
    agents = population(agents)
    views = shape_views(agents.trained_on, n_levels)
    frames, readout = start_frames(views), readout_frames(views)
    parts, reads, randoms = [], [], {}
    for ref in agents:
        model = ref.load(device).eval()
        if model.config not in randoms:  # the floor: same architecture, untrained
            for s in range(n_random):
                rand = random_network_like(model, seed=seed + s)
                parts.append(probe_shape(rand, frames, layers, seed=seed, device=device).assign(network="random", agent=seed + s))
            randoms[model.config] = True
        parts.append(probe_shape(model, frames, layers, seed=seed, device=device).assign(network="trained", agent=ref.agent_id))
        reads.append({"agent": ref.agent_id, **shape_readout(model, readout)})
        say(f"agent {ref.agent_id}: shape_pull {reads[-1]['shape_pull']:.3f}, hidden "
            f"{parts[-1].loc[parts[-1]['layer'] == 'hook_hidden', 'accuracy'].mean():.3f}")
    probes = pd.concat(parts, ignore_index=True)
    first = ["network", "agent"]
    probes = probes[first + [c for c in probes.columns if c not in first]]
    best = best_layers(probes)
    per_agent = pd.DataFrame(reads).merge(best[best["network"] == "trained"].drop(columns="network"), on="agent")
    return probes, per_agent


def observed_shape(run_dir: str | Path, goal: str) -> pd.Series:
    """Each agent's observed preference for the line in ``shape_setting(goal)`` (un-intervened
    episodes of the run's store), indexed by agent; a UserError naming the command if absent."""
    from gmg.experiments.rundir import MissingStage, population_metrics, read_stage
    from gmg.experiments.settings import base_names

    setting = shape_setting(goal)
    m = population_metrics(read_stage(run_dir, "episodes"))
    m = m[base_names(m["setting"]) == setting]
    if m.empty:
        raise MissingStage(f"{run_dir} has no episodes of {setting}: run `gmg evaluate --settings {setting} "
                        f"--run-dir {run_dir}`")
    return m.groupby("agent")["preference"].mean()


# ------------------------------------------------------------------ across agents
def loao_predictions(x, y) -> np.ndarray:
    """Leave one agent out: each agent's y from the least-squares line ``y = a + b x`` fitted on
    every other agent (its own x and y never enter its fit)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        raise UserError(f"a leave-one-agent-out fit needs at least 3 agents, got {len(x)}")
    out = np.empty(len(x))
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        A = np.column_stack([np.ones(keep.sum()), x[keep]])
        coef, *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        out[i] = coef[0] + coef[1] * x[i]
    return out


def spearman_interval(x, y, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(rho, 2.5%, 97.5%): Spearman's rank correlation and its bootstrap interval over agents."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for idx in rng.integers(0, len(x), size=(n_boot, len(x))):
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            boots.append(spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.nanpercentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return rho, float(lo), float(hi)


def predictive_score(x, y, n_boot: int = 1000, seed: int = 0) -> dict:
    """Out-of-sample R² of ``loao_predictions`` (bootstrap 95% interval over agents) and
    Spearman's rho (bootstrap interval); NaN where x does not vary."""
    from gmg.experiments.analysis.scoring import r2, r2_interval

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(len(x))}
    if len(x) < 3 or np.ptp(x) == 0:
        return {**out, "r2": np.nan, "r2_lo": np.nan, "r2_hi": np.nan, "spearman": np.nan, "spearman_lo": np.nan,
                "spearman_hi": np.nan}
    pred = loao_predictions(x, y)
    lo, hi = r2_interval(pred, y, n_boot, seed)
    rho, rlo, rhi = spearman_interval(x, y, n_boot, seed)
    return {**out, "r2": r2(pred, y), "r2_lo": lo, "r2_hi": hi, "spearman": rho, "spearman_lo": rlo, "spearman_hi": rhi}


def across_agents(per_agent: pd.DataFrame, observed: pd.Series, predictors=PREDICTORS) -> pd.DataFrame:
    """One row per predictor: ``predictive_score`` of it for ``observed`` (by agent)."""
    d = per_agent.drop(columns="observed", errors="ignore").set_index("agent").join(observed.rename("observed"),
                                                                                    how="inner")
    return pd.DataFrame([{"predictor": p, **predictive_score(d[p], d["observed"])} for p in predictors])


def run_shape(agents, run_dir: str | Path, n_levels: int = 500, n_random: int = 3, seed: int = 0, device="cpu",
              progress: Callable[[str], None] | None = None) -> dict:
    """``shape_study`` of ``agents`` and, where the run's store holds the shape contest, the
    across-agent scores; writes ``RUN/analysis/shape_probes.csv``, ``shape_agents.csv`` (with
    ``observed``) and ``shape_scores.csv`` (the dossier reads ``shape_agents.csv``)."""
    from gmg.experiments.population import population
    from gmg.experiments.rundir import MissingStage

    agents = population(agents)
    probes, per_agent = shape_study(agents, n_levels, n_random=n_random, seed=seed, device=device, progress=progress)
    out = {"probes": probes, "per_agent": per_agent, "setting": shape_setting(agents.trained_on.goal)}
    folder = Path(run_dir) / "analysis"
    folder.mkdir(parents=True, exist_ok=True)
    probes.assign(n_levels=n_levels).to_csv(folder / "shape_probes.csv", index=False)
    try:
        observed = observed_shape(run_dir, agents.trained_on.goal)
        out["per_agent"] = per_agent = per_agent.merge(observed.rename("observed").reset_index(), on="agent", how="left")
        out["scores"] = across_agents(per_agent, observed).assign(setting=out["setting"])
    except MissingStage:
        out["scores"] = None
    per_agent.assign(n_levels=n_levels).to_csv(folder / "shape_agents.csv", index=False)
    if out["scores"] is not None:
        out["scores"].to_csv(folder / "shape_scores.csv", index=False)
    return out
