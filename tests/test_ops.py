"""QCFS op and straight-through floor: values at every boundary and reference gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsnn.ops import floor_ste, qcfs, qcfs_levels


def test_floor_ste_forward_is_floor_and_gradient_is_identity():
    x = jnp.array([-1.5, -0.0, 0.2, 0.999, 1.0, 2.5])
    np.testing.assert_array_equal(floor_ste(x), jnp.floor(x))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(floor_ste(v) * jnp.arange(6.0))))(x)
    np.testing.assert_array_equal(grad, jnp.arange(6.0))


@pytest.mark.parametrize("levels", [1, 2, 4, 8, 16])
def test_qcfs_levels_and_boundaries(levels):
    lam = 2.0
    step = lam / levels
    f = jax.jit(lambda v: qcfs(v, jnp.float32(lam), levels))
    # Exactly on a boundary (k - 1/2)·λ/L the shift rounds half up: the output jumps to level k.
    for k in range(1, levels + 1):
        boundary = jnp.float32((k - 0.5) * step)
        below = boundary - jnp.float32(step / 1024)  # dyadic: exact, no float32 tie
        assert float(f(boundary)) == pytest.approx(k * step)
        assert float(f(below)) == pytest.approx((k - 1) * step)
    # Zero iff x < λ/(2L); saturates iff x ≥ λ(1 − 1/(2L)).
    assert float(f(jnp.float32(-3.0))) == 0.0
    assert float(f(jnp.float32(0.5 * step * 0.999))) == 0.0
    assert float(f(jnp.float32(lam * (1 - 0.5 / levels)))) == lam
    assert float(f(jnp.float32(100.0))) == lam


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-4, 12, width=32), min_size=1, max_size=16),
    st.sampled_from([0.5, 1.0, 3.0, 8.0]),
    st.sampled_from([1, 2, 4, 8]),
)
def test_qcfs_output_is_on_the_level_grid(xs, lam, levels):
    x = jnp.asarray(xs, jnp.float32)
    y = qcfs(x, jnp.float32(lam), levels)
    k = qcfs_levels(x, jnp.float32(lam), levels)
    np.testing.assert_allclose(y, np.asarray(k) * (lam / levels), rtol=1e-6)
    assert bool(jnp.all((k >= 0) & (k <= levels)))


def test_qcfs_gradients_match_reference_formula():
    lam, levels = jnp.float32(2.0), 4
    x = jnp.array([-1.0, -0.2, 0.0, 0.3, 0.9, 1.7, 2.0, 2.1, 5.0], jnp.float32)
    q = jnp.floor(x / lam * levels + 0.5) / levels
    inside = ((q >= 0) & (q <= 1)).astype(jnp.float32)
    dx = jax.vmap(jax.grad(lambda v: qcfs(v, lam, levels)))(x)
    dlam = jax.vmap(jax.grad(lambda v, t: qcfs(v, t, levels), argnums=1), (0, None))(x, lam)
    np.testing.assert_array_equal(dx, inside)
    np.testing.assert_allclose(dlam, jnp.clip(q, 0, 1) - inside * x / lam, rtol=1e-6)
    # In range: q − x/λ; above: 1; below: 0.
    assert float(dlam[-1]) == 1.0 and float(dlam[0]) == 0.0


@pytest.mark.parametrize("levels", [0, -3, 2.0, True])
def test_qcfs_rejects_bad_levels(levels):
    with pytest.raises(ValueError, match="levels L must be a positive integer"):
        qcfs(jnp.ones(3), jnp.float32(1.0), levels)


def test_small_input_convolution_is_the_convolution():
    """``ops.conv_general_dilated``: kernels larger than their input run as one matrix product on
    CPU (to float32 rounding; exact to 1e-12 in float64 on an integer-valued check); any other
    convolution is XLA's own, bit for bit."""
    from jax import lax

    from jaxsnn.ops import conv_general_dilated

    dn = ("NHWC", "HWIO", "NHWC")
    key_x, key_k = jax.random.split(jax.random.key(0))
    for shape, strides in [((3, 2, 2, 5), (1, 1)), ((2, 1, 1, 4), (1, 1)), ((2, 2, 3, 6), (2, 2))]:
        x = jax.random.normal(key_x, shape)
        k = jax.random.normal(key_k, (3, 3, shape[-1], 7))
        ref = lax.conv_general_dilated(x, k, strides, ((1, 1), (1, 1)), dimension_numbers=dn)
        got = conv_general_dilated(x, k, strides, ((1, 1), (1, 1)), dimension_numbers=dn)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        ints = jnp.round(4 * x), jnp.round(4 * k)  # small integers: every sum is exact
        np.testing.assert_array_equal(
            conv_general_dilated(*ints, strides, ((1, 1), (1, 1)), dimension_numbers=dn),
            lax.conv_general_dilated(*ints, strides, ((1, 1), (1, 1)), dimension_numbers=dn),
        )
    x = jax.random.normal(key_x, (2, 5, 5, 3))  # input larger than the kernel: XLA's conv
    k = jax.random.normal(key_k, (3, 3, 3, 4))
    np.testing.assert_array_equal(
        conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn),
        lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn),
    )
