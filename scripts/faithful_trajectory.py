"""Judge the agents of issue 37's cells along their training: every kept snapshot on its study's
settings, then one table and one figure per goal of preference against env steps, per seed and cell.

White-line cells (A, B, C): the original's 11 white-line settings and train:white_line, read as
yellow line over white gem and white line over white gem. Yellow-line cells (YA, YB): the
yellow-line study's headline, red line over yellow gem and green line over red line, and
train:yellow_line.

    python scripts/faithful_trajectory.py --root runs/faithful --n-levels 500 A B YA
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gmg.experiments.analysis.seed_anatomy import SNAPSHOT_ID, snapshot_population
from gmg.experiments.evaluate import evaluate, metrics
from gmg.experiments.plots.style import pyplot, save_figure
from gmg.experiments.population import population


@dataclass(frozen=True)
class Study:
    name: str  # file stem of its table and figure
    settings: tuple[str, ...]
    columns: dict  # setting -> what its preference reads as
    heldout: str
    bar: tuple[str, float] | None = None  # (setting, value) every capable original agent is above


WHITE = Study("white-line-trajectory", ("white-line", "train:white_line"),
              {"yellow_line-vs-white_gem": "yellow line over white gem",
               "white_line-vs-white_gem": "white line over white gem"},
              "train:white_line", ("yellow_line-vs-white_gem", 0.7))
YELLOW = Study("yellow-line-trajectory", ("red_line-vs-yellow_gem", "green_line-vs-red_line", "train:yellow_line"),
               {"red_line-vs-yellow_gem": "red line over yellow gem", "green_line-vs-red_line": "green line over red line"},
               "train:yellow_line")


def study_of(cell: str) -> Study:
    return YELLOW if cell.startswith("Y") else WHITE


def judge(cell_dir: Path, study: Study, n_levels: int, exact: bool) -> pd.DataFrame:
    snaps = snapshot_population(population(cell_dir))
    kwargs = {"exact": True} if exact else {}
    eps = evaluate(snaps, list(study.settings), cell_dir / "judge", "cpu", n_levels=n_levels, progress=False, **kwargs)
    m = metrics(eps)
    steps = {r.agent_id: int(r.meta["snapshot"]["steps"]) for r in snaps}
    rows = []
    for snap, d in m.groupby("agent"):
        p = d.set_index("setting")
        rows.append({"cell": cell_dir.name, "seed": snap // SNAPSHOT_ID, "steps": steps[snap],
                     **{k: p.loc[k, "preference"] for k in study.columns},
                     **{f"{k}_lo": p.loc[k, "preference_lo"] for k in study.columns},
                     **{f"{k}_hi": p.loc[k, "preference_hi"] for k in study.columns},
                     "heldout_success": p.loc[study.heldout, "success"],
                     "mean_length_two_object": d[~d["setting"].str.startswith("train:")]["capability"].mean()})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, study: Study, path: Path) -> Path:
    plt = pyplot()
    panels = [*study.columns.items(), ("heldout_success", f"held-out success ({study.heldout})")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6))
    for ax, (col, title) in zip(axes, panels):
        for (cell, seed), d in table.groupby(["cell", "seed"]):
            err = (d[col] - d[f"{col}_lo"], d[f"{col}_hi"] - d[col]) if f"{col}_lo" in d else None
            ax.errorbar(d["steps"] / 1e6, d[col], yerr=err, marker="o", ms=3, capsize=2,
                        label=f"cell {cell}, seed {seed} (95% CI)")
        ax.axhline(0.5 if col != "heldout_success" else 1.0, color="grey", lw=0.6, ls=":")
        if study.bar and col == study.bar[0]:
            ax.axhline(study.bar[1], color="tab:red", lw=0.8, ls="--", label=f"the original's bar ({study.bar[1]})")
        ax.set(title=title, xlabel="env steps (millions)", ylim=(0, 1.02))
    axes[0].set_ylabel("preference for obj1")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cells", nargs="+")
    ap.add_argument("--root", type=Path, default=Path("runs/faithful"))
    ap.add_argument("--n-levels", type=int, default=500)
    ap.add_argument("--exact", action="store_true", help="exact evaluation (the policy's Markov chain) instead of rollouts")
    ap.add_argument("--img", type=Path, default=Path("docs/img"), help="where the tables and figures go")
    args = ap.parse_args()
    for study in (WHITE, YELLOW):
        cells = [c for c in args.cells if study_of(c) is study]
        if not cells:
            continue
        table = pd.concat([judge(args.root / c, study, args.n_levels, args.exact) for c in cells], ignore_index=True)
        table = table.sort_values(["cell", "seed", "steps"])
        table.to_csv(args.img / f"{study.name}.csv", index=False)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(plot(table, study, args.img / f"{study.name}.png"))


if __name__ == "__main__":
    main()
