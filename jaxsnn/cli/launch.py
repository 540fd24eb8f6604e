"""Starting a run on one or several processes: the flags ``train.py`` and ``convert.py`` share.

Several processes (README, "Several hosts"): start the same command in every process with
``JAX_COORDINATOR_ADDRESS=host:port`` (of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
set, or these flags; under SLURM or on Cloud TPU, ``--config.distributed=True`` lets JAX detect
them.
"""

from absl import flags

from jaxsnn.train import sharding

_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS)."
)
_COUNT = flags.DEFINE_integer("num_processes", None, "Processes (default: $JAX_NUM_PROCESSES).")
_INDEX = flags.DEFINE_integer("process_id", None, "This process (default: $JAX_PROCESS_ID).")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", None, "Seconds before a silent process counts as dead (JAX: 100)."
)


def initialize(config) -> bool:
    """Joins the other processes of this run when asked to (flags, environment or config)."""
    return sharding.maybe_initialize_distributed(
        config,
        coordinator_address=_ADDRESS.value,
        num_processes=_COUNT.value,
        process_id=_INDEX.value,
        heartbeat_timeout_s=_HEARTBEAT.value,
    )
