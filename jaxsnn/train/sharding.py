"""Data parallelism with ``jax.jit`` and named shardings (no ``pmap``), on one or several hosts.

One mesh axis, ``'data'``, spans every device of every process. Batches are split along it
(``P('data')``); the train state is replicated (``P()``). Because ``jit`` sees the global batch,
BatchNorm statistics and the gradient are global without any ``pmean``. The same code runs on one
GPU, N GPUs, several hosts, and the two fake CPU devices of the tests.

Several processes (README, "Several hosts"): :func:`maybe_initialize_distributed` starts
``jax.distributed`` from flags or from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` (JAX itself reads only the first), or lets JAX detect SLURM / Open MPI /
Cloud TPU when ``config.distributed`` is true. The mesh orders devices process by process, so
process ``p`` of ``P`` holds rows ``[p·B/P, (p+1)·B/P)`` of a global batch of ``B``: exactly the
rows :mod:`jaxsnn.data` builds on that process, which :func:`shard_batch` turns into the global
array without any process touching another's rows.
"""

import functools
import os
import sys

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding

from jaxsnn.train.steps import eval_step, train_step

DATA_AXIS = "data"


ENV_ADDRESS, ENV_COUNT, ENV_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected an integer") from None


def maybe_initialize_distributed(
    config=None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    heartbeat_timeout_s: int | None = None,
) -> bool:
    """Starts multi-process JAX if this process is one of several; returns whether it did.

    Must run before any other JAX call. Each argument left as None is read from the
    environment: ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``. Any of them set, or ``config.distributed`` true, starts
    ``jax.distributed``; what is still missing is then detected by JAX on SLURM, Open MPI and
    Cloud TPU.

    Args:
      config: reads ``distributed`` (True: start even with nothing set, for auto-detection).
      coordinator_address: ``host:port`` of process 0, reachable from every process.
      num_processes: number of processes of the run.
      process_id: this process's index in ``[0, num_processes)``.
      heartbeat_timeout_s: seconds after which a silent process counts as dead and the
        others stop (None: JAX's default, 100).

    Raises:
      ValueError: one line naming the setting that is missing or wrong.
    """
    address = coordinator_address or os.environ.get(ENV_ADDRESS, "").strip() or None
    count = num_processes if num_processes is not None else _env_int(ENV_COUNT)
    index = process_id if process_id is not None else _env_int(ENV_ID)
    wanted = bool(config is not None and config.get("distributed", False))
    if not (wanted or address or count is not None or index is not None):
        return False
    if count is not None and count < 1:
        raise ValueError(f"{ENV_COUNT} / --num_processes={count}: must be at least 1")
    if count is not None and index is not None and not 0 <= index < count:
        raise ValueError(
            f"{ENV_ID} / --process_id={index}: must lie in [0, {count}) for {count} processes"
        )
    kwargs = {}
    if heartbeat_timeout_s is not None:
        kwargs["heartbeat_timeout_seconds"] = int(heartbeat_timeout_s)
    try:
        jax.distributed.initialize(
            coordinator_address=address, num_processes=count, process_id=index, **kwargs
        )
    except ValueError as e:  # JAX found no cluster to fill in what is missing.
        raise ValueError(
            f"cannot start {count or 'several'} JAX processes ({e}); set {ENV_ADDRESS}=host:port "
            f"of process 0, {ENV_COUNT} and {ENV_ID} (or --coordinator_address, --num_processes, "
            "--process_id) on every process, or run under SLURM / Cloud TPU with "
            "config.distributed=True"
        ) from e
    logging.info(
        "JAX process %d of %d (coordinator %s)",
        jax.process_index(),
        jax.process_count(),
        address or "auto-detected",
    )
    return True


# Text (lower case) of the errors raised when another process of the run has died: a collective
# whose peer closed its connection, the coordination service noticing missing heartbeats, or a
# barrier (Orbax's checkpoint commit, for one) that the dead process never reaches.
_PEER_FAILURES = (
    "gloo",
    "connection closed",
    "connection reset",
    "heartbeat",
    "coordination service",
    "barrier",
    "deadline_exceeded",
    "unavailable",
    "timed out",
)


def lost_peer_message(err: BaseException) -> str | None:
    """One line for an error caused by another process of this run dying, else None."""
    if jax.process_count() <= 1:
        return None
    text = f"{type(err).__name__}: {err}"
    if not any(marker in text.lower() for marker in _PEER_FAILURES):
        return None
    first = " ".join(text.split())[:200]
    return (
        f"process {jax.process_index()} of {jax.process_count()}: another process of this run "
        f"stopped or cannot be reached ({first}); restart every process with the same command "
        "to resume from the last checkpoint"
    )


