"""The invariants (docs/methods.md#invariants) I-6, I-9, I-10 and I-12 as property tests
(coverage map: test_invariants.py).

Where the theory promises equality the inputs are dyadic (thresholds, T and batch sizes powers of
two), so the float32 computations are exact and compared bit for bit; BN folding (I-6) is checked
in float64 against a rounding bound.
"""

import copy
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn import convert
from jaxsnn.methods.common import snn_model, snn_params
from jaxsnn.methods.correction import Pass, bias_calibration, potential_calibration
from jaxsnn.methods.iat import fit_iat_thresholds, iat_predict, iat_summary, iat_sums
from jaxsnn.methods.thresholds import (
    DEAD_LAYER_THRESHOLD,
    batch_threshold,
    determine_thresholds,
    mse_candidates,
    surrogate,
)
from jaxsnn.models import ReLU, ann_activations
from jaxsnn.models.layers import ConvBN

F32 = jnp.float32


# --------------------------------------------------------------------------- I-6


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    kernel=st.sampled_from([1, 3]),
    strides=st.sampled_from([1, 2]),
    use_bias=st.booleans(),
    log_var_low=st.floats(-12, 0),
)
def test_fold_batchnorm_property(seed, kernel, strides, use_bias, log_var_low):
    """I-6: eval-mode conv → BN equals the folded conv (W' = Wγ/s, b' = β + (b − μ)γ/s,
    s = √(σ² + ε)) for any statistics (γ of either sign, σ² down to e^-12, strided, with and
    without conv bias): in float64 to ~1e-13 of the output's magnitude bound, in float32 to the
    documented 1e-5."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 5, 5, 3))
    w = rng.normal(size=(kernel, kernel, 3, 4))
    b = rng.normal(size=(4,))
    gamma, beta, mean = 2 * rng.normal(size=(4,)), rng.normal(size=(4,)), 2 * rng.normal(size=(4,))
    var = np.exp(rng.uniform(log_var_low, 2, size=(4,)))
    s = np.sqrt(var + 1e-5)
    bound = np.max(np.abs(gamma / s)) * (
        np.max(np.abs(x)) * np.max(np.sum(np.abs(w), axis=(0, 1, 2))) + np.max(np.abs(mean))
    ) + np.max(np.abs(beta))
    bound += np.max(np.abs(gamma / s)) * np.max(np.abs(b)) if use_bias else 0.0
    for dtype, rel in ((jnp.float64, 1e-13), (jnp.float32, 1e-5)):
        with jax.enable_x64(dtype == jnp.float64):
            module = ConvBN(4, kernel=kernel, strides=strides, use_bias=use_bias, param_dtype=dtype)
            conv = {"kernel": w, **({"bias": b} if use_bias else {})}
            params = {"conv": conv, "bn": {"scale": gamma, "bias": beta}}
            stats = {"bn": {"mean": mean, "var": var}}
            params, stats, images = jax.tree.map(
                lambda a: jnp.asarray(a, dtype), (params, stats, x)
            )
            ref = module.apply({"params": params, "batch_stats": stats}, images)
            folded = convert.fold_batchnorm(params, stats)
            out = module.clone(fold_bn=True).apply({"params": folded}, images)
            assert out.dtype == dtype
            assert float(jnp.max(jnp.abs(out - ref))) <= rel * bound


# --------------------------------------------------------------------------- I-9


@settings(max_examples=30, deadline=None)
@given(
    log_t=st.integers(0, 4),
    cap=st.integers(1, 4),
    log_v=st.lists(st.integers(-2, 3), min_size=3, max_size=3),
    k=st.integers(0, 4),
    numerators=st.lists(st.integers(-32, 400), min_size=12, max_size=12),
)
def test_surrogate_exact(log_t, cap, log_v, k, numerators):
    """I-9 (threshold search): the search's surrogate is Q(x; V) = (V/T)·⌊T·clip(x/V, 0, M)⌋,
    without the neuron's +½; a dead channel's V = 0 gives Q = 0 (guarded, no NaN). Exact: V, T
    powers of 2."""
    num_steps = 2**log_t
    v = np.array([*(2.0 ** np.asarray(log_v)), 0.0])
    x = np.asarray(numerators, np.float64).reshape(3, 4) / 2**k
    with np.errstate(divide="ignore", invalid="ignore"):
        q = v / num_steps * np.floor(num_steps * np.clip(x / v, 0, cap))
    expected = np.where(v > 0, q, 0.0)
    out = surrogate(jnp.asarray(x, F32), jnp.asarray(v, F32)[None], num_steps, cap)
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=50, deadline=None)
@given(
    v=st.floats(2.0**-10, 2.0**10, width=32, allow_nan=False, allow_infinity=False),
    num_steps=st.sampled_from([1, 2, 4, 32]),
)
def test_surrogate_at_the_threshold_is_the_threshold(v, num_steps):
    """I-9 (threshold search): at x = V, x/V = 1, so Q(V; V) = (V/T)⌊T⌋ = V and a constant channel
    has zero error at V = max: the search must return its max (ties keep the larger V). XLA:CPU
    rewrites x / broadcast(V) as x·fl(1/V), which is 1 − 2⁻²⁴ at x = V for about 13 % of float32 V
    (e.g. 47/16); the surrogate must divide exactly all the same."""
    a = np.float32(v)
    q = surrogate(jnp.full((8, 1), a), jnp.full((1, 1), a), num_steps, 1)
    theta = batch_threshold(
        jnp.full((2, 2, 2, 1), a), mode="mse", num_steps=num_steps, max_spikes=1
    )
    np.testing.assert_array_equal(q, np.full((8, 1), a))
    np.testing.assert_array_equal(theta, [a])


def test_surrogate_exact_at_the_known_reciprocal_case():
    """The value that exposed the rewrite: V = 47/16, T = 2 (Q was V/2, the search 2.908)."""
    a = np.float32(47 / 16)
    np.testing.assert_array_equal(surrogate(jnp.full((8, 1), a), jnp.full((1, 1), a), 2, 1), a)
    theta = batch_threshold(jnp.full((2, 2, 2, 1), a), mode="mse", num_steps=2, max_spikes=1)
    np.testing.assert_array_equal(theta, [a])


_C = 4


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.integers(0, 64), min_size=8 * _C, max_size=8 * _C),
    replacement=st.lists(st.integers(0, 64), min_size=8, max_size=8),
    log_const=st.integers(-4, 2),
    num_steps=st.sampled_from([2, 4, 8]),
    cap=st.sampled_from([1, 2, 4]),
)
def test_mse_search_grid_ties_channels(values, replacement, log_const, num_steps, cap):
    """I-9: the MSE threshold lies in {max·(1 − 0.01 i) : i = 0..94} and minimises the surrogate
    error; channel-wise thresholds have one entry per channel ([C], NHWC) and each depends on its
    own channel only; ties keep the larger V; a channel whose max is 0 gets V = 0; layer-wise
    (and Dense) thresholds are one scalar from the global max. The constant channel's value is a
    power of two, so that x/V = 1 is exact (see test_surrogate_at_the_threshold_is_the_threshold).
    """
    acts = np.asarray(values, np.float32).reshape(2, 2, 2, _C) / 16
    acts[..., 1] = 0.0  # dead channel
    const = np.float32(2.0**log_const)
    acts[..., 2] = const  # V = max has error 0; with M ≥ 2 so has V = max/2 (grid i = 50)

    def search(a, **kw):
        kw = {"mode": "mse", "num_steps": num_steps, "max_spikes": cap, **kw}
        return np.asarray(batch_threshold(jnp.asarray(a), **kw))

    theta = search(acts)
    assert theta.shape == (_C,)
    x2d = acts.reshape(-1, _C)
    grid = np.asarray(mse_candidates(jnp.max(jnp.asarray(x2d), axis=0)))  # [95, C]
    q = surrogate(jnp.asarray(x2d)[None], jnp.asarray(grid)[:, None, :], num_steps, cap)
    errors = np.sum(np.square(np.asarray(q) - x2d[None]), axis=1)  # [95, C]
    for c in range(_C):
        (hits,) = np.nonzero(grid[:, c] == theta[c])
        assert hits.size > 0, f"channel {c}: θ = {theta[c]} is not on the grid"
        # float32 sums in another order than the library's: 1e-6 relative slack, no more
        assert errors[hits[0], c] <= errors[:, c].min() * (1 + 1e-6)
    assert theta[1] == 0.0
    assert theta[2] == const
    other = acts.copy()
    other[..., 0] = np.asarray(replacement, np.float32).reshape(2, 2, 2) / 16
    np.testing.assert_array_equal(search(other)[1:], theta[1:])
    layer = search(acts, channel_wise=False)
    dense = search(acts.reshape(8, _C))
    assert layer.shape == dense.shape == ()
    layer_grid = np.asarray(mse_candidates(jnp.max(jnp.asarray(acts))))
    assert layer in layer_grid and dense in layer_grid


class _ReLUOnly(nn.Module):
    """An ANN whose only activation layer ('act') is the ReLU of the input."""

    @nn.compact
    def __call__(self, x, train=False):
        return ReLU(name="act")(x)


def _guarded(theta: np.ndarray) -> np.ndarray:
    """The documented guard for dead channels (θ ≤ 0): the layer's largest valid θ, else a floor."""
    valid = theta > 0
    fallback = np.max(theta[valid]) if np.any(valid) else DEAD_LAYER_THRESHOLD
    return np.where(valid, theta, fallback)


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(-16, 64), min_size=24, max_size=24), min_size=1, max_size=10
    ),
    flat=st.booleans(),
)
def test_threshold_ema_over_seven_batches(batches, flat):
    """I-9: thresholds are an EMA over exactly the first 7 batches (the first initialises,
    θ ← mθ + (1 − m)θ_batch, m = 0.9); per channel for 4-D activations, a scalar for 2-D ones.
    Exact with the dyadic momentum 0.5; m = 0.9 to float32 rounding; batch 8+ is ignored."""
    shape = (8, 3) if flat else (2, 2, 2, 3)
    images = [np.asarray(b, np.float32).reshape(shape) / 8 for b in batches]
    axes = None if flat else (0, 1, 2)
    maxima = [np.max(np.maximum(b, 0), axis=axes).astype(np.float64) for b in images[:7]]

    def ema(momentum):
        out = maxima[0]
        for m in maxima[1:]:
            out = momentum * out + (1 - momentum) * m
        return _guarded(out).astype(np.float32)

    def determine(batch_list, **kw):
        out = determine_thresholds(_ReLUOnly(), {}, batch_list, num_steps=4, mode="max", **kw)
        return out["act"]

    half = determine(images, momentum=0.5)
    assert half.shape == (() if flat else (3,))
    np.testing.assert_array_equal(half, ema(0.5))
    default = determine(images)
    np.testing.assert_array_equal(default, determine(images[:7]))
    np.testing.assert_allclose(default, ema(0.9), rtol=1e-6)


