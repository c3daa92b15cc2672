"""Judge white-line agents along their training (issue 37): every kept snapshot of each cell's agents
on the original's 11 white-line settings and train:white_line, then one table and one figure of
preference against env steps, per seed and cell.

    python scripts/white_line_trajectory.py --root runs/faithful --n-levels 500 A B
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from gmg.experiments.analysis.seed_anatomy import SNAPSHOT_ID, snapshot_population
from gmg.experiments.evaluate import evaluate, metrics
from gmg.experiments.plots.style import pyplot, save_figure
from gmg.experiments.population import population

COLUMNS = {"yellow_line-vs-white_gem": "yellow line over white gem", "white_line-vs-white_gem": "white line over white gem"}


def judge(cell_dir: Path, n_levels: int, exact: bool) -> pd.DataFrame:
    snaps = snapshot_population(population(cell_dir))
    kwargs = {"exact": True} if exact else {}
    eps = evaluate(snaps, ["white-line", "train:white_line"], cell_dir / "judge", "cpu", n_levels=n_levels,
                   progress=False, **kwargs)
    m = metrics(eps)
    steps = {r.agent_id: int(r.meta["snapshot"]["steps"]) for r in snaps}
    rows = []
    for snap, d in m.groupby("agent"):
        p = d.set_index("setting")
        rows.append({"cell": cell_dir.name, "seed": snap // SNAPSHOT_ID, "steps": steps[snap],
                     **{k: p.loc[k, "preference"] for k in COLUMNS},
                     **{f"{k}_lo": p.loc[k, "preference_lo"] for k in COLUMNS},
                     **{f"{k}_hi": p.loc[k, "preference_hi"] for k in COLUMNS},
                     "heldout_success": p.loc["train:white_line", "success"],
                     "mean_length_two_object": d[~d["setting"].str.startswith("train:")]["capability"].mean()})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (col, title) in zip(axes, [*COLUMNS.items(), ("heldout_success", "held-out success (train:white_line)")]):
        for (cell, seed), d in table.groupby(["cell", "seed"]):
            err = (d[col] - d[f"{col}_lo"], d[f"{col}_hi"] - d[col]) if f"{col}_lo" in d else None
            ax.errorbar(d["steps"] / 1e6, d[col], yerr=err, marker="o", ms=3, capsize=2,
                        label=f"cell {cell}, seed {seed} (95% CI)")
        ax.axhline(0.5 if col != "heldout_success" else 1.0, color="grey", lw=0.6, ls=":")
        if col == "yellow_line-vs-white_gem":  # every capable agent of the original's population is above it
            ax.axhline(0.7, color="tab:red", lw=0.8, ls="--", label="the original's bar (0.7)")
        ax.set(title=title, xlabel="env steps (millions)", ylim=(0, 1.02))
    axes[0].set_ylabel("preference for obj1")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cells", nargs="+")
    ap.add_argument("--root", type=Path, default=Path("runs/faithful"))
    ap.add_argument("--n-levels", type=int, default=500)
    ap.add_argument("--exact", action="store_true", help="exact evaluation (the policy's Markov chain) instead of rollouts")
    ap.add_argument("--figure", type=Path, default=Path("docs/img/white-line-trajectory.png"))
    args = ap.parse_args()
    table = pd.concat([judge(args.root / c, args.n_levels, args.exact) for c in args.cells], ignore_index=True)
    table = table.sort_values(["cell", "seed", "steps"])
    table.to_csv(args.root / "trajectory.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(plot(table, args.figure))


if __name__ == "__main__":
    main()
