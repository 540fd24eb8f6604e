"""Building blocks shared by the architectures: a conv/dense with optional (foldable) BatchNorm.

A layer followed by BatchNorm is one ``ConvBN`` module with children ``conv`` and ``bn``; after
:func:`jaxsnn.convert.fold_batchnorm` the same module is built with ``fold_bn=True`` and holds only
``conv`` (with a bias). That pairing is what makes BN folding a plain parameter-tree rewrite.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn import ops

ModuleDef = Callable[..., nn.Module]

# PyTorch BatchNorm2d: momentum 0.1 (Flax 0.9), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ConvBN(nn.Module):
    """Conv (k×k, symmetric padding ``k // 2``) followed by BatchNorm, or by nothing when folded.

    Attributes:
      features: output channels.
      kernel: square kernel size.
      strides: stride in both spatial dims.
      use_bias: conv bias in the unfolded ANN (VGG: True, ResNet: False).
      use_bn: whether the architecture has a BN after this conv.
      fold_bn: BN has been folded into the conv (conv gets a bias, no ``bn`` child).
    """

    features: int
    kernel: int = 3
    strides: int = 1
    use_bias: bool = False
    use_bn: bool = True
    fold_bn: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        pad = self.kernel // 2
        folded = self.use_bn and self.fold_bn
        x = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.strides, self.strides),
            padding=((pad, pad), (pad, pad)),
            use_bias=self.use_bias or folded,
            kernel_init=conv_init,
            param_dtype=self.param_dtype,
            # On CPU, a kernel larger than its input (VGG-16's last stage on 32×32 images) runs
            # as one matrix product: ~60× faster there (jaxsnn.ops.conv).
            conv_general_dilated=ops.conv_general_dilated,
            name="conv",
        )(x)
        if self.use_bn and not self.fold_bn:
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=BN_MOMENTUM,
                epsilon=BN_EPSILON,
                param_dtype=self.param_dtype,
                name="bn",
            )(x)
        return x


def avg_pool(x: jax.Array, window: int, stride: int, pad: int = 0) -> jax.Array:
    """Average pooling with symmetric zero padding counted in the mean (PyTorch default)."""
    summed = jax.lax.reduce_window(
        x,
        # A numpy (not traced) init value lets JAX recognise the sum and differentiate it.
        np.zeros((), x.dtype),
        jax.lax.add,
        (1, window, window, 1),
        (1, stride, stride, 1),
        ((0, 0), (pad, pad), (pad, pad), (0, 0)),
    )
    return summed / jnp.asarray(window * window, x.dtype)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes: [B, H, W, C] -> [B, C]."""
    return jnp.mean(x, axis=(1, 2))
