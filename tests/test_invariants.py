"""The invariants of docs/methods.md#invariants as exact property tests, and the map of which
test covers which invariant.

Exactness: inputs are dyadic (z/θ = m/2^k; θ, T or L powers of two where something is divided by
them), so every float32 operation involved is exact and results are compared bit for bit. The
float32 caveat of docs/methods.md (ties of non-dyadic values disagree ~4 % of the time) is why.

Invariant → tests (``inv`` = this file, ``more`` = tests/test_invariants_more.py):

- I-1  IF(v0 = θ/2) = QCFS(λ = θ, L = t):
       test_neurons.py::test_if_with_half_potential_equals_qcfs_with_levels_t (kernel counts);
       inv::test_if_layer_rate_is_qcfs_at_every_step (layer + simulate, every t, forced ties,
       z ≤ 0 silent, z ≥ θ membrane θ/2 + t(z − θ));
       test_neurons.py::KernelStepTest::test_zero_initial_potential_breaks_the_equivalence
       (v0 = 0 fails; hard reset is not implemented, so its failure case has no test).
- I-2  QCFS shape: inv::test_qcfs_levels_zero_and_saturation_sets (grid, zero/saturation iff),
       inv::test_qcfs_old_and_new_operation_orders_agree, inv::test_qcfs_gradients_exact,
       inv::test_qcfs_input_gradient_is_a_mask_up_to_rounding; test_ops.py (boundaries, grid,
       reference gradients at fixed points).
- I-3  burst neuron = QCFS(Mθ, MT): test_burst.py::test_invariant_i3_burst_counts_and_qcfs
       (the spiking layer); inv::test_burst_kernel_counts_and_cal_final_count (the kernel,
       M = 1 vs I-1 final / intermediate counts).
- I-4  SRP one layer: inv::test_srp_single_layer_constant_input (also: all masks 1 → plain run),
       inv::test_srp_silences_the_exact_tie_example,
       inv::test_srp_silencing_interval_and_masked_dynamics ([(k − ½)/τ, (k − ½ + 1e-3)/τ]);
       test_simulate.py::test_srp_with_tau_zero_equals_plain_run (τ = 0, deep net).
- I-5  SRP bookkeeping: inv::test_srp_single_layer_constant_input (τ + T calls),
       inv::test_srp_silencing_interval_and_masked_dynamics (masked v = unmasked dynamics);
       test_simulate.py::test_srp_masks_are_taken_after_presim_and_membrane_restarts;
       test_convert_pipeline.py::test_srp_reports_honest_latency (index t ↔ step τ + t).
- I-6  BN fold: more::test_fold_batchnorm_property (float64 and float32);
       test_convert.py::test_fold_batchnorm_preserves_outputs (every architecture),
       test_convert.py::test_fold_batchnorm_formula_on_one_conv.
- I-7  threshold normalisation: inv::test_threshold_normalisation_is_bit_exact,
       inv::test_normalised_neurons_equal_raw_unit_neurons.
- I-8  readout: inv::test_readout_sum_mean_and_argmax.
- I-9  thresholds: more::test_surrogate_exact, more::test_mse_search_grid_ties_channels,
       more::test_threshold_ema_over_seven_batches,
       more::test_surrogate_at_the_threshold_is_the_threshold (strict xfail: XLA:CPU division);
       test_calibrate.py::test_mse_search_grid_ties_and_reference,
       test_calibrate.py::test_threshold_ema_over_first_seven_batches,
       test_calibrate.py::test_dead_channels_and_dead_layer_get_safe_thresholds.
- I-10 calibration: more::test_calibration_is_sequential_and_exact (bias and potential, ANN
       untouched); test_calibrate.py::test_first_layer_corrections_follow_the_formulas.
- I-11 frontier search: test_allocation.py::test_frontier_equals_brute_force,
       test_allocation.py::test_both_roles_against_brute_force.
- I-12 IAT: test_iat.py::test_iat_invariants (CIFAR), test_iat.py::test_fit_thresholds_form;
       more::test_iat_imagenet_thresholds_and_exits.
"""

import functools
from collections.abc import Callable
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn import convert, metrics
from jaxsnn.models import QCFS
from jaxsnn.neurons import IF, SpikingActivation
from jaxsnn.ops import qcfs, qcfs_levels
from jaxsnn.simulate import simulate, simulate_srp

F32 = jnp.float32


