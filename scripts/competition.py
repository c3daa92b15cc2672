"""Issue 39, item 1: where the walk model is wrong, state by state (gmg.experiments.analysis.competition).

Reads every agent's moves at every state of the first N evaluation levels in each pair, each
object alone and neither (cached in WORK/readout.npz), solves the walk model's own profile on
the same levels (WORK/walk_pulls.csv), then prints the tables (also WORK/*.csv) and writes the figure and the kept shares to IMG:

    python scripts/competition.py --agents zoo:yellow-line --n-levels 50 --work runs/competition
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.competition import (
    PAIRS,
    Readout,
    additivity,
    alone_against_walk,
    binned_additivity,
    chain_check,
    competition_fit,
    effective_pulls,
    frame_sets,
    kept,
    read_network,
    walk_pulls,
)
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.plots.style import pyplot, save_figure

PROFILE_OBJECTS = ["red_line", "green_line", "blue_line", "yellow_line", "yellow_gem", "white_line"]
COLOURS = {"red_line": "#d62728", "green_line": "#2ca02c", "blue_line": "#1f77b4", "yellow_line": "#bcbd22",
           "yellow_gem": "#ff7f0e", "white_line": "#7f7f7f"}


def short(pair: str) -> str:
    return pair.replace("_line", "").replace("yellow_gem", "gem").replace("-vs-", " v ")


def plot(table: pd.DataFrame, groups: pd.DataFrame, against: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.0))
    cmap = plt.get_cmap("tab10")
    pair_colour = {p: cmap(i) for i, p in enumerate(table["pair"].unique())}
    ax = axes[0]
    for (pair, k), g in table.groupby(["pair", "k"], sort=False):
        gem = g["object"].iloc[0].endswith("gem")
        ax.scatter(g["own"], g["paired"], s=16 if gem else 12, marker="^" if gem else "o", alpha=0.75,
                   color=pair_colour[pair], edgecolor="k" if gem else "none", lw=0.4,
                   label=f"{short(pair)}: {g['object'].iloc[0].replace('_', ' ')}")
    hi = float(table[["own", "paired"]].max().max()) * 1.05
    ax.plot([0, hi], [0, hi], color="k", lw=0.7, ls="--", label="additive (walk model)")
    ax.set(xlabel="pull alone at its cell, above the floor", ylabel="pull in the pair, above the floor",
           title="(a) each object's pull, alone and beside the other\n(one point per agent; ▲ the yellow gem)")
    ax.legend(fontsize=6.5, ncol=1, loc="upper left")
    ax = axes[1]
    by_distance = groups[groups["feature"] == "distance"]
    levels = sorted(by_distance["group"].unique())
    for (pair, k), g in table.groupby(["pair", "k"], sort=False):
        d = pd.concat([kept(by_distance[(by_distance["group"] == v) & (by_distance["pair"] == pair)
                                        & (by_distance["k"] == k)]).assign(group=v) for v in levels])
        x = np.arange(len(levels)) + (k - 1.5) * 0.12
        ax.errorbar(x, d["kept"], yerr=(d["kept"] - d["kept_lo"], d["kept_hi"] - d["kept"]), color=pair_colour[pair],
                    ls="-" if k == 1 else "--", marker="^" if g["object"].iloc[0].endswith("gem") else "o", ms=4,
                    capsize=2, lw=1, label=f"{short(pair)}: obj{k}")
    ax.axhline(1, color="k", lw=0.7, ls="--")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(np.arange(len(levels)), levels)
    ax.set(xlabel="steps from the state to the nearer object", ylabel="share of its pull kept in the pair (95% CI, agents)",
           title="(b) what an object keeps beside the other, by state\n(pulls fitted within each group; 1 = additive)")
    ax.legend(fontsize=6.5, ncol=2, loc="lower left")
    ax = axes[2]
    for obj, g in against.groupby("object", sort=False):
        rr = np.corrcoef(g["b_network"], g["b_walk"])[0, 1]
        ax.scatter(g["b_network"], g["b_walk"], s=12, color=COLOURS.get(obj, "k"), label=f"{obj.replace('_', ' ')} (r {rr:.2f})")
    ax.set(xlabel="network: pull alone above the floor (per-state fit)", ylabel="walk model: pull from the profile",
           title="(c) the walk model's pull against the network's\n(one point per agent)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", default="zoo:yellow-line")
    ap.add_argument("--n-levels", type=int, default=50)
    ap.add_argument("--work", type=Path, default=Path("runs/competition"), help="the readout's and profile's cache")
    ap.add_argument("--img", type=Path, default=Path("docs/img"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.work / "readout.npz"
    sets = frame_sets(PAIRS)
    r = Readout.load(cache) if cache.exists() else None
    missing = [s for s in sets if r is None or s not in r.sets]
    if missing:
        new = read_network(args.agents, missing, args.n_levels, progress=True)
        r = new if r is None else r.extend(new)
        r.save(cache)
    walk_csv = args.work / "walk_pulls.csv"
    walk = pd.read_csv(walk_csv) if walk_csv.exists() else walk_pulls(args.agents, PROFILE_OBJECTS, args.n_levels)
    walk.to_csv(walk_csv, index=False)

    pd.set_option("display.width", 200)
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    tables = {}
    for method in ("ml", "loglinear"):
        pulls = effective_pulls(r, method)
        table = additivity(pulls)
        shares = kept(table)
        fits = competition_fit(table)
        groups = binned_additivity(r, PAIRS, method)
        by_group = pd.concat([kept(g).assign(feature=f, group=v) for (f, v), g in groups.groupby(["feature", "group"])])
        checks = chain_check(r, pulls, args.agents)
        score = []
        for pair, g in checks.groupby("pair", sort=False):
            for col in ("walk_alone", "walk_paired"):
                lo, hi = r2_interval(g[col].to_numpy(), g["network"].to_numpy())
                score.append({"pair": pair, "walker": col, "r2": r2(g[col], g["network"]), "r2_lo": lo, "r2_hi": hi,
                              "mean": g[col].mean(), "network_mean": g["network"].mean(), "network_sd": g["network"].std()})
        against = alone_against_walk(pulls, walk)
        corr = against.groupby("object", sort=False)[["b_network", "b_walk"]].apply(
            lambda g: pd.Series({"r": np.corrcoef(g["b_network"], g["b_walk"])[0, 1], "network": g["b_network"].mean(),
                                 "walk": g["b_walk"].mean()}))
        print(f"== pulls by {method}\n-- kept in the pair\n{shares.to_string(**fmt)}\n-- competition fits\n"
              f"{fits.to_string(**fmt)}\n-- kept, by state group\n{by_group.to_string(**fmt)}\n"
              f"-- walker vs the network's exact preference ({args.n_levels} levels)\n{pd.DataFrame(score).to_string(**fmt)}\n"
              f"-- the walk model's pull vs the network's alone\n{corr.to_string(float_format=lambda v: f'{v:.3f}')}\n")
        tables[method] = (table, shares, groups, against)
        shares.assign(method=method).to_csv(args.work / f"kept_{method}.csv", index=False)
        by_group.assign(method=method).to_csv(args.work / f"kept_groups_{method}.csv", index=False)
        fits.assign(method=method).to_csv(args.work / f"competition_fits_{method}.csv", index=False)
        pd.DataFrame(score).assign(method=method).to_csv(args.work / f"chain_check_{method}.csv", index=False)
    pd.concat([pd.read_csv(args.work / f"{name}_{m}.csv").assign(table=name) for name in ("kept", "kept_groups")
               for m in tables], ignore_index=True).to_csv(args.img / "competition-kept.csv", index=False)
    table, _, groups, against = tables["ml"]
    print(plot(table, groups, against, args.img / "competition-pulls.png"))


if __name__ == "__main__":
    main()
