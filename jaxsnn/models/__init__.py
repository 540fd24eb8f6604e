"""Flax Linen architectures whose activation is a constructor argument (ANN or SNN).

Select a model by name with :func:`get_model` (``getattr`` style, as Flax examples do).
"""

from jaxsnn.models.activations import QCFS, ClipReLU, ReLU
from jaxsnn.models.cnn import CNN, SmallCNN, _CNNTiny
from jaxsnn.models.layers import ConvBN
from jaxsnn.models.resnet import (
    BasicBlock,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet20Wide,
    ResNet34,
    _ResNetTiny,
)
from jaxsnn.models.vgg import VGG, VGG16, _VGGTiny

ARCHITECTURES = {
    "SmallCNN": SmallCNN,
    "VGG16": VGG16,
    "ResNet18": ResNet18,
    "ResNet20": ResNet20,
    "ResNet20Wide": ResNet20Wide,
    "ResNet34": ResNet34,
    "_CNNTiny": _CNNTiny,
    "_VGGTiny": _VGGTiny,
    "_ResNetTiny": _ResNetTiny,
}


def get_model(name: str, **kwargs):
    """Builds architecture ``name`` (a key of :data:`ARCHITECTURES`) with constructor ``kwargs``."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"config.model: unknown architecture {name!r}; choose one of "
            f"{sorted(k for k in ARCHITECTURES if not k.startswith('_'))}"
        )
    return ARCHITECTURES[name](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "QCFS",
    "ClipReLU",
    "ReLU",
    "CNN",
    "SmallCNN",
    "ConvBN",
    "BasicBlock",
    "ResNet",
    "ResNet18",
    "ResNet20",
    "ResNet20Wide",
    "ResNet34",
    "VGG",
    "VGG16",
    "get_model",
]


def init_variables(model, key, input_shape, dtype=None) -> dict:
    """Initialises ``model`` and keeps only the ``'params'`` and ``'batch_stats'`` collections.

    (``model.init`` makes every collection mutable, so the sown ``'activations'`` would be kept.)
    """
    import jax
    import jax.numpy as jnp

    x = jnp.zeros(input_shape, dtype or jnp.float32)
    variables = jax.jit(model.init)(key, x)
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


__all__ += ["init_variables"]
