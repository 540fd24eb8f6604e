r"""Threshold determination from ANN activations on training batches (docs/methods.md,
"Thresholds").

Modes (per batch, then an EMA over batches, momentum 0.9, first batch initialises):

- ``'max'``: θ = max(a) (CAL's "none" calibration; also our choice for BURST's 'none' mode, where
  the released code crashes).
- ``'percentile'``: θ = the p-th percentile of a (linear interpolation, like ``torch.quantile``).
- ``'mse'``: grid search over :math:`V_i = \max(a)\,(1 - 0.01\,i)`, ``i = 0..94``, minimising the
  error of the quantised surrogate

  .. math:: Q(x; V) = \frac{V}{T}\left\lfloor T\,\mathrm{clip}\!\left(\frac{x}{V}, 0, M\right)
            \right\rfloor

  (no +½, as in the reference code). All 95 candidates are scored by one ``lax.map``.

Channel-wise (4-D activations with ``channel_wise=True``): per-channel max, per-channel **sum** of
squared error, result ``[C]``. Layer-wise (2-D activations such as Dense outputs, or
``channel_wise=False``): global max, **mean** squared error, scalar result. Ties keep the larger V
(``argmin`` returns the first minimum, which is the strict-improvement scan downwards).

Deviations from the released code (docs/methods.md, "Deviations from the released code"):

- the layer-wise search starts from ``best = 1e5``, ``V = 0`` and keeps V = 0 when every MSE is
  ≥ 1e5; here the best candidate is always taken;
- **never-active channels** (ANN max 0, so θ = 0 and ``u = x/θ`` is NaN in the released code):
  after the EMA, any θ that is not finite and > 0 is replaced by the largest valid θ of the same
  layer; a layer without any valid θ (entirely dead on the calibration data) gets
  :data:`DEAD_LAYER_THRESHOLD`.
  A small θ is the right choice there: a burst neuron emits at most M·θ per step, so the dead
  layer's SNN output stays ≈ 0, like the ANN's.
"""

import functools
from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn.models import ann_activations

NUM_CANDIDATES = 95
DEAD_LAYER_THRESHOLD = 1e-3
MODES = ("max", "percentile", "mse")


def surrogate(x: jax.Array, v: jax.Array, num_steps: int, max_spikes) -> jax.Array:
    r"""Surrogate :math:`(V/T)\lfloor T\,\mathrm{clip}(x/V, 0, M)\rfloor`; 0 where V ≤ 0."""
    ok = v > 0
    safe_v = jnp.where(ok, v, jnp.ones_like(v))
    steps = jnp.asarray(num_steps, x.dtype)
    cap = jnp.asarray(max_spikes, x.dtype)
    # A true division: XLA rewrites x / broadcast(V) as x·(1/V), which can make x/V = 1 − 2⁻²⁴
    # at x = V and so drop the zero-error candidate V = max. The barrier keeps the division.
    full_v = jax.lax.optimization_barrier(
        jnp.broadcast_to(safe_v, jnp.broadcast_shapes(x.shape, safe_v.shape))
    )
    q = safe_v / steps * jnp.floor(steps * jnp.clip(x / full_v, 0, cap))
    return jnp.where(ok, q, jnp.zeros_like(q))


def mse_candidates(max_value: jax.Array) -> jax.Array:
    """The grid ``max·(1 − 0.01 i)``, ``i = 0..94``: shape ``[95, *max_value.shape]``."""
    i = jnp.arange(NUM_CANDIDATES, dtype=max_value.dtype)
    frac = 1 - i * jnp.asarray(0.01, max_value.dtype)
    return frac.reshape((-1,) + (1,) * max_value.ndim) * max_value[None]


@functools.partial(jax.jit, static_argnames=("num_steps", "reduce"))
def _mse_search(x2d: jax.Array, max_spikes, *, num_steps: int, reduce: str) -> jax.Array:
    """Best V per column of ``x2d [N, C]`` (``reduce``: 'sum' per column or 'mean')."""
    candidates = mse_candidates(jnp.max(x2d, axis=0))

    def score(v):
        err = jnp.square(surrogate(x2d, v[None, :], num_steps, max_spikes) - x2d)
        return jnp.sum(err, axis=0) if reduce == "sum" else jnp.mean(err, axis=0)

    errors = jax.lax.map(score, candidates)  # [95, C]
    best = jnp.argmin(errors, axis=0)
    return jnp.take_along_axis(candidates, best[None, :], axis=0)[0]


