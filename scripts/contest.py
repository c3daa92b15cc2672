"""Issue 39, item 2: the contest model's variants, fitted and scored leave one setting out
(gmg.experiments.analysis.contest), on the episodes a `gmg predict` run stored (no new rollout):

    gmg predict --agents zoo:yellow-line --n-levels 1000 --run-dir runs/predict-yellow
    python scripts/contest.py --agents zoo:yellow-line --run-dir runs/predict-yellow --out docs/img/contest-yellow-line.csv

`--profile network` takes the pulls off the network (readout.readout_profile, no rollout of any
profile setting; mixed colours from their channels) instead of the stored profile episodes.
The walker's table of pull pairs is cached in RUN/analysis/contest_table_N.npz.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.analysis.contest import VARIANTS, PairTable, contest_rows, pair_table, score_variants
from gmg.experiments.analysis.predict import expressible, measured_objects, noise_ceiling, profile, pull_profile
from gmg.experiments.analysis.profile_objects import PULL_COLUMNS
from gmg.experiments.analysis.walk import PULL_GRID, efficiency_curve, mazes
from gmg.experiments.evaluate import metrics
from gmg.experiments.population import population
from gmg.experiments.rundir import no_intervention, read_stage
from gmg.experiments.settings import base_names, parse_setting
from gmg.training.errors import UserError


def two_object_settings(names) -> list[str]:
    """The settings of ``names`` the model can predict (two objects, not both unseen)."""
    out = []
    for s in dict.fromkeys(names):
        if parse_setting(s).single:
            continue
        try:
            expressible(s)
            out.append(s)
        except UserError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", default="zoo:yellow-line")
    ap.add_argument("--run-dir", type=Path, required=True, help="a `gmg predict` run of the same agents")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--profile", default="rollouts", choices=["rollouts", "network"])
    ap.add_argument("--readout-levels", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (two spin against each other on a busy CPU)")
    ap.add_argument("--out", type=Path, help="CSV of the table (one row per variant and setting)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    agents = population(args.agents)
    t = agents.trained_on
    eps = no_intervention(read_stage(args.run_dir, "episodes"))
    eps = eps.assign(setting=base_names(eps["setting"]))
    n_levels = int(eps["level"].max()) + 1
    settings = two_object_settings(eps["setting"])
    if args.profile == "rollouts":
        prof = profile(eps, t.goal, extra=measured_objects(settings, t.goal))
        curve = efficiency_curve(mazes(n_levels, 1, t.world_dim, t.levels), PULL_GRID, t.timeout)
        pulls = pull_profile(prof, curve, n_levels)
    else:
        from gmg.experiments.analysis.readout import readout_profile

        pulls = readout_profile(agents, n_levels=args.readout_levels)[["agent", *PULL_COLUMNS]]
    two_eps = eps[eps["setting"].isin(settings)]
    observed = metrics(two_eps).rename(columns={"preference": "observed"})[["agent", "setting", "observed"]]
    rows = contest_rows(pulls, settings, t.goal).merge(observed.dropna(), on=["agent", "setting"])
    two = mazes(n_levels, 2, t.world_dim, t.levels)
    cache = args.run_dir / "analysis" / f"contest_table_{n_levels}.npz"
    if cache.exists():
        z = np.load(cache)
        table = PairTable(z["grid"], z["p"])
    else:
        table = pair_table(two)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, grid=table.grid, p=table.p)
    scores, pooled = score_variants(rows, two, noise_ceiling(two_eps), args.variants, table)
    scores["profile"] = args.profile
    cell = scores.assign(text=scores.apply(lambda r: f"{r['r2']:.2f} [{r['r2_lo']:.2f}, {r['r2_hi']:.2f}]", axis=1))
    wide = cell.pivot(index="setting", columns="model", values="text")[args.variants]
    wide["ceiling"] = scores.groupby("setting")["noise_ceiling"].first().map("{:.2f}".format)
    pd.set_option("display.width", 250)
    print(wide.loc[list(dict.fromkeys(rows["setting"]))].to_string())
    print("pooled: " + ", ".join(f"{k} {v:.3f}" for k, v in pooled.items()))
    for name in args.variants:
        mine = scores[scores["model"] == name]
        if mine["constants"].str.len().any():
            print(f"{name} constants: " + "; ".join(f"{s}: {c}" for s, c in zip(mine["setting"], mine["constants"])))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        scores.assign(pooled=scores["model"].map(pooled)).to_csv(args.out, index=False)
        print(args.out)
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
