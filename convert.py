r"""Converts the ANN in --workdir (or a PyTorch .pth) to an SNN; evaluates it per timestep.

    python convert.py --config configs/fashion_mnist_cnn.py --workdir /tmp/fm_L4
    python convert.py --config configs/fashion_mnist_cnn.py --workdir /tmp/fm_L4 \
        --config.convert.method=srp --config.convert.presim=4 --config.convert.T=8

Writes results.json, the SNN checkpoint and plots to <workdir>/snn_<method>/ (see README).
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsnn.cli import quiet_third_party_logs
from jaxsnn.convert import pipeline
from jaxsnn.train import sharding

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path.py:args).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding the ANN checkpoints.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_third_party_logs()
    config = _CONFIG.value
    sharding.maybe_initialize_distributed(config)
    logging.info(
        "JAX %s, backend %s, devices %s", jax.__version__, jax.default_backend(), jax.devices()
    )
    try:
        pipeline.convert_and_evaluate(config, _WORKDIR.value)
    except (ValueError, FileNotFoundError, ImportError) as err:
        logging.debug("traceback (shown with --verbosity=1)", exc_info=True)
        text = " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {text}", file=sys.stderr)  # Always one line.
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