# --------------------------------------------------------------------------- I-10

_LAYERS = (("fc1", "fc1_act"), ("fc2", "fc2_act"))


class _MLP2(nn.Module):
    """Two hidden Dense+activation layers and an analog readout."""

    act: Callable = ReLU

    @nn.compact
    def __call__(self, x, train=False):
        x = self.act(name="fc1_act")(nn.Dense(4, name="fc1")(x))
        x = self.act(name="fc2_act")(nn.Dense(3, name="fc2")(x))
        return nn.Dense(2, name="head")(x)


@functools.cache
def _calibration_models(num_steps: int):
    ann = _MLP2()
    return ann, snn_model(ann, shift=1 / (2 * num_steps), per_channel=True)[0]


def _reference_counts(params, u0, x, thetas, cap, num_steps):
    """CAL/AdaFire SNN in float64, step-major: u += z/θ + 1/(2T); s = clip(⌊u⌋, 0, M); u −= s."""
    u = {layer: np.zeros((x.shape[0], thetas[layer].size)) + u0[layer] for _, layer in _LAYERS}
    counts = {layer: np.zeros_like(u[layer]) for _, layer in _LAYERS}
    for _ in range(num_steps):
        inputs = x
        for producer, layer in _LAYERS:
            z = inputs @ params[producer]["kernel"] + params[producer]["bias"]
            u[layer] = u[layer] + z / thetas[layer] + 1 / (2 * num_steps)
            spikes = np.clip(np.floor(u[layer]), 0, cap)
            u[layer] -= spikes
            counts[layer] += spikes
            inputs = spikes * thetas[layer]
    return counts


