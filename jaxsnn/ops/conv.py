"""Convolution whose kernel is larger than its input, as one matrix product (on CPU).

XLA:CPU (jaxlib 0.10.x) runs a 3×3, padding-1 convolution on a 2×2 input about 60× slower than the
same arithmetic as one matrix product (measured with ``bench/p2_profile.py``: batch 16,
2×2×512 → 512 takes 275 ms single-threaded against 4.5 ms). CIFAR VGG-16's last stage is exactly
that case, and its three convolutions there were about 90 % of a VGG-16 forward pass on CPU.
:func:`conv_general_dilated` gathers the k·k shifted windows of the padded input (im2col) and
contracts them with the kernel in one ``dot_general`` — only where the input is smaller than the
kernel, on the CPU backend, for plain NHWC/HWIO convolutions (no dilation, no groups); every other
convolution is ``lax.conv_general_dilated`` unchanged. The product sums in another order than
XLA's convolution, so those layers agree with it to float32 rounding, not bit for bit.
"""

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(
    lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)


def _im2col_applies(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, groups) -> bool:
    if jax.default_backend() != "cpu":
        return False
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    kh, kw = rhs.shape[0], rhs.shape[1]
    return dn == _NHWC and plain and groups == 1 and (lhs.shape[1] < kh or lhs.shape[2] < kw)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """``lax.conv_general_dilated``, or im2col + one dot where the input is smaller than the kernel.

    Same signature and result (to float32 rounding) as ``lax.conv_general_dilated``; pass it as
    ``flax.linen.Conv(conv_general_dilated=...)``.
    """
    if not _im2col_applies(
        lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count
    ):
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            precision=precision,
            **kwargs,
        )
    kh, kw, cin, cout = rhs.shape
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    (p0, p1), (q0, q1) = padding
    x = jnp.pad(lhs, ((0, 0), (p0, p1), (q0, q1), (0, 0)))
    sh, sw = window_strides
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    cols = [
        x[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # [B, ho, wo, kh·kw·cin], kernel order (i, j, c)
    return lax.dot_general(
        patches, rhs.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())), precision=precision
    )
