r"""Readouts computed from simulation state: per-layer rates and the coding-compensated logits.

- :func:`spike_rates`: a layer's time-averaged output :math:`\theta N(T)/T` from the tracked
  spike counts (what the calibration passes compare with the ANN).
- :func:`compensated_logits` (IC-SNN coding compensation, our reconstruction A3(a); see
  docs/methods.md, "IC-SNN"): the identity :math:`\sum_{t\le T} x(t) = \theta N(T) + v(T) - v(0)`
  gives the compensated rate :math:`\tilde r = \theta(N(T) + u(T) - u(0))/T` (threshold units
  :math:`u = v/\theta`), for a single layer exactly the mean input. It is clipped to the
  neuron's range :math:`[0, M\theta]` (the ANN activation's range), and the network's tail after
  that layer (pooling, the analog readout) is applied to it once, at the end of the window.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.neurons import CAP, THRESHOLD


def spike_rates(params: Mapping, membrane: Mapping, num_steps: int) -> dict[str, jax.Array]:
    """Time-averaged output ``count·θ/T`` of every spiking layer from a final ``'membrane'``."""
    thresholds = tree.layer_leaves(params, THRESHOLD)
    counts = tree.layer_leaves(membrane, "count")
    return {
        layer: c * tree.broadcast_channels(thresholds[layer], c.ndim) / num_steps
        for layer, c in counts.items()
    }


def compensated_rate(
    count: jax.Array,
    v_final: jax.Array,
    v_init: jax.Array,
    theta: jax.Array,
    num_steps: int,
    *,
    max_spikes=None,
) -> jax.Array:
    r""":math:`\theta(N(T) + u(T) - u(0))/T` (membranes in threshold units).

    With ``max_spikes`` the result is clipped to ``[0, M·θ]``; without, it is the exact mean input.
    """
    theta = tree.broadcast_channels(jnp.asarray(theta, count.dtype), count.ndim)
    rate = theta * (count + v_final - v_init) / num_steps
    if max_spikes is None:
        return rate
    return jnp.clip(rate, 0, jnp.asarray(max_spikes, count.dtype) * theta)


def compensated_logits(
    model: nn.Module,
    params: Mapping,
    membrane_init: Mapping,
    membrane_final: Mapping,
    images: jax.Array,
    *,
    num_steps: int,
    layer: str,
) -> jax.Array:
    """Logits ``[B, K]`` of the network tail applied to the compensated rate of ``layer``.

    Args:
      model, params: the SNN (spike counts tracked) and its params.
      membrane_init: the ``'membrane'`` collection the counted run started from.
      membrane_final: the final one (``SimOutput.membrane``).
      images: the same batch (the layers before ``layer`` run but their output is replaced;
        only the tail after ``layer`` matters).
      num_steps: T of the run.
      layer: path of the compensated spiking layer.
    """
    v0 = tree.layer_leaves(membrane_init, "v")[layer]
    final = {name: tree.layer_leaves(membrane_final, name)[layer] for name in ("v", "count")}
    theta = tree.layer_leaves(params, THRESHOLD)[layer]
    cap = tree.layer_leaves(params, CAP)[layer]
    rate = compensated_rate(final["count"], final["v"], v0, theta, num_steps, max_spikes=cap)

    def swap(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and "/".join(context.module.path) == layer:
            return rate
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(swap):
        logits, _ = model.apply(
            {"params": params, "membrane": membrane_init}, images, mutable=["membrane", "stats"]
        )
    return logits
