"""The one spiking layer: it puts the IF kernel where the ANN had its activation.

Parameters (same module path as the ANN's trainable λ, so conversion is a parameter-tree
transformation): ``threshold`` θ (one per layer, or one per channel with ``per_channel``) and
``max_spikes`` M, the per-layer spike cap (1 for binary IF neurons). Both are ordinary traced
parameters: a sweep or a cap search varies them without recompiling. The membrane lives in its
own variable collection ``'membrane'``: ``v`` (potential in threshold units), optionally ``mask``
(SRP's per-neuron output mask) and ``count`` (cumulative emitted spikes). Per-step spike
statistics are sown into ``'stats'`` as per-sample sums, so the simulator reports them only when
asked.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.neurons.kernels import IF, NeuronState

THRESHOLD = "threshold"
CAP = "max_spikes"


def _reduce_per_sample(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


class SpikingActivation(nn.Module):
    """Spiking replacement of an activation: emits ``spikes · mask · θ`` each call.

    Attributes:
      neuron: the kernel (its ``shift``, and ``max_spikes`` as the cap's initial value).
      per_channel: one threshold per channel (last axis) instead of one per layer.
      masked: keep an SRP output mask in the ``'membrane'`` collection (ones until set).
      track_counts: keep the cumulative emitted spike count per neuron.
      param_dtype: dtype of θ and M at initialisation.
    """

    neuron: IF = IF()
    per_channel: bool = False
    masked: bool = False
    track_counts: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1],) if self.per_channel else ()
        theta = self.param(THRESHOLD, nn.initializers.ones, shape, self.param_dtype)
        cap = self.param(
            CAP, nn.initializers.constant(self.neuron.max_spikes), (), self.param_dtype
        )
        theta = jnp.asarray(theta, x.dtype)
        if self.per_channel:
            theta = theta.reshape((1,) * (x.ndim - 1) + shape)
        v = self.variable("membrane", "v", lambda: self.neuron.init_state(x.shape, x.dtype).v)
        spikes, state = self.neuron.step(
            x, NeuronState(v.value), threshold=theta, max_spikes=jnp.asarray(cap, x.dtype)
        )
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
