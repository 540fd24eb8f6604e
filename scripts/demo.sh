#!/usr/bin/env bash
# Set-up (idempotent), then the main job: train a QCFS CNN on real Fashion-MNIST, convert it to an
# SNN and print ANN accuracy and SNN accuracy per timestep. Extra args go to the config string.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WORKDIR=${WORKDIR:-runs/fashion_mnist_cnn}
CONFIG="configs/fashion_mnist_cnn.py${1:+:$1}"
.venv/bin/python train.py --config "$CONFIG" --workdir "$WORKDIR"
.venv/bin/python convert.py --config "$CONFIG" --workdir "$WORKDIR"
