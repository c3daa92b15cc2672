#!/usr/bin/env bash
# White-line agents with the original's training code (the `paper` preset: full width, gamma
# 0.999, 5M steps, lr annealing, value clipping, Xavier init, the 0.99 return normaliser with
# rewards clipped at 10), for when a GPU is lent: does the original's recipe make agents that
# prefer the yellow line over the white gem, where the CPU recipes' mostly do not
# (docs/findings.md, "Which part of the recipe")?
#   scripts/gpu-paper-white-line.sh OUT_DIR [SECONDS]   (gmg on PATH)
# Trains SEEDS (default 0-3; 16 agents in all are the goal, 0-15) with WORKERS (4) at once
# until the deadline, checks the finished ones on 1000 held-out levels, evaluates them on the
# original's 11 white-line settings (1000 levels), and packs what finished into OUT_DIR:
# paper-white-line.tar.* (16-bit agents, `cat paper-white-line.tar.* | tar -x`), heldout.csv,
# metrics.csv. EXTRA: more `gmg train` arguments; N_LEVELS (1000). A lent machine starts bare: each lease trains its own seeds; run the next SEEDS
# on the next lease. Measured time per agent on an H200: unmeasured (fp32 one seed trained at
# 32,482 env steps/s in `gmg bench train`, so about 2.6 minutes of training per agent alone).
set -uo pipefail
out=${1:?usage: scripts/gpu-paper-white-line.sh OUT_DIR [SECONDS]}
deadline=$((SECONDS + ${2:-540}))
seeds=${SEEDS:-0-3}
run=runs/paper-white-line
mkdir -p "$out"
left=$((deadline - SECONDS - 150))  # keep 2.5 minutes for the checks and the packing
timeout "$left" gmg train --preset paper --goal white_line --seeds "$seeds" --workers "${WORKERS:-4}" \
  --device "${DEVICE:-cuda}" --run-dir "$run" --quiet ${EXTRA:-} >"$out/train.log" 2>&1
echo "train rc=$? ($((SECONDS)) s)"; tail -n 5 "$out/train.log"
if ! ls "$run"/agents/*/model.safetensors >/dev/null 2>&1; then echo "no agent finished"; exit 1; fi
gmg zoo check --agents "$run" --run-dir "$run/check" --n-levels "${N_LEVELS:-1000}" --quiet --device "${DEVICE:-cuda}" >"$out/check.log" 2>&1
cp "$run/check/heldout.csv" "$out/" 2>/dev/null
gmg evaluate --agents "$run" --settings white-line --n-levels "${N_LEVELS:-1000}" --run-dir "$run/eval" --quiet \
  --device "${DEVICE:-cuda}" >"$out/evaluate.log" 2>&1
python3 - "$run/eval" "$out/metrics.csv" <<'PY'
import sys

from gmg.experiments.evaluate import metrics
from gmg.experiments.store import ResultsStore

with ResultsStore(sys.argv[1], read_only=True) as store:
    m = metrics(store.table("episodes"))
m.to_csv(sys.argv[2], index=False)
print(m.pivot(index="agent", columns="setting", values="preference").round(3).to_string())
PY
# 16-bit agents as the zoo holds them (into experiments/zoo/paper-white-line/ once unpacked here)
python3 -c "import sys; from pathlib import Path; from gmg.experiments.zoo.export import export_zoo; \
export_zoo(Path(sys.argv[1]), Path(sys.argv[2]) / 'experiments/zoo/paper-white-line')" "$run" "$out/pack"
tar -cf - -C "$out/pack" experiments | split -b 15M - "$out/paper-white-line.tar." && rm -rf "$out/pack"
ls -la "$out"
