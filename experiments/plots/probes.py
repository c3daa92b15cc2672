"""Plots of the ``probes`` table: one agent's profile, and population bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import pyplot
from gmg.training.errors import UserError

_COLOURS = {"red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4", "yellow": "#e0b000", "white": "#7f7f7f",
            "cyan": "#17becf", "purple": "#9467bd", "black": "#000000"}


def _style(obj: str) -> dict:
    colour, _, shape = obj.rpartition("_")
    return {"color": _COLOURS.get(colour, None), "linestyle": "-" if shape == "line" else "--",
            "marker": "o" if shape == "line" else "s", "markersize": 3}


def _select(table: pd.DataFrame, probe: str) -> tuple[pd.DataFrame, list[str]]:
    rows = table[table["probe"] == probe]
    if rows.empty:
        raise UserError(f"no {probe!r} rows to plot")
    layers = rows.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    return rows, layers


def _short(layer: str) -> str:
    return layer.replace("blocks.", "b").replace("hook_", "").replace(".res", ".r")


def _axes(ax, layers, rows, title):
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([_short(la) for la in layers], rotation=70, fontsize=7)
    n_pixels = sum(la.startswith("pixels.") for la in layers)
    if n_pixels:
        ax.axvline(n_pixels - 0.5, color="grey", lw=0.8)  # single-channel pixel baselines | network layers
    chance = rows["chance"].median()
    ax.axhline(chance, color="k", lw=0.8, ls=":", label="chance")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("held-out accuracy (object's cell)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="lower left")


def plot_agent_profile(table: pd.DataFrame, agent: int, probe: str = "cell_logistic", path: str | Path | None = None):
    """Accuracy by layer, one line per object, for one agent (95% Wilson bands)."""
    plt = pyplot()

    rows, layers = _select(table[table["agent"] == agent], probe)
    x = {la: i for i, la in enumerate(layers)}
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=80)
    for obj, g in rows.groupby("object", sort=False):
        g = g.sort_values("layer_index")
        xs = [x[la] for la in g["layer"]]
        ax.plot(xs, g["accuracy"], label=obj, **_style(obj))
        ax.fill_between(xs, g["ci_low"], g["ci_high"], color=_style(obj)["color"], alpha=0.12)
    _axes(ax, layers, rows, f"agent {agent}: {probe} probe by layer")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def plot_population_bands(table: pd.DataFrame, probe: str = "cell_logistic", objects=None,
                          path: str | Path | None = None):
    """Median and interquartile range across agents of accuracy by layer, per object."""
    plt = pyplot()

    rows, layers = _select(table, probe)
    if objects is not None:
        rows = rows[rows["object"].isin(list(objects))]
    x = {la: i for i, la in enumerate(layers)}
    n_agents = rows["agent"].nunique()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=80)
    for obj, g in rows.groupby("object", sort=False):
        q = g.groupby("layer")["accuracy"].quantile([0.25, 0.5, 0.75]).unstack()
        q = q.loc[[la for la in layers if la in q.index]]
        xs = np.array([x[la] for la in q.index])
        ax.plot(xs, q[0.5], label=obj, **_style(obj))
        ax.fill_between(xs, q[0.25], q[0.75], color=_style(obj)["color"], alpha=0.15)
    _axes(ax, layers, rows, f"{n_agents} agents: median and IQR of {probe} accuracy")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