def exit_now(code: int) -> None:
    """Exits at once, skipping JAX's shutdown barrier (which would wait for dead processes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: all devices of all processes).

    The axis is ``Auto`` (GSPMD propagation): the model code stays sharding-agnostic, whereas
    ``Explicit`` axes would ask every batch-contracting matmul for an output sharding. Devices are
    grouped by process (``jax.make_mesh`` may order them into a ring across hosts), so each
    process holds one contiguous block of every batch: the rows it builds itself.
    """
    devices = list(jax.devices() if devices is None else devices)
    mesh = jax.make_mesh((len(devices),), (DATA_AXIS,), (AxisType.Auto,), devices=devices)
    ordered = sorted(mesh.devices.flat, key=lambda d: d.process_index)  # Stable within a host.
    if ordered != list(mesh.devices.flat):
        mesh = Mesh(np.asarray(ordered), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    return mesh


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


def mesh_processes(mesh: Mesh) -> list[int]:
    """The indices of the processes whose devices are in ``mesh``, in mesh order."""
    return list(dict.fromkeys(d.process_index for d in mesh.devices.flat))


@functools.lru_cache(maxsize=16)
def _check_local_rows(sharding: NamedSharding, global_rows: int) -> None:
    """Checks that this process's devices hold exactly its block of ``global_rows`` rows."""
    processes = mesh_processes(sharding.mesh)
    if jax.process_index() not in processes:
        raise ValueError(f"the mesh has no device of process {jax.process_index()}")
    local = global_rows // len(processes)
    first = processes.index(jax.process_index()) * local
    held = set()
    for index in sharding.addressable_devices_indices_map((global_rows,)).values():
        held.update(range(*index[0].indices(global_rows)))
    if held != set(range(first, first + local)):
        raise ValueError(
            f"process {jax.process_index()}'s devices do not hold rows [{first}, {first + local}) "
            "of the batch; build the mesh with sharding.make_mesh (devices grouped by process)"
        )


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Turns this process's rows of a batch into global arrays split on 'data'.

    Args:
      batch: dict of ``[b, ...]`` numpy arrays: rows ``[p·b, (p+1)·b)`` of the global batch,
        ``p`` being this process's position among the mesh's processes (with one process: the
        whole batch). ``b`` must be divisible by this process's device count in ``mesh``.
      mesh: the data mesh (from :func:`make_mesh`).

    Returns:
      The same dict of global ``jax.Array``s of leading size ``b × processes``, sharded along it;
      no data crosses processes.
    """
    sharding = batch_sharding(mesh)
    processes = len(mesh_processes(mesh))

    def put(x):
        x = np.asarray(x)
        global_shape = (x.shape[0] * processes, *x.shape[1:])
        if processes > 1:
            _check_local_rows(sharding, global_shape[0])
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    # An intended copy; on several processes JAX routes it through a path that the
    # transfer guard of train.py would otherwise count as implicit.
    with jax.transfer_guard_host_to_device("allow"):
        return jax.tree.map(put, batch)


def replicate(tree, mesh: Mesh):
    """Places a pytree of arrays (the same on every process) replicated on every device of ``mesh``.

    ``jax.device_put`` only reaches this process's devices; on a multi-process mesh each process
    contributes its own copy through ``jax.make_array_from_process_local_data`` (typed PRNG keys
    travel as their key data).
    """
    sharding = replicated(mesh)
    if all(d.process_index == jax.process_index() for d in mesh.devices.flat):
        return jax.device_put(tree, sharding)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            wrap = functools.partial(jax.random.wrap_key_data, impl=impl)
            return jax.jit(wrap, out_shardings=sharding)(put(jax.random.key_data(x)))
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree.map(put, tree)


def jit_train_step(
    mesh: Mesh, *, model, tx, schedule=None, threshold_min: float = 1e-3, targets=None
):
    """``train_step(state, batch, loop_key)`` jitted: state replicated and donated, batch split.

    Args:
      mesh: the data mesh.
      model, tx, schedule, threshold_min, targets: bound as static arguments of
        :func:`~jaxsnn.train.steps.train_step`.

    Returns:
      A jitted function ``(state, batch, loop_key) -> (state, metrics)``; ``state`` is donated.
    """
    kwargs = {} if targets is None else {"targets": targets}
    step = functools.partial(
        train_step, model=model, tx=tx, schedule=schedule, threshold_min=threshold_min, **kwargs
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