def _dyadic(data, shape, bound, denominator):
    size = int(np.prod(shape))
    values = data.draw(st.lists(st.integers(-bound, bound), min_size=size, max_size=size))
    return np.asarray(values, np.float64).reshape(shape) / denominator


@settings(max_examples=25, deadline=None)
@given(log_t=st.integers(1, 3), cap=st.integers(1, 3), data=st.data())
def test_calibration_is_sequential_and_exact(log_t, cap, data):
    """I-10: bias calibration sets b_l ← b_l − (S̄_l − Ā_l) and potential calibration
    u0_l = T(Ā_l − S̄_l)/θ_l per neuron position, where S_l is measured on the SNN whose layers < l
    are already corrected (sequential); the ANN and its outputs never change. Checked bit for bit
    against a float64 reference simulation (dyadic weights and inputs, θ and T powers of two)."""
    num_steps = 2**log_t
    x = _dyadic(data, (4, 3), 8, 4)
    ann_params = {
        "fc1": {"kernel": _dyadic(data, (3, 4), 8, 4), "bias": _dyadic(data, (4,), 8, 8)},
        "fc2": {"kernel": _dyadic(data, (4, 3), 8, 4), "bias": _dyadic(data, (3,), 8, 8)},
        "head": {"kernel": _dyadic(data, (3, 2), 8, 4), "bias": _dyadic(data, (2,), 8, 8)},
    }
    thetas = {
        layer: 2.0 ** np.asarray(data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n)))
        for layer, n in (("fc1_act", 4), ("fc2_act", 3))
    }
    ann, snn = _calibration_models(num_steps)
    variables = {"params": jax.tree.map(lambda a: jnp.asarray(a, F32), ann_params)}
    before = jax.tree.map(np.asarray, variables)
    images = jnp.asarray(x, F32)
    logits, acts = ann_activations(ann, variables, images)
    a1 = np.maximum(x @ ann_params["fc1"]["kernel"] + ann_params["fc1"]["bias"], 0)
    a2 = np.maximum(a1 @ ann_params["fc2"]["kernel"] + ann_params["fc2"]["bias"], 0)
    ann_acts = {"fc1_act": a1, "fc2_act": a2}
    for layer, a in ann_acts.items():
        np.testing.assert_array_equal(acts[layer], a)
    params = snn_params(snn, variables["params"], thetas, cap, images.shape)
    zero = {layer: 0.0 for _, layer in _LAYERS}
    layers = [layer for _, layer in _LAYERS]

    def rate_gap(p, u0, layer):  # S̄ − Ā over the batch, per neuron
        counts = _reference_counts(p, u0, x, thetas, cap, num_steps)[layer]
        return np.mean(counts * thetas[layer] / num_steps - ann_acts[layer], axis=0)

    expected = copy.deepcopy(ann_params)
    for producer, layer in _LAYERS:
        expected[producer]["bias"] = expected[producer]["bias"] - rate_gap(expected, zero, layer)
    sequential = Pass(snn, images, acts, layers, num_steps)
    new = bias_calibration(sequential, params, zero)
    for producer, _ in _LAYERS:
        np.testing.assert_array_equal(new[producer]["bias"], expected[producer]["bias"])
        np.testing.assert_array_equal(new[producer]["kernel"], params[producer]["kernel"])

    u0 = dict(zero)
    for _, layer in _LAYERS:
        u0[layer] = u0[layer] - num_steps * rate_gap(ann_params, u0, layer) / thetas[layer]
    got = potential_calibration(sequential, params, zero)
    for layer in layers:
        np.testing.assert_array_equal(got[layer], u0[layer])

    jax.tree.map(np.testing.assert_array_equal, variables, before)  # ANN untouched
    np.testing.assert_array_equal(ann_activations(ann, variables, images)[0], logits)


