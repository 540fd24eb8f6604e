"""A small CNN for 28×28 single-channel images (MNIST, Fashion-MNIST): the demo network.

conv3×3(32) → BN → act → avgpool 2 → conv3×3(64) → BN → act → avgpool 2 → Linear(3136→256) → act
→ Linear(256→K).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.models.activations import QCFS
from jaxsnn.models.layers import ConvBN, ModuleDef, avg_pool


class CNN(nn.Module):
    """Conv blocks (conv, BN, act, 2×2 average pool) then one hidden FC layer and the readout."""

    widths: Sequence[int] = (32, 64)
    hidden: int = 256
    num_classes: int = 10
    act: ModuleDef = QCFS
    fold_bn: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, width in enumerate(self.widths):
            name = f"conv{i + 1}"
            conv = ConvBN(width, fold_bn=self.fold_bn, param_dtype=self.param_dtype, name=name)
            x = self.act(name=f"{name}_act")(conv(x, train))
            x = avg_pool(x, 2, 2)
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.hidden, param_dtype=self.param_dtype, name="fc1")(x)
        x = self.act(name="fc1_act")(x)
        return nn.Dense(self.num_classes, param_dtype=self.param_dtype, name="head")(x)


SmallCNN = functools.partial(CNN, widths=(32, 64), hidden=256)
_CNNTiny = functools.partial(CNN, widths=(4,), hidden=8)