def batch_threshold(
    acts: jax.Array,
    *,
    mode: str,
    num_steps: int,
    max_spikes=1,
    channel_wise: bool = True,
    percentile: float = 99.99,
) -> jax.Array:
    """θ of one layer from one batch of its ANN outputs: ``[C]`` (channel-wise) or a scalar."""
    per_channel = channel_wise and acts.ndim == 4
    x2d = acts.reshape((-1, acts.shape[-1])) if per_channel else acts.reshape((-1, 1))
    if mode == "max":
        theta = jnp.max(x2d, axis=0)
    elif mode == "percentile":
        theta = jnp.percentile(x2d, jnp.asarray(percentile, x2d.dtype), axis=0)
    elif mode == "mse":
        theta = _mse_search(
            x2d, max_spikes, num_steps=num_steps, reduce="sum" if per_channel else "mean"
        )
    else:
        raise ValueError(f"threshold mode must be one of {MODES}, got {mode!r}")
    return theta if per_channel else theta[0]


def safe_threshold(theta) -> np.ndarray:
    """Replaces non-finite or non-positive entries (dead channels) by the layer's largest valid θ,
    or by :data:`DEAD_LAYER_THRESHOLD` when the whole layer is dead."""
    theta = np.asarray(theta, np.float32)
    valid = np.isfinite(theta) & (theta > 0)
    fallback = np.max(theta[valid]) if np.any(valid) else np.float32(DEAD_LAYER_THRESHOLD)
    return np.where(valid, theta, fallback).astype(np.float32)


def determine_thresholds(
    ann_model: nn.Module,
    variables: Mapping,
    batches: Iterable,
    *,
    num_steps: int,
    layers: Iterable[str] | None = None,
    mode: str = "mse",
    max_spikes: int | Mapping[str, int] = 1,
    channel_wise: bool = True,
    percentile: float = 99.99,
    num_batches: int = 7,
    momentum: float = 0.9,
) -> dict[str, np.ndarray]:
    """Converts ANN activations on training batches into ``{layer_path: θ}`` (scalar or ``[C]``).

    Args:
      ann_model, variables: the reference ANN (eval mode; BN folded or not, same outputs).
      batches: images ``[B, H, W, C]`` or dicts with ``'image'``; at most ``num_batches`` are used.
      num_steps: T of the surrogate (``'mse'`` mode).
      layers: restrict to these activation layers (default: all).
      mode: ``'max'``, ``'percentile'`` or ``'mse'``.
      max_spikes: the cap M of the surrogate, global or ``{layer: M}``.
      channel_wise: per-channel θ for 4-D activations (Dense layers are always layer-wise).
      percentile: p for ``'percentile'`` mode (0..100).
      num_batches: EMA length (the reference loop processes 7 batches).
      momentum: EMA momentum: θ ← m·θ + (1 − m)·θ_batch.
    """
    if mode not in MODES:
        raise ValueError(f"threshold mode must be one of {MODES}, got {mode!r}")
    ema: dict[str, jax.Array] = {}
    for i, batch in enumerate(batches):
        if i >= num_batches:
            break
        images = batch["image"] if isinstance(batch, Mapping) else batch
        _, acts = ann_activations(ann_model, variables, jnp.asarray(images))
        for layer in layers if layers is not None else acts:
            cap = max_spikes if isinstance(max_spikes, int) else max_spikes[layer]
            theta = batch_threshold(
                acts[layer],
                mode=mode,
                num_steps=num_steps,
                max_spikes=cap,
                channel_wise=channel_wise,
                percentile=percentile,
            )
            old = ema.get(layer)
            ema[layer] = theta if old is None else momentum * old + (1 - momentum) * theta
    if not ema:
        raise ValueError("determine_thresholds: no calibration batches")
    return {layer: safe_threshold(theta) for layer, theta in ema.items()}
