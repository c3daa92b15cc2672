#!/usr/bin/env bash
# Issue 37: agents trained in the original's world (procgen's pixels and levels), two seeds per cell,
# weights kept every 73 updates (~150k env steps), judged along training. White line unless Y.
#   A    cpu preset, 200k steps (the zoo's length, the new world)
#   B    cpu preset, 1.5M steps
#   C    the original's training code at the cpu width (recipe-study's paper-code), STEPS_C steps
#   YA, YB  cells A and B with the yellow line as the goal (the yellow-line study's headline)
# Usage: scripts/faithful.sh train CELL...   (rerunning resumes; run at low priority)
#        scripts/faithful.sh judge [CELL...] (evaluates every snapshot, N_LEVELS levels,
#                                                       skips what is stored; tables and figures to docs/img)
set -euo pipefail
root=${ROOT:-runs/faithful}
declare -A CELLS=(
  [A]="--steps 200000"
  [B]="--steps 1500000"
  [C]="--steps ${STEPS_C:-1000000} --set gamma=0.999 --set return_gamma=0.99 --set reward_clip=10 --set clip_vloss=true --set init=xavier"
  [YA]="--steps 200000"
  [YB]="--steps 1500000"
)
what=${1:?train or judge}; shift
cells=("$@"); [ ${#cells[@]} -gt 0 ] || cells=(A B)
case $what in
  train)
    for cell in "${cells[@]}"; do
      goal=white_line; [[ $cell == Y* ]] && goal=yellow_line
      # shellcheck disable=SC2086
      gmg train --preset cpu --goal $goal --seeds 0-1 --workers 2 --render procgen --levels procgen \
        --snapshot-every 73 --run-dir "$root/$cell" --quiet ${CELLS[$cell]}
    done ;;
  judge)
    python scripts/faithful_trajectory.py --root "$root" --n-levels "${N_LEVELS:-500}" "${cells[@]}" ;;
  *) echo "usage: $0 train|judge [CELL...]" >&2; exit 2 ;;
esac
