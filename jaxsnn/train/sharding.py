"""Data parallelism with ``jax.jit`` and named shardings (no ``pmap``).

One mesh axis, ``'data'``, spans every device of every process. Batches are split along it
(``P('data')``); the train state is replicated (``P()``). Because ``jit`` sees the global batch,
BatchNorm statistics and the gradient are global without any ``pmean``. The same code runs on one
GPU, N GPUs, several hosts, and the two fake CPU devices of the tests.

Multi-host: :func:`maybe_initialize_distributed` calls ``jax.distributed.initialize()`` when
``config.distributed`` is true or ``JAX_COORDINATOR_ADDRESS`` is set (then set also
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` per process; on SLURM or Cloud TPU JAX detects them
itself). The host pipeline (:mod:`jaxsnn.data`) yields the same global batch on every process, so
:func:`shard_batch` hands the whole batch to ``jax.make_array_from_process_local_data`` with
``global_shape`` equal to its shape and each process copies only the rows of its own devices.
"""

import functools
import os

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding

from jaxsnn.train.steps import eval_step, train_step

DATA_AXIS = "data"


def maybe_initialize_distributed(config=None) -> bool:
    """Initialises multi-process JAX if asked to; returns whether it did.

    Must run before any other JAX call. Triggered by ``config.distributed`` or by the
    ``JAX_COORDINATOR_ADDRESS`` environment variable (read by ``jax.distributed.initialize``
    together with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``).
    """
    wanted = bool(config is not None and config.get("distributed", False))
    if not (wanted or os.environ.get("JAX_COORDINATOR_ADDRESS")):
        return False
    jax.distributed.initialize()
    return True


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: all devices of all processes).

    The axis is ``Auto`` (GSPMD propagation): the model code stays sharding-agnostic, whereas
    ``Explicit`` axes would ask every batch-contracting matmul for an output sharding.
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), (AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``'data'``."""
    return NamedSharding(mesh, jax.P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Fully replicated (used for the train state and metrics)."""
    return NamedSharding(mesh, jax.P())


def check_batch_size(batch_size: int, mesh: Mesh, field: str = "config.batch_size") -> None:
    """Raises a one-line ``ValueError`` unless ``batch_size`` splits evenly over the devices."""
    n = mesh.devices.size
    if batch_size <= 0 or batch_size % n:
        raise ValueError(f"{field}={batch_size}: must be divisible by the {n} devices")


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Turns a global host batch (numpy, identical on every process) into arrays split on 'data'.

    Args:
      batch: dict of ``[B, ...]`` numpy arrays; ``B`` must be divisible by the device count.
      mesh: the data mesh.

    Returns:
      The same dict of global ``jax.Array``s sharded along the leading axis.
    """
    sharding = batch_sharding(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree.map(put, batch)


def replicate(tree, mesh: Mesh):
    """Places a pytree of arrays replicated on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def jit_train_step(mesh: Mesh, *, model, tx, schedule=None, threshold_min: float = 1e-3):
    """``train_step(state, batch, loop_key)`` jitted: state replicated and donated, batch split.

    Args:
      mesh: the data mesh.
      model, tx, schedule, threshold_min: bound as static arguments of
        :func:`~jaxsnn.train.steps.train_step`.

    Returns:
      A jitted function ``(state, batch, loop_key) -> (state, metrics)``; ``state`` is donated.
    """
    step = functools.partial(
        train_step, model=model, tx=tx, schedule=schedule, threshold_min=threshold_min
    )
    rep = replicated(mesh)
    return jax.jit(
        step,
        in_shardings=(rep, batch_sharding(mesh), rep),
        out_shardings=(rep, rep),
        donate_argnums=0,
    )


def jit_eval_step(mesh: Mesh, *, model):
    """``eval_step`` jitted; returns replicated metric sums."""
    step = functools.partial(eval_step, model=model)
    rep = replicated(mesh)
    return jax.jit(step, in_shardings=(rep, batch_sharding(mesh)), out_shardings=rep)
