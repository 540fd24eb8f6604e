"""Burst (AdaFire/CAL) neuron: the IF layer with a cap and a θ/(2T) shift; exact invariant I-3."""

import functools

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings

from jaxsnn import convert
from jaxsnn.neurons import IF, SpikingActivation
from jaxsnn.ops import qcfs
from jaxsnn.simulate import simulate

CHANNELS = 12


class _OneLayer(nn.Module):
    """One spiking layer fed the input directly; the readout is its output ``spikes·θ``."""

    shift: float

    @nn.compact
    def __call__(self, x, train=False):
        neuron = IF(shift=self.shift)
        return SpikingActivation(neuron, per_channel=True, track_counts=True, name="act")(x)


def _one_layer_run(num_steps, theta, cap, z):
    model = _OneLayer(shift=1.0 / (2 * num_steps))
    params = {
        "act": {
            "threshold": jnp.full((CHANNELS,), theta, jnp.float32),
            "max_spikes": jnp.asarray(cap, jnp.float32),
        }
    }
    membrane = convert.init_membrane(model, z.shape, "zero")
    return simulate(model, params, membrane, z, num_steps=num_steps)


@settings(max_examples=25, deadline=None)
@given(
    log_t=st.integers(0, 4),
    cap=st.sampled_from([1, 2, 4, 8]),
    log_theta=st.integers(-2, 2),
    numerators=st.lists(st.integers(-40, 160), min_size=CHANNELS, max_size=CHANNELS),
)
def test_invariant_i3_burst_counts_and_qcfs(log_t, cap, log_theta, numerators):
    """u(0)=0, shift 1/(2T), constant dyadic z: N(t) = clip(⌊t(z/θ + 1/(2T))⌋, 0, tM) for t ≤ T,
    and the T-step average equals QCFS with λ = Mθ, L = MT, exactly."""
    T, theta = 2**log_t, 2.0**log_theta
    c = np.asarray(numerators, np.float64) / 16  # z/θ, dyadic
    z = jnp.asarray((c * theta)[None, :], jnp.float32)
    out = _one_layer_run(T, theta, cap, z)
    counts = np.asarray(out.cumulative[:, 0, :], np.float64) / theta  # θ·N(t) / θ
    t = np.arange(1, T + 1, dtype=np.float64)[:, None]
    expected = np.clip(np.floor(t * (c[None, :] + 1 / (2 * T))), 0, t * cap)
    np.testing.assert_array_equal(counts, expected)
    average = out.cumulative[-1] / T
    np.testing.assert_array_equal(average, qcfs(z, jnp.float32(cap * theta), cap * T))


class _TwoLayers(nn.Module):
    """Two burst layers in a row (the second integrates the first's output ``spikes·θ₁``)."""

    shift: float

    @nn.compact
    def __call__(self, x, train=False):
        layer = functools.partial(SpikingActivation, IF(shift=self.shift), per_channel=True)
        return layer(name="act2")(layer(name="act1")(x))


@settings(max_examples=20, deadline=None)
@given(
    caps=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    numerators=st.lists(st.integers(-20, 100), min_size=CHANNELS, max_size=CHANNELS),
)
def test_per_layer_traced_caps_follow_the_burst_rule(caps, numerators):
    """Each layer's ``max_spikes`` parameter is its own cap: both layers follow
    ``u += x/θ + δ; s = clip(⌊u⌋, 0, M_l); u -= s`` (numpy, dyadic values: exact)."""
    T, shift = 4, 1 / 8
    x = np.asarray(numerators, np.float32)[None, :] / 16
    thetas = (np.float32(0.5), np.float32(0.25))
    params = {
        f"act{i + 1}": {"threshold": jnp.full((CHANNELS,), th), "max_spikes": jnp.float32(m)}
        for i, (th, m) in enumerate(zip(thetas, caps, strict=True))
    }
    model = _TwoLayers(shift=shift)
    membrane = convert.init_membrane(model, x.shape, "zero")
    out = simulate(model, params, membrane, jnp.asarray(x), num_steps=T, unroll=1)
    u = [np.zeros_like(x), np.zeros_like(x)]
    total = np.zeros_like(x)
    for t in range(T):
        signal = x
        for i in range(2):
            u[i] = u[i] + signal / thetas[i] + np.float32(shift)
            s = np.clip(np.floor(u[i]), 0, caps[i])
            u[i] = u[i] - s
            signal = s * thetas[i]
        total = total + signal
        np.testing.assert_array_equal(np.asarray(out.cumulative[t]), total)