class _OneLayer(nn.Module):
    """A single masked IF layer whose emitted values are the readout."""

    @nn.compact
    def __call__(self, x):
        return SpikingActivation(masked=True, name="act")(x)


class _Layer(nn.Module):
    """One spiking layer (counts tracked) fed the input directly."""

    neuron: IF = IF()
    masked: bool = False
    per_channel: bool = True

    @nn.compact
    def __call__(self, x):
        return SpikingActivation(
            neuron=self.neuron,
            per_channel=self.per_channel,
            masked=self.masked,
            track_counts=True,
            name="act",
        )(x)


def _params(theta, cap=1) -> dict:
    """A spiking layer's params: threshold θ and spike cap M."""
    return {"threshold": theta, "max_spikes": jnp.asarray(cap, jnp.result_type(theta))}


def _steps(num_steps: int) -> np.ndarray:
    return np.arange(1, num_steps + 1, dtype=np.float64)[:, None]


# --------------------------------------------------------------------------- I-1


@settings(max_examples=40, deadline=None)
@given(
    num_steps=st.sampled_from([1, 2, 3, 5, 8, 13, 16]),
    log_theta=st.lists(st.integers(-3, 3), min_size=8, max_size=8),
    numerators=st.lists(st.integers(-48, 400), min_size=4, max_size=4),
    k=st.integers(0, 5),
    data=st.data(),
)
def test_if_layer_rate_is_qcfs_at_every_step(num_steps, log_theta, numerators, k, data):
    """I-1: soft reset, v(0) = θ/2, constant z: for every t ≤ T the count is
    N(t) = clip(⌊tz/θ + ½⌋, 0, t), the QCFS level with λ = θ, L = t, and the emitted average
    θN(t)/t is QCFS(z; θ, t) (compared as floats where t is a power of two, so /t is exact); ties
    (tz/θ + ½ integer) round up; z ≤ 0 never fires; z ≥ θ fires every step, v(t) = θ/2 + t(z − θ).
    """
    a = data.draw(st.integers(0, int(np.log2(num_steps))), label="tie at t0 = 2^a")
    j = data.draw(st.integers(1, 2**a), label="tie level j")
    tie = (2 * j - 1) / 2 ** (a + 1)  # t0·c + ½ = j exactly
    c = np.array([*np.asarray(numerators) / 2**k, tie, -tie, -3 / 8, 5 / 4])  # z/θ
    theta = 2.0 ** np.asarray(log_theta)
    z, lam = jnp.asarray((c * theta)[None], F32), jnp.asarray(theta, F32)
    model = _Layer()
    membrane = convert.init_membrane(model, z.shape, "half")
    out = simulate(model, {"act": _params(lam)}, membrane, z, num_steps=num_steps)
    t = _steps(num_steps)
    counts = np.clip(np.floor(t * c + 0.5), 0, t)
    np.testing.assert_array_equal(out.cumulative[:, 0], counts * theta)
    for step in range(1, num_steps + 1):
        np.testing.assert_array_equal(qcfs_levels(z[0], lam, step), counts[step - 1])
        if step & (step - 1) == 0:
            rate = out.cumulative[step - 1, 0] / step
            np.testing.assert_array_equal(rate, qcfs(z[0], lam, step))
    assert counts[2**a - 1, 4] == j  # the tie fired
    assert np.all(counts[:, 5:7] == 0) and np.all(counts[:, 7] == t[:, 0])
    u = np.asarray(out.membrane["act"]["v"][0])  # v / θ
    np.testing.assert_array_equal(u, 0.5 + num_steps * c - counts[-1])  # charge conservation
    z7, theta7 = c[7] * theta[7], theta[7]  # z ≥ θ: v grows as θ/2 + t(z − θ)
    np.testing.assert_array_equal(u[7] * theta7, theta7 / 2 + num_steps * (z7 - theta7))
    np.testing.assert_array_equal(out.membrane["act"]["count"][0], counts[-1])


# --------------------------------------------------------------------------- I-2


