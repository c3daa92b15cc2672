#!/usr/bin/env bash
# Train the bundled zoo with the project's own `gmg train` (cpu preset), then export it as
# package data. Rerunning resumes: finished seeds are skipped, unfinished ones resume.
set -euo pipefail
gmg train --preset cpu --seeds 0-31 --goal yellow_line --run-dir runs/zoo-yellow-line "$@"
gmg train --preset cpu --seeds 0-15 --goal white_line --run-dir runs/zoo-white-line "$@"
