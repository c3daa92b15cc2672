#!/usr/bin/env bash
# Issue 37: white-line agents trained in the original's world (procgen's pixels and levels), two seeds
# per cell, weights kept every 73 updates (~150k env steps), judged along training.
#   A    cpu preset, 200k steps (the zoo's length, the new world)
#   B    cpu preset, 1.5M steps
#   C    the original's training code at the cpu width (recipe-study's paper-code), STEPS_C steps
# Usage: scripts/faithful-white-line.sh train CELL...   (rerunning resumes; run at low priority)
#        scripts/faithful-white-line.sh judge [CELL...] (evaluates every snapshot, N_LEVELS levels,
#                                                       skips what is stored; table and figure to docs/img)
set -euo pipefail
root=${ROOT:-runs/faithful}
declare -A CELLS=(
  [A]="--steps 200000"
  [B]="--steps 1500000"
  [C]="--steps ${STEPS_C:-1000000} --set gamma=0.999 --set return_gamma=0.99 --set reward_clip=10 --set clip_vloss=true --set init=xavier"
)
what=${1:?train or judge}; shift
cells=("$@"); [ ${#cells[@]} -gt 0 ] || cells=(A B)
case $what in
  train)
    for cell in "${cells[@]}"; do
      # shellcheck disable=SC2086
      gmg train --preset cpu --goal white_line --seeds 0-1 --workers 2 --render procgen --levels procgen \
        --snapshot-every 73 --run-dir "$root/$cell" --quiet ${CELLS[$cell]}
    done ;;
  judge)
    python scripts/white_line_trajectory.py --root "$root" --n-levels "${N_LEVELS:-500}" "${cells[@]}" ;;
  *) echo "usage: $0 train|judge [CELL...]" >&2; exit 2 ;;
esac
