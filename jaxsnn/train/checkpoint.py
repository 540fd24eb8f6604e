"""The one Orbax wrapper: save and restore the train state with its config (STYLE item 11).

Layout: ``<workdir>/checkpoints/<step>/{state, config, metrics}``. ``state`` is the
:class:`~jaxsnn.train.state.TrainState` pytree, ``config`` the training ConfigDict as JSON (so
``convert.py`` can rebuild the model from the checkpoint alone), and ``metrics`` the evaluation
numbers of epoch-end checkpoints. Retention keeps the latest ``keep`` steps *and* the one with the
best test accuracy. A checkpoint that fails to restore (truncated or corrupted files) is moved to
``<workdir>/corrupt_checkpoints/`` with a warning and the next older one is used.
"""

import shutil
import time
from collections.abc import Callable, Mapping

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

BEST_METRIC = "test_accuracy"
_policies = ocp.checkpoint_managers


def _best_metric(metrics: Mapping) -> float:
    return float(metrics[BEST_METRIC])


def make_manager(workdir, *, keep: int = 3, enable_async: bool = True) -> ocp.CheckpointManager:
    """Creates the checkpoint manager under ``<workdir>/checkpoints``.

    Args:
      workdir: run directory (created if missing).
      keep: number of most recent checkpoints kept (the best one by ``test_accuracy`` is kept too).
      enable_async: write in a background thread (device→host copies still happen in ``save``).

    Returns:
      An ``ocp.CheckpointManager``.
    """
    if keep < 1:
        raise ValueError(f"config.keep_checkpoints={keep}: must be at least 1")
    policy = _policies.AnyPreservationPolicy(
        [
            _policies.LatestN(n=keep),
            _policies.BestN(
                get_metric_fn=_best_metric, n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        # best_fn is what makes the manager write and track per-step metrics; retention itself
        # is decided by the preservation policy above.
        best_fn=_best_metric,
        best_mode="max",
        create=True,
        enable_async_checkpointing=enable_async,
    )
    return ocp.CheckpointManager(epath.Path(workdir).absolute() / "checkpoints", options=options)


def save(
    mngr: ocp.CheckpointManager,
    step: int,
    state,
    config: ml_collections.ConfigDict,
    metrics: Mapping[str, float] | None = None,
) -> None:
    """Saves ``state`` and ``config`` (and ``metrics``, when given) as checkpoint ``step``."""
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        config=ocp.args.JsonSave(config.to_dict()),
    )
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    mngr.save(int(step), args=args, metrics=metrics, force=True)


def _abstract_target(init_fn: Callable[[], object], shardings):
    """``jax.eval_shape(init_fn)`` with ``shardings`` (a sharding or a matching pytree) attached."""
    abstract = jax.eval_shape(init_fn)
    if shardings is None:
        return abstract
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, abstract)
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )


def _quarantine(mngr: ocp.CheckpointManager, step: int) -> None:
    """Moves an unreadable step directory out of the manager's way (process 0 only)."""
    if jax.process_index() == 0:
        src = epath.Path(mngr.directory) / str(step)
        dst = (
            epath.Path(mngr.directory).parent / "corrupt_checkpoints" / f"{step}-{int(time.time())}"
        )
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.move(str(src), str(dst))
    mngr.reload()


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


def restore_or_init(
    mngr: ocp.CheckpointManager, init_fn: Callable[[], object], shardings=None
) -> tuple[object, int | None]:
    """Restores the newest readable checkpoint, or initialises a fresh state.

    Checkpoints newer than the one restored that fail to read (truncated or corrupted files)
    are reported with a warning and moved to ``<workdir>/corrupt_checkpoints/``. If *no*
    checkpoint can be read, the likelier cause is a config that no longer matches them (another
    model, other L...), so nothing is moved and a ``ValueError`` is raised.

    Args:
      mngr: the manager from :func:`make_manager`.
      init_fn: zero-argument function building a fresh state; it is only traced
        (``jax.eval_shape``) when a checkpoint exists.
      shardings: a sharding, or a pytree of them matching the state (default: single device).

    Returns:
      ``(state, step)`` with ``step`` the restored step, or ``None`` for a fresh state.

    Raises:
      ValueError: checkpoints exist but none of them matches ``init_fn``'s state.
    """
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        return jax.jit(init_fn, out_shardings=shardings)(), None
    args = ocp.args.Composite(state=ocp.args.StandardRestore(_abstract_target(init_fn, shardings)))
    failed: list[tuple[int, Exception]] = []
    for step in steps:
        try:
            restored = mngr.restore(step, args=args)
        except Exception as err:  # Any failure to read makes this checkpoint unusable.
            failed.append((step, err))
            continue
        for bad, err in failed:
            logging.warning(
                "checkpoint step %d is unreadable (%s); moved aside, resuming from step %d",
                bad, _first_line(err), step,
            )  # fmt: skip
            _quarantine(mngr, bad)
        return restored["state"], step
    raise ValueError(
        f"config: no checkpoint in {mngr.directory} matches this config (newest step {steps[0]}: "
        f"{_first_line(failed[0][1])}); use a new --workdir"
    )


def restore_config(
    mngr: ocp.CheckpointManager, step: int | None = None
) -> ml_collections.ConfigDict:
    """Reads the training config stored beside checkpoint ``step`` (default: latest)."""
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
    restored = mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored["config"])


def best_step(mngr: ocp.CheckpointManager) -> int | None:
    """The step with the highest test accuracy (latest step if none has metrics)."""
    return mngr.best_step()


def wait_until_finished(mngr: ocp.CheckpointManager) -> None:
    """Blocks until background writes are committed; call before exiting."""
    mngr.wait_until_finished()
