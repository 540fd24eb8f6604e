"""Calibration family: layer plumbing, thresholds (I-9), corrections (I-10), IC-SNN, the methods."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn import convert, methods, models
from jaxsnn.methods.common import simulate_from
from jaxsnn.methods.correction import Pass, _surrogate, bias_calibration, potential_calibration
from jaxsnn.methods.thresholds import (
    DEAD_LAYER_THRESHOLD,
    batch_threshold,
    determine_thresholds,
    mse_candidates,
    surrogate,
)
from jaxsnn.models import QCFS, ReLU, activation_layers, ann_activations, producer_of
from jaxsnn.neurons import IF, SpikingActivation
from jaxsnn.simulate import compensated_logits, compensated_rate, simulate, spike_rates
from jaxsnn.tree import layer_leaves

CALIBRATION_METHODS = [m for m in methods.names() if methods.get(m).needs_data]

SHAPE = (16, 8, 8, 3)
T = 8

EXPECTED_PRODUCERS = {
    "_CNNTiny": {"conv1_act": "conv1/conv", "fc1_act": "fc1"},
    "_VGGTiny": {
        "block1_conv1_act": "block1_conv1/conv",
        "block2_conv1_act": "block2_conv1/conv",
        "fc1_act": "fc1",
        "fc2_act": "fc2",
    },
    "_ResNetTiny": {
        "stem_act": "stem/conv",
        "stage1_block1/act1": "stage1_block1/conv1/conv",
        "stage1_block1/act2": "stage1_block1/conv2/conv",
        "stage2_block1/act1": "stage2_block1/conv1/conv",
        "stage2_block1/act2": "stage2_block1/conv2/conv",
    },
}


@functools.cache
def _setup(arch: str, seed: int = 0):
    ann = models.get_model(arch, num_classes=5, act=ReLU)
    variables = models.init_variables(ann, jax.random.key(seed), SHAPE)
    x = jax.random.normal(jax.random.key(seed + 10), SHAPE)
    return ann, variables, x


def _errors(result, ann, variables, x):
    """Last hidden layer: mean |per-channel mean error| and mean |per-position mean error|."""
    _, acts = ann_activations(ann, variables, x)
    membrane = convert.init_membrane(result.model, x.shape, result.membrane_init)
    out = simulate(result.model, result.params, membrane, x, num_steps=T)
    last = result.fields["layers"][-1]
    d = spike_rates(result.params, out.membrane, T)[last] - acts[last]
    per_channel = jnp.mean(jnp.abs(jnp.mean(d, axis=tuple(range(d.ndim - 1)))))
    per_position = jnp.mean(jnp.abs(jnp.mean(d, axis=0)))
    return float(per_channel), float(per_position)


def _run(arch, name, **options):
    ann, variables, x = _setup(arch)
    batch = {"image": x, "label": jnp.arange(SHAPE[0]) % 5}
    return methods.convert(name, ann, variables, [batch], {**options, "T": T})


# --------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("arch", sorted(EXPECTED_PRODUCERS))
def test_layers_and_producers_on_every_architecture(arch):
    ann, variables, _ = _setup(arch)
    layers = activation_layers(ann, variables, SHAPE)
    assert layers == list(EXPECTED_PRODUCERS[arch])  # forward order (stem first)
    folded = convert.fold_batchnorm(variables["params"], variables["batch_stats"])
    assert {a: producer_of(a, folded) for a in layers} == EXPECTED_PRODUCERS[arch]
    with pytest.raises(ValueError, match="infer"):
        producer_of("stage1_block1/relu", folded)


# --------------------------------------------------------------------------- thresholds


def test_mse_search_grid_ties_and_reference():
    """I-9: θ ∈ {max·(1 − 0.01 i)}, minimal surrogate error, ties keep the larger V."""
    acts = jax.nn.relu(jax.random.normal(jax.random.key(0), (6, 4, 4, 3)))
    for channel_wise in (True, False):
        theta = batch_threshold(
            acts, mode="mse", num_steps=T, max_spikes=2, channel_wise=channel_wise
        )
        x2d = acts.reshape((-1, 3)) if channel_wise else acts.reshape((-1, 1))
        grid = mse_candidates(jnp.max(x2d, axis=0))  # [95, C]
        errors = jax.vmap(lambda v: jnp.sum(jnp.square(surrogate(x2d, v[None], T, 2) - x2d), 0))(
            grid
        )
        best = jnp.min(errors, axis=0)
        theta = jnp.reshape(theta, (-1,))
        assert bool(jnp.all(jnp.any(grid == theta[None], axis=0)))
        chosen = jnp.sum(jnp.square(surrogate(x2d, theta[None], T, 2) - x2d), 0)
        np.testing.assert_allclose(chosen, best, rtol=1e-5)
    # x ≡ 1 with M = 2: V = 1 and V = 0.5 are both exact (error 0); the larger one wins.
    ones = jnp.ones((2, 2, 2, 2))
    np.testing.assert_array_equal(
        batch_threshold(ones, mode="mse", num_steps=4, max_spikes=2), [1.0, 1.0]
    )


def test_dead_channels_and_dead_layer_get_safe_thresholds():
    ann, variables, x = _setup("_CNNTiny")
    params = jax.tree.map(lambda a: a, variables["params"])
    params["conv1"]["bn"]["bias"] = params["conv1"]["bn"]["bias"].at[0].set(-1e3)  # dead channel
    params["fc1"]["bias"] = jnp.full_like(params["fc1"]["bias"], -1e3)  # dead layer
    dead = {"params": params, "batch_stats": variables["batch_stats"]}
    for mode in ("max", "percentile", "mse"):
        theta = determine_thresholds(ann, dead, [x, 2 * x], num_steps=T, mode=mode)
        for value in theta.values():
            assert np.all(np.isfinite(value)) and np.all(value > 0)
        assert theta["conv1_act"][0] == np.max(theta["conv1_act"][1:])
        assert theta["fc1_act"] == np.float32(DEAD_LAYER_THRESHOLD)


def test_threshold_ema_over_first_seven_batches():
    ann, variables, x = _setup("_CNNTiny")
    batches = [x * (1 + 0.25 * i) for i in range(9)]
    theta = determine_thresholds(ann, variables, batches, num_steps=T, mode="max")
    expected = None
    for images in batches[:7]:
        m = jnp.max(ann_activations(ann, variables, images)[1]["fc1_act"])
        expected = m if expected is None else 0.9 * expected + 0.1 * m
    np.testing.assert_allclose(theta["fc1_act"], expected, rtol=1e-6)
    assert theta["conv1_act"].shape == (4,)


# --------------------------------------------------------------------------- corrections


def _burst_snn(arch):
    ann, variables, x = _setup(arch)
    layers = activation_layers(ann, variables, SHAPE)
    folded = convert.fold_batchnorm(variables["params"], variables["batch_stats"])
    thresholds = determine_thresholds(ann, variables, [x], num_steps=T, mode="mse")
    model = convert.make_snn_model(ann, IF(shift=1 / (2 * T)), per_channel=True, track_counts=True)
    shapes = convert.threshold_shapes(model, SHAPE)
    params = convert.to_snn_params(folded, thresholds, 1, shapes=shapes)
    return model, params, layers, ann_activations(ann, variables, x)[1], x


def test_first_layer_corrections_follow_the_formulas():
    """I-10: b ← b − (S̄ − Ā) per channel; u0 = T(Ā − S̄)/θ per neuron position."""
    model, params, layers, acts, x = _burst_snn("_ResNetTiny")
    zero = {k: 0.0 for k in layers}
    membrane = simulate_from(model, params, zero, x, T).membrane
    s, a = spike_rates(params, membrane, T)["stem_act"], acts["stem_act"]
    new = bias_calibration(Pass(model, x, acts, layers[:1], T), params, zero)
    np.testing.assert_allclose(
        new["stem"]["conv"]["bias"],
        params["stem"]["conv"]["bias"] - (jnp.mean(s, (0, 1, 2)) - jnp.mean(a, (0, 1, 2))),
        rtol=1e-6,
        atol=1e-6,
    )
    u0 = potential_calibration(Pass(model, x, acts, layers[:1], T), params, zero)
    theta = params["stem_act"]["threshold"].reshape((1, 1, -1))
    np.testing.assert_allclose(
        u0["stem_act"], T * (jnp.mean(a, 0) - jnp.mean(s, 0)) / theta, rtol=1e-5, atol=1e-6
    )
    assert float(u0["stage1_block1/act1"]) == 0.0  # later layers untouched


def test_calibration_reduces_conversion_error():
    """On the calibration batch: light < none (per-channel mean error), advanced < light < none
    (per-position mean error) at the last hidden layer of a residual net."""
    none = _errors(_run("_ResNetTiny", "calib_mse"), *_setup("_ResNetTiny"))
    light = _errors(_run("_ResNetTiny", "calib_light"), *_setup("_ResNetTiny"))
    advanced = _errors(_run("_ResNetTiny", "calib_advanced"), *_setup("_ResNetTiny"))
    assert light[0] < none[0]
    assert advanced[1] < light[1] < none[1]


def test_weight_calibration_only_changes_producer_kernels():
    result = _run(
        "_CNNTiny",
        "calib_advanced",
        weight_calib_iters=3,
        weight_calib_lr=1e-2,
        weight_calib_batch=4,
        advanced_correction="bias",
    )
    ann, variables, _ = _setup("_CNNTiny")
    folded = convert.fold_batchnorm(variables["params"], variables["batch_stats"])
    for producer in ("conv1/conv", "fc1"):
        node_new, node_old = result.params, folded
        for part in producer.split("/"):
            node_new, node_old = node_new[part], node_old[part]
        assert not np.allclose(node_new["kernel"], node_old["kernel"])
    np.testing.assert_array_equal(result.params["head"]["kernel"], folded["head"]["kernel"])


@settings(max_examples=30, deadline=None)
@given(
    log_t=st.integers(0, 4),
    cap=st.integers(1, 4),
    log_theta=st.integers(-2, 2),
    numerators=st.lists(st.integers(-40, 200), min_size=8, max_size=8),
)
def test_weight_calibration_fits_the_neuron_it_calibrates(log_t, cap, log_theta, numerators):
    """The default surrogate is the burst neuron's T-step mean output (θ/(2T) shift, cap M) on
    constant input, exactly; the reference surrogate (no ½) is half a level below it."""
    num_steps, theta = 2**log_t, jnp.float32(2.0**log_theta)
    z = jnp.asarray(np.asarray(numerators) / 16, jnp.float32) * theta  # dyadic: exact
    neuron = IF(max_spikes=cap, shift=1 / (2 * num_steps))

    def step(state, _):
        spikes, state = neuron.step(z, state, threshold=theta)
        return state, spikes

    _, spikes = jax.lax.scan(step, neuron.init_state(z.shape, z.dtype, 0.0), None, num_steps)
    mean_output = theta * jnp.sum(spikes, axis=0) / num_steps
    ours = _surrogate(z, theta, jnp.float32(cap), num_steps, half_shift=True)
    np.testing.assert_array_equal(ours, mean_output)
    reference = _surrogate(z, theta, jnp.float32(cap), num_steps, half_shift=False)
    c = np.asarray(numerators) / 16
    np.testing.assert_array_equal(
        reference, theta / num_steps * np.floor(num_steps * np.clip(c, 0, cap))
    )


# --------------------------------------------------------------------------- IC-SNN


def test_icsnn_a2_reduces_rate_error_vs_a1():
    a1 = _errors(_run("_ResNetTiny", "icsnn", icsnn_init="a1"), *_setup("_ResNetTiny"))
    a2 = _errors(_run("_ResNetTiny", "icsnn"), *_setup("_ResNetTiny"))
    assert a2[1] < a1[1]


def test_icsnn_a1_on_a_qcfs_ann_is_the_plain_qcfs_conversion():
    """A1 = OPI: θ = λ, v(0) = θ/2, IF neurons (cap 1, no shift) — bit-for-bit convert()."""
    ann = models.get_model(
        "_CNNTiny", num_classes=5, act=functools.partial(QCFS, levels=4, init_threshold=1.0)
    )
    variables = models.init_variables(ann, jax.random.key(1), SHAPE)
    _, _, x = _setup("_CNNTiny")
    result = methods.convert("icsnn", ann, variables, [{"image": x}], {"icsnn_init": "a1", "T": T})
    assert result.membrane_init == "half" and result.fields["threshold_mode"] == "ann_lambda"
    ref_model, ref_params = convert.convert(ann, variables, track_counts=True)
    ref = simulate(ref_model, ref_params, convert.init_membrane(ref_model, SHAPE), x, num_steps=T)
    out = simulate(
        result.model, result.params, convert.init_membrane(result.model, SHAPE), x, num_steps=T
    )
    np.testing.assert_array_equal(out.cumulative, ref.cumulative)


class _OneIF(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return SpikingActivation(per_channel=True, track_counts=True, name="act")(x)


def test_a3_compensated_rate_is_the_mean_input():
    """Σ_t x = θN(T) + v(T) − v(0): the compensated rate equals the constant input exactly."""
    theta, steps = 0.5, 8
    z = jnp.asarray([[-0.75, -0.125, 0.0, 0.0625, 0.1875, 0.25, 0.4375, 0.5, 0.75, 1.5]])
    model = _OneIF()
    params = {"act": {"threshold": jnp.full((10,), theta), "max_spikes": jnp.asarray(1.0)}}
    membrane0 = convert.init_membrane(model, z.shape, "half")
    out = simulate(model, params, membrane0, z, num_steps=steps)
    v0, vt, n = membrane0["act"]["v"], out.membrane["act"]["v"], out.membrane["act"]["count"]
    np.testing.assert_array_equal(compensated_rate(n, vt, v0, theta, steps), z)
    np.testing.assert_array_equal(
        compensated_rate(n, vt, v0, theta, steps, max_spikes=1.0), jnp.clip(z, 0, theta)
    )


def test_compensated_logits_apply_the_readout_to_the_compensated_rate():
    result = _run("_CNNTiny", "icsnn")
    assert result.fields["compensation_layer"] == "fc1_act"
    _, _, x = _setup("_CNNTiny")
    membrane0 = convert.init_membrane(result.model, x.shape, result.membrane_init)
    out = simulate(result.model, result.params, membrane0, x, num_steps=T)
    logits = compensated_logits(
        result.model, result.params, membrane0, out.membrane, x, num_steps=T, layer="fc1_act"
    )
    p = result.params
    rate = compensated_rate(
        out.membrane["fc1_act"]["count"],
        out.membrane["fc1_act"]["v"],
        membrane0["fc1_act"]["v"],
        p["fc1_act"]["threshold"],
        T,
        max_spikes=1.0,
    )
    np.testing.assert_allclose(
        logits, rate @ p["head"]["kernel"] + p["head"]["bias"][None], rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------- entry point


@pytest.mark.parametrize("name", CALIBRATION_METHODS)
def test_calibrate_every_method(name):
    arch = "_ResNetTiny" if name in ("burst", "ssc") else "_CNNTiny"
    options = {
        k: v
        for k, v in dict(
            initial_spikes=3,
            max_spikes=2,
            min_spikes=1,
            ssc_ratios=(1.0, 2.0, 4.0),
            spike_budget_ratio=1.0,
            threshold_ratio=2.0,
            iat=name == "ssc",
        ).items()
        if k in methods.get(name).defaults()
    }
    result = _run(arch, name, **options)
    fields = json.loads(json.dumps(result.fields))
    assert fields["method"] == name
    _, _, x = _setup(arch)
    membrane = convert.init_membrane(result.model, x.shape, result.membrane_init)
    out = simulate(result.model, result.params, membrane, x, num_steps=T)
    assert bool(jnp.all(jnp.isfinite(out.cumulative)))
    thresholds = convert.extract_thresholds(result.params)  # finite and > 0
    assert set(thresholds) == set(fields["layers"])
    caps = layer_leaves(result.params, "max_spikes")
    assert {k: int(v) for k, v in caps.items()} == fields["max_spikes_per_layer"]
    if name in ("burst", "ssc"):
        assert set(fields["max_spikes_per_layer"].values()) <= {1, 2, 3}
        chosen = [fields["max_spikes_per_layer"][k] - 1 for k in fields["layers"]]
        energy = np.asarray(fields["cap_energy"])
        assert energy[np.arange(len(chosen)), chosen].sum() <= fields["spike_budget"]
    if name == "ssc":
        assert set(fields["ssc_ratios"].values()) <= {1.0, 2.0, 4.0}
        assert len(result.iat["thresholds"]) == T
    with pytest.raises(ValueError, match="method"):
        _run(arch, "no_such_method")
    with pytest.raises(ValueError, match="max_spikes"):
        _run(arch, "burst", initial_spikes=3, max_spikes=5)
    with pytest.raises(ValueError, match="weight_calib_rounding"):
        _run(arch, "calib_advanced", weight_calib_rounding="nearest")
