#!/usr/bin/env bash
# Create .venv with everything gmg needs. Idempotent: reruns only when pyproject.toml changed.
# Usage: scripts/setup.sh [test]   ("test" also installs pytest, ruff, Ray for the cluster tests
# and Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}
stamp=".venv/.gmg-setup-$(sha1sum pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)${want_test:+-test}"
if [ -f "$stamp" ]; then exit 0; fi

py=""
# 3.11 first: the CPU torch wheel this workplace serves is built for it; a pyenv shim
# without that version fails its run check and is skipped
for cand in python3.11 python3.12 python3.10 python3; do
  if "$cand" -c 'import sys; assert sys.version_info >= (3, 10)' >/dev/null 2>&1; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "setup: no python3 found" >&2; exit 1; }
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install --quiet --upgrade pip

# torch first, so nothing below pulls a multi-gigabyte CUDA build onto a CPU-only machine:
# the CPU wheel of torch 2.13.0 is the one this workplace serves; with a GPU, take the default build.
if command -v nvidia-smi >/dev/null 2>&1; then
  $pip install --quiet "torch>=2.4"
else
  $pip install --quiet "torch==2.13.0" || $pip install --quiet "torch>=2.4"
fi
extras=""
[ "$want_test" = "test" ] && extras="[test,ray]"
$pip install --quiet -e ".${extras}"

# procgen only for its image assets (and `gmg bench env`): its metadata pins numpy<2, which
# would drag the whole stack back to numpy 1 / pandas 2; the maze runs unchanged on numpy 2,
# so it is installed without its declared dependencies, plus the few its runtime imports.
pyver=$(.venv/bin/python -c 'import sys; print("%d%d" % sys.version_info[:2])')
if [ "$pyver" -ge 311 ]; then procgen=procgen-mirror; else procgen=procgen; fi
$pip install --quiet --no-deps "$procgen" gym3 gym gym_notices
$pip install --quiet cffi filelock cloudpickle

if [ "$want_test" = "test" ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  # the report test opens the HTML report in Debian's headless Chromium
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "setup: chromium not installed; the browser test will be skipped" >&2
fi
rm -f .venv/.gmg-setup-*
touch "$stamp"
