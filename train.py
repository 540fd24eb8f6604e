r"""Trains a QCFS (or ReLU / clip-ReLU) ANN; the run resumes from the checkpoints in --workdir.

    python train.py --config configs/fashion_mnist_cnn.py:L=4 --workdir /tmp/fm_L4

Several processes (README, "Several hosts"): start the same command in every process with
JAX_COORDINATOR_ADDRESS=host:port (of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID set, or
the flags --coordinator_address, --num_processes, --process_id; under SLURM / Cloud TPU,
--config.distributed=True detects them. Logs go to <workdir>/jaxsnn.log.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsnn import progress
from jaxsnn.cli import console, launch
from jaxsnn.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (path.py:args).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")

    def run():
        config = _CONFIG.value
        progress.set_enabled(config.get("progress", True))
        launch.initialize(config)
        # Any implicit host<->device copy in the loop is a bug (a hidden sync); make it an error.
        jax.config.update("jax_transfer_guard", "disallow")
        logging.info("JAX %s, backend %s, devices %s", jax.__version__, jax.default_backend(),
                     jax.devices())  # fmt: skip
        logging.info("process %d of %d", jax.process_index(), jax.process_count())
        metrics = loop.train_and_evaluate(config, _WORKDIR.value)
        print(" ".join(f"{k}={v:.6g}" for k, v in metrics.items()))

    console.run(run, workdir=_WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=console.parse_flags)
