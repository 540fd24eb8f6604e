r"""Layer-sequential SNN calibration: bias, initial potential and weights (docs/methods.md,
"Calibration"; invariant I-10).

Every pass walks the spiking layers in forward order. For layer l it simulates the **current**
SNN (layers < l already corrected) for T steps, reads the layer's time-averaged output
:math:`S = \theta N(T)/T` from the tracked spike counts, and compares it with the fixed ANN
reference output A (the ANN is never modified):

- :func:`bias_calibration` (CAL "light"): :math:`b \leftarrow b - (\bar S - \bar A)`, means per
  channel over (N, H, W) (over N for Dense layers), applied to the BN-folded conv/dense that feeds
  the activation (:func:`~jaxsnn.models.producer_of`; in a residual block ``act2`` the
  bias of ``conv2``, the shortcut being the residual input);
- :func:`potential_calibration` (CAL "advanced", IC-SNN A2): the initial potential gets
  :math:`T(\bar A - \bar S)` per neuron position (mean over N only) or per channel, **added on
  top of** the potential the measurement used (0 for CAL, whose θ/(2T) per-step shift stays; ½ for
  IC-SNN). Stored in threshold units, :math:`u_0 \mathrel{+}= T(\bar A - \bar S)/\theta`;
- :func:`weight_calibration` (CAL ImageNet "advanced"): per layer, Adam on the producer's kernel
  only, matching the neuron's T-step output on the pre-activation computed from the SNN's
  time-averaged input (+ residual), :math:`(\theta/T)\,\mathrm{clip}(\lfloor Tz/\theta + \tfrac12
  \rfloor, 0, TM)`, to the ANN output. The reference code fits
  :math:`(\theta/T)\lfloor T\,\mathrm{clip}(z/\theta, 0, M)\rfloor` (no ½ although its neuron has
  the θ/(2T) shift): a half-level bias that at T = 1 pushes every kernel up
  (``half_shift=False`` keeps it).
  Iterations, samples, batch and learning rate are parameters (the reference values are 5 000,
  1 024, 32 and 1e-5, cosine to 0). BURST's code imports this function but does not contain it.
"""

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from jaxsnn import progress
from jaxsnn import tree as tree_lib
from jaxsnn.convert import init_membrane
from jaxsnn.methods.common import layer_rates
from jaxsnn.models import producer_of
from jaxsnn.neurons import CAP, THRESHOLD
from jaxsnn.ops import floor_ste
from jaxsnn.simulate import snn_input
from jaxsnn.tree import broadcast_channels, layer_leaves, replace_leaves


def _mode(u0):
    """``u0`` as an :func:`~jaxsnn.convert.init_membrane` mode (a mode string or a dict)."""
    return u0 if isinstance(u0, str) else dict(u0)


def _rate_gap(
    snn_model, params, u0, images, ann_acts, layer, num_steps, *, per_channel, encoding=None
) -> jax.Array:
    r""":math:`\bar A - \bar S` of ``layer`` under the current SNN (one T-step run from ``u0``).

    Means per channel over all axes but the last (``per_channel``), else over the batch axis only
    (one value per neuron position).
    """
    rates = layer_rates(snn_model, params, u0, images, num_steps, encoding)[layer]
    axes = tuple(range(rates.ndim - 1)) if per_channel else (0,)
    return jnp.mean(ann_acts[layer], axis=axes) - jnp.mean(rates, axis=axes)


class Pass(NamedTuple):
    """The fixed inputs of a layer-sequential calibration pass.

    Attributes:
      model: the SNN (spike counts tracked).
      images: the calibration batch.
      ann_acts: the ANN's post-activation outputs on ``images`` (``{layer: array}``).
      layers: the spiking layers to correct, in forward order.
      num_steps: T.
      encoding: the SNN's input encoding (None: direct).
    """

    model: nn.Module
    images: jax.Array
    ann_acts: Mapping
    layers: Sequence[str]
    num_steps: int
    encoding: Any = None

    def gap(self, params: Mapping, u0, layer: str, *, per_channel: bool) -> jax.Array:
        """:math:`\bar A - \bar S` of ``layer`` under the current SNN (see :func:`_rate_gap`)."""
        return _rate_gap(
            self.model,
            params,
            u0,
            self.images,
            self.ann_acts,
            layer,
            self.num_steps,
            per_channel=per_channel,
            encoding=self.encoding,
        )