# --------------------------------------------------------------------------- I-12

_T, _B, _K = 5, 8, 4


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    valid=st.integers(1, _B),
    scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
    metric=st.sampled_from(["entropy", "confidence"]),
)
def test_iat_imagenet_thresholds_and_exits(seed, valid, scale, metric):
    """I-12 (ImageNet form): thresholds lie in (0.995, 1]; every sample exits at some t ≤ T; the
    mean exit step is in [1, T]; nobody exits early at a step whose threshold is 1 (score ≤ 1)."""
    key = jax.random.key(seed)
    cumulative = jnp.cumsum(scale * jax.random.normal(key, (_T, _B, _K)), axis=0)
    labels = jax.random.randint(jax.random.fold_in(key, 1), (_B,), 0, _K)
    mask = jnp.arange(_B) < valid
    tau = fit_iat_thresholds(cumulative, labels, mask, dataset_kind="imagenet")
    assert tau.shape == (_T,) and np.all((tau > 0.995) & (tau <= 1.0))
    exit_step, _ = iat_predict(cumulative, jnp.asarray(tau), metric=metric)
    exit_step = np.asarray(exit_step)
    assert np.all((exit_step >= 1) & (exit_step <= _T))
    for t in np.flatnonzero(tau[:-1] == 1.0) + 1:
        assert not np.any(exit_step == t)
    summary = iat_summary(iat_sums(cumulative, jnp.asarray(tau), labels, mask, metric=metric))
    assert 1.0 <= summary["mean_timesteps"] <= _T
