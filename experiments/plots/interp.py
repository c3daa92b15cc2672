"""Figures for channel reliance and attributions (matplotlib, Agg backend, files only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import CHANNEL_COLOURS, pyplot, save_figure
from gmg.interp.reliance import CHANNEL_NAMES, CONDITIONS, column_prefix


def plot_reliance_bars(row: pd.Series | dict, path: str | Path) -> Path:
    """One agent's profile: efficiency/success per condition, and per-channel shares."""
    plt = pyplot()
    row = pd.Series(row)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    x = np.arange(len(CONDITIONS))
    eff = [row[f"{column_prefix(c)}_efficiency"] for c in CONDITIONS]
    suc = [row[f"{column_prefix(c)}_success"] for c in CONDITIONS]
    colours = ["#777777"] + [CHANNEL_COLOURS[c[-1]] for c in CONDITIONS[1:]]
    ax1.bar(x - 0.2, suc, 0.4, color=colours, alpha=0.35, label="success rate")
    ax1.bar(x + 0.2, eff, 0.4, color=colours, label="path efficiency")
    ax1.set_xticks(x, CONDITIONS, rotation=30, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_title(f"agent {int(row['agent'])}: green_vs_red = {row['green_vs_red']:+.2f}")
    ax1.legend(fontsize=8, loc="upper right")
    xs = np.arange(3)
    for k, (name, key) in enumerate([("drop (ablation)", "drop"), ("policy TV", "tv_share"), ("IG share", "attr_share")]):
        vals = [row[f"{key}_{c}"] for c in CHANNEL_NAMES]
        ax2.bar(xs + (k - 1) * 0.27, vals, 0.27, color=[CHANNEL_COLOURS[c] for c in CHANNEL_NAMES],
                alpha=(0.4, 0.7, 1.0)[k], label=name, edgecolor="black", linewidth=0.3)
    ax2.set_xticks(xs, ["R", "G", "B"])
    ax2.axhline(0, color="black", linewidth=0.5)
    ax2.set_title("per channel: ablation drop | TV share | IG share", fontsize=9)
    return save_figure(fig, path, dpi=120)


def plot_reliance_scatter(
    reliance: pd.DataFrame, prefs: pd.DataFrame, path: str | Path, score: str = "green_vs_red", label: str = "preference"
) -> Path:
    """Population scatter: the reliance ``score`` (x) against a per-agent preference (y).

    ``reliance`` and ``prefs`` both carry an ``agent`` column; ``prefs`` a ``preference``.
    """
    plt = pyplot()
    data = reliance[["agent", score]].merge(prefs[["agent", "preference"]], on="agent").dropna()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.scatter(data[score], data["preference"], s=18, color="#444444")
    for _, r in data.iterrows():
        ax.annotate(str(int(r["agent"])), (r[score], r["preference"]), fontsize=6, alpha=0.6,
                    xytext=(2, 2), textcoords="offset points")
    if len(data) >= 3 and data[score].std() > 0:
        rho = np.corrcoef(data[score], data["preference"])[0, 1]
        ax.set_title(f"n = {len(data)}, Pearson r = {rho:.2f}", fontsize=9)
    ax.set_xlabel(score)
    ax.set_ylabel(label)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    return save_figure(fig, path, dpi=120)


def plot_attribution(obs: np.ndarray, attributions: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One frame and its |attribution| per channel: ``obs`` uint8 (H, W, 3), ``attributions`` (3, H, W)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    axes[0].imshow(obs)
    axes[0].set_title(title or "observation", fontsize=9)
    a = np.abs(attributions)
    vmax = float(a.max()) or 1.0
    total = a.sum() or 1.0
    for i, c in enumerate(CHANNEL_NAMES):
        axes[i + 1].imshow(a[i], cmap="magma", vmin=0, vmax=vmax)
        axes[i + 1].set_title(f"|attr| {c.upper()} ({a[i].sum() / total:.0%})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    return save_figure(fig, path, dpi=120)
