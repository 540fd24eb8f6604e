"""Simulation: scan == step-by-step loop, no retracing, sweeps == loops, T → ∞ limit."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsnn import convert, metrics, models
from jaxsnn import tree as tree_lib
from jaxsnn.models import QCFS
from jaxsnn.simulate import (
    simulate,
    simulate_srp,
    sweep_initial_potentials,
    sweep_threshold_scales,
)

SHAPE = (4, 8, 8, 3)
_SIMULATE_STATIC = ("model", "num_steps", "stats", "unroll")


@functools.cache
def _tiny():
    """A QCFS ResNet (L = 4) with thresholds near its activations' scale, and its SNN."""
    key = jax.random.key(0)
    ann = models.get_model(
        "_ResNetTiny", num_classes=5, act=functools.partial(QCFS, levels=4, init_threshold=1.0)
    )
    variables = models.init_variables(ann, key, SHAPE)
    x = jax.random.normal(jax.random.fold_in(key, 1), SHAPE)
    snn, params = convert.convert(ann, variables)
    return ann, variables, snn, params, x


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _loop_reference(snn, params, membrane, x, num_steps):
    total, cumulative = 0.0, []
    for _ in range(num_steps):
        out, mutated = snn.apply({"params": params, "membrane": membrane}, x, mutable=["membrane"])
        membrane = mutated["membrane"]
        total = total + out
        cumulative.append(total)
    return jnp.stack(cumulative)


def test_scan_equals_python_loop(tiny):
    _, _, snn, params, x = tiny
    membrane = convert.init_membrane(snn, x.shape)
    out = simulate(snn, params, membrane, x, num_steps=6, stats=True)
    ref = _loop_reference(snn, params, membrane, x, 6)
    np.testing.assert_allclose(out.cumulative, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        jnp.cumsum(out.outputs, axis=0), out.cumulative, rtol=1e-5, atol=1e-5
    )
    assert out.cumulative.shape == (6, 4, 5)
    spiking = {k for k, v in out.stats.items() if "spikes" in v}
    assert spiking == set(convert.extract_thresholds(params))
    assert all(out.stats[k]["spikes"].shape == (6, 4) for k in spiking)
    assert out.stats["stem/conv"]["input_density"].shape == (6, 4)
    assert bool(jnp.all(out.stats["head"]["input_density"] <= 1.0))


