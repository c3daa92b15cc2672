#!/usr/bin/env bash
# Which part of the recipe makes white-line agents that discriminate shape? Two seeds per cell,
# white-line agents on black, judged on the original's white-line settings (N_LEVELS, default 500).
# Each cell trains with `gmg train` (rerunning resumes) and evaluates with `gmg evaluate`
# (rerunning skips what is stored); the table goes to runs/recipe/table.csv and stdout.
#   scripts/recipe-study.sh [CELL ...]   (default: every cell; gmg on PATH; run at low priority)
set -euo pipefail
root=runs/recipe
declare -A CELLS=(
  [cpu]=""
  [full-width]="--set widths=16,32,32"
  [gamma-0.99]="--set gamma=0.99"
  [gamma-0.999]="--set gamma=0.999"
  [steps-300k]="--steps 300000"
  [no-reward-scaling]="--set scale_rewards=false"
  # the original's training code at the cpu scale: GAE at 0.999, rewards scaled by a
  # 0.99-discounted return and clipped at 10, value loss clipped, Xavier init (lr annealed as in cpu)
  [paper-code]="--set gamma=0.999 --set return_gamma=0.99 --set reward_clip=10 --set clip_vloss=true --set init=xavier"
)
n_levels=${N_LEVELS:-500}
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(cpu gamma-0.99 gamma-0.999 no-reward-scaling paper-code full-width steps-300k)
for cell in "${cells[@]}"; do
  # shellcheck disable=SC2086
  gmg train --preset cpu --goal white_line --seeds 0-1 --workers 2 --run-dir "$root/$cell" --quiet ${CELLS[$cell]}
  gmg evaluate --agents "$root/$cell" --settings white-line train:white_line --n-levels "$n_levels" --run-dir "$root/$cell/eval" --quiet
done
python - "$root" <<'PY'
import sys
from pathlib import Path

import pandas as pd

from gmg.experiments.evaluate import metrics
from gmg.experiments.store import ResultsStore

rows = []
for eval_dir in sorted(Path(sys.argv[1]).glob("*/eval")):
    with ResultsStore(eval_dir, read_only=True) as store:
        m = metrics(store.table("episodes"))
    for agent, d in m.groupby("agent"):
        p = d.set_index("setting")
        rows.append({"cell": eval_dir.parent.name, "agent": agent,
                     "yellow_line_vs_white_gem": p.loc["yellow_line-vs-white_gem", "preference"],
                     "white_line_vs_white_gem": p.loc["white_line-vs-white_gem", "preference"],
                     "red_line_vs_white_gem": p.loc["red_line-vs-white_gem", "preference"],
                     "mean_length_two_object": d[~d["setting"].str.startswith("train:")]["capability"].mean(),
                     "heldout_success": p.loc["train:white_line", "success"]})
table = pd.DataFrame(rows)
table.to_csv(Path(sys.argv[1]) / "table.csv", index=False)
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
PY
