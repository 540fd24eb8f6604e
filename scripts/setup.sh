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
# constraints.txt pins every package (a lock): a fresh venv gets the versions README was measured
# with, not whatever is newest that day. Refresh it on purpose (see its header), never implicitly.
.venv/bin/python -m pip install -q -c constraints.txt --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test,torch,nir,events]'
bash scripts/get_fashion_mnist.sh