def bias_calibration(p: Pass, params: Mapping, u0: Mapping) -> dict:
    r"""Converts SNN params into bias-corrected params (sequential, on one batch).

    Per layer: :math:`b \leftarrow b - (\bar S - \bar A) = b + (\bar A - \bar S)`, means per
    channel, on the bias of the layer's producer.
    """
    for layer in p.layers:
        gap = p.gap(params, u0, layer, per_channel=True)
        bias_path = producer_of(layer, params) + "/bias"
        bias = tree_lib.flatten(params)[bias_path]
        params = replace_leaves(params, {bias_path: bias + gap.astype(bias.dtype)})
    return params


def potential_calibration(
    p: Pass, params: Mapping, u0: Mapping, *, per_channel: bool = False
) -> dict[str, jax.Array]:
    r"""Converts initial potentials ``{layer: u0}`` into calibrated ones (threshold units).

    Per layer: :math:`u_0 \mathrel{+}= T(\bar A - \bar S)/\theta`, means over the batch axis
    (or per channel). Returns a new mapping whose calibrated entries have shape ``[H, W, C]``
    (per neuron position) or ``[C]`` (``per_channel``); they broadcast over any batch size.
    """
    u0 = {layer: jnp.asarray(u0[layer], p.images.dtype) for layer in u0}
    thresholds = layer_leaves(params, THRESHOLD)
    for layer in p.layers:
        gap = p.gap(params, u0, layer, per_channel=per_channel)
        theta = broadcast_channels(thresholds[layer], gap.ndim).astype(gap.dtype)
        u0[layer] = u0[layer] + p.num_steps * gap / theta
    return u0


# --------------------------------------------------------------------------- weight calibration


@functools.partial(
    jax.jit, static_argnames=("snn_model", "num_steps", "producer", "layer", "encoding")
)
def _layer_io(snn_model, params, membrane, images, *, num_steps, producer, layer, encoding=None):
    """Time-averaged inputs ``(x̄, z̄)`` of the conv/dense ``producer`` and of ``layer``."""
    found = {}

    def tap(next_fun, args, kwargs, context):
        path = "/".join(context.module.path)
        if context.method_name == "__call__" and path in (producer, layer):
            found[path] = args[0]
        return next_fun(*args, **kwargs)

    inputs, time_major = snn_input(images, num_steps, encoding)

    def step(state, frame):
        found.clear()
        with nn.intercept_methods(tap):
            _, new = snn_model.apply(
                {"params": params, "membrane": state},
                frame if time_major else images,
                mutable=["membrane"],
            )
        return new["membrane"], (found[producer], found[layer])

    xs = inputs if time_major else None
    _, (x_seq, z_seq) = jax.lax.scan(step, membrane, xs, length=num_steps)
    return jnp.mean(x_seq, axis=0), jnp.mean(z_seq, axis=0)


