"""Spec §10 invariants not covered elsewhere: SRP on one layer (I-4) and its bookkeeping (I-5)."""

import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn.neurons import SpikingActivation
from jaxsnn.simulate import simulate_srp


class _OneLayer(nn.Module):
    """A single masked IF layer whose emitted values are the readout."""

    @nn.compact
    def __call__(self, x):
        return SpikingActivation(masked=True, name="act")(x)


@settings(max_examples=80, deadline=None)
@given(
    m=st.lists(st.integers(-8, 40), min_size=1, max_size=6),
    k=st.integers(0, 4),
    tau=st.integers(0, 6),
    num_steps=st.integers(1, 12),
)
def test_srp_single_layer_constant_input(m, k, tau, num_steps):
    """I-4: count after T sim steps = mask · clip(floor(T·c + 1/2), 0, T), mask = 1[r > 1e-3]."""
    c = np.asarray(m, np.float64) / 2**k  # z/θ, dyadic: exact in float32
    x = jnp.asarray(c, jnp.float32)[None, :]
    params = {"act": {"threshold": jnp.float32(1.0)}}
    out = simulate_srp(_OneLayer(), params, x, presim=tau, num_steps=num_steps, stats=True)
    n_tau = np.clip(np.floor(tau * c + 0.5), 0, tau)
    residual = 0.5 + tau * c - n_tau
    mask = (residual > 1e-3) if tau > 0 else np.ones_like(c, bool)
    expected = mask * np.clip(np.floor(num_steps * c + 0.5), 0, num_steps)
    np.testing.assert_array_equal(np.asarray(out.sim.cumulative[-1, 0]), expected)
    # I-5: τ + T forward calls; the fires of masked neurons follow the unmasked dynamics.
    calls = (0 if out.presim is None else out.presim.outputs.shape[0]) + out.sim.outputs.shape[0]
    assert calls == tau + num_steps
    fires = np.asarray(out.sim.stats["act"]["fires"]).sum()
    assert fires == np.clip(np.floor(num_steps * c + 0.5), 0, num_steps).sum()


def test_srp_silences_the_exact_tie_example():
    """Spec example: τ = 4, c = 1/8 leaves r = 0 exactly, so the neuron is silenced."""
    x = jnp.asarray([[0.125]], jnp.float32)
    params = {"act": {"threshold": jnp.float32(1.0)}}
    out = simulate_srp(_OneLayer(), params, x, presim=4, num_steps=8)
    assert float(out.sim.cumulative[-1, 0, 0]) == 0.0
