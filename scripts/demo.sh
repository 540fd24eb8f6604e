#!/usr/bin/env bash
# Set-up (idempotent), then the main job: train a QCFS CNN on real Fashion-MNIST, convert it to an
# SNN four ways (qcfs: v0 = θ/2; zero: v0 = 0; srp and cos: τ = 4 pre-simulation steps) and print
# ANN accuracy and SNN accuracy per timestep. An optional argument is passed to the config, e.g.
# "L=8,epochs=3".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WORKDIR=${WORKDIR:-runs/fashion_mnist_cnn}
CONFIG="configs/fashion_mnist_cnn.py${1:+:$1}"
PY=.venv/bin/python
$PY train.py --config "$CONFIG" --workdir "$WORKDIR"
$PY convert.py --config "$CONFIG" --workdir "$WORKDIR" --config.convert.method=qcfs --config.convert.T=32
$PY convert.py --config "$CONFIG" --workdir "$WORKDIR" --config.convert.method=zero --config.convert.T=32
$PY convert.py --config "$CONFIG" --workdir "$WORKDIR" --config.convert.method=srp \
  --config.convert.presim=4 --config.convert.T=8
$PY convert.py --config "$CONFIG" --workdir "$WORKDIR" --config.convert.method=cos \
  --config.convert.presim=4 --config.convert.T=8
echo "results: $WORKDIR/snn_{qcfs-T32,zero-T32,srp-T8,cos-T8}/results.json (plots beside them)"
