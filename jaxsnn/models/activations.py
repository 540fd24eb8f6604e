"""ANN activations with a per-layer threshold parameter: QCFS, clip-ReLU and plain ReLU.

All three sow their output into the ``'activations'`` collection (a no-op unless that collection
is mutable), which the calibration and diagnostics passes read.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.ops import qcfs


class QCFS(nn.Module):
    r"""QCFS activation with a trainable clip value λ (param ``threshold``).

    Equation and gradients: docs/methods.md, "The QCFS activation".

    Attributes:
      levels: quantisation steps L.
      init_threshold: initial λ (8.0 in the reference code).
      shift: φ (1/2).
    """

    levels: int = 8
    init_threshold: float = 8.0
    shift: float = 0.5
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.constant(self.init_threshold)
        theta = self.param("threshold", init, (), self.param_dtype)
        y = qcfs(x, jnp.asarray(theta, x.dtype), self.levels, self.shift)
        self.sow("activations", "out", y)
        return y


class ClipReLU(nn.Module):
    r"""Threshold ReLU :math:`\mathrm{clip}(x, 0, \lambda)` with trainable λ (OPI / TCL, init 4)."""

    init_threshold: float = 4.0
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.constant(self.init_threshold)
        theta = jnp.asarray(self.param("threshold", init, (), self.param_dtype), x.dtype)
        y = jnp.minimum(nn.relu(x), theta)
        self.sow("activations", "out", y)
        return y


class ReLU(nn.Module):
    """Plain ReLU (for the calibration-based conversions, which set θ from data)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.relu(x)
        self.sow("activations", "out", y)
        return y
