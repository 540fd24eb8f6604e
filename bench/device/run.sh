#!/usr/bin/env bash
# The GPU check in one command: bash bench/device/run.sh [--platform gpu|cpu] [--quick] [--budget-s S]
#
# On the lent GPU machine (no network): installs the carried wheels (.whl/, see
# bench/device/README.md) into /tmp/site, puts the repository on PYTHONPATH and runs every section
# of `python -m bench.device` within the time budget (default 450 s, wheel installation included).
# Results go to $OUT (the folder the device tool brings back; bench/ when unset):
# results_<platform>[_quick].{json,md,jsonl} and run_<platform>[_quick].log. Here, a dry run of
# every code path on the tiny networks: bash bench/device/run.sh --platform cpu --quick
set -uo pipefail
cd "$(dirname "$0")/../.."
PLATFORM=gpu
QUICK=""
BUDGET=""
WHEELS=auto
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) PLATFORM=$2; shift 2 ;;
    --quick) QUICK=--quick; shift ;;
    --budget-s) BUDGET=$2; shift 2 ;;
    --wheels) WHEELS=yes; shift ;;
    --no-wheels) WHEELS=no; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
# Carried wheels: on the device only (they are cp312 builds for its python3).
if [ "$WHEELS" = yes ] || { [ "$WHEELS" = auto ] && [ "$PLATFORM" = gpu ] && ls .whl/*.whl >/dev/null 2>&1; }; then
  echo "installing $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
case "$PLATFORM" in
  gpu) export JAX_PLATFORMS=cuda ;;
  cpu) export JAX_PLATFORMS=cpu ;;
  *) echo "--platform must be gpu or cpu, got $PLATFORM" >&2; exit 2 ;;
esac
export TF_CPP_MIN_LOG_LEVEL=3
OUT_DIR=${OUT:-bench}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/run_${PLATFORM}${QUICK:+_quick}.log"
if [ -z "$BUDGET" ]; then
  if [ -n "$QUICK" ]; then BUDGET=300; else BUDGET=450; fi
fi
LEFT=$((BUDGET - SECONDS))
echo "python: $($PY -c 'import sys; print(sys.version.split()[0], sys.executable)'); budget left ${LEFT} s"
# A hard stop 30 s after the budget: the driver and its sections stop themselves well before.
timeout -k 5 $((LEFT + 30)) "$PY" -m bench.device --platform "$PLATFORM" $QUICK \
  --budget-s "$LEFT" --out "$OUT_DIR" "${EXTRA[@]}" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
