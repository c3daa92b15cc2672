"""The bundled zoo (trained on area-averaged "box" frames) played on procgen's own frames: the
same agents, 500 levels and sampled actions under both renderers, compared per agent and setting
(issue 34, item 3). Writes runs/render-whatif/comparison*.csv and prints the tables.

    python scripts/render_whatif.py            # evaluates what is missing first (resumable)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gmg.experiments.evaluate import evaluate
from gmg.experiments.original.results import compare_with_original

ROOT = Path("runs/render-whatif")
POPULATIONS = {"yellow-line": ["red_line-vs-yellow_gem", "green_line-vs-red_line", "train:yellow_line"],
               "white-line": ["yellow_line-vs-white_gem", "white_line-vs-white_gem", "train:white_line"]}


def main() -> None:
    agents, settings = [], []
    for pop, names in POPULATIONS.items():
        for render in ("box", "procgen"):
            evaluate(f"zoo:{pop}", names, ROOT / f"{pop}-{render}", "cpu", n_levels=500, render=render, progress=False)
        # the same levels and action noise on both sides: compared level by level too
        out = compare_with_original(ROOT / f"{pop}-box", ROOT / f"{pop}-procgen", replayed=True)
        agents.append(out["agents"].assign(population=pop))
        settings.append(out["settings"].assign(population=pop))
    rename = lambda c: c.replace("_orig", "_box").replace("_gmg", "_procgen")  # noqa: E731
    a = pd.concat(agents).rename(columns=rename)
    s = pd.concat(settings).rename(columns=rename)
    a.to_csv(ROOT / "comparison.csv", index=False)
    s.to_csv(ROOT / "comparison-settings.csv", index=False)
    pd.set_option("display.width", 250)
    print(s.round(3).to_string(index=False))
    cols = ["population", "agent", "setting", "preference_box", "preference_procgen", "preference_diff",
            "preference_diff_lo", "preference_diff_hi", "capability_box", "capability_procgen", "level_agreement"]
    print(a[cols].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
