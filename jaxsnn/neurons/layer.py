"""The Flax layer that puts a neuron kernel where the ANN had its activation.

The threshold is a parameter named ``threshold`` (same path as the ANN's trainable λ, so
conversion is a parameter-tree transformation). The membrane lives in its own variable
collection ``'membrane'``: ``v`` (potential in threshold units), and optionally ``mask`` (SRP's
per-neuron output mask) and ``count`` (cumulative emitted spikes, for diagnostics). Per-step spike
statistics are sown into the ``'stats'`` collection as per-sample sums, so the simulator can report
them only when asked.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.neurons.kernels import IF, Neuron, NeuronState


def _reduce_per_sample(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


class SpikingActivation(nn.Module):
    """Spiking replacement of an activation: emits ``spikes · mask · θ`` each call.

    Attributes:
      neuron: the kernel (``IF()`` or ``Burst(M, shift)``).
      per_channel: one threshold per channel (last axis) instead of one per layer.
      masked: keep an SRP output mask in the ``'membrane'`` collection (ones until set).
      track_counts: keep the cumulative emitted spike count per neuron.
      param_dtype: dtype of the threshold parameter at initialisation.
    """

    neuron: Neuron = IF()
    per_channel: bool = False
    masked: bool = False
    track_counts: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1],) if self.per_channel else ()
        theta = self.param("threshold", nn.initializers.ones, shape, self.param_dtype)
        theta = jnp.asarray(theta, x.dtype)
        if self.per_channel:
            theta = theta.reshape((1,) * (x.ndim - 1) + shape)
        v = self.variable("membrane", "v", lambda: self.neuron.init_state(x.shape, x.dtype).v)
        spikes, state = self.neuron.step(x, NeuronState(v.value), threshold=theta)
        v.value = state.v
        emitted = spikes
        if self.masked:
            mask = self.variable("membrane", "mask", lambda: jnp.ones(x.shape, x.dtype))
            emitted = spikes * mask.value
            self.sow("stats", "fires", _reduce_per_sample(spikes))
        if self.track_counts:
            count = self.variable("membrane", "count", lambda: jnp.zeros(x.shape, x.dtype))
            count.value = count.value + emitted
        self.sow("stats", "spikes", _reduce_per_sample(emitted))
        return emitted * theta
