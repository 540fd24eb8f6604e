r"""IC-SNN — initialised membrane potential and coding compensation (spec §7.3, all [RECON]).

Only the abstract of the paper could be read; these are the spec's testable reconstructions:

- **A1** (initial potential from the trained ANN): IF neurons, θ = the ANN's λ (or a data-driven
  θ for a plain ReLU ANN), :math:`v(0) = \theta/2` — the membrane mode ``'half'`` (= OPI).
- **A2** (initial potential from the training set): layer-sequentially,
  :math:`v^l(0) = \theta^l/2 + T(\overline{a^l_{ANN}} - \overline{r^l_{SNN}})`, means per neuron
  position over the batch (or per channel), measured with the already-corrected layers < l
  (:func:`a2_initial_potential`; the same pass as CAL's potential calibration, started from ½).
- **A3(a)** (coding compensation by a residual read-out): the identity
  :math:`\sum_{t\le T} x(t) = \theta N(T) + v(T) - v(0)` gives the compensated rate
  :math:`\tilde r = (\theta N(T) + v(T) - v(0))/T`, which for a single layer is exactly the mean
  input. **Port decision [RECON]:** it is applied once, at the end of the window, to the **last
  hidden spiking layer only**: the compensated logits are the network's tail (pooling, readout)
  applied to :math:`\mathrm{clip}(\tilde r, 0, M\theta)` — clipped to the neuron's representable
  range, i.e. the ANN activation's range — and reported as one extra, final-step accuracy
  (:func:`compensated_logits`). Reading (b) (input-side rate-code compensation) is not ported.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.calibrate.correction import potential_calibration
from jaxsnn.calibrate.snn import CAP, THRESHOLD, broadcast_channels, layer_leaves


def a2_initial_potential(
    snn_model: nn.Module,
    params: Mapping,
    images: jax.Array,
    ann_acts: Mapping,
    *,
    layers: Sequence[str],
    num_steps: int,
    per_channel: bool = False,
) -> dict[str, jax.Array]:
    """A2: ``{layer: u0}`` (threshold units) = ½ + T(mean a_ANN − mean r_SNN)/θ, sequentially."""
    start = {layer: jnp.asarray(0.5, images.dtype) for layer in layers}
    return potential_calibration(
        snn_model,
        params,
        start,
        images,
        ann_acts,
        layers=layers,
        num_steps=num_steps,
        per_channel=per_channel,
    )


def compensated_rate(
    count: jax.Array,
    v_final: jax.Array,
    v_init: jax.Array,
    theta: jax.Array,
    num_steps: int,
    *,
    max_spikes=None,
) -> jax.Array:
    r"""A3(a): :math:`\theta(N(T) + u(T) - u(0))/T` (membranes in threshold units).

    With ``max_spikes`` the result is clipped to ``[0, M·θ]``; without, it is the exact mean input.
    """
    theta = broadcast_channels(jnp.asarray(theta, count.dtype), count.ndim)
    rate = theta * (count + v_final - v_init) / num_steps
    if max_spikes is None:
        return rate
    return jnp.clip(rate, 0, jnp.asarray(max_spikes, count.dtype) * theta)


def compensated_logits(
    snn_model: nn.Module,
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
      snn_model, params: the SNN (with tracked counts) and its params.
      membrane_init: the ``'membrane'`` collection the run started from.
      membrane_final: the final one (``SimOutput.membrane``).
      images: the same batch (the layers before ``layer`` are evaluated but their output is
        replaced; only the tail after ``layer`` matters).
      num_steps: T of the run.
      layer: path of the compensated spiking layer (the last hidden one by default in
        :func:`jaxsnn.calibrate.calibrate`'s ``fields['compensation_layer']``).
    """
    v0 = layer_leaves(membrane_init, "v")[layer]
    final = {name: layer_leaves(membrane_final, name)[layer] for name in ("v", "count")}
    theta = layer_leaves(params, THRESHOLD)[layer]
    caps = layer_leaves(params, CAP)
    rate = compensated_rate(
        final["count"], final["v"], v0, theta, num_steps, max_spikes=caps.get(layer, 1.0)
    )

    def swap(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and "/".join(context.module.path) == layer:
            return rate
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(swap):
        logits, _ = snn_model.apply(
            {"params": params, "membrane": membrane_init}, images, mutable=["membrane", "stats"]
        )
    return logits
