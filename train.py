r"""Trains a QCFS (or ReLU / clip-ReLU) ANN; the run resumes from the checkpoints in --workdir.

    python train.py --config configs/fashion_mnist_cnn.py:L=4 --workdir /tmp/fm_L4

Several processes (README, "Several hosts"): start the same command in every process with
JAX_COORDINATOR_ADDRESS=host:port (of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID set, or
the flags below; under SLURM / Cloud TPU, --config.distributed=True detects them.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsnn.cli import quiet_third_party_logs
from jaxsnn.train import loop, sharding

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (path.py:args).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS)."
)
_COUNT = flags.DEFINE_integer("num_processes", None, "Processes (default: $JAX_NUM_PROCESSES).")
_INDEX = flags.DEFINE_integer("process_id", None, "This process (default: $JAX_PROCESS_ID).")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", None, "Seconds before a silent process counts as dead (JAX: 100)."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_third_party_logs()
    config = _CONFIG.value
    try:
        sharding.maybe_initialize_distributed(
            config,
            coordinator_address=_ADDRESS.value,
            num_processes=_COUNT.value,
            process_id=_INDEX.value,
            heartbeat_timeout_s=_HEARTBEAT.value,
        )
        # Any implicit host<->device copy in the loop is a bug (a hidden sync); make it an error.
        jax.config.update("jax_transfer_guard", "disallow")
        logging.info(
            "JAX %s, backend %s, devices %s", jax.__version__, jax.default_backend(), jax.devices()
        )
        logging.info("process %d of %d", jax.process_index(), jax.process_count())
        metrics = loop.train_and_evaluate(config, _WORKDIR.value)
    except Exception as err:  # One line, exit 2 (user errors) or 3 (a lost process).
        lost = sharding.lost_peer_message(err)
        if lost is None and not isinstance(
            err, ValueError | FileNotFoundError | FloatingPointError
        ):
            raise
        logging.debug("traceback (shown with --verbosity=1)", exc_info=True)
        text = lost or " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {text}", file=sys.stderr)  # Always one line.
        if jax.process_count() > 1:  # Don't wait in JAX's shutdown barrier for the others.
            sharding.exit_now(3 if lost else 2)
        sys.exit(2)
    print(" ".join(f"{k}={v:.6g}" for k, v in metrics.items()))


if __name__ == "__main__":
    app.run(main)
