"""Issue 39, item 2: the policy-composition model (gmg.experiments.analysis.composition), scored
leave one setting out against observed preferences and against the network's own chain.

Reads every agent's moves at every state of the first N evaluation levels with each object of
each two-object setting alone at its cell, with neither, and in the pair itself (cached in
WORK/readout.npz, one frame set at a time), solves the composed chains on the constants' grid
(WORK/grid-KIND.csv) and the pair's own chain (WORK/own.csv), then scores against the sampled
episodes of RUN (`gmg evaluate --agents zoo:yellow-line --n-levels 1000 --threads 1 --run-dir RUN
--settings ...`, the list's two-object settings) and writes OUT-ZOO.csv and the figure:

    python scripts/composition.py --agents zoo:yellow-line --n-levels 50 --work runs/composition-yellow/model \
        --run-dir runs/composition-yellow --out docs/img/composition
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from contest import two_object_settings

from gmg.experiments.analysis.competition import NONE, alone, frame_sets
from gmg.experiments.analysis.composition import (
    COMPOSITIONS,
    grid_predictions,
    own_chain,
    read_cached,
    score,
)
from gmg.experiments.analysis.predict import noise_ceiling
from gmg.experiments.analysis.scoring import r2, r2_interval
from gmg.experiments.evaluate import metrics
from gmg.experiments.plots.style import pyplot, save_figure
from gmg.experiments.population import population
from gmg.experiments.rundir import no_intervention, read_stage
from gmg.experiments.settings import base_names, default_settings, parse_setting

ZOOS = {"zoo:yellow-line": "yellow-line", "zoo:white-line": "white-line"}
EARLIER = ("walk", "shrink")  # the walk and contest models' rows of docs/img/contest-ZOO.csv, beside


def read_order(settings: list[str], pairs: bool = True) -> list[str]:
    """The frame sets, those the model needs first (neither, each object alone), the pairs last
    (only for the network's own chain)."""
    first = [NONE] + [alone(parse_setting(s).obj1, 0) for s in settings] + [alone(parse_setting(s).obj2, 1)
                                                                             for s in settings]
    return list(dict.fromkeys([*first, *(frame_sets(settings, None) if pairs else [])]))


def cached_csv(path: Path, make) -> pd.DataFrame:
    if path.exists():
        return pd.read_csv(path)
    d = make()
    d.to_csv(path, index=False)
    return d


def observed_of(run_dir: Path, settings: list[str]) -> tuple[pd.DataFrame, pd.Series, int]:
    """(rows agent, setting, observed; noise ceilings; levels) of the sampled episodes in ``run_dir``."""
    eps = no_intervention(read_stage(run_dir, "episodes"))
    eps = eps.assign(setting=base_names(eps["setting"]))
    eps = eps[eps["setting"].isin(settings)]
    obs = metrics(eps).rename(columns={"preference": "observed"})[["agent", "setting", "observed"]].dropna()
    return obs, noise_ceiling(eps), int(eps["level"].max()) + 1


def plot(paths: list[Path], out: Path) -> Path:
    """R² per setting and model with its 95% interval, one panel per zoo and target: against the
    observed preferences (beside the walk and contest models and the network's own chain) and
    against the network's own chain on the same levels."""
    plt = pyplot()
    panels = [(p, t) for p in paths for t in ("observed", "network") if (pd.read_csv(p)["target"] == t).any()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 4.4 * len(panels)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    colour = {}
    for ax, (path, target) in zip(axes[:, 0], panels):
        d = pd.read_csv(path)
        d = d[d["target"] == target]
        settings = list(dict.fromkeys(d["setting"]))
        models = list(dict.fromkeys(d["model"]))
        width = 0.8 / len(models)
        for i, m in enumerate(models):
            g = d[d["model"] == m].set_index("setting").reindex(settings)
            x = np.arange(len(settings)) + (i - (len(models) - 1) / 2) * width
            y = g["r2"].clip(-1.05, 1)
            c = colour.setdefault(m, cmap(len(colour)))
            ax.errorbar(x, y, yerr=(y - g["r2_lo"].clip(-1.05, 1), g["r2_hi"].clip(-1.05, 1) - y), fmt="o", ms=4,
                        capsize=2, lw=1, color=c, label=m)
        ceil = d.groupby("setting")["noise_ceiling"].first().reindex(settings)
        if target == "observed":
            ax.scatter(np.arange(len(settings)), ceil, marker="_", s=300, color="k", label="noise ceiling")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-1.1, 1.05)
        ax.set_xticks(np.arange(len(settings)), [s.replace("-vs-", "\nvs ") for s in settings], fontsize=7)
        what = "observed preferences (1000 levels sampled)" if target == "observed" else \
            "the network's own exact chain on the pair frames (same levels)"
        ax.set(ylabel="R² across agents, 95% CI", title=f"{path.stem}: leave-one-setting-out R² against {what}; "
               "below -1 drawn at -1")
        ax.legend(fontsize=7, ncol=len(models) + 1, loc="lower left")
    fig.text(0.01, 0.003, "python scripts/composition.py --agents zoo:yellow-line|zoo:white-line --n-levels 50 --run-dir "
             "RUN (composed chains on the first 50 levels; walk/shrink: docs/img/contest-*.csv, 1000 levels); "
             "2-core Intel Xeon @ 2.80GHz (avx512f, no AMX), torch CPU", fontsize=7)
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    return save_figure(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", default="zoo:yellow-line", choices=list(ZOOS))
    ap.add_argument("--n-levels", type=int, default=50)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--run-dir", type=Path, help="sampled episodes of the two-object settings (gmg evaluate)")
    ap.add_argument("--stop-after", choices=["read", "chains"], help="stop once the frames are read or the chains solved")
    ap.add_argument("--no-pairs", action="store_true", help="read no pair frames: no own chain, no network target")
    ap.add_argument("--out", type=Path, default=Path("docs/img/composition"), help="OUT-ZOO.csv and OUT.png")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settings", nargs="*", help="these two-object settings only (default: the zoo's list)")
    ap.add_argument("--kinds", nargs="*", default=list(COMPOSITIONS), choices=list(COMPOSITIONS),
                    help="compositions to solve and score (one setting: sum alone, nothing to fit on)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    t = population(args.agents).trained_on
    settings = two_object_settings(args.settings or [s.name for s in default_settings(t.goal, t.background)])
    args.work.mkdir(parents=True, exist_ok=True)
    r = read_cached(args.agents, read_order(settings, not args.no_pairs), args.n_levels, args.work / "readout.npz", progress=True)
    print(f"read: {time.time() - start:.0f} s", flush=True)
    if args.stop_after == "read":
        return
    solved: dict = {}  # chains shared between compositions (sum = scaled at 1)
    grid = pd.concat([cached_csv(args.work / f"grid-{kind}.csv",
                                 lambda kind=kind: grid_predictions(r, args.agents, settings, [kind], solved))
                      for kind in args.kinds], ignore_index=True)
    if not args.no_pairs:
        own = cached_csv(args.work / "own.csv", lambda: own_chain(r, args.agents, settings))
    print(f"chains: {time.time() - start:.0f} s", flush=True)
    if args.stop_after == "chains":
        return
    targets = {} if args.no_pairs else {"network": own}
    ceilings, n_obs = pd.Series(dtype=float), 0
    if args.run_dir is not None:
        obs, ceilings, n_obs = observed_of(args.run_dir, settings)
        targets["observed"] = obs
    tables = []
    for column, target in targets.items():
        s, pooled = score(grid, target, ceilings, column, args.kinds)
        tables.append(s.assign(target=column, pooled=s["model"].map(pooled)))
    table = pd.concat(tables, ignore_index=True).assign(levels=f"{args.n_levels} (observed: {n_obs})")
    zoo = ZOOS[args.agents]
    if "observed" in targets:
        earlier = pd.read_csv(Path("docs/img") / f"contest-{zoo}.csv")
        earlier = earlier[earlier["model"].isin(EARLIER)].rename(columns={"observed_mean": "target_mean"})
        earlier = earlier.assign(target="observed", levels="1000 (earlier run)")
        table = pd.concat([table, earlier[[c for c in table.columns if c in earlier.columns]]], ignore_index=True)
    if "observed" in targets and "network" in targets:
        # the pair's own chain on the same N levels against the sampled preference: what N levels cost
        both = obs.merge(own, on=["agent", "setting"])
        rows = []
        for setting, g in both.groupby("setting", sort=False):
            lo, hi = r2_interval(g["network"].to_numpy(), g["observed"].to_numpy())
            rows.append({"model": "own chain", "setting": setting, "r2": r2(g["network"], g["observed"]), "r2_lo": lo,
                         "r2_hi": hi, "noise_ceiling": float(ceilings.get(setting, np.nan)),
                         "target_mean": g["observed"].mean(), "predicted_mean": g["network"].mean(), "constants": "",
                         "target": "observed", "pooled": r2(both["network"], both["observed"]),
                         "levels": f"{args.n_levels} (observed: {n_obs})"})
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    out_csv = args.out.parent / f"{args.out.name}-{zoo}.csv"
    table.to_csv(out_csv, index=False)
    show = table.assign(text=table.apply(lambda x: f"{x['r2']:.2f} [{x['r2_lo']:.2f}, {x['r2_hi']:.2f}]", axis=1))
    pd.set_option("display.width", 250)
    for column in targets:
        w = show[show["target"] == column].pivot(index="setting", columns="model", values="text")
        w["ceiling"] = table.groupby("setting")["noise_ceiling"].first().map("{:.2f}".format)
        print(f"\ntarget: {column}\n" + w.reindex([x for x in settings if x in w.index]).to_string())
        pooled = table[table["target"] == column].groupby("model")["pooled"].first()
        print("pooled: " + ", ".join(f"{k} {v:.3f}" for k, v in pooled.items()))
        for kind in args.kinds:
            c = table[(table["target"] == column) & (table["model"] == kind)]
            if c["constants"].fillna("").str.len().any():
                print(f"{kind} constants: " + "; ".join(f"{s}: {k}" for s, k in zip(c["setting"], c["constants"])))
    print(out_csv)
    paths = [p for p in (args.out.parent / f"{args.out.name}-{z}.csv" for z in ZOOS.values()) if p.exists()]
    print(plot(paths, args.out.with_suffix(".png")))
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