class ScanBodyTest(chex.TestCase):
    """``simulate``'s body, jitted (plain ``jax.jit``) and run eagerly."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_scan_body_equals_python_loop(self):
        """Without jit the glue around the scan (image checks, readout, stats) runs on concrete
        arrays; the scan itself always compiles its body."""
        _, _, snn, params, x = _tiny()
        membrane = convert.init_membrane(snn, x.shape)
        run = self.variant(simulate.__wrapped__, static_argnames=_SIMULATE_STATIC)
        out = run(snn, params, membrane, x, num_steps=6, stats=True)
        ref = _loop_reference(snn, params, membrane, x, 6)
        np.testing.assert_allclose(out.cumulative, ref, rtol=1e-5, atol=1e-5)
        chex.assert_trees_all_equal(
            out, simulate(snn, params, membrane, x, num_steps=6, stats=True)
        )


def test_no_retrace_across_batches(tiny):
    _, _, snn, params, x = tiny
    membrane = convert.init_membrane(snn, x.shape)
    simulate(snn, params, membrane, x, num_steps=3)
    before = simulate._cache_size()
    for i in range(3):
        simulate(snn, params, membrane, x + i, num_steps=3)
    assert simulate._cache_size() == before


def test_threshold_sweep_equals_loop(tiny):
    _, _, snn, params, x = tiny
    membrane = convert.init_membrane(snn, x.shape)
    scales = jnp.array([0.5, 1.0, 2.0], jnp.float32)
    swept = sweep_threshold_scales(snn, params, membrane, x, scales, num_steps=4)
    for k, s in enumerate(scales):
        ref = simulate(snn, convert.scale_thresholds(params, s), membrane, x, num_steps=4)
        # To float32 rounding: inside the sweep XLA may divide by the scaled θ differently.
        np.testing.assert_allclose(swept[k], ref.cumulative, rtol=1e-5, atol=1e-5)


def test_initial_potential_sweep_equals_loop(tiny):
    _, _, snn, params, x = tiny
    fractions = jnp.array([0.0, 0.5], jnp.float32)
    swept = sweep_initial_potentials(snn, params, x, fractions, num_steps=4)
    for k, mode in enumerate(["zero", "half"]):
        ref = simulate(snn, params, convert.init_membrane(snn, x.shape, mode), x, num_steps=4)
        np.testing.assert_array_equal(swept[k], ref.cumulative)


def test_snn_approaches_ann_as_t_grows():
    """With L = 64 the QCFS ANN is close to the clip-ReLU limit the SNN rate converges to."""
    key = jax.random.key(0)
    ann = models.get_model(
        "_ResNetTiny", num_classes=5, act=functools.partial(QCFS, levels=64, init_threshold=1.0)
    )
    variables = models.init_variables(ann, key, SHAPE)
    x = jax.random.normal(jax.random.fold_in(key, 1), SHAPE)
    snn, params = convert.convert(ann, variables)
    ann_out = ann.apply(variables, x)
    membrane = convert.init_membrane(snn, x.shape)
    cumulative = simulate(snn, params, membrane, x, num_steps=64).cumulative
    steps = jnp.arange(1, 65, dtype=jnp.float32)[:, None, None]
    err = jnp.mean(jnp.abs(cumulative / steps - ann_out[None]), axis=(1, 2))
    scale = float(jnp.mean(jnp.abs(ann_out)))
    assert float(err[63]) < 0.2 * float(err[3]), (err[3], err[63])
    assert float(err[63]) < 0.02 * scale
    # accuracy bookkeeping runs on the same tensor
    labels = jnp.argmax(ann_out, axis=-1)
    hits = metrics.correct_per_step(cumulative, labels)
    assert hits.shape == (64,) and int(hits[-1]) >= int(hits[0])


def test_half_initialisation_beats_zero_at_small_t(tiny):
    ann, variables, snn, params, x = tiny
    ann_out = ann.apply(variables, x)
    errs = {}
    for mode in ("half", "zero"):
        cum = simulate(snn, params, convert.init_membrane(snn, x.shape, mode), x, num_steps=4)
        errs[mode] = float(jnp.mean(jnp.abs(cum.cumulative[-1] / 4 - ann_out)))
    assert errs["half"] < errs["zero"]


def test_srp_with_tau_zero_equals_plain_run(tiny):
    ann, variables, _, params, x = tiny
    masked = convert.make_snn_model(ann, masked=True)
    srp = simulate_srp(masked, params, x, presim=0, num_steps=5)
    plain = simulate(masked, params, convert.init_membrane(masked, x.shape), x, num_steps=5)
    assert srp.presim is None
    np.testing.assert_array_equal(srp.sim.cumulative, plain.cumulative)


def test_srp_masks_are_taken_after_presim_and_membrane_restarts(tiny):
    ann, _, _, params, x = tiny
    masked = convert.make_snn_model(ann, masked=True)
    out = simulate_srp(masked, params, x, presim=3, num_steps=2, stats=True)
    pre_v = tree_lib.flatten(out.presim.membrane)
    sim_mask = tree_lib.flatten(out.sim.membrane)
    for path, v in pre_v.items():
        if path.endswith("/v"):
            layer = tree_lib.layer_of(path)
            np.testing.assert_array_equal(sim_mask[f"{layer}/mask"], (v > 1e-3).astype(v.dtype))
    for layer, s in out.sim.stats.items():  # masked neurons still fire, but emit nothing
        if "spikes" in s:
            assert bool(jnp.all(s["spikes"] <= s["fires"]))


@pytest.mark.parametrize("arch", ["_CNNTiny", "_ResNetTiny"])
def test_fast_defaults_do_not_change_results(arch):
    """``simulate`` defaults to ``unroll=EVAL_UNROLL`` and, on CPU, region-based copy insertion (a
    speed choice, bench P1): its outputs, stats and final membrane must equal the plain
    ``unroll=1`` program without compile options bit for bit."""
    from jaxsnn.simulate.core import EVAL_UNROLL, backend_compiler_options

    assert EVAL_UNROLL > 1 and backend_compiler_options("cpu")
    channels = 3 if arch == "_ResNetTiny" else 1
    ann = models.get_model(arch, num_classes=5, act=functools.partial(QCFS, levels=4))
    x = jax.random.uniform(jax.random.key(3), (4, 8, 8, channels))
    variables = models.init_variables(ann, jax.random.key(4), x.shape)
    snn, params = convert.convert(ann, variables, track_counts=True)
    params = convert.scale_thresholds(params, 1.0 / 8.0)  # spiking activity at init weights
    membrane = convert.init_membrane(snn, x.shape)
    fast = simulate(snn, params, membrane, x, num_steps=7, stats=True)
    plain_jit = jax.jit(simulate.__wrapped__, static_argnames=_SIMULATE_STATIC)
    plain = plain_jit(snn, params, membrane, x, num_steps=7, stats=True, unroll=1)
    spikes = sum(float(jnp.sum(s["spikes"])) for s in plain.stats.values() if "spikes" in s)
    assert spikes > 0
    chex.assert_trees_all_equal(fast, plain, strict=True)


def test_bfloat16_simulation_runs_under_strict_promotion(tiny):
    """bf16 params, membrane and images simulate in bf16 (the image check must not trip on them)."""
    _, _, snn, params, x = tiny
    cast = functools.partial(
        jax.tree_util.tree_map,
        lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a,
    )
    membrane = convert.init_membrane(snn, x.shape)
    out = simulate(snn, cast(params), cast(membrane), x.astype(jnp.bfloat16), num_steps=3)
    ref = simulate(snn, params, membrane, x, num_steps=3)
    assert out.cumulative.dtype == jnp.bfloat16
    # Same spike trains up to bf16 rounding of the charges: close, not equal.
    np.testing.assert_allclose(
        out.cumulative.astype(jnp.float32),
        ref.cumulative,
        atol=0.25 * float(jnp.abs(ref.cumulative).max()) + 0.1,
    )


def test_sweep_groups_give_the_one_at_a_time_result(tiny):
    """``group`` only changes how many values run vmapped together, not the numbers."""
    _, _, snn, params, x = tiny
    fractions = jnp.array([0.0, 0.25, 0.5], jnp.float32)
    one = sweep_initial_potentials(snn, params, x, fractions, num_steps=4, group=1)
    for group in (2, 3, 8):
        got = sweep_initial_potentials(snn, params, x, fractions, num_steps=4, group=group)
        np.testing.assert_array_equal(got, one)
    with pytest.raises(ValueError, match="group must be a positive"):
        sweep_initial_potentials(snn, params, x, fractions, num_steps=4, group=0)