def _find_module(snn_model, params, membrane, images, path):
    """An unbound copy of the submodule at ``path`` (its conv/dense configuration)."""
    found: list = []

    def tap(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and "/".join(context.module.path) == path:
            found.append(context.module.clone(parent=None))
        return next_fun(*args, **kwargs)

    def run():
        with nn.intercept_methods(tap):
            return snn_model.apply(
                {"params": params, "membrane": membrane}, images, mutable=["membrane"]
            )[0]

    jax.eval_shape(run)
    return found[0]


def _surrogate(pre, theta, cap, num_steps, half_shift):
    r"""T-step mean output of the burst neuron on constant input ``pre`` (straight-through floor).

    ``half_shift``: :math:`(\theta/T)\,\mathrm{clip}(\lfloor T\,pre/\theta + \tfrac12\rfloor,
    0, TM)`, what the CAL/AdaFire neuron with its θ/(2T) per-step shift gives on a constant input
    (docs/methods.md, "Weight calibration"; invariant I-3);
    otherwise the reference code's
    :math:`(\theta/T)\lfloor T\,\mathrm{clip}(pre/\theta, 0, M)\rfloor`.
    """
    theta = broadcast_channels(theta, pre.ndim).astype(pre.dtype)
    steps = jnp.asarray(num_steps, pre.dtype)
    cap = cap.astype(pre.dtype)
    if half_shift:
        return theta / steps * jnp.clip(floor_ste(steps * pre / theta + 0.5), 0, steps * cap)
    return theta / steps * floor_ste(steps * jnp.clip(pre / theta, 0, cap))


class _LayerFit(NamedTuple):
    """One layer's weight-calibration problem: fit ``kernel`` so that the neuron's output on
    ``module(x̄) + residual`` matches ``target`` (the ANN's output)."""

    module: nn.Module
    kernel: jax.Array
    bias: jax.Array
    x_bar: jax.Array
    residual: jax.Array
    target: jax.Array
    theta: jax.Array
    cap: jax.Array


def _fit_kernel(
    fit: _LayerFit, *, num_steps, iters, batch_size, learning_rate, half_shift, key, desc=""
):
    """Adam (cosine to 0) on the kernel; squared error summed over channels, mean over rest."""
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, max(iters, 1)))
    n = fit.x_bar.shape[0]

    def loss(w, idx):
        params = {"params": {"kernel": w, "bias": fit.bias}}
        pre = fit.module.apply(params, fit.x_bar[idx]) + fit.residual[idx]
        out = _surrogate(pre, fit.theta, fit.cap, num_steps, half_shift)
        return jnp.mean(jnp.sum(jnp.square(out - fit.target[idx]), axis=-1))

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def update(w, opt_state, i):
        idx = jax.random.choice(jax.random.fold_in(key, i), n, (min(batch_size, n),), replace=False)
        grads = jax.grad(loss)(w, idx)
        with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes int counts and floats
            updates, opt_state = tx.update(grads, opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    # A Python loop over one jitted step, not lax.scan: XLA:CPU runs a conv's kernel gradient
    # ~25x slower inside a while loop (measured 0.18 s vs 7 ms per step, batch 32 of 14x14x32).
    w, opt_state = jnp.array(fit.kernel), tx.init(fit.kernel)
    for i in progress.track(range(iters), desc=desc, unit="step"):
        w, opt_state = update(w, opt_state, jnp.asarray(i))
    return w


def weight_calibration(
    snn_model: nn.Module,
    params: Mapping,
    u0: Mapping,
    batches: Sequence[jax.Array],
    ann_acts: Sequence[Mapping],
    *,
    layers: Sequence[str],
    num_steps: int,
    iters: int = 5000,
    batch_size: int = 32,
    learning_rate: float = 1e-5,
    half_shift: bool = True,
    key: jax.Array,
    encoding=None,
) -> dict:
    """Converts SNN params into params whose producer kernels fit the ANN outputs (sequential).

    Args:
      snn_model, params, u0: the current SNN, its params and initial potentials.
      batches: image batches (the reference uses 1 024 samples); ``ann_acts`` their ANN outputs.
      layers: spiking layers, forward order.
      num_steps: T.
      iters, batch_size, learning_rate: Adam iterations (cosine decay to 0), minibatch, lr.
      half_shift: fit the neuron's rounding (+½ from the θ/(2T) shift, default) instead of the
        reference code's floor without it (see :func:`_surrogate`).
      key: minibatch sampling.
      encoding: the SNN's input encoding (None: direct); the fit targets the time-averaged
        inputs of the encoded run.
    """
    for li, layer in enumerate(layers):
        producer = producer_of(layer, params)
        flat = tree_lib.flatten(params)
        xs, zs = [], []
        for images in batches:
            membrane = init_membrane(snn_model, images.shape, _mode(u0), images.dtype)
            x_bar, z_bar = _layer_io(
                snn_model,
                params,
                membrane,
                images,
                num_steps=num_steps,
                producer=producer,
                layer=layer,
                encoding=encoding,
            )
            xs.append(x_bar)
            zs.append(z_bar)
        module = _find_module(snn_model, params, membrane, images, producer)
        x_bar, z_bar = jnp.concatenate(xs), jnp.concatenate(zs)
        kernel, bias = flat[producer + "/kernel"], flat[producer + "/bias"]
        residual = z_bar - module.apply({"params": {"kernel": kernel, "bias": bias}}, x_bar)
        target = jnp.concatenate([a[layer] for a in ann_acts])
        theta, cap = flat[f"{layer}/{THRESHOLD}"], flat[f"{layer}/{CAP}"]
        kernel = _fit_kernel(
            _LayerFit(module, kernel, bias, x_bar, residual, target, theta, cap),
            num_steps=num_steps,
            iters=iters,
            batch_size=batch_size,
            learning_rate=learning_rate,
            half_shift=half_shift,
            key=jax.random.fold_in(key, li),
            desc=f"weight calibration {layer} ({li + 1}/{len(layers)})",
        )
        params = replace_leaves(params, {producer + "/kernel": kernel})
    return params
