"""Pure training and evaluation steps over :class:`~jaxsnn.train.state.TrainState`.

Both are plain functions of pytrees; :mod:`jaxsnn.train.sharding` jits them with shardings.
BatchNorm statistics are computed over the global batch under ``jit`` (no ``pmean``).

Label smoothing and mixup (:class:`SoftTargets`, the event-data recipe of the Adaptive
Calibration code, which uses timm's ``Mixup``) act inside the jitted step on the global batch,
with a key folded from the run's key and the global step: like the data, they are a pure
function of (seed, epoch, step), so a resumed run stays bit-identical. Without them the step is
the plain integer-label cross-entropy step.
"""

import dataclasses

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


@dataclasses.dataclass(frozen=True)
class SoftTargets:
    r"""Label smoothing and mixup of the training loss (timm's ``Mixup``, ``mode='batch'``).

    With probability ``mixup_prob`` a step draws :math:`\lambda \sim \mathrm{Beta}(\alpha,
    \alpha)` (otherwise :math:`\lambda = 1`) and trains on :math:`\lambda x + (1 - \lambda)
    x'` against :math:`\lambda y + (1 - \lambda) y'`, where :math:`x', y'` are the batch in
    reverse order and :math:`y = (1 - \epsilon)\,\mathrm{onehot} + \epsilon / K` the smoothed
    labels (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018; Szegedy et al.,
    "Rethinking the Inception Architecture", CVPR 2016).

    Attributes:
      num_classes: K.
      label_smoothing: ε in [0, 1).
      mixup_alpha: α (0: no mixup).
      mixup_prob: probability that a step mixes.
      mixup_stop_step: global step from which mixup is off (None: never off); the Adaptive
        Calibration code turns it off for the last quarter of the epochs.
    """

    num_classes: int
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    mixup_prob: float = 1.0
    mixup_stop_step: int | None = None

    def apply(
        self, images: jax.Array, labels: jax.Array, *, key: jax.Array, step: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Mixed images and soft targets ``[B, K]`` of one training batch."""
        targets = optax.smooth_labels(
            jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32), self.label_smoothing
        )
        if self.mixup_alpha <= 0:
            return images, targets
        use_key, lam_key = jax.random.split(key)
        use = jax.random.uniform(use_key) < self.mixup_prob
        if self.mixup_stop_step is not None:
            use = use & (step < self.mixup_stop_step)
        lam = jnp.where(use, jax.random.beta(lam_key, self.mixup_alpha, self.mixup_alpha), 1.0)
        mixed = lam.astype(images.dtype) * images + (1 - lam).astype(images.dtype) * images[::-1]
        return mixed, lam * targets + (1 - lam) * targets[::-1]


_MIXUP_STREAM = 1  # fold_in(step key, 1): mixup's numbers, apart from the dropout stream.


def train_step(
    state: TrainState,
    batch: dict,
    loop_key: jax.Array | None = None,
    *,
    model,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule | None = None,
    threshold_min: float = 1e-3,
    targets: SoftTargets | None = None,
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
      targets: label smoothing and mixup (None: integer labels, plain cross-entropy); mixup
        needs ``loop_key``.

    Returns:
      The new state and scalar metrics ``loss``, ``accuracy``, ``grad_norm``, ``finite`` (loss
      and gradient norm are finite) and, with ``schedule``, ``learning_rate``.
    """
    step_key = None if loop_key is None else jax.random.fold_in(loop_key, state.step)
    rngs = {} if step_key is None else {"dropout": step_key}
    images, soft = batch["image"], None
    if targets is not None:
        if targets.mixup_alpha > 0 and step_key is None:
            raise ValueError("mixup needs the run's loop_key")
        key = step_key if step_key is None else jax.random.fold_in(step_key, _MIXUP_STREAM)
        images, soft = targets.apply(images, batch["label"], key=key, step=state.step)

    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        logits, updates = model.apply(
            variables, images, train=True, mutable=["batch_stats"], rngs=rngs
        )
        if soft is None:
            loss = jnp.mean(cross_entropy(logits, batch["label"]))
        else:
            loss = jnp.mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), soft))
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
