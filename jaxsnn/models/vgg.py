"""VGG-16 in the QCFS/SRP layout, with average pooling and a pluggable activation.

Layout: docs/methods.md, "Architectures and training recipes".

Five blocks of 3×3 convs (bias, BN, activation) each closed by a 2×2 average pool, then
Linear(F→4096) → act → Linear(4096→4096) → act → Linear(4096→K); the last layer is the analog
readout. ``classifier="single"`` gives the BURST/CAL CIFAR head, a single Linear(512→K).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.models.activations import QCFS
from jaxsnn.models.layers import ConvBN, ModuleDef, avg_pool


class VGG(nn.Module):
    """VGG with per-block conv counts ``stages`` and widths ``widths``.

    Attributes:
      stages: convs per block.
      widths: channels per block.
      num_classes: K.
      act: activation factory; called as ``act(name=...)``.
      hidden: width of the two hidden FC layers (``classifier="qcfs"`` only).
      classifier: ``"qcfs"`` (3 FC layers) or ``"single"`` (one Linear).
      use_bn, fold_bn: see :class:`~jaxsnn.models.layers.ConvBN`.
    """

    stages: Sequence[int] = (2, 2, 3, 3, 3)
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    num_classes: int = 10
    act: ModuleDef = QCFS
    hidden: int = 4096
    classifier: str = "qcfs"
    use_bn: bool = True
    fold_bn: bool = False
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for b, (n_convs, width) in enumerate(zip(self.stages, self.widths, strict=True)):
            for j in range(n_convs):
                name = f"block{b + 1}_conv{j + 1}"
                x = ConvBN(
                    width,
                    use_bias=True,
                    use_bn=self.use_bn,
                    fold_bn=self.fold_bn,
                    param_dtype=self.param_dtype,
                    name=name,
                )(x, train)
                x = self.act(name=f"{name}_act")(x)
            x = avg_pool(x, 2, 2)
        x = x.reshape((x.shape[0], -1))
        if self.classifier == "qcfs":
            for i in (1, 2):
                x = nn.Dense(self.hidden, param_dtype=self.param_dtype, name=f"fc{i}")(x)
                x = self.act(name=f"fc{i}_act")(x)
        elif self.classifier != "single":
            raise ValueError(f"classifier must be 'qcfs' or 'single', got {self.classifier!r}")
        return nn.Dense(self.num_classes, param_dtype=self.param_dtype, name="head")(x)


VGG16 = functools.partial(VGG, stages=(2, 2, 3, 3, 3), widths=(64, 128, 256, 512, 512))
_VGGTiny = functools.partial(VGG, stages=(1, 1), widths=(4, 8), hidden=16)
