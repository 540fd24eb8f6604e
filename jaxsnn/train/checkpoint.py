"""The one Orbax wrapper: save and restore the train state with its config.

Layout: ``<workdir>/checkpoints/<step>/{state, config, metrics}``. ``state`` is the
:class:`~jaxsnn.train.state.TrainState` pytree, ``config`` the training ConfigDict as JSON (so
``convert.py`` can rebuild the model from the checkpoint alone), and ``metrics`` the evaluation
numbers of epoch-end checkpoints. Retention keeps the latest ``keep`` steps *and* the one with the
best test accuracy. A checkpoint that fails to restore (truncated or corrupted files) is moved to
``<workdir>/corrupt_checkpoints/`` with a warning and the next older one is used. Before restoring,
:func:`describe_mismatch` compares the stored shapes (metadata only) with the config's state: a
checkpoint of another architecture, input shape or optimizer is an error naming the config fields,
never mistaken for a corrupted one, and nothing is moved.
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
    directory = epath.Path(workdir).absolute() / "checkpoints"
    try:
        return ocp.CheckpointManager(directory, options=options)
    except Exception as err:  # Orbax reads every step's metrics and metadata files here.
        raise ValueError(
            f"the checkpoints in {directory} are unreadable (corrupted metrics or metadata "
            f"files? {first_line(err)}); move the folder aside or use a new --workdir"
        ) from err


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


def first_line(err: Exception) -> str:
    """``'Type: first line of the message'`` (at most 200 characters of it), for one-line errors."""
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


# Fields that decide the shapes of the stored model variables (the architecture and its input).
FIT_FIELDS = (
    "model",
    "model_kwargs",
    "activation",
    "num_classes",
    "dataset",
    "image_size",
    "idx_dir",
    "local_dir",
)
_MODEL_PARTS = ("params/", "batch_stats/")


def _plain(value):
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def _key(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _shapes(tree) -> dict[str, tuple]:
    """``{'params/conv1/conv/kernel': shape, 'opt_state/1/0/trace/…': shape, …}``."""
    return {
        "/".join(_key(k) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
        if hasattr(leaf, "shape")
    }


def _stored_shapes(mngr: ocp.CheckpointManager, step: int) -> dict[str, tuple] | None:
    """The shapes of the train state stored at ``step`` (None: its metadata is unreadable)."""
    try:
        meta = ocp.StandardCheckpointHandler().metadata(
            epath.Path(mngr.directory) / str(step) / "state"
        )
        return _shapes(getattr(meta, "tree", meta))
    except Exception:  # Truncated or corrupted metadata: nothing to compare.
        return None


def _shape_difference(stored: dict, wanted: dict) -> str | None:
    only_stored = sorted(set(stored) - set(wanted))
    only_wanted = sorted(set(wanted) - set(stored))
    if only_stored or only_wanted:
        return (
            f"variables only in the checkpoint: {only_stored[:3]}"
            f"{' ...' if len(only_stored) > 3 else ''}, only in this config's state: "
            f"{only_wanted[:3]}{' ...' if len(only_wanted) > 3 else ''}"
        )
    for path in sorted(stored):
        if stored[path] != wanted[path]:
            return (
                f"'{path}' is {stored[path]} in the checkpoint but {wanted[path]} for this config"
            )
    return None


def describe_mismatch(
    mngr: ocp.CheckpointManager,
    step: int,
    target,
    config: ml_collections.ConfigDict | None = None,
    *,
    model_only: bool = False,
) -> str | None:
    """Says how checkpoint ``step`` was saved for another model, input or optimizer than ``target``.

    Compares the stored shapes (Orbax metadata, cheap: no array is read) with the abstract
    ``target`` state, model variables first. Returns ``None`` when they agree or the metadata
    cannot be read (then a failed restore means a corrupted checkpoint). Otherwise returns one
    line naming the first differing variable and, from the config stored beside the checkpoint,
    the :data:`FIT_FIELDS` that differ from ``config`` (without ``config``: the stored model and
    dataset). ``model_only``: ``target`` holds only ``params`` and ``batch_stats``; the rest of
    the stored state (optimizer, step) is not compared.
    """
    stored = _stored_shapes(mngr, step)
    if stored is None:
        return None
    wanted = _shapes(target)
    model_part = {k: v for k, v in stored.items() if k.startswith(_MODEL_PARTS)}
    difference = _shape_difference(
        model_part, {k: v for k, v in wanted.items() if k.startswith(_MODEL_PARTS)}
    )
    if difference is None:
        if model_only:
            return None
        difference = _shape_difference(stored, wanted)
        if difference is None:
            return None
        return f"the optimizer state differs (config.optimizer?): {difference}"
    try:
        saved = restore_config(mngr, step)
    except Exception:  # The stored config is optional evidence only.
        return difference
    if config is None:
        fields = [f"config.{f}={_plain(saved.get(f))!r}" for f in ("model", "dataset")]
        return f"{difference}; the checkpoint was trained with {', '.join(fields)}"
    fields = [
        f"config.{f}={_plain(config.get(f))!r} (checkpoint: {_plain(saved.get(f))!r})"
        for f in FIT_FIELDS
        if _plain(config.get(f)) != _plain(saved.get(f))
    ]
    return f"{difference}; differing fields: {', '.join(fields)}" if fields else difference


def restore_or_init(
    mngr: ocp.CheckpointManager, init_fn: Callable[[], object], shardings=None
) -> tuple[object, int | None]:
    """Restores the newest readable checkpoint, or initialises a fresh state.

    Checkpoints newer than the one restored that fail to read (truncated or corrupted files)
    are reported with a warning and moved to ``<workdir>/corrupt_checkpoints/``. A checkpoint
    whose stored shapes do not fit ``init_fn``'s state (another model, input shape or optimizer:
    :func:`describe_mismatch`) is an error, and so is a directory where none can be read; in both
    cases nothing is moved.

    Args:
      mngr: the manager from :func:`make_manager`.
      init_fn: zero-argument function building a fresh state; it is only traced
        (``jax.eval_shape``) when a checkpoint exists.
      shardings: a sharding, or a pytree of them matching the state (default: single device).

    Returns:
      ``(state, step)`` with ``step`` the restored step, or ``None`` for a fresh state.

    Raises:
      ValueError: a checkpoint does not fit ``init_fn``'s state, or none can be read.
    """
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        return jax.jit(init_fn, out_shardings=shardings)(), None
    target = _abstract_target(init_fn, shardings)

    def refuse(step, mismatch):
        return ValueError(
            f"config: no checkpoint in {mngr.directory} matches this config (step {step}: "
            f"{mismatch}); use a new --workdir"
        )

    state, step, failed = restore_first_readable(mngr, steps, target, refuse)
    if state is not None:
        for bad, err in failed:
            logging.warning(
                "checkpoint step %d is unreadable (%s); moved aside, resuming from step %d",
                bad, first_line(err), step,
            )  # fmt: skip
            _quarantine(mngr, bad)
        return state, step
    raise ValueError(
        f"checkpoint {epath.Path(mngr.directory) / str(steps[0])} is unreadable (corrupted?) and "
        f"so is every older one ({first_line(failed[0][1])}); move {mngr.directory} aside or use "
        "a new --workdir"
    )


def restore_first_readable(mngr, steps, target, refuse, config=None, *, model_only=False):
    """Restores the first of ``steps`` that can be read into ``target``.

    Each step's stored shapes are compared with ``target`` first (metadata only: a restore into
    other shapes fails slowly and noisily); a mismatch raises ``refuse(step, description)``.
    A step that then fails to restore counts as unreadable (corrupted) and the next one is tried.

    Args:
      mngr, steps: the manager and the candidate steps, in order of preference.
      target: an abstract train state, or with ``model_only`` a ``{'params', 'batch_stats'}``
        tree (a partial restore: the optimizer state is never read, so a model trained with any
        optimizer can be restored).
      refuse: ``(step, description) -> Exception`` for a checkpoint of another model.
      config: the config whose differing fields a refusal names.
      model_only: restore only the model variables.

    Returns:
      ``(state, step, failed)``: the restored state and its step (``None, None`` when none could
      be read) and the ``(step, error)`` pairs of the unreadable ones before it.
    """
    if model_only:
        restore_args = ocp.checkpoint_utils.construct_restore_args(target)
        item = ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
    else:
        item = ocp.args.StandardRestore(target)
    args = ocp.args.Composite(state=item)
    failed: list[tuple[int, Exception]] = []
    for step in steps:
        mismatch = describe_mismatch(mngr, step, target, config, model_only=model_only)
        if mismatch is not None:
            raise refuse(step, mismatch)
        try:
            restored = mngr.restore(step, args=args)
        except Exception as err:  # Any failure to read makes this checkpoint unusable.
            failed.append((step, err))
            continue
        return restored["state"], step, failed
    return None, None, failed


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
