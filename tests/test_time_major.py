"""Time-major input: frames from stacked event bins, the scan over frames, protocols, methods."""

import fractions
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsnn import convert, methods, models
from jaxsnn.models import QCFS
from jaxsnn.simulate import (
    COS,
    SRP,
    Direct,
    TimeBins,
    simulate,
    srp_reset,
    time_bin_weights,
)

SHAPE = (4, 8, 8, 6)  # 3 time bins × 2 polarities.


@functools.cache
def _tiny(masked: bool = False):
    """A QCFS CNN on 6-channel input and its SNN (thresholds near the activations' scale)."""
    key = jax.random.key(0)
    ann = models.get_model(
        "_CNNTiny", num_classes=3, act=functools.partial(QCFS, levels=4, init_threshold=1.0)
    )
    variables = models.init_variables(ann, key, SHAPE)
    snn, params = convert.convert(ann, variables, masked=masked)
    images = jax.random.uniform(jax.random.fold_in(key, 1), SHAPE) * 3.0
    return ann, variables, snn, params, images


def _frames(key, steps: int) -> jax.Array:
    return jax.random.uniform(key, (steps, *SHAPE)) * 3.0


def test_time_bin_weights_cover_every_bin_once_on_average():
    np.testing.assert_array_equal(time_bin_weights(3, 3), 3 * np.eye(3))
    np.testing.assert_array_equal(time_bin_weights(3, 6), 3 * np.repeat(np.eye(3), 2, axis=0))
    for bins, steps in ((3, 5), (9, 4), (9, 16), (2, 7)):
        w = time_bin_weights(bins, steps)
        for t in range(steps):  # c_tk = T·n·|[t/T, (t+1)/T) ∩ [k/n, (k+1)/n)|, exactly.
            for k in range(bins):
                lo = max(fractions.Fraction(t, steps), fractions.Fraction(k, bins))
                hi = min(fractions.Fraction(t + 1, steps), fractions.Fraction(k + 1, bins))
                assert w[t, k] == max(hi - lo, 0) * steps * bins
        np.testing.assert_array_equal(w.sum(axis=0), steps)  # Mean over the steps: 1.
        np.testing.assert_array_equal(w.sum(axis=1), bins)


def test_time_bins_frames_average_to_the_stacked_image():
    images = _tiny()[-1]
    frames = TimeBins(3)(images, 7)
    assert frames.shape == (7, *SHAPE)
    np.testing.assert_allclose(jnp.mean(frames, axis=0), images, rtol=1e-6)
    # Step 0 of 3 sees bin 0 alone (channels 0, 1), scaled by 3.
    np.testing.assert_array_equal(TimeBins(3)(images, 3)[0, ..., 2:], 0)
    np.testing.assert_allclose(TimeBins(3)(images, 3)[0, ..., :2], 3 * images[..., :2])
    with pytest.raises(ValueError, match="6 channels do not hold 4 time bins"):
        TimeBins(4)(images, 4)


def test_time_major_scan_equals_a_loop_jitted_and_vmapped():
    _, _, snn, params, _ = _tiny()
    frames = _frames(jax.random.key(2), 5)
    membrane = convert.init_membrane(snn, SHAPE)
    out = simulate(snn, params, membrane, frames, num_steps=5, time_major=True, stats=True)
    total, state = 0.0, membrane
    for t in range(5):
        logits, new = snn.apply({"params": params, "membrane": state}, frames[t], mutable=True)
        state, total = new["membrane"], total + logits
        np.testing.assert_allclose(out.cumulative[t], total, rtol=1e-5, atol=1e-5)
    size = simulate._cache_size()
    simulate(snn, params, membrane, frames + 1.0, num_steps=5, time_major=True, stats=True)
    assert simulate._cache_size() == size  # New values, same shapes: no retrace.
    # vmapped over two sequences = each on its own; constant frames = direct input.
    two = jnp.stack([frames, frames[::-1]])
    run = jax.vmap(lambda f: simulate(snn, params, membrane, f, num_steps=5, time_major=True))
    np.testing.assert_allclose(run(two).cumulative[0], out.cumulative, rtol=1e-6)
    image = frames[0]
    direct = simulate(snn, params, membrane, image, num_steps=5)
    constant = jnp.broadcast_to(image, (5, *SHAPE))
    repeated = simulate(snn, params, membrane, constant, num_steps=5, time_major=True)
    np.testing.assert_array_equal(repeated.cumulative, direct.cumulative)


