"""Flax Linen architectures whose activation is a constructor argument (ANN or SNN).

Select a model by name with :func:`get_model` (``getattr`` style, as Flax examples do), or
build the one a config describes with :func:`build_model`.
"""

import functools

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
from jaxsnn.models.taps import activation_layers, ann_activations, call_order, producer_of
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


ACTIVATIONS = ("qcfs", "relu", "clip_relu")


def build_model(config, num_classes: int):
    """The ANN named by ``config.model`` with the activation ``config.activation``.

    Reads ``model``, ``model_kwargs``, ``activation`` ('qcfs' | 'relu' | 'clip_relu'), ``levels``
    and ``init_threshold`` from ``config`` (a ConfigDict or any mapping with ``get``).
    """
    activation = config.get("activation", "qcfs")
    if activation == "qcfs":
        act = functools.partial(
            QCFS, levels=config.get("levels"), init_threshold=config.get("init_threshold", 8.0)
        )
    elif activation == "clip_relu":
        act = functools.partial(ClipReLU, init_threshold=config.get("init_threshold", 4.0))
    elif activation == "relu":
        act = ReLU
    else:
        raise ValueError(f"config.activation: unknown {activation!r}; use one of {ACTIVATIONS}")
    kwargs = dict(config.get("model_kwargs") or {})
    return get_model(config.get("model"), num_classes=num_classes, act=act, **kwargs)


__all__ = [
    "ACTIVATIONS",
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
    "activation_layers",
    "ann_activations",
    "build_model",
    "call_order",
    "get_model",
    "producer_of",
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
