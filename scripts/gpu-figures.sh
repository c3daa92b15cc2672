#!/usr/bin/env bash
# The GPU figures of docs/gpu.md in one pass, for a machine lent for a few minutes: runs the GPU
# tests, times training (paper and cpu presets, CUDA graph on and off, stacked seeds), profiles
# an update (scripts/profile_train.py), times env and evaluation; with YELLOW_SEEDS /
# WHITE_SEEDS set it first trains those zoo agents (cpu preset, --workers seeds at once), checks
# them on 1000 held-out levels and exports them as 16-bit package data.
#   scripts/gpu-figures.sh OUT_DIR [SECONDS]   (gmg on PATH; SECONDS = deadline for the whole pass)
# Every step logs to OUT_DIR/logs/NAME.log (archived at the end as OUT_DIR/logs.tgz, with the
# held-out tables, bench JSON and meta.json files); the zoo comes back as OUT_DIR/zoo.tar.* in
# 15 MB pieces (`cat zoo.tar.* | tar -x`). Steps that would pass the deadline are skipped, so
# a rerun on the same machine (training resumes, evaluation skips what is stored) goes on.
# Environment: DEVICE (cuda), WORKERS (16), STEPS, YELLOW_SEEDS, WHITE_SEEDS (none; the zoo is complete),
# STACK_CPU (16) and STACK_PAPER (4,8): seeds stacked in one process in the --stack benches;
# PAPER_WORKERS (2,4): paper-preset seeds trained at once (about 6 GiB of GPU memory each in bf16);
# ONLY="gpu-tests bench-train-stack-cpu ...": run just the steps of those names.
# It writes the agents it trains into experiments/zoo/ (FRESH_ZOO=1: replacing the bundled
# ones), so run it in a copy of the repository and unpack zoo.tar.* here.
set -uo pipefail
out=${1:?usage: scripts/gpu-figures.sh OUT_DIR [SECONDS]}
deadline=$((SECONDS + ${2:-500}))
device=${DEVICE:-cuda}
workers=${WORKERS:-16}
steps=${STEPS:-}  # total env steps per agent (default: the cpu preset's)
yellow=${YELLOW_SEEDS-}  # e.g. 0-31 to train (or resume) those yellow-line zoo agents
white=${WHITE_SEEDS-}
logs=$out/logs
mkdir -p "$logs"

step() {  # NAME LIMIT_S COMMAND...: run under the smaller of LIMIT_S and the time left
  local name=$1 limit=$2 left=$((deadline - SECONDS - 15))
  shift 2
  if [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then return; fi
  ((left < limit)) && limit=$left
  if ((limit < 10)); then echo "== $name skipped (deadline)"; return; fi
  local t0=$SECONDS
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  echo "== $name rc=$? $((SECONDS - t0)) s"
  tail -n "${TAIL:-12}" "$logs/$name.log"
}

train_args=(--preset cpu-zoo --workers "$workers" --quiet --device "$device" ${steps:+--steps "$steps"})
# FRESH_ZOO=1 starts the zoo over; by default the agents it trains are added to the bundled ones
[[ ${FRESH_ZOO:-0} == 1 ]] && rm -rf experiments/zoo/yellow-line experiments/zoo/white-line
zoo() {  # GOAL NAME SEEDS TRAIN_LIMIT_S CHECK_LIMIT_S
  [[ -z $3 ]] && return
  step "train-$2" "$4" gmg train "${train_args[@]}" --goal "$1" --seeds "$3" --run-dir "runs/zoo-$2"
  step "export-$2" 30 gmg zoo export --run-dir "runs/zoo-$2" --name "$2"
  step "check-$2" "$5" gmg zoo check --agents "runs/zoo-$2" --run-dir "runs/zoo-check-$2" --quiet --device "$device"
  cp "runs/zoo-check-$2/heldout.csv" "$logs/heldout-$2.csv" 2>/dev/null
}
zoo yellow_line yellow-line "$yellow" 240 90
zoo white_line white-line "$white" 150 60
cp --parents runs/zoo-*-line/agents/*/meta.json "$logs/" 2>/dev/null
# the zoo in pieces of at most 15 MB (what comes back from a lent machine is limited per file)
[[ -n $yellow$white ]] && tar -cf - experiments/zoo | split -b 15M - "$out/zoo.tar."
# the figure first: paper-preset env steps/s summed over seeds trained at once, with the
# steady rate (only the time every worker trains past its first update) beside the whole-run one
step bench-train-paper-workers 240 gmg bench train --device "$device" --presets paper --variants bf16 --workers "${PAPER_WORKERS:-2,4}" --iterations 6 --out "$logs/bench-train-paper-workers.json"
step gpu-tests 60 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_env.py tests/test_stacked.py tests/test_cuda_graph.py
step bench-train-paper 60 gmg bench train --device "$device" --presets paper --variants fp32,bf16 --out "$logs/bench-train-paper.json"
step bench-eval 75 gmg bench eval --device "$device" --agents zoo:yellow-line --out "$logs/bench-eval.json"
step bench-env 30 gmg bench env --device "$device" --num-envs 4096 --steps 200 --no-procgen --out "$logs/bench-env.json"
step bench-train-cpu 60 gmg bench train --device "$device" --presets cpu --variants fp32 --workers "$workers" --out "$logs/bench-train-cpu.json"
step bench-train-stack-cpu 90 gmg bench train --device "$device" --presets cpu --variants fp32,bf16 --stack "${STACK_CPU:-16}" --out "$logs/bench-train-stack-cpu.json"
step bench-train-stack-paper 150 gmg bench train --device "$device" --presets paper --variants bf16 --stack "${STACK_PAPER:-4,8}" --out "$logs/bench-train-stack-paper.json"
step bench-train-paper-no-cudnn-benchmark 45 gmg bench train --device "$device" --presets paper --variants bf16 --set cudnn_benchmark=false --out "$logs/bench-train-paper-no-cudnn-benchmark.json"
step bench-train-paper-no-graph 45 gmg bench train --device "$device" --presets paper --variants bf16 --set cuda_graph=false --out "$logs/bench-train-paper-no-graph.json"
TAIL=16 step profile-paper 60 python3 scripts/profile_train.py --device "$device" --variants bf16+cl,fp32+cl --pools 8192 --out "$logs"
step bench-train-paper-compile 150 gmg bench train --device "$device" --presets paper --variants bf16+compile --out "$logs/bench-train-paper-compile.json"
# few files come back from a lent machine: one archive of every log, table and JSON
tar -czf "$out/logs.tgz" -C "$out" logs && rm -rf "$logs"
ls -la "$out"
