"""Training state pytree and the optimiser built from a config.

The optimiser follows the released QCFS/SRP PyTorch recipe (docs/methods.md, "Architectures and
training recipes"): ``SGD(momentum=0.9, weight_decay=wd)`` adds ``wd·p`` to the gradient of
*every* parameter (λ and BatchNorm included) and then applies heavy-ball momentum without
dampening, which is
``optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=0.9))``. The cosine schedule
is stepped once per epoch as ``CosineAnnealingLR(T_max=epochs)``, so the learning rate is
constant within an epoch.

The event-data recipe of the Adaptive Calibration code (timm's ``create_optimizer`` and
``create_scheduler``; docs/methods.md, "Architectures and training recipes") is
``config.optimizer = 'adamw'``: decoupled weight decay on the weights of convs and dense layers
only (timm leaves biases, BatchNorm and every other parameter of at most one dimension
undecayed), with a per-epoch cosine down to ``config.min_learning_rate`` and an optional linear
warm-up from ``config.warmup_learning_rate``.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from jaxsnn.models import init_variables


@struct.dataclass
class TrainState:
    """Everything that changes during training; a pytree that Orbax saves as is.

    Attributes:
      params: model parameters (λ of each activation included, as ``.../threshold``).
      batch_stats: BatchNorm running statistics.
      opt_state: optax state (holds the step count the schedule reads).
      step: number of optimiser updates done so far (int32 scalar).
    """

    params: dict
    batch_stats: dict
    opt_state: optax.OptState
    step: jax.Array


def create_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    r"""Builds the learning-rate schedule named by ``config.schedule``.

    ``'cosine'``: per-epoch cosine, :math:`\eta_e = \eta_0 (1 + \cos(\pi e / E)) / 2` with
    ``e = step // steps_per_epoch`` (PyTorch ``CosineAnnealingLR`` stepped per epoch); with
    ``config.min_learning_rate`` :math:`\eta_{min} > 0` it is
    :math:`\eta_{min} + (\eta_0 - \eta_{min})(1 + \cos(\pi e / E)) / 2` (timm's cosine).
    ``'cosine_step'``: the same curve evaluated at every step. ``'constant'``: ``η₀``.
    ``config.warmup_epochs > 0`` prepends a linear per-step warm-up from
    ``config.warmup_learning_rate`` (default 0).
    """
    lr0, epochs = float(config.learning_rate), int(config.num_epochs)
    lr_min = float(config.get("min_learning_rate", 0.0) or 0.0)
    total = epochs * steps_per_epoch
    warmup = int(config.get("warmup_epochs", 0)) * steps_per_epoch
    if config.schedule == "cosine":

        def main(count):
            epoch = (count + warmup) // steps_per_epoch
            cosine = 1.0 + jnp.cos(math.pi * epoch.astype(jnp.float32) / epochs)
            if lr_min == 0.0:  # The historical expression: image configs stay bit-identical.
                return lr0 * 0.5 * cosine
            return lr_min + (lr0 - lr_min) * 0.5 * cosine

    elif config.schedule == "cosine_step":
        main = optax.cosine_decay_schedule(lr0, decay_steps=max(total - warmup, 1))
    elif config.schedule == "constant":
        main = optax.constant_schedule(lr0)
    else:
        raise ValueError(
            f"config.schedule: unknown {config.schedule!r}; use 'cosine', 'cosine_step', 'constant'"
        )
    if warmup == 0:
        return main
    start = float(config.get("warmup_learning_rate", 0.0) or 0.0)
    ramp = optax.linear_schedule(start, lr0, warmup)
    return optax.join_schedules([ramp, main], [warmup])


def decay_mask(params) -> dict:
    """True for the leaves AdamW decays: kernels (more than one dimension), as timm does."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def _standard_promotion(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` with its update traced under standard dtype promotion: optax's Adam bias
    correction mixes its int32 step count with floats, which strict promotion (the tests')
    refuses."""

    def update(updates, state, params=None):
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(tx.init, update)


def create_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """Builds the optax transformation: L2 on all params, then SGD-momentum or Adam; or AdamW.

    ``'adamw'``: ``optax.adamw`` (β = 0.9, 0.999, ε = 1e-8, as PyTorch and timm) with decoupled
    weight decay ``config.weight_decay`` on the kernels only (:func:`decay_mask`).
    """
    schedule = create_schedule(config, steps_per_epoch)
    wd = float(config.weight_decay)
    decay = optax.add_decayed_weights(wd)
    if config.optimizer == "sgd":
        return optax.chain(decay, optax.sgd(schedule, momentum=float(config.momentum)))
    if config.optimizer == "adam":
        return optax.chain(decay, optax.adam(schedule))
    if config.optimizer == "adamw":
        return _standard_promotion(optax.adamw(schedule, weight_decay=wd, mask=decay_mask))
    raise ValueError(
        f"config.optimizer: unknown {config.optimizer!r}; use 'sgd', 'adam' or 'adamw'"
    )


def create_train_state(
    model, tx: optax.GradientTransformation, input_shape, *, key: jax.Array
) -> TrainState:
    """Initialises parameters, BatchNorm statistics and the optimiser state.

    Args:
      model: a Linen model from :func:`jaxsnn.models.get_model`.
      tx: the optimiser.
      input_shape: ``(B, H, W, C)`` of a dummy input used for shape inference.
      key: the init key (the training loop's ``init_key``, split from the root seed key).

    Returns:
      A fresh TrainState at step 0.
    """
    variables = init_variables(model, key, input_shape)
    params = variables["params"]
    return TrainState(
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        step=jnp.zeros((), jnp.int32),
    )


def make_init_fn(model, tx, input_shape, *, key: jax.Array) -> Callable[[], TrainState]:
    """Returns a zero-argument init function (for ``jax.eval_shape`` and fresh starts)."""
    return lambda: create_train_state(model, tx, input_shape, key=key)