@settings(max_examples=50, deadline=None)
@given(
    levels=st.integers(1, 16),
    log_lam=st.integers(-3, 3),
    k=st.integers(0, 5),
    numerators=st.lists(st.integers(-64, 600), min_size=8, max_size=8),
)
def test_qcfs_levels_zero_and_saturation_sets(levels, log_lam, k, numerators):
    """I-2: h(z) = kλ/L with k = clip(⌊Lz/λ + ½⌋, 0, L); h = 0 iff z < λ/(2L); h = λ iff
    z ≥ λ(1 − 1/(2L)). Dyadic z/λ (then Lz/λ is exact for any L); λ a power of two. h is the
    float32 kλ/L exactly when L is a power of two; otherwise within two ulps (XLA computes /L as
    ·fl(1/L), which is not always the correctly rounded quotient)."""
    lam = 2.0**log_lam
    c = np.asarray(numerators, np.float64) / 2**k
    power_of_two = levels & (levels - 1) == 0
    if power_of_two:  # the boundaries (i − ½)/L and just below them are dyadic
        edges = (np.arange(1, levels + 1) - 0.5) / levels
        c = np.concatenate([c, edges, edges - 2.0**-12])
    x = jnp.asarray(c * lam, F32)
    y = np.asarray(qcfs(x, F32(lam), levels))
    level = np.clip(np.floor(levels * c + 0.5), 0, levels)
    np.testing.assert_array_equal(qcfs_levels(x, F32(lam), levels), level)
    exact = level * lam / levels
    if power_of_two:
        np.testing.assert_array_equal(y, exact)
    else:
        assert np.all(np.abs(y - exact) <= 2 * np.spacing(exact.astype(np.float32)))
    np.testing.assert_array_equal(y == 0, 2 * levels * c < 1)
    np.testing.assert_array_equal(y == lam, 2 * levels * c >= 2 * levels - 1)


@settings(max_examples=50, deadline=None)
@given(
    xs=st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=16),
    lam=st.floats(2.0**-10, 1024.0, width=32),
    levels=st.integers(1, 32),
)
def test_qcfs_old_and_new_operation_orders_agree(xs, lam, levels):
    """I-2: the new-repo order λ·⌊clip(z/λ, 0, 1)·L + ½⌋/L gives the same float32 forward value as
    the old order (the library's) for every input: bit for bit, any λ, any L, evaluated op by op.
    (Under one jit XLA may reassociate the trailing /L·λ of one expression and not the other.)"""
    x, theta = jnp.asarray(xs, F32), F32(lam)
    new_order = jnp.floor(jnp.clip(x / theta, 0, 1) * levels + 0.5) / levels * theta
    np.testing.assert_array_equal(qcfs(x, theta, levels), new_order)


def _qcfs_grads(x, lam, levels):
    grad_x = jax.vmap(jax.grad(lambda v, t: qcfs(v, t, levels)), (0, None))(x, lam)
    grad_lam = jax.vmap(jax.grad(lambda v, t: qcfs(v, t, levels), argnums=1), (0, None))(x, lam)
    return np.asarray(grad_x), np.asarray(grad_lam)


@settings(max_examples=40, deadline=None)
@given(
    log_levels=st.integers(0, 4),
    log_lam=st.integers(-3, 3),
    k=st.integers(0, 5),
    numerators=st.lists(st.integers(-64, 600), min_size=8, max_size=8),
)
def test_qcfs_gradients_exact(log_levels, log_lam, k, numerators):
    """I-2 (QCFS surrogate): with q = ⌊Lz/λ + ½⌋/L, ∂h/∂z = 1[0 ≤ q ≤ 1] ∈ {0, 1} and
    ∂h/∂λ = clip(q, 0, 1) − 1[0 ≤ q ≤ 1]·z/λ, exactly (L, λ powers of two, dyadic z/λ)."""
    levels, lam = 2**log_levels, 2.0**log_lam
    c = np.concatenate([np.asarray(numerators, np.float64) / 2**k, [-0.5 / levels, 1.0]])
    grad_x, grad_lam = _qcfs_grads(jnp.asarray(c * lam, F32), F32(lam), levels)
    q = np.floor(levels * c + 0.5) / levels
    inside = (q >= 0) & (q <= 1)
    np.testing.assert_array_equal(grad_x, inside)
    np.testing.assert_array_equal(grad_lam, np.clip(q, 0, 1) - inside * c)
    assert grad_x[-2] == 1.0 and grad_x[-1] == 1.0  # q = 0 and q = 1 are inside (clamp rule)


