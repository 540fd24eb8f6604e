"""Loading the ANN to convert: this project's Orbax checkpoint, or a PyTorch ``.pth``.

Only the model variables (``params``, ``batch_stats``) are restored (a partial Orbax restore), so
conversion does not depend on the optimizer a model was trained with. A corrupted best/latest
checkpoint falls back to the newest readable one; a checkpoint of another architecture or input
is an error naming the config fields that differ.
"""

import hashlib
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from etils import epath

from jaxsnn import data, models
from jaxsnn.train import checkpoint as ckpt_lib


def checkpoint_request(cc) -> str | int:
    """``config.convert.checkpoint`` as ``'best'``, ``'latest'`` or a step number."""
    which = cc.get("checkpoint", "best")
    if isinstance(which, str) and which.isdigit():
        return int(which)
    if which in ("best", "latest") or (
        isinstance(which, int) and not isinstance(which, bool) and which >= 0
    ):
        return which
    raise ValueError(
        f"config.convert.checkpoint: must be 'best', 'latest' or a step number, got {which!r}"
    )


def content_hash(path) -> str:
    """SHA-256 over the files under ``path`` (relative names and bytes, sorted): a fingerprint."""
    root = pathlib.Path(path)
    digest = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(root) if f != root else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def model_target(model, input_shape) -> dict:
    """The abstract ``{'params', 'batch_stats'}`` of ``model`` for inputs of ``input_shape``.

    Leaves are placed on this process's first device (Orbax needs a concrete sharding); the
    caller replicates them over the mesh.
    """
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32))
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
        {k: shapes.get(k, {}) for k in ("params", "batch_stats")},
    )


def load_ann(config: ml_collections.ConfigDict, workdir, input_shape):
    """Returns ``(ann_model, variables, source)`` from a ``.pth`` or ``workdir``'s checkpoint.

    ``config.convert.checkpoint`` picks the step (``'best'``, ``'latest'`` or a number).
    ``source`` describes where the weights came from: kind, path, step, a content hash, and
    ``skipped_unreadable`` steps when a corrupted checkpoint was passed over.
    """
    cc = config.convert
    info = data.get_dataset_info(config)
    if cc.get("torch_checkpoint"):
        from jaxsnn.convert.torch_import import import_torch_checkpoint

        try:
            model, variables = import_torch_checkpoint(
                cc.torch_checkpoint,
                cc.torch_architecture,
                num_classes=info.num_classes,
                levels=config.levels,
                input_size=tuple(input_shape[1:3]),
            )
        except (FileNotFoundError, ValueError) as err:
            raise type(err)(f"config.convert.torch_checkpoint: {err}") from None
        path = str(cc.torch_checkpoint)
        return model, variables, {"kind": "pytorch", "path": path, "sha256": content_hash(path)}
    model = models.build_model(config, config.get("num_classes") or info.num_classes)
    ckpt_dir = epath.Path(workdir) / "checkpoints"
    if not ckpt_dir.exists():
        raise FileNotFoundError(
            f"no ANN checkpoint in {ckpt_dir}: run train.py with the same "
            "--workdir first (or set config.convert.torch_checkpoint)"
        )
    mngr = ckpt_lib.make_manager(
        workdir, keep=max(config.get("keep_checkpoints", 3), 1), enable_async=False
    )
    try:
        steps = sorted(mngr.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no ANN checkpoint in {ckpt_dir}: run train.py first")
        which = checkpoint_request(cc)
        if which == "best":
            step = mngr.best_step()
        elif which == "latest":
            step = mngr.latest_step()
        elif which not in steps:
            raise FileNotFoundError(
                f"config.convert.checkpoint={which}: no such step in {ckpt_dir} (steps: "
                f"{sorted(steps)})"
            )
        else:
            step = which
        step = steps[0] if step is None else step
        variables, used, unreadable = _restore(
            config, mngr, step, model_target(model, input_shape), which in ("best", "latest")
        )
    finally:
        mngr.close()
    path = ckpt_dir / str(used)
    source = {"kind": "jaxsnn", "path": str(path), "step": int(used)}
    source["sha256"] = content_hash(path / "state")
    if unreadable:
        source["skipped_unreadable"] = unreadable
    return model, variables, source


def _restore(config, mngr, step: int, target, fallback: bool):
    """Restores checkpoint ``step``, or (``fallback``) the newest readable one if it is corrupted.

    Returns:
      ``(variables, step_used, unreadable_steps)``.
    """
    directory = epath.Path(mngr.directory)
    others = [s for s in sorted(mngr.all_steps(), reverse=True) if s != step]

    def refuse(candidate, mismatch):
        return ValueError(
            f"checkpoint {directory / str(candidate)} does not fit config.model="
            f"{config.model!r} on config.dataset={config.dataset!r}: {mismatch}"
        )

    state, used, failed = ckpt_lib.restore_first_readable(
        mngr, [step] + (others if fallback else []), target, refuse, config, model_only=True
    )
    if state is not None:
        if failed:
            logging.warning(
                "checkpoint %s is unreadable (%s); converting step %d instead",
                directory / str(step), ckpt_lib.first_line(failed[0][1]), used,
            )  # fmt: skip
        return dict(state), used, [s for s, _ in failed]
    hint = (
        "no other checkpoint there is readable either"
        if fallback
        else f"choose another with config.convert.checkpoint (steps: {sorted(mngr.all_steps())})"
    )
    raise ValueError(
        f"checkpoint {directory / str(step)} is unreadable (corrupted?): "
        f"{ckpt_lib.first_line(failed[0][1])}; {hint}"
    )
