"""Populations side by side: each evaluated on its own training background in the same
settings, the original's population figure (one row per population, one panel per setting)
and the texture asymmetry as a number per population.

The asymmetry of a population is the mean over its agents of
``preference(green_line-vs-yellow_gem) - preference(red_line-vs-yellow_gem)``: how much more
its agents take a green line than a red line over the yellow gem. Trained on procgen's
textured backgrounds (unbalanced across R, G and B), the original's yellow-line agents show a
large one; on black backgrounds it disappears. Each population's figure has a bootstrap 95%
CI over agents (scipy's BCa bootstrap); two populations are compared by a permutation test of
the difference in means (agents' labels shuffled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.evaluate import evaluate, metrics
from gmg.experiments.plots.preference import scatter_setting
from gmg.experiments.plots.style import pyplot, save_figure
from gmg.experiments.population import Population, population
from gmg.experiments.settings import base_name, base_names, parse_setting
from gmg.training.errors import UserError

COLOUR_SETTINGS = ("red_line-vs-yellow_gem", "green_line-vs-yellow_gem", "blue_line-vs-yellow_gem")
GREEN, RED = "green_line-vs-yellow_gem", "red_line-vs-yellow_gem"


def population_name(agents: Population) -> str:
    """A short name for a population: its zoo name, or its run or folder name."""
    text = agents.source
    if text.startswith("zoo:"):
        return text[4:]
    path = Path(text)
    return (path.parent if path.name == "agents" else path).name or f"agents {agents.ids[0]}-{agents.ids[-1]}"


def per_agent(m: pd.DataFrame) -> pd.DataFrame:
    """agents x settings preferences (settings named without their background suffix)."""
    m = m.assign(setting=base_names(m["setting"]))
    return m.pivot(index="agent", columns="setting", values="preference")


def asymmetry(prefs: pd.DataFrame, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Mean green-minus-red preference over agents with its bootstrap 95% CI (agents resampled)."""
    from scipy import stats

    d = (prefs[GREEN] - prefs[RED]).dropna().to_numpy(dtype=float)
    if len(d) < 2:
        raise UserError(f"the asymmetry needs at least 2 agents with both {GREEN} and {RED} decided, got {len(d)}")
    if np.ptp(d) == 0:
        lo = hi = float(d[0])
    else:
        ci = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=0.95,
                             random_state=np.random.default_rng(seed)).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
    return {"asymmetry": float(d.mean()), "ci_low": lo, "ci_high": hi, "n_agents": int(len(d))}


def permutation_p(a: np.ndarray, b: np.ndarray, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided permutation p-value of mean(a) - mean(b), agents' population labels shuffled."""
    from scipy import stats

    res = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                                 n_resamples=n_resamples, alternative="two-sided",
                                 random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def comparison_figure(frames: dict[str, pd.DataFrame], settings: list[str], path: Path) -> Path:
    """One row per population, one panel per setting: preference vs mean episode length."""
    plt = pyplot()
    fig, axes = plt.subplots(len(frames), len(settings), figsize=(4.2 * len(settings), 4.2 * len(frames)),
                             squeeze=False)
    x_max = max(100.0, max(float(np.nanmax(m["capability"])) for m in frames.values()) * 1.05)
    for row, (name, m) in zip(axes, frames.items()):
        for ax, setting in zip(row, settings):
            full = next(s for s in dict.fromkeys(m["setting"]) if base_name(s) == setting)
            scatter_setting(m, full, ax=ax, x_max=x_max)
            ax.set_title(f"{name}: {full}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def compare_populations(specs: list, settings: list[str] | tuple[str, ...] = COLOUR_SETTINGS,
                        run_dir: str | Path = "runs/compare", device: str | torch.device = "auto",
                        n_levels: int = 1000, seed: int = 0, progress: bool = True) -> dict:
    """Evaluate each population on its own background in ``settings`` (one results store per
    population under ``run_dir``), draw the figure and measure the asymmetry.

    ``specs``: Populations or their specs. Returns ``{"metrics": {name: metrics},
    "asymmetry": table, "tests": table, "figure": path}``;
    ``asymmetry`` and ``tests`` are empty when ``settings`` lack the green or red line vs the yellow gem.
    """
    if len(specs) < 1:
        raise UserError("give at least one population to compare")
    settings = [base_name(parse_setting(s).name) for s in settings]
    run_dir = Path(run_dir)
    frames: dict[str, pd.DataFrame] = {}
    for spec in specs:
        agents = population(spec)
        name = population_name(agents)
        if name in frames:
            raise UserError(f"two populations are named {name!r}; give them different folders")
        own = [parse_setting(s, agents.trained_on.background) for s in settings]
        eps = evaluate(agents, own, run_dir / name, device, n_levels=n_levels, seed=seed, progress=progress)
        frames[name] = metrics(eps).assign(population=name, background=agents.trained_on.background)
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.concat(frames.values(), ignore_index=True).to_csv(run_dir / "metrics.csv", index=False)
    figure = comparison_figure(frames, settings, run_dir / "populations.png")
    rows, tests = [], []
    if {GREEN, RED} <= set(settings):
        diffs = {}
        for name, m in frames.items():
            prefs = per_agent(m)
            rows.append({"population": name, "background": m["background"].iloc[0], **asymmetry(prefs, seed=seed),
                         "green_line": float(prefs[GREEN].mean()), "red_line": float(prefs[RED].mean())})
            diffs[name] = (prefs[GREEN] - prefs[RED]).dropna().to_numpy(dtype=float)
        names = list(diffs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                tests.append({"a": a, "b": b, "difference": float(diffs[a].mean() - diffs[b].mean()),
                              "p_permutation": permutation_p(diffs[a], diffs[b], seed=seed)})
    table, tested = pd.DataFrame(rows), pd.DataFrame(tests)
    table.to_csv(run_dir / "asymmetry.csv", index=False)
    tested.to_csv(run_dir / "asymmetry_tests.csv", index=False)
    return {"metrics": frames, "asymmetry": table, "tests": tested, "figure": figure}
