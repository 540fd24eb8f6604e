r"""Quantisation-clip-floor-shift (QCFS) activation and its straight-through floor.

QCFS (Bu et al., ICLR 2022) replaces ReLU in the ANN by

.. math::
    h(z) = \lambda\,\mathrm{clip}\left(\lfloor L z/\lambda + \varphi\rfloor / L, 0, 1\right),
    \qquad \varphi = \tfrac12,

whose output takes the ``L + 1`` values an integrate-and-fire neuron with threshold
:math:`\theta = \lambda` and initial potential :math:`\theta/2` can emit on average in ``L`` steps.
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def floor_ste(x: jax.Array) -> jax.Array:
    r"""Straight-through floor: forward :math:`\lfloor x\rfloor`, backward identity."""
    return jnp.floor(x)


def _floor_fwd(x):
    return jnp.floor(x), None


def _floor_bwd(_, g):
    return (g,)


floor_ste.defvjp(_floor_fwd, _floor_bwd)


def _check_levels(levels: int) -> None:
    if not isinstance(levels, int) or isinstance(levels, bool) or levels <= 0:
        raise ValueError(f"levels L must be a positive integer, got {levels!r}")


def _clip_unit(q: jax.Array) -> jax.Array:
    """clip(q, 0, 1) with gradient 1 on the closed interval [0, 1] (PyTorch ``clamp``)."""
    inside = (q >= 0) & (q <= 1)
    clipped = jnp.clip(q, 0, 1)
    return jnp.where(inside, q, jax.lax.stop_gradient(clipped))


def qcfs(x: jax.Array, threshold: jax.Array, levels: int, shift: float = 0.5) -> jax.Array:
    r"""QCFS: :math:`\lambda\,\mathrm{clip}(\lfloor L x/\lambda + \varphi\rfloor / L, 0, 1)`.

    The operation order is the released code's (divide by λ, times L, add shift, floor, divide by
    L, clip, times λ), so values agree bit for bit with the PyTorch code when L is a power of two
    (every shipped config). For other L, XLA turns ``/ L`` into ``· (1/L)``, which can be 1 ulp
    off (``L = 41``: the top level is λ(1 − 2⁻²⁴) instead of λ). Gradients, as PyTorch's autograd
    gives them for the released code (docs/methods.md, "The QCFS activation"), with
    ``q = ⌊L·x/λ + φ⌋/L``: ``∂h/∂x = 1[0 ≤ q ≤ 1]`` and
    ``∂h/∂λ = clip(q, 0, 1) − 1[0 ≤ q ≤ 1]·x/λ``.

    Args:
      x: pre-activation.
      threshold: λ, broadcastable to ``x`` (scalar per layer, or per channel).
      levels: number of quantisation steps L (> 0).
      shift: φ; 1/2 is the QCFS choice that makes the expected conversion error zero.

    Returns:
      The quantised activation, same shape and dtype as ``x``.
    """
    _check_levels(levels)
    threshold = jnp.asarray(threshold, x.dtype)
    q = floor_ste(x / threshold * levels + jnp.asarray(shift, x.dtype)) / levels
    return _clip_unit(q) * threshold


def qcfs_levels(x: jax.Array, threshold: jax.Array, levels: int, shift: float = 0.5) -> jax.Array:
    """Integer level ``k = clip(floor(L·x/λ + shift), 0, L)`` (output ``k·λ/L``)."""
    _check_levels(levels)
    threshold = jnp.asarray(threshold, x.dtype)
    k = jnp.floor(x / threshold * levels + jnp.asarray(shift, x.dtype))
    return jnp.clip(k, 0, levels).astype(jnp.int32)