@settings(max_examples=30, deadline=None)
@given(
    xs=st.lists(st.floats(-20, 20, width=32), min_size=8, max_size=8),
    lam=st.floats(1 / 16, 10, width=32),
    levels=st.integers(1, 16),
)
def test_qcfs_input_gradient_is_a_mask_up_to_rounding(xs, lam, levels):
    """I-2: ∂h/∂z = 1[0 ≤ q ≤ 1] for any λ and L. The λ and L factors cancel only up to float32
    rounding (λ/L·L/λ), so off powers of two the ones may be 1 ± 2 ulp; the zeros are exact."""
    x, theta = jnp.asarray(xs, F32), F32(lam)
    grad_x, _ = _qcfs_grads(x, theta, levels)
    q = np.asarray(jnp.floor(x / theta * levels + 0.5) / levels)  # the library's own q
    inside = (q >= 0) & (q <= 1)
    np.testing.assert_array_equal(grad_x[~inside], 0.0)
    assert np.all(np.abs(grad_x[inside] - 1.0) <= 2 * np.finfo(np.float32).eps)


# --------------------------------------------------------------------------- I-3


@functools.partial(jax.jit, static_argnames=("neuron", "num_steps"))
def _kernel_run(neuron, x, theta, v0, *, num_steps):
    """Cumulative spike counts ``[T, ...]`` and the final potential of a kernel, constant input."""

    def step(state, _):
        spikes, state = neuron.step(x, state, threshold=theta)
        return state, spikes

    final, spikes = jax.lax.scan(step, neuron.init_state(x.shape, x.dtype, v0), None, num_steps)
    return jnp.cumsum(spikes, axis=0), final.v


@settings(max_examples=30, deadline=None)
@given(
    log_t=st.integers(0, 4),
    cap=st.integers(1, 4),
    log_theta=st.integers(-2, 2),
    k=st.integers(0, 4),
    numerators=st.lists(st.integers(-40, 200), min_size=8, max_size=8),
)
def test_burst_kernel_counts_and_cal_final_count(log_t, cap, log_theta, k, numerators):
    """I-3 on the kernel ``IF(M, shift=1/(2T))``: mem(0) = 0, shift θ/(2T), cap M, constant z:
    N(t) = clip(⌊t(z/θ + 1/(2T))⌋, 0, tM) for t ≤ T, N(T) = clip(⌊Tz/θ + ½⌋, 0, TM). M = 1 (CAL)
    ends on the I-1 count of IF(v0 = θ/2), with the I-3 (not the I-1) intermediate counts."""
    num_steps, theta = 2**log_t, F32(2.0**log_theta)
    c = np.asarray(numerators, np.float64) / 2**k
    x = jnp.asarray(c, F32) * theta
    t = _steps(num_steps)
    shift = 1 / (2 * num_steps)
    final = np.clip(np.floor(num_steps * c + 0.5), 0, None)
    cal = None
    for m in sorted({cap, 1}):
        counts, _ = _kernel_run(IF(m, shift), x, theta, 0.0, num_steps=num_steps)
        np.testing.assert_array_equal(counts, np.clip(np.floor(t * (c + shift)), 0, t * m))
        np.testing.assert_array_equal(counts[-1], np.minimum(final, num_steps * m))
        cal = counts if m == 1 else cal
    if_counts, _ = _kernel_run(IF(), x, theta, 0.5, num_steps=num_steps)
    np.testing.assert_array_equal(if_counts, np.clip(np.floor(t * c + 0.5), 0, t))
    np.testing.assert_array_equal(cal[-1], if_counts[-1])


# --------------------------------------------------------------------------- I-4, I-5


@settings(max_examples=50, deadline=None)
@given(
    m=st.lists(st.integers(-8, 40), min_size=1, max_size=6),
    k=st.integers(0, 4),
    tau=st.integers(0, 6),
    num_steps=st.integers(1, 12),
)
def test_srp_single_layer_constant_input(m, k, tau, num_steps):
    """I-4: count after T sim steps = mask · clip(floor(T·c + 1/2), 0, T), mask = 1[r > 1e-3];
    τ = 0, or every mask 1, gives the plain QCFS run. I-5: τ + T forward calls."""
    c = np.asarray(m, np.float64) / 2**k  # z/θ, dyadic: exact in float32
    x = jnp.asarray(c, jnp.float32)[None, :]
    params = {"act": _params(jnp.float32(1.0))}
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
    params = {"act": _params(jnp.float32(1.0))}
    out = simulate_srp(_OneLayer(), params, x, presim=4, num_steps=8)
    assert float(out.sim.cumulative[-1, 0, 0]) == 0.0


# δ around the SRP tolerance: 2^-10 ≈ 0.00098 < 1e-3 < 2^-9 ≈ 0.00195.
_DELTAS = np.array([-(2.0**-10), 0.0, 2.0**-12, 2.0**-10, 2.0**-9, 2.0**-6])


