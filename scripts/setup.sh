#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: venv in .venv, the package with its test, torch
# extras, nir (the SpikingJelly check of exported files) and events (tonic, for event-camera
# datasets), and the real Fashion-MNIST from the Debian package. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Everything the installers print goes to a log; the console gets one line, or on failure one
# error: line and the log's last lines.
LOG=.venv/setup.log
: >"$LOG"
step() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "error: set-up step failed: $* (the last lines of $LOG follow)" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}
echo "set-up: packages and Fashion-MNIST (log: $LOG)"
# constraints.txt pins every package (a lock): a fresh venv gets the versions README was measured
# with, not whatever is newest that day. Refresh it on purpose (see its header), never implicitly.
step .venv/bin/python -m pip install -c constraints.txt --upgrade pip
step .venv/bin/python -m pip install -c constraints.txt -e '.[test,torch,nir,events]'
step bash scripts/get_fashion_mnist.sh
