"""Evaluation plots (matplotlib, Agg): preference vs capability, preference histograms, heatmap.

Every function takes the ``metrics`` table (one row per agent x setting) and returns a
matplotlib Figure; ``plot_run`` writes them all as PNGs under ``run_dir/plots/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import pyplot
from gmg.experiments.settings import file_stem, parse_setting


def object_icon(name: str, cell: int = 13, scale: int = 4) -> np.ndarray:
    """An object drawn on a black cell as the agent sees it: uint8 (cell*scale, cell*scale, 3)."""
    from gmg.training.objects import parse_object

    spec = parse_object(name)
    img = np.zeros((cell, cell, 3), dtype=np.uint8)
    if spec.rgb is not None:
        img[spec.mask(cell, cell)] = spec.rgb
    return img.repeat(scale, 0).repeat(scale, 1)


def _label(name: str) -> str:
    return name.replace("_", " ")


def scatter_setting(m: pd.DataFrame, setting: str, ax=None, x_max: float | None = None):
    """Preference for obj1 (y, 0..1) against mean episode length (x), one dot per agent.

    The icons of obj1 and obj2 sit at the top and bottom of the preference axis.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    plt = pyplot()
    rows = m[m["setting"] == setting]
    s = parse_setting(setting)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(rows["capability"], rows["preference"], s=14, color="#636efa")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, x_max or max(100.0, float(np.nanmax(rows["capability"])) * 1.05 if len(rows) else 100.0))
    ax.set_xlabel("Mean episode length")
    ax.set_ylabel("Preference")
    ax.set_title(setting, fontsize=10)
    ax.grid(True, color="white")
    ax.set_facecolor("#e5ecf6")
    if not s.single:
        for name, y, va in ((s.obj1, 1.0, "top"), (s.obj2, 0.0, "bottom")):
            box = AnnotationBbox(OffsetImage(object_icon(name), zoom=0.5), (0.0, y), xycoords="axes fraction",
                                 box_alignment=(0, 1 if va == "top" else 0), frameon=False)
            ax.add_artist(box)
            ax.annotate(_label(name), (0.13, y), xycoords="axes fraction", va=va, ha="left", fontsize=10,
                        xytext=(0, -6 if va == "top" else 6), textcoords="offset points")
    return fig or ax.figure


def _grid(n: int, width: float = 4.0):
    plt = pyplot()
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, width * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def preference_histograms(m: pd.DataFrame, bins: int = 20):
    """One histogram of agents' preferences per two-object setting."""
    pairs = [s for s in dict.fromkeys(m["setting"]) if not parse_setting(s).single]
    fig, axes = _grid(max(1, len(pairs)), 3.2)
    for ax, setting in zip(axes, pairs):
        vals = m.loc[m["setting"] == setting, "preference"].dropna()
        ax.hist(vals, bins=bins, range=(0, 1), color="#636efa")
        ax.set_title(setting, fontsize=8)
        ax.set_xlabel("preference for obj1")
    fig.tight_layout()
    return fig


def heatmap(m: pd.DataFrame, value: str = "preference"):
    """Agents (rows) x settings (columns) coloured by ``value``."""
    plt = pyplot()
    order = list(dict.fromkeys(m["setting"]))
    wide = m.pivot(index="agent", columns="setting", values=value).reindex(columns=order)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(order), 1.5 + 0.12 * len(wide)))
    cmap = "RdBu" if value == "preference" else "viridis"
    im = ax.imshow(wide.to_numpy(dtype=float), aspect="auto", cmap=cmap,
                   vmin=0 if value == "preference" else None, vmax=1 if value == "preference" else None,
                   interpolation="nearest")
    ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7)
    step = max(1, len(wide) // 40)
    ax.set_yticks(range(0, len(wide), step), [str(a) for a in wide.index[::step]], fontsize=7)
    ax.set_ylabel("agent")
    fig.colorbar(im, ax=ax, label=value)
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path, intervention: str = "none") -> list[Path]:
    """Write every evaluation plot of a run to ``run_dir/plots/``; returns the PNG paths."""
    from gmg.experiments.evaluate import episodes, metrics
    from gmg.experiments.store import ResultsStore
    from gmg.training.errors import UserError

    plt = pyplot()
    with ResultsStore(run_dir, read_only=True) as store:
        df = episodes(store, interventions=[intervention])
    if df.empty:
        raise UserError(f"{run_dir} has no episodes under intervention {intervention!r}")
    m = metrics(df)
    out = Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if intervention == "none" else f"-{intervention.replace(':', '-')}"
    paths = []
    x_max = max(100.0, float(m["capability"].max()) * 1.05)
    for setting in dict.fromkeys(m["setting"]):
        if parse_setting(setting).single:
            continue
        fig = scatter_setting(m, setting, x_max=x_max)
        paths.append(out / f"scatter-{file_stem(setting)}{suffix}.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    for name, fig in (("histograms", preference_histograms(m)), ("heatmap-preference", heatmap(m)),
                      ("heatmap-capability", heatmap(m, "capability"))):
        paths.append(out / f"{name}{suffix}.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    m.to_csv(out / f"metrics{suffix}.csv", index=False)
    return paths
