"""The dataflow graph of an SNN built from jaxsnn's architectures, for export.

Flax modules record their parameters, not the glue between them (average pooling, the flatten,
the residual add), so the graph of each architecture of :mod:`jaxsnn.models` is written out here,
from the same attributes the module reads (widths, stages, stem, classifier, strides). It is a
list of :class:`Op` in execution order; an op with several inputs sums them (the residual add of a
ResNet block is two inputs of its ``act2``). :func:`describe` checks the description against the
model itself (its spiking layers, their order and their input shapes, traced with shapes only),
so an architecture whose definition changes without this file fails loudly instead of exporting
a wrong graph.

Shapes here are per example, in NIR's channels-first order: ``(C, H, W)`` or ``(F,)``.
"""

import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.models import CNN, VGG, ResNet
from jaxsnn.neurons import SpikingActivation


class Op(NamedTuple):
    """One node of the graph.

    Attributes:
      kind: ``'input'``, ``'conv'`` (a ``ConvBN``: k×k, zero padding ``k // 2``), ``'dense'``,
        ``'spike'`` (a spiking layer), ``'avgpool'``, ``'flatten'`` (channels-last, as
        ``x.reshape((B, -1))``), ``'identity'`` (a residual shortcut without weights) or
        ``'output'``.
      name: the node's name (the module path with ``/`` → ``_``).
      inputs: names of the ops feeding it (summed).
      path: the module path in the params (``'conv1/conv'``, ``'fc1'``, ``'conv1_act'``).
      stride: conv/pool stride.
      window: pool window (0: the whole feature map, a global average pool).
      pad: pool zero padding (counted in the mean).
    """

    kind: str
    name: str
    inputs: tuple[str, ...] = ()
    path: str = ""
    stride: int = 1
    window: int = 0
    pad: int = 0


class SpikingLayer(NamedTuple):
    """What the model's own trace says about one spiking layer."""

    path: str
    shape: tuple[int, ...]  # per example, channels-last as the module sees it
    shift: float
    per_channel: bool
    masked: bool


def node_name(path: str) -> str:
    """The node name of a module path: ``'stage1_block1/act2'`` → ``'stage1_block1_act2'``."""
    return path.replace(tree.SEP, "_")


class _Builder:
    def __init__(self):
        self.ops: list[Op] = [Op("input", "input")]

    def add(self, kind: str, module: str, inputs, **kw) -> str:
        name = node_name(module)
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.ops.append(Op(kind, name, inputs, **kw))
        return name

    def conv_bn(self, path: str, x: str, stride: int = 1) -> str:
        return self.add("conv", path, x, path=f"{path}/conv", stride=stride)

    def dense(self, path: str, x: str) -> str:
        return self.add("dense", path, x, path=path)

    def spike(self, path: str, x) -> str:
        return self.add("spike", path, x, path=path)

    def pool(self, path: str, x: str, window: int, stride: int, pad: int = 0) -> str:
        return self.add("avgpool", path, x, window=window, stride=stride, pad=pad)


def _cnn(model: CNN, params: Mapping) -> list[Op]:
    b, x = _Builder(), "input"
    for i in range(len(model.widths)):
        name = f"conv{i + 1}"
        x = b.spike(f"{name}_act", b.conv_bn(name, x))
        x = b.pool(f"{name}_pool", x, 2, 2)
    x = b.add("flatten", "flatten", x)
    x = b.spike("fc1_act", b.dense("fc1", x))
    b.add("output", "output", b.dense("head", x))
    return b.ops


def _vgg(model: VGG, params: Mapping) -> list[Op]:
    b, x = _Builder(), "input"
    for i, n_convs in enumerate(model.stages):
        for j in range(n_convs):
            name = f"block{i + 1}_conv{j + 1}"
            x = b.spike(f"{name}_act", b.conv_bn(name, x))
        x = b.pool(f"block{i + 1}_pool", x, 2, 2)
    x = b.add("flatten", "flatten", x)
    if model.classifier == "qcfs":
        for i in (1, 2):
            x = b.spike(f"fc{i}_act", b.dense(f"fc{i}", x))
    b.add("output", "output", b.dense("head", x))
    return b.ops


def _resnet(model: ResNet, params: Mapping) -> list[Op]:
    b = _Builder()
    x = b.conv_bn("stem", "input", stride=2 if model.stem == "imagenet" else 1)
    x = b.spike("stem_act", x)
    if model.stem == "imagenet":
        x = b.pool("stem_pool", x, 3, 2, pad=1)
    for s, n_blocks in enumerate(model.stage_sizes):
        for i in range(n_blocks):
            prefix = f"stage{s + 1}_block{i + 1}"
            stride = 2 if (s > 0 and i == 0) else 1
            y = b.spike(f"{prefix}/act1", b.conv_bn(f"{prefix}/conv1", x, stride))
            y = b.conv_bn(f"{prefix}/conv2", y)
            if "shortcut" in params.get(prefix, {}):
                shortcut = b.conv_bn(f"{prefix}/shortcut", x, stride)
            else:
                shortcut = b.add("identity", f"{prefix}/identity", x)
            x = b.spike(f"{prefix}/act2", (y, shortcut))
    x = b.add("flatten", "gap_flatten", b.pool("gap", x, 0, 1))
    b.add("output", "output", b.dense("head", x))
    return b.ops


