"""The IF kernel (cap 1: binary IF; cap M: burst): single steps, the QCFS↔IF equivalence (I-1)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn import convert
from jaxsnn.neurons import IF, NeuronState, SpikingActivation
from jaxsnn.ops import qcfs
from jaxsnn.simulate import simulate


class KernelStepTest(chex.TestCase):
    """Single kernel steps, each run jitted (traced threshold and cap) and eagerly."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_if_step_charge_fire_soft_reset(self):
        neuron = IF()
        state = neuron.init_state((4,), jnp.float32)  # u = 1/2
        x = jnp.array([0.0, 1.0, 2.0, -1.0], jnp.float32)
        spikes, state = self.variant(neuron.step)(x, state, threshold=jnp.float32(2.0))
        # u = 0.5 + x/2 = [0.5, 1.0, 1.5, 0.0]; ties fire; subtract one threshold.
        np.testing.assert_array_equal(spikes, [0, 1, 1, 0])
        np.testing.assert_array_equal(state.v, [0.5, 0.0, 0.5, 0.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_burst_step_caps_spikes_and_subtracts_what_it_fired(self):
        neuron = IF(max_spikes=3)
        state = NeuronState(jnp.zeros(3, jnp.float32))
        step = self.variant(neuron.step)
        spikes, state = step(jnp.array([2.5, 7.0, -1.0]), state, threshold=jnp.float32(1.0))
        np.testing.assert_array_equal(spikes, [2, 3, 0])
        np.testing.assert_array_equal(state.v, [0.5, 4.0, -1.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_initial_potential_breaks_the_equivalence(self):
        """With u(0) = 0 the count is floor(t·x/θ): x = θ/2 fires nothing in one step (QCFS: θ)."""
        neuron = IF()
        state = neuron.init_state((), jnp.float32, 0.0)
        s, _ = self.variant(neuron.step)(jnp.float32(0.5), state, threshold=1.0)
        assert float(s) == 0.0 and float(qcfs(jnp.float32(0.5), jnp.float32(1.0), 1)) == 1.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_traced_cap_overrides_the_kernel_default(self):
        """The layer passes its ``max_spikes`` parameter: cap 2 makes an ``IF()`` kernel burst."""
        state = NeuronState(jnp.zeros(2, jnp.float32))
        step = self.variant(IF().step)
        spikes, _ = step(jnp.array([2.5, 0.5]), state, threshold=1.0, max_spikes=jnp.float32(2))
        np.testing.assert_array_equal(spikes, [2, 0])


def _if_counts(x, theta, num_steps):
    """Cumulative IF spike count after every step, constant input, u(0) = 1/2."""
    neuron = IF()

    def step(state, _):
        s, state = neuron.step(x, state, threshold=theta)
        return state, s

    _, spikes = jax.lax.scan(step, neuron.init_state(x.shape, x.dtype), None, length=num_steps)
    return jnp.cumsum(spikes, axis=0)


@settings(max_examples=150, deadline=None)
@given(
    m=st.integers(-40, 300),
    k=st.integers(0, 6),
    e=st.integers(-3, 3),
    num_steps=st.integers(1, 48),
)
def test_if_with_half_potential_equals_qcfs_with_levels_t(m, k, e, num_steps):
    """I-1: N(t) = clip(floor(t·x/θ + 1/2), 0, t) for all t ≤ T, dyadic inputs (exact in f32)."""
    theta = jnp.float32(2.0**e)
    x = jnp.float32(m / 2**k) * theta  # x/θ dyadic
    counts = jax.jit(_if_counts, static_argnums=2)(x[None], theta, num_steps)[:, 0]
    t = np.arange(1, num_steps + 1)
    expected = np.clip(np.floor(t * (m / 2**k) + 0.5), 0, t)
    np.testing.assert_array_equal(np.asarray(counts), expected)
    for step in (1, num_steps):  # the averaged output is QCFS with L = t
        rate = counts[step - 1] * theta / step
        assert float(rate) == float(qcfs(x, theta, step))


class _Layer(nn.Module):
    @nn.compact
    def __call__(self, x):
        return SpikingActivation(track_counts=True, name="act")(x)


def test_cap_one_layer_is_the_binary_if_rule_bit_for_bit():
    """The one spiking layer with cap 1 reproduces ``u += x/θ; s = 1[u ≥ 1]; u -= s`` exactly on
    arbitrary (non-dyadic) float32 inputs: the IF neuron is the burst neuron with cap 1."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1.0, (4, 64)).astype(np.float32)
    theta = np.float32(0.731)
    params = {"act": {"threshold": jnp.asarray(theta), "max_spikes": jnp.float32(1)}}
    membrane = convert.init_membrane(_Layer(), x.shape, "half")
    out = simulate(_Layer(), params, membrane, jnp.asarray(x), num_steps=16, unroll=1)
    u = np.full_like(x, 0.5)
    total = np.zeros_like(x)
    for t in range(16):
        u = u + x / theta
        s = (u >= 1).astype(np.float32)
        u = u - s
        total = total + s * theta
        np.testing.assert_array_equal(np.asarray(out.cumulative[t]), total)
    np.testing.assert_array_equal(np.asarray(out.membrane["act"]["v"]), u)
