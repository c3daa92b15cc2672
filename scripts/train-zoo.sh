#!/usr/bin/env bash
# Train the bundled zoo with the project's own `gmg train` (cpu preset), two single-threaded
# processes on disjoint seeds (on 2 cores this beats one 2-thread process), then export the
# finished agents as 16-bit package data. Rerunning resumes: finished seeds are skipped,
# unfinished ones resume from their last checkpoint.
set -euo pipefail
train() {  # goal, run dir, seeds of worker 0, seeds of worker 1
  gmg train --preset cpu --goal "$1" --run-dir "$2" --seeds "$3" --set threads=1 --quiet &
  gmg train --preset cpu --goal "$1" --run-dir "$2" --seeds "$4" --set threads=1 --quiet &
  wait
}
evens() { seq -s, "$1" 2 "$2"; }
train yellow_line runs/zoo-yellow-line "$(evens 0 30)" "$(evens 1 31)"
gmg zoo export --run-dir runs/zoo-yellow-line --name yellow-line
train white_line runs/zoo-white-line "$(evens 0 14)" "$(evens 1 15)"
gmg zoo export --run-dir runs/zoo-white-line --name white-line