_ARCHITECTURES = ((CNN, _cnn), (VGG, _vgg), (ResNet, _resnet))


def spiking_layers(snn_model: nn.Module, params: Mapping, input_shape) -> list[SpikingLayer]:
    """The model's spiking layers in call order, with input shapes and settings (no compute)."""
    found: list[SpikingLayer] = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, SpikingActivation):
            found.append(
                SpikingLayer(
                    "/".join(module.path),
                    tuple(args[0].shape[1:]),
                    float(module.neuron.shift),
                    bool(module.per_channel),
                    bool(module.masked),
                )
            )
        return next_fun(*args, **kwargs)

    def run():
        with nn.intercept_methods(record):
            x = jnp.zeros((1, *input_shape), jnp.float32)
            return snn_model.apply({"params": params}, x, mutable=["membrane", "stats"])

    jax.eval_shape(run)
    return found


def describe(snn_model: nn.Module, params: Mapping, input_shape):
    """Converts an SNN definition into its graph, per-op shapes and spiking layers (checked).

    Args:
      snn_model: an SNN of :mod:`jaxsnn.models` (``convert.make_snn_model``; BN folded).
      params: its ``'params'``.
      input_shape: one image, ``(H, W, C)``.

    Returns:
      ``(ops, shapes, layers)``: the ops in execution order, ``{name: shape}`` (channels-first)
      and ``{path: SpikingLayer}`` of the model.

    Raises:
      ValueError: an architecture this module does not describe, an unfolded BatchNorm, or a
        description that does not match the model's own spiking layers.
    """
    build = next((fn for cls, fn in _ARCHITECTURES if isinstance(snn_model, cls)), None)
    if build is None:
        raise ValueError(
            f"export: cannot export a {type(snn_model).__name__}; the graph is known for "
            f"{', '.join(cls.__name__ for cls, _ in _ARCHITECTURES)} (jaxsnn.export.graph)"
        )
    if any(tree.leaf_name(tree.layer_of(p)) == "bn" for p in tree.flatten(params)):
        raise ValueError("export: the params hold BatchNorm layers; export the BN-folded SNN")
    ops = build(snn_model, params)
    shapes = infer_shapes(ops, params, input_shape)
    traced = spiking_layers(snn_model, params, input_shape)
    described = [op for op in ops if op.kind == "spike"]
    if [t.path for t in traced] != [op.path for op in described]:
        raise ValueError(
            f"export: the graph of {type(snn_model).__name__} in jaxsnn.export.graph lists the "
            f"spiking layers {[op.path for op in described]}, the model calls "
            f"{[t.path for t in traced]}"
        )
    for t, op in zip(traced, described, strict=True):
        if _channels_first(t.shape) != shapes[op.name]:
            raise ValueError(
                f"export: spiking layer '{t.path}' sees inputs of shape {t.shape} (H, W, C), the "
                f"graph gives {shapes[op.name]} (C, H, W)"
            )
    return ops, shapes, {t.path: t for t in traced}


def _channels_first(shape: tuple) -> tuple:
    return (shape[-1], *shape[:-1]) if len(shape) == 3 else tuple(shape)


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def infer_shapes(ops: list[Op], params: Mapping, input_shape) -> dict[str, tuple]:
    """``{op name: per-example output shape}`` (channels-first), from the kernels' shapes."""
    flat = tree.flatten(params)
    shapes: dict[str, tuple] = {"input": _channels_first(tuple(input_shape))}
    for op in ops[1:]:
        x = shapes[op.inputs[0]]
        if op.kind in ("conv", "dense"):
            kernel = flat[f"{op.path}/kernel"].shape
            fan_in = kernel[-2] if op.kind == "conv" else kernel[0]
            if fan_in != (x[0] if op.kind == "conv" else math.prod(x)):
                raise ValueError(f"export: '{op.path}' has kernel {kernel}, its input is {x}")
        if op.kind == "conv":
            kh, kw, _, out = kernel
            h, w = (_out_size(s, k, op.stride, k // 2) for s, k in zip(x[1:], (kh, kw)))
            shapes[op.name] = (out, h, w)
        elif op.kind == "dense":
            shapes[op.name] = (kernel[-1],)
        elif op.kind == "avgpool" and op.window == 0:
            shapes[op.name] = (x[0], 1, 1)
        elif op.kind == "avgpool":
            size = (_out_size(s, op.window, op.stride, op.pad) for s in x[1:])
            shapes[op.name] = (x[0], *size)
        elif op.kind == "flatten":
            shapes[op.name] = (math.prod(x),)
        else:  # spike, identity, output: shape-preserving
            shapes[op.name] = x
        for other in op.inputs[1:]:
            if shapes[other] != x:
                raise ValueError(
                    f"export: '{op.name}' sums inputs of shapes {x} and {shapes[other]}"
                )
    return shapes
