"""Burst (AdaFire/CAL) neuron: exact invariant I-3 and equivalence with the shared Burst kernel."""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings

from jaxsnn import convert, models
from jaxsnn.calibrate import BurstActivation, build_snn_params, make_burst_snn
from jaxsnn.models import QCFS
from jaxsnn.neurons import Burst
from jaxsnn.ops import qcfs
from jaxsnn.simulate import simulate

CHANNELS = 12


class _OneLayer(nn.Module):
    """One spiking layer fed the input directly; the readout is its output ``spikes·θ``."""

    shift: float

    @nn.compact
    def __call__(self, x, train=False):
        return BurstActivation(shift=self.shift, name="act")(x)


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


def test_traced_cap_matches_shared_burst_kernel():
    """BurstActivation with a uniform cap is bit-for-bit SpikingActivation(Burst(M, 1/(2T)))."""
    key = jax.random.key(3)
    ann = models.get_model(
        "_VGGTiny", num_classes=5, act=functools.partial(QCFS, levels=4, init_threshold=1.0)
    )
    variables = models.init_variables(ann, key, (4, 8, 8, 3))
    x = jax.random.normal(jax.random.fold_in(key, 1), (4, 8, 8, 3))
    folded = convert.fold_batchnorm(variables["params"], variables["batch_stats"])
    lam = convert.extract_thresholds(folded)
    widths = {"block1_conv1_act": 4, "block2_conv1_act": 8, "fc1_act": 16, "fc2_act": 16}
    thresholds = {k: jnp.linspace(0.5, 1.5, widths[k]) * lam[k] for k in lam}
    T, cap = 8, 3
    ref_model = convert.make_snn_model(
        ann, Burst(cap, shift=1 / (2 * T)), per_channel=True, track_counts=True
    )
    ref = simulate(
        ref_model,
        convert.to_snn_params(folded, thresholds),
        convert.init_membrane(ref_model, x.shape, "zero"),
        x,
        num_steps=T,
    )
    model = make_burst_snn(ann, shift=1 / (2 * T))
    params = build_snn_params(model, folded, thresholds, cap, x.shape)
    out = simulate(model, params, convert.init_membrane(model, x.shape, "zero"), x, num_steps=T)
    np.testing.assert_array_equal(out.cumulative, ref.cumulative)
    assert float(jnp.sum(out.cumulative != 0)) > 0
