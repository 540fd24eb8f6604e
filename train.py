r"""Trains a QCFS (or ReLU / clip-ReLU) ANN; the run resumes from the checkpoints in --workdir.

    python train.py --config configs/fashion_mnist_cnn.py:L=4 --workdir /tmp/fm_L4

Multi-host: set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (or
config.distributed=True on SLURM / Cloud TPU) and start the same command on every host.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsnn.cli import quiet_third_party_logs
from jaxsnn.train import loop, sharding

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (path.py:args).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_third_party_logs()
    config = _CONFIG.value
    sharding.maybe_initialize_distributed(config)
    # Any implicit host<->device copy in the loop is a bug (a hidden sync); make it an error.
    jax.config.update("jax_transfer_guard", "disallow")
    logging.info(
        "JAX %s, backend %s, devices %s", jax.__version__, jax.default_backend(), jax.devices()
    )
    logging.info("process %d of %d", jax.process_index(), jax.process_count())
    try:
        metrics = loop.train_and_evaluate(config, _WORKDIR.value)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:  # One line, exit 2.
        logging.debug("traceback (shown with --verbosity=1)", exc_info=True)
        text = " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {text}", file=sys.stderr)  # Always one line.
        sys.exit(2)
    print(" ".join(f"{k}={v:.6g}" for k, v in metrics.items()))


if __name__ == "__main__":
    app.run(main)