@settings(max_examples=30, deadline=None)
@given(
    log_tau=st.integers(0, 3),
    num_steps=st.sampled_from([1, 3, 8]),
    log_theta=st.integers(-2, 2),
    data=st.data(),
)
def test_srp_silencing_interval_and_masked_dynamics(log_tau, num_steps, log_theta, data):
    """I-4: with c = z/θ ∈ [(k − ½)/τ, (k − ½ + 1e-3)/τ], k = 1..τ, the neuron is silenced, and
    just outside it is not. I-5: masked neurons keep integrating and soft-resetting exactly as
    unmasked ones (final v = θ/2 + Tz − θN(T) for every neuron); only the emitted value is 0."""
    tau = 2**log_tau
    ks = np.asarray(data.draw(st.lists(st.integers(1, tau), min_size=6, max_size=6), label="k"))
    c = (ks - 0.5 + _DELTAS) / tau  # τc + ½ = k + δ: dyadic, exact in float32
    theta = F32(2.0**log_theta)
    x = jnp.asarray(c[None], F32) * theta
    model = _Layer(masked=True)
    params = {"act": _params(jnp.full((6,), theta))}
    out = simulate_srp(model, params, x, presim=tau, num_steps=num_steps)
    silenced = (_DELTAS >= 0) & (_DELTAS <= 1e-3)  # the documented interval
    n_tau = np.clip(np.floor(tau * c + 0.5), 0, tau)
    assert np.array_equal(0.5 + tau * c - n_tau > 1e-3, ~silenced)  # the interval is I-4's rule
    membrane = out.sim.membrane["act"]
    np.testing.assert_array_equal(membrane["mask"][0], ~silenced)
    n_t = np.clip(np.floor(num_steps * c + 0.5), 0, num_steps)
    np.testing.assert_array_equal(membrane["count"][0], ~silenced * n_t)
    np.testing.assert_array_equal(out.sim.cumulative[-1, 0], ~silenced * n_t * float(theta))
    np.testing.assert_array_equal(membrane["v"][0], 0.5 + num_steps * c - n_t)


# --------------------------------------------------------------------------- I-7

_NORMALISATION_STEPS = 8


@settings(max_examples=30, deadline=None)
@given(
    xs=st.lists(st.floats(-8, 8, width=32), min_size=24, max_size=24),
    lam=st.floats(1 / 64, 16, width=32),
    neuron=st.sampled_from([IF(), IF(3, shift=1 / (2 * _NORMALISATION_STEPS))]),
)
def test_threshold_normalisation_is_bit_exact(xs, lam, neuron):
    """I-7: a layer with (layer-wise) threshold θ on input x emits exactly θ × (the same layer with
    threshold 1 on x/θ, x/θ computed once per step by IEEE division, as the repos do), bit for bit
    for any float32 x and θ, and the normalised membranes agree.

    Layer-wise θ is the repos' case (QCFS/SRP). Per-channel θ with a batch > 1 is *not* bit-exact
    on XLA:CPU, which rewrites ``x / broadcast(θ)`` as ``x · (1/θ)``."""
    x = np.asarray(xs, np.float32).reshape(2, 2, 2, 3)
    theta = np.float32(lam)
    model = _Layer(neuron=neuron, per_channel=False)
    mode = "half" if neuron.max_spikes == 1 else "zero"
    membrane = convert.init_membrane(model, x.shape, mode)

    def run(threshold, inputs):
        params = {"act": _params(jnp.asarray(threshold, F32), neuron.max_spikes)}
        return simulate(
            model, params, membrane, jnp.asarray(inputs), num_steps=_NORMALISATION_STEPS
        )

    out, unit = run(theta, x), run(1.0, x / theta)  # numpy: correctly rounded x/θ
    np.testing.assert_array_equal(out.outputs, theta * np.asarray(unit.outputs))
    np.testing.assert_array_equal(out.membrane["act"]["v"], unit.membrane["act"]["v"])


