"""Pure training and evaluation steps over :class:`~jaxsnn.train.state.TrainState`.

Both are plain functions of pytrees; :mod:`jaxsnn.train.sharding` jits them with shardings.
BatchNorm statistics are computed over the global batch under ``jit`` (no ``pmean``).
"""

import jax
import jax.numpy as jnp
import optax

from jaxsnn.metrics import correct
from jaxsnn.train.state import TrainState


def project_thresholds(params: dict, minimum: float) -> dict:
    """Clamps every ``.../threshold`` leaf (λ) to ``>= minimum``; other leaves pass through.

    Weight decay and large steps can push λ through zero, which would flip the sign of the
    quantiser and make the converted SNN threshold meaningless; the projection keeps λ > 0.
    """

    def clamp(path, leaf: jax.Array) -> jax.Array:
        if getattr(path[-1], "key", None) == "threshold":
            return jnp.maximum(leaf, jnp.asarray(minimum, leaf.dtype))
        return leaf

    return jax.tree_util.tree_map_with_path(clamp, params)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy with integer labels (no label smoothing, as QCFS/SRP)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def train_step(
    state: TrainState,
    batch: dict,
    loop_key: jax.Array | None = None,
    *,
    model,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule | None = None,
    threshold_min: float = 1e-3,
) -> tuple[TrainState, dict]:
    """One optimiser update on a batch.

    Args:
      state: current state.
      batch: ``{'image': [B,H,W,C] float, 'label': [B] int}``.
      loop_key: run-level key; the step's key is ``fold_in(loop_key, state.step)`` (feeds the
        ``'dropout'`` rng stream, so a resumed run draws the same numbers).
      model: the Linen model (static).
      tx: the optimiser (static).
      schedule: the learning-rate schedule, only to report ``learning_rate``.
      threshold_min: lower bound applied to every λ after the update.

    Returns:
      The new state and scalar metrics ``loss``, ``accuracy``, ``grad_norm``, ``finite`` (loss
      and gradient norm are finite) and, with ``schedule``, ``learning_rate``.
    """
    rngs = {} if loop_key is None else {"dropout": jax.random.fold_in(loop_key, state.step)}

    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        logits, updates = model.apply(
            variables, batch["image"], train=True, mutable=["batch_stats"], rngs=rngs
        )
        loss = jnp.mean(cross_entropy(logits, batch["label"]))
        return loss, (logits, updates["batch_stats"])

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (logits, batch_stats)), grads = grad_fn(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = project_thresholds(optax.apply_updates(state.params, updates), threshold_min)
    grad_norm = optax.tree.norm(grads)
    metrics = {
        "loss": loss,
        "accuracy": correct(logits, batch["label"]).astype(jnp.float32) / logits.shape[0],
        "grad_norm": grad_norm,
        "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm),
    }
    if schedule is not None:
        metrics["learning_rate"] = jnp.asarray(schedule(state.step), jnp.float32)
    new_state = TrainState(
        params=params, batch_stats=batch_stats, opt_state=opt_state, step=state.step + 1
    )
    return new_state, metrics


def eval_step(state: TrainState, batch: dict, *, model) -> dict:
    """Masked sums over one (possibly padded) evaluation batch.

    Args:
      state: the state to evaluate (running BatchNorm statistics are used).
      batch: ``{'image', 'label', 'mask'}``; ``mask`` is False on padding rows.
      model: the Linen model (static).

    Returns:
      ``{'ncorrect', 'nseen'}`` (int32) and ``'loss_sum'`` (float32); divide once at the end.
    """
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits = model.apply(variables, batch["image"], train=False)
    mask = batch["mask"].astype(bool)
    losses = cross_entropy(logits, batch["label"])
    return {
        "ncorrect": correct(logits, batch["label"], mask),
        "nseen": jnp.sum(mask, dtype=jnp.int32),
        "loss_sum": jnp.sum(jnp.where(mask, losses, jnp.zeros_like(losses))),
    }
