"""Figures of a seed's anatomy (``gmg.experiments.analysis.seed_anatomy``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gmg.experiments.plots.style import pyplot, save_figure


def plot_commitment(traj: pd.DataFrame, grid: pd.DataFrame | None, outcomes: dict[str, str], path: str | Path) -> Path:
    """One panel per outcome (column -> title): each agent's value at its kept snapshots over
    the fraction of training, coloured by its initialisation, dashed by its data order (without
    a ``grid``: each agent its own colour)."""
    plt = pyplot()
    t = traj if grid is None else traj.merge(grid, on="agent")
    colour_by, prefix = ("agent", "agent") if grid is None else ("init_seed", "init")
    keys = sorted(t[colour_by].unique())
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colours = {i: cmap(k % cmap.N) for k, i in enumerate(keys)}
    styles = {} if grid is None else dict(zip(sorted(t["data_seed"].unique()), ("-", "--", ":", "-.") * 4))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.4 * len(outcomes), 3.5), squeeze=False)
    for ax, (outcome, title) in zip(axes[0], outcomes.items()):
        for _, g in t.groupby("agent"):
            first = g.iloc[0]
            ax.plot(g["fraction"], g[outcome], styles.get(first.get("data_seed"), "-"), color=colours[first[colour_by]],
                    lw=1.2, marker=".", ms=4)
        ax.set_xlabel("fraction of training")
        ax.set_title(title, fontsize=9)
        ax.axhline(0.5 if outcome.startswith("pref") else 0.0, color="0.6", lw=0.8, ls=":")
        if outcome.startswith("pref"):
            ax.set_ylim(-0.02, 1.02)
    handles = [plt.Line2D([], [], color=colours[i], label=f"{prefix} {i}") for i in keys]
    handles += [plt.Line2D([], [], color="0.3", ls=s, label=f"data {j}") for j, s in styles.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                       ncol=1 + len(handles) // 25)
    fig.suptitle("when a seed commits: each agent at its kept snapshots", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_shares(table: pd.DataFrame, outcomes: dict[str, str], path: str | Path) -> Path:
    """The variance shares (initialisation, data order, residual) of each outcome with their CIs."""
    plt = pyplot()
    parts = (("init", "initialisation", "#1f77b4"), ("data", "data order", "#ff7f0e"), ("resid", "neither (residual)", "0.6"))
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.75 * len(table)))
    for row_i, (_, row) in enumerate(table.iterrows()):
        for k, (part, label, colour) in enumerate(parts):
            y = row_i + (k - 1) * 0.25
            v, lo, hi = row[f"share_{part}"], row[f"share_{part}_lo"], row[f"share_{part}_hi"]
            ax.barh(y, v, height=0.23, color=colour, label=label if row_i == 0 else None)
            ax.errorbar(v, y, xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], color="k", lw=1, capsize=2)
    ax.set_yticks(range(len(table)), [outcomes.get(o, o) for o in table["outcome"]], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of between-agent variance (95% bootstrap CI)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)
