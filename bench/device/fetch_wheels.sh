#!/usr/bin/env bash
# Downloads the wheels the GPU machine lacks (bench/device/wheels.txt) into .whl/, for its Python
# 3.12 on x86-64 Linux, as the device tool's README prescribes; builds promise's pure-Python wheel
# from its sdist (PyPI has no wheel). Then checks the set: python -m bench.device.check_wheels
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
mkdir -p .whl
grep -qx '/.whl/' .gitignore || grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mapfile -t BIN < <(grep -v '^#' bench/device/wheels.txt | grep -v '^promise==' | grep .)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${BIN[@]}"
"$PY" -m pip wheel -q --no-deps -w .whl "$(grep '^promise==' bench/device/wheels.txt)"
ls -l .whl
du -sh .whl
