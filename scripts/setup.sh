#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: venv in .venv, the package with its test and
# torch extras, and the real Fashion-MNIST from the Debian package. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,torch]'
bash scripts/get_fashion_mnist.sh
