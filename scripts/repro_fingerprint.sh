#!/usr/bin/env bash
# Prints what decides whether two machines can give bit-identical training runs, then a cheap
# numeric fingerprint: test loss/accuracy after 50 SGD steps of the Fashion-MNIST demo (~1 min).
# Two machines agree on the full 5-epoch numbers only if they agree on this fingerprint.
# Usage (repo root, after scripts/setup.sh): bash scripts/repro_fingerprint.sh [python]
set -euo pipefail
PY=${1:-.venv/bin/python}
echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
echo "cores:    nproc=$(nproc) (XLA's thread pool follows the affinity mask)"
echo "XLA_FLAGS=${XLA_FLAGS:-} JAX_*: $(env | grep '^JAX_' | tr '\n' ' ')"
echo "packages: $("$PY" -m pip freeze --exclude-editable | sha256sum | cut -c1-16) (sha256 of pip freeze)"
"$PY" -c 'import jax, jaxlib, flax, optax, numpy; print("versions:", jax.__version__, jaxlib.__version__, flax.__version__, optax.__version__, numpy.__version__)'
WD=$(mktemp -d)
CFG=$WD/fm50.py
cat > "$CFG" <<'PYEOF'
import importlib.util, os
spec = importlib.util.spec_from_file_location("fm", os.path.join(os.getcwd(), "configs/fashion_mnist_cnn.py"))
fm = importlib.util.module_from_spec(spec); spec.loader.exec_module(fm)
def get_config(arg=None):
    c = fm.get_config(arg)
    c.max_steps, c.log_every_steps, c.progress = 50, 50, False
    return c
PYEOF
"$PY" train.py --config "$CFG:L=4" --workdir "$WD/run" --config.data_dir="$WD/tfds" >"$WD/log" 2>&1 \
  || { tail -5 "$WD/log"; exit 1; }
grep '"test_loss"' "$WD/run/metrics.jsonl" | tail -1 | sed 's/^/fingerprint: /'
rm -rf "$WD"
# 2026-12-02, AMD EPYC, 2 cores, constraints.txt: {"step": 50, "test_accuracy": 0.5625, "test_loss": 1.7839505859375}
