"""ResNets in the QCFS/SRP layout with a pluggable activation.

Layouts: docs/methods.md, "Architectures and training recipes".

BasicBlock: conv3×3(stride s) → BN → act → conv3×3 → BN, add the shortcut (identity, or a 1×1
conv + BN projection when the stride or width changes), then act. ``stem="cifar"`` is the
reference stem (3×3 stride-1 conv, no pooling, used by QCFS/SRP even on ImageNet);
``stem="imagenet"`` is the torchvision stem (7×7/2 conv, BN, act, 3×3/2 pool) with the max-pool
replaced by average pooling.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.models.activations import QCFS
from jaxsnn.models.layers import ConvBN, ModuleDef, avg_pool, global_avg_pool


class BasicBlock(nn.Module):
    """Two 3×3 convs and a residual add; activations ``act1`` (inside), ``act2`` (after add)."""

    features: int
    strides: int = 1
    act: ModuleDef = QCFS
    fold_bn: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = functools.partial(ConvBN, fold_bn=self.fold_bn, param_dtype=self.param_dtype)
        y = conv(self.features, strides=self.strides, name="conv1")(x, train)
        y = self.act(name="act1")(y)
        y = conv(self.features, name="conv2")(y, train)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = conv(self.features, kernel=1, strides=self.strides, name="shortcut")(x, train)
        return self.act(name="act2")(y + x)


class ResNet(nn.Module):
    """ResNet with BasicBlocks.

    Attributes:
      stage_sizes: blocks per stage.
      widths: channels per stage (the stem has ``widths[0]``).
      num_classes: K.
      act: activation factory; called as ``act(name=...)``.
      stem: ``"cifar"`` or ``"imagenet"``.
      fold_bn: BN folded into the convs (the SNN form).
    """

    stage_sizes: Sequence[int] = (3, 3, 3)
    widths: Sequence[int] = (16, 32, 64)
    num_classes: int = 10
    act: ModuleDef = QCFS
    stem: str = "cifar"
    fold_bn: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = functools.partial(ConvBN, fold_bn=self.fold_bn, param_dtype=self.param_dtype)
        if self.stem == "cifar":
            x = conv(self.widths[0], name="stem")(x, train)
            x = self.act(name="stem_act")(x)
        elif self.stem == "imagenet":
            x = conv(self.widths[0], kernel=7, strides=2, name="stem")(x, train)
            x = self.act(name="stem_act")(x)
            x = avg_pool(x, 3, 2, pad=1)
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        for s, (n_blocks, width) in enumerate(zip(self.stage_sizes, self.widths, strict=True)):
            for b in range(n_blocks):
                strides = 2 if (s > 0 and b == 0) else 1
                x = BasicBlock(
                    width,
                    strides=strides,
                    act=self.act,
                    fold_bn=self.fold_bn,
                    param_dtype=self.param_dtype,
                    name=f"stage{s + 1}_block{b + 1}",
                )(x, train)
        x = global_avg_pool(x)
        return nn.Dense(self.num_classes, param_dtype=self.param_dtype, name="head")(x)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512))
ResNet20 = functools.partial(ResNet, stage_sizes=(3, 3, 3), widths=(16, 32, 64))
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512))
# The BURST/CAL "res20": the same topology 4x wider (~4.3 M params, not He's ResNet-20).
ResNet20Wide = functools.partial(ResNet, stage_sizes=(3, 3, 3), widths=(64, 128, 256))
_ResNetTiny = functools.partial(ResNet, stage_sizes=(1, 1), widths=(4, 8))