@settings(max_examples=30, deadline=None)
@given(
    log_t=st.integers(0, 4),
    log_theta=st.integers(-3, 3),
    k=st.integers(0, 4),
    numerators=st.lists(st.integers(-40, 200), min_size=8, max_size=8),
    cap=st.integers(1, 3),
)
def test_normalised_neurons_equal_raw_unit_neurons(log_t, log_theta, k, numerators, cap):
    """I-7 (threshold scaling): Neuron(θ, x) = θ·Neuron(1, x/θ). The library's normalised IF
    (u = v/θ) and burst neurons against raw-unit references (v += x, fire v ≥ θ, v −= sθ), exact
    arithmetic."""
    num_steps, theta = 2**log_t, 2.0**log_theta
    z = np.asarray(numerators, np.float64) / 2**k * theta
    x = jnp.asarray(z, F32)
    shift = 1 / (2 * num_steps)
    for neuron, u0, delta, m in [(IF(), 0.5, 0.0, 1), (IF(cap, shift), 0.0, shift, cap)]:
        counts, u = _kernel_run(neuron, x, F32(theta), u0, num_steps=num_steps)
        v, total, raw_counts = u0 * theta, np.zeros_like(z), []
        for _ in range(num_steps):  # raw units: charge, fire, subtract what was fired
            v = v + z + delta * theta
            s = np.clip(np.floor(v / theta), 0, m)  # v/θ is exact: θ is a power of two
            v, total = v - s * theta, total + s
            raw_counts.append(total)
        np.testing.assert_array_equal(counts, np.stack(raw_counts))
        np.testing.assert_array_equal(np.asarray(u) * theta, v)


# --------------------------------------------------------------------------- I-8


class _MLP(nn.Module):
    """Dense → activation → Dense readout (the readout stays analog in the SNN)."""

    act: Callable = QCFS

    @nn.compact
    def __call__(self, x, train=False):
        x = self.act(name="fc1_act")(nn.Dense(4, name="fc1")(x))
        return nn.Dense(3, name="head")(x)


@functools.cache
def _mlp_pair(levels: int):
    """(ANN with QCFS(L), its SNN): cached so jitted simulations are traced once per L."""
    ann = _MLP(act=functools.partial(QCFS, levels=levels))
    return ann, convert.make_snn_model(ann)


def _dyadic(draw, shape, bound, denominator):
    size = int(np.prod(shape))
    values = draw(st.lists(st.integers(-bound, bound), min_size=size, max_size=size))
    return np.asarray(values, np.float64).reshape(shape) / denominator


@settings(max_examples=30, deadline=None)
@given(log_t=st.integers(0, 3), log_lam=st.integers(-1, 2), data=st.data())
def test_readout_sum_mean_and_argmax(log_t, log_lam, data):
    """I-8: the analog readout's bias is added every step, so the running sum after t steps is
    t·(W r̄_t + b) with r̄_t the hidden layer's mean emitted value; argmax(sum) = argmax(mean) at
    every t; and with L = T the T-step mean is the QCFS ANN's logits exactly (I-1 + I-8)."""
    num_steps, lam = 2**log_t, 2.0**log_lam
    x = _dyadic(data.draw, (2, 3), 8, 4)
    w1, b1 = _dyadic(data.draw, (3, 4), 8, 4), _dyadic(data.draw, (4,), 8, 8)
    w2, b2 = _dyadic(data.draw, (4, 3), 8, 4), _dyadic(data.draw, (3,), 8, 8)
    labels = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=2, max_size=2)))
    params = {
        "fc1": {"kernel": w1, "bias": b1},
        "fc1_act": {"threshold": lam},
        "head": {"kernel": w2, "bias": b2},
    }
    params = jax.tree.map(lambda a: jnp.asarray(a, F32), params)
    ann, snn = _mlp_pair(num_steps)
    images = jnp.asarray(x, F32)
    _, snn_params = convert.convert(ann, {"params": params})
    membrane = convert.init_membrane(snn, images.shape)
    cumulative = simulate(snn, snn_params, membrane, images, num_steps=num_steps).cumulative
    t = np.arange(1, num_steps + 1, dtype=np.float64)[:, None, None]
    counts = np.clip(np.floor(t * (x @ w1 + b1) / lam + 0.5), 0, t)  # I-1, first layer
    np.testing.assert_array_equal(cumulative, (lam * counts) @ w2 + t * b2)
    np.testing.assert_array_equal(cumulative[-1] / num_steps, ann.apply({"params": params}, images))
    sums = np.asarray(cumulative)
    mean_argmax = [
        [max(range(3), key=lambda j: Fraction(float(sums[s, b, j])) / (s + 1)) for b in range(2)]
        for s in range(num_steps)
    ]  # exact means; max() keeps the first maximum, as argmax does
    hits = np.sum(np.asarray(mean_argmax) == labels[None], axis=1)
    np.testing.assert_array_equal(metrics.correct_per_step(cumulative, jnp.asarray(labels)), hits)
