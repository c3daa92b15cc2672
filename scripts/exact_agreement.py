"""Do sampled and exact evaluation agree at population size? (issue 38, item 2(c))

For each intervention, the agents are evaluated sampled and exact on the same settings and levels
(one store, resumable: a rerun skips what is stored); for each (agent, setting) the sampled
preference should lie inside the 95% interval a sampled evaluation has around the exact one
(``exact.sampled_interval``) about 95% of the time. Writes ``OUT.csv`` (one row per agent, setting
and intervention) and prints the share inside, the misses, and on which side they fall (a bias of
the sampler or of the chain shows as many misses on one side).

    python scripts/exact_agreement.py --agents zoo:yellow-line --n-levels 1000 \
        --interventions none --run-dir runs/exact-agreement --out docs/img/exact-agreement-1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from gmg.experiments.evaluate import evaluate, metrics
from gmg.experiments.exact import sampled_interval
from gmg.interp.interventions import parse_intervention

SETTINGS = ("red_line-vs-yellow_gem", "green_line-vs-red_line", "yellow_gem-vs-red_line")


def agreement(agents: str, settings, n_levels: int, interventions, run_dir: Path) -> pd.DataFrame:
    rows = []
    for spec in interventions:
        iv = None if spec == "none" else parse_intervention(spec)
        name = "none" if iv is None else getattr(iv, "name", spec)
        kw = dict(n_levels=n_levels, intervention=iv, intervention_name=name, progress=True, device="cpu")
        walls = {}
        for exact in (False, True):
            t = time.perf_counter()
            df = evaluate(agents, list(settings), run_dir, exact=exact, **kw)
            walls[exact] = time.perf_counter() - t
            if exact:
                ex = df
            else:
                sampled = metrics(df).set_index(["agent", "setting"])["preference"]
        print(f"{name}: sampled {walls[False]:.0f} s, exact {walls[True]:.0f} s (wall; 0 where stored)")
        for (agent, setting), g in ex.groupby(["agent", "setting"]):
            lo, hi = sampled_interval(g)
            p = float(g["p_obj1"].sum() / (g["p_obj1"] + g["p_obj2"]).sum())
            s = float(sampled.get((agent, setting), np.nan))
            rows.append({"intervention": name, "agent": int(agent), "setting": setting, "sampled": s, "exact": p,
                         "lo": lo, "hi": hi, "inside": bool(lo <= s <= hi),
                         "side": "inside" if lo <= s <= hi else ("below" if s < lo else "above")})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", default="zoo:yellow-line")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--n-levels", type=int, default=1000)
    ap.add_argument("--interventions", nargs="+", default=["none", "isolate:g", "isolate:r@obj1"])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/exact-agreement"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/exact-agreement"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    table = agreement(args.agents, args.settings, args.n_levels, args.interventions, args.run_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    for name, g in [*table.groupby("intervention", sort=False), ("all", table)]:
        below, above = int((g["side"] == "below").sum()), int((g["side"] == "above").sum())
        both = below + above
        sided = binomtest(below, both, 0.5).pvalue if both else float("nan")
        print(f"{name}: inside {int(g['inside'].sum())} of {len(g)} ({g['inside'].mean():.3f}); "
              f"misses below {below}, above {above} (two-sided binomial p {sided:.3g}); "
              f"mean sampled - exact {float((g['sampled'] - g['exact']).mean()):+.4f}")
    misses = table[~table["inside"]]
    if len(misses):
        print(misses.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