def test_time_major_shape_errors_name_the_input():
    _, _, snn, params, images = _tiny()
    membrane = convert.init_membrane(snn, SHAPE)
    with pytest.raises(ValueError, match=r"images: time-major input must be \[T, B, H, W, C\]"):
        simulate(snn, params, membrane, _frames(jax.random.key(0), 3), num_steps=4, time_major=True)
    with pytest.raises(ValueError, match="images: expected 6 channel"):
        simulate(snn, params, membrane, jnp.zeros((2, 4, 8, 8, 3)), num_steps=2, time_major=True)


def test_srp_and_cos_consume_the_documented_frames():
    _, _, snn, params, _ = _tiny(masked=True)
    frames = _frames(jax.random.key(3), 6)
    membrane = convert.init_membrane(snn, SHAPE)
    # SRP: the τ = 2 pre-simulation steps take frames 0, 1; the counted steps frames 2.., wrapping.
    start = SRP(2).start(snn, params, membrane, frames, time_major=True)
    pre = simulate(snn, params, membrane, frames[:2], num_steps=2, time_major=True)
    jax.tree.map(np.testing.assert_array_equal, start, srp_reset(pre.membrane))
    counted = SRP(2).counted_frames(frames, 6)
    np.testing.assert_array_equal(counted, jnp.concatenate([frames[2:], frames[:2]]))
    # COS: the passes see frames 0 .. τ-1 only; the counted steps replay from frame 0.
    cos_start = COS(2).start(snn, params, membrane, frames, time_major=True)
    changed = frames.at[2:].set(0.0)
    again = COS(2).start(snn, params, membrane, changed, time_major=True)
    jax.tree.map(np.testing.assert_array_equal, cos_start, again)
    np.testing.assert_array_equal(COS(2).counted_frames(frames, 6), frames)
    np.testing.assert_array_equal(Direct().counted_frames(frames, 4), frames[:4])
    # With the same frame at every step the protocols start as with direct input.
    constant = jnp.broadcast_to(frames[0], frames.shape)
    for protocol in (SRP(2), COS(2)):
        a = protocol.start(snn, params, membrane, constant, time_major=True)
        b = protocol.start(snn, params, membrane, frames[0])
        jax.tree.map(np.testing.assert_allclose, a, b)


def test_data_driven_methods_calibrate_on_the_encoded_run():
    ann, variables, _, _, images = _tiny()
    batches = [{"image": images, "label": jnp.arange(4, dtype=jnp.int32) % 3}]
    opts = {"T": 3, "calib_batches": 1, "threshold_batches": 1, "iat": True}

    def biases(conv):
        return {k: v for k, v in jax.tree_util.tree_leaves_with_path(conv.params)
                if k[-1].key == "bias"}  # fmt: skip

    direct = methods.convert("calib_light", ann, variables, batches, opts)
    # One bin over T steps: every frame is the image itself, so nothing may change.
    one_bin = methods.convert("calib_light", ann, variables, batches, opts, encoding=TimeBins(1))
    jax.tree.map(np.testing.assert_array_equal, one_bin.params, direct.params)
    np.testing.assert_array_equal(one_bin.iat["thresholds"], direct.iat["thresholds"])
    # Three bins: the bias calibration measures the SNN on the time-major frames.
    timed = methods.convert("calib_light", ann, variables, batches, opts, encoding=TimeBins(3))
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(biases(timed).values(), biases(direct).values(), strict=True)
    )
