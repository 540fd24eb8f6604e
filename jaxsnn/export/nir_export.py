r"""Export a converted SNN to NIR, the field's interchange format (https://neuroir.org).

What is written (README, "Export"): ``Input`` (the image, ``(C, H, W)``), ``Conv2d`` (kernels
HWIO → OIHW), ``AvgPool2d``, ``Flatten`` (channels-first, so the first dense layer's inputs are
reordered from our channels-last flatten), ``Affine`` (weights ``(out, in)``), one ``IF`` node per
spiking layer and ``Output`` (the analog readout layer). A ResNet's residual add is two edges into
the block's second ``IF`` node.

NIR's ``IF`` node cannot state our neuron exactly, so the graph's metadata does (NIR keeps
per-node metadata through ``nir.write``/``nir.read``; importers may ignore it):

- discrete time, ``dt = 1``, ``r = 1``: each step :math:`v \leftarrow v + I` (``I``: the sum of the
  node's inputs), a spike when :math:`v \ge \theta` (NIR's text says ``>``), then **reset by
  subtraction** :math:`v \leftarrow v - \theta` (``v_reset`` is written as 0, but NIR's reset *to*
  ``v_reset`` is not ours);
- ``v(0)`` per neuron in each ``IF`` node's metadata ``v_init`` (NIR has no field for it);
- direct input encoding (the analog image at every step), ``num_steps`` T, and the readout: the
  sum over the T steps of the ``Output`` node's value.

Our spiking layer emits :math:`s\,\theta`; NIR's ``IF`` emits the unit spike :math:`s`. The
emitting layer's θ is therefore folded into the weights of every node it feeds (conv input
channels, dense inputs), and an identity shortcut becomes a 1×1 ``Conv2d`` with diagonal θ. Each
product ``w·(s·θ)`` equals ``(w·θ)·s`` exactly, so only the order of the sums (and, after average
pooling, where θ is applied) can change float rounding.

The calibration papers' neuron adds a constant :math:`\delta = 1/(2T)` threshold units every step
(``shift``): that is the constant current :math:`\delta\theta`, folded into the bias of the layer
feeding the neuron. In exact arithmetic this is the same neuron; in float32 ``(x + δθ)/θ`` and
``x/θ + δ`` may round differently (they agree exactly when θ is a power of two and ``x`` is on a
dyadic grid, which the tests use).

``thresholds='unit'`` writes every ``v_threshold`` as 1 and divides the weights and bias feeding
each ``IF`` node by its θ (per channel): the form importers that take one threshold per layer
(SpikingJelly, snnTorch) need for per-channel θ; ``v_init`` is then in threshold units.
``pooling='sum'`` writes ``SumPool2d`` and folds the 1/k² of average pooling into the next layer's
weights the same way (for importers without ``AvgPool2d``, such as Sinabs).

Not expressible, and refused with a ``ValueError`` that says why: spike caps M > 1 (burst
neurons: an ``IF`` node emits at most one spike per step), SRP's output masks and COS's offsets
(both computed per input by a pre-simulation). Per-neuron initial potentials (potential
calibration, IC-SNN A2) are exported in ``v_init`` metadata only.
"""

import math
from collections.abc import Mapping

import jax
import numpy as np
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.convert import init_membrane
from jaxsnn.export.graph import Op, describe
from jaxsnn.neurons import CAP, THRESHOLD
from jaxsnn.simulate import SRP, Direct

THRESHOLD_MODES = ("native", "unit")
POOLING_MODES = ("avg", "sum")

SEMANTICS = (
    "jaxsnn IF neuron in discrete time (dt = 1, r = 1), per step: v += I (the sum of the node's "
    "inputs); spike if v >= v_threshold; reset by subtraction v -= v_threshold (not to v_reset). "
    "v(0) is the IF node's metadata 'v_init'. The input is fed unchanged at every step (direct "
    "encoding); the readout is the sum over the num_steps steps of the Output node's value."
)


def import_nir(field: str = ""):
    """The ``nir`` package, or a one-line error (starting with ``field``) naming the extra."""
    try:
        import nir
    except ImportError:
        prefix = f"{field}: " if field else ""
        raise ValueError(
            f"{prefix}NIR export needs the 'nir' package: pip install -e '.[nir]' (or pip install "
            "nir)"
        ) from None
    return nir


def _image_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"export: input_shape must be (B, H, W, C) or (H, W, C), got {shape}")
    return shape


def _check_protocol(protocol) -> None:
    if protocol is None or isinstance(protocol, Direct):
        return
    what = "output masks" if isinstance(protocol, SRP) else "initial potentials"
    raise ValueError(
        f"export: the {type(protocol).__name__} start protocol cannot be expressed in NIR: it "
        f"sets {what} per input from a {protocol.presim}-step pre-simulation"
    )


def _layer_arrays(snn_model, params, membrane_init, input_shape, layers) -> tuple[dict, dict]:
    """``{layer: θ [C]}`` and ``{layer: v(0)/θ in the NIR neuron shape}`` (checked)."""
    flat = tree.flatten(jax.device_get(params))
    membrane = init_membrane(snn_model, (1, *input_shape), membrane_init)
    v0 = tree.layer_leaves(jax.device_get(membrane), "v")
    thetas, u0 = {}, {}
    for layer in layers:
        if layer.masked:
            raise ValueError(
                f"export: spiking layer '{layer.path}' carries an SRP output mask, which NIR "
                "cannot express (the masks come from a pre-simulation of each input)"
            )
        cap = np.asarray(flat[f"{layer.path}/{CAP}"])
        if cap.size != 1 or float(cap) != 1.0:
            raise ValueError(
                f"export: spiking layer '{layer.path}' has spike cap max_spikes = "
                f"{cap.ravel()[0]:g}; NIR's IF node emits at most one spike per step (burst "
                "neurons cannot be exported)"
            )
        theta = np.asarray(flat[f"{layer.path}/{THRESHOLD}"], np.float32)
        channels = layer.shape[-1]
        thetas[layer.path] = np.broadcast_to(theta, (channels,)).copy()
        u0[layer.path] = _to_channels_first(np.asarray(v0[layer.path], np.float32)[0])
    return thetas, u0


def _to_channels_first(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 0) if x.ndim == 3 else x


def _neuron(theta: np.ndarray, shape: tuple) -> np.ndarray:
    """θ per channel broadcast to the neuron shape ``(C, H, W)`` or ``(F,)``."""
    return np.broadcast_to(theta.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()


def _window(op: Op, shape: tuple) -> tuple[int, int]:
    """The pool window of ``op`` on a ``(C, H, W)`` input (0: global pooling)."""
    return tuple(shape[1:]) if op.window == 0 else (op.window, op.window)


def _flatten_order(shape: tuple) -> np.ndarray:
    """Our channels-last flat index of each channels-first flat index of a ``(C, H, W)`` map."""
    c, h, w = shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()


class _Linear:
    """The weights of one conv/dense node in NIR layout, adjusted before the node is written."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight, self.bias = weight.astype(np.float32), bias.astype(np.float32)

    def scale_outputs(self, factor: np.ndarray) -> None:
        self.weight = self.weight * factor.reshape((-1,) + (1,) * (self.weight.ndim - 1))
        self.bias = self.bias * factor


def _linear_node(op: Op, flat: Mapping, shapes, in_scale, order) -> _Linear:
    if op.kind == "identity":
        channels = shapes[op.name][0]
        diag = np.ones(channels, np.float32) if in_scale is None else in_scale
        weight = np.zeros((channels, channels, 1, 1), np.float32)
        weight[np.arange(channels), np.arange(channels), 0, 0] = diag
        return _Linear(weight, np.zeros(channels, np.float32))
    kernel = np.asarray(flat[f"{op.path}/kernel"], np.float32)
    bias = np.asarray(flat.get(f"{op.path}/bias", np.zeros(kernel.shape[-1])), np.float32)
    if op.kind == "conv":
        weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if in_scale is not None:
            weight = weight * in_scale.reshape(1, -1, 1, 1)
    else:
        weight = kernel.T if order is None else kernel[order].T  # (in, out) -> (out, in)
        if in_scale is not None:
            weight = weight * in_scale.reshape(1, -1)
    return _Linear(weight, bias)


def to_nir(
    snn_model: nn.Module,
    params: Mapping,
    membrane_init="half",
    input_shape=None,
    *,
    num_steps: int | None = None,
    protocol=None,
    thresholds: str = "native",
    pooling: str = "avg",
    metadata: Mapping | None = None,
):
    """Converts a jaxsnn SNN into a ``nir.NIRGraph`` (module docstring: what and how).

    Args:
      snn_model: the SNN definition (``convert.make_snn_model`` of a CNN, VGG or ResNet).
      params: its ``'params'`` (every spike cap must be 1).
      membrane_init: the initial membrane, any mode of :func:`jaxsnn.convert.init_membrane`
        (``Converted.membrane_init``); written as ``v_init`` metadata.
      input_shape: the image shape, ``(H, W, C)`` or ``(B, H, W, C)``.
      num_steps: T, recorded in the metadata (``None``: not recorded).
      protocol: the start protocol (``Converted.protocol``); only ``Direct`` can be exported.
      thresholds: ``'native'`` (``v_threshold`` = θ, per layer or per channel, broadcast to the
        neuron shape) or ``'unit'`` (``v_threshold`` = 1, θ divided into the weights feeding it).
      pooling: ``'avg'`` (``AvgPool2d``, zero padding counted) or ``'sum'`` (``SumPool2d``, the
        1/k² folded into the next layer's weights like θ: for importers without average pooling,
        such as Sinabs).
      metadata: extra graph metadata (``str``/number/bool/array values), e.g. the method.

    Returns:
      The graph (write it with :func:`write`).

    Raises:
      ValueError: what the graph cannot express (spike caps > 1, SRP masks, SRP/COS protocols),
        an unknown architecture, or a bad argument; one line saying why.
    """
    nir = import_nir()
    if thresholds not in THRESHOLD_MODES:
        raise ValueError(f"export: thresholds must be one of {THRESHOLD_MODES}, got {thresholds!r}")
    if pooling not in POOLING_MODES:
        raise ValueError(f"export: pooling must be one of {POOLING_MODES}, got {pooling!r}")
    if input_shape is None:
        raise ValueError("export: input_shape is required (the image shape, (H, W, C))")
    input_shape = _image_shape(input_shape)
    _check_protocol(protocol)
    params = jax.device_get(params)
    ops, shapes, layers = describe(snn_model, params, input_shape)
    thetas, u0 = _layer_arrays(snn_model, params, membrane_init, input_shape, layers.values())
    flat = tree.flatten(params)

    linear: dict[str, _Linear] = {}  # conv, dense and identity nodes
    scale: dict[str, np.ndarray | None] = {}  # θ still to apply to a node's output, per channel
    order: dict[str, np.ndarray | None] = {}  # flatten reordering for the next dense layer
    for op in ops:
        src = op.inputs[0] if op.inputs else None
        scale[op.name], order[op.name] = None, None
        if op.kind in ("conv", "dense", "identity"):
            linear[op.name] = _linear_node(op, flat, shapes, scale[src], order[src])
        elif op.kind == "spike":
            _fold_neuron(op, layers[op.path], thetas[op.path], linear, thresholds)
            scale[op.name] = thetas[op.path]
        elif op.kind == "avgpool" and pooling == "sum":
            area = math.prod(_window(op, shapes[src]))
            channels = np.ones(shapes[src][0], np.float32) if scale[src] is None else scale[src]
            scale[op.name] = channels / np.float32(area)
        elif op.kind == "avgpool":
            scale[op.name] = scale[src]
        elif op.kind == "flatten":
            spatial = math.prod(shapes[src][1:])
            scale[op.name] = None if scale[src] is None else np.repeat(scale[src], spatial)
            order[op.name] = _flatten_order(shapes[src]) if len(shapes[src]) == 3 else None
        elif op.kind == "output" and scale[src] is not None:
            raise ValueError(f"export: the output '{src}' is a spiking layer; expected analog")
    nodes = {
        op.name: _nir_node(nir, op, shapes, linear, layers, thetas, u0, thresholds, pooling)
        for op in ops
    }
    edges = [(src, op.name) for op in ops for src in op.inputs]
    meta = _graph_metadata(num_steps, thresholds, pooling, layers.values(), metadata)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _nir_node(nir, op: Op, shapes, linear, layers, thetas, u0, thresholds: str, pooling: str):
    """The NIR node of ``op`` (its weights already folded)."""
    shape = shapes[op.name]
    if op.kind == "input":
        return nir.Input(input_type={"input": np.array(shape)})
    if op.kind == "output":
        return nir.Output(output_type={"output": np.array(shape)})
    if op.kind in ("conv", "identity"):
        node, (kh, kw) = linear[op.name], linear[op.name].weight.shape[2:]
        return nir.Conv2d(
            input_shape=tuple(shapes[op.inputs[0]][1:]),
            weight=node.weight,
            stride=(op.stride, op.stride),
            padding=(kh // 2, kw // 2),
            dilation=(1, 1),
            groups=1,
            bias=node.bias,
            metadata={"jaxsnn_layer": op.path or "residual identity (diagonal θ)"},
        )
    if op.kind == "dense":
        node = linear[op.name]
        return nir.Affine(weight=node.weight, bias=node.bias, metadata={"jaxsnn_layer": op.path})
    if op.kind == "avgpool":
        pool = nir.AvgPool2d if pooling == "avg" else nir.SumPool2d
        return pool(
            kernel_size=np.array(_window(op, shapes[op.inputs[0]])),
            stride=np.array((op.stride, op.stride)),
            padding=np.array((op.pad, op.pad)),
        )
    if op.kind == "flatten":
        src_shape = np.array(shapes[op.inputs[0]])
        return nir.Flatten(input_type={"input": src_shape}, start_dim=0, end_dim=-1)
    if op.kind == "spike":
        return _if_node(nir, op, shape, layers[op.path], thetas[op.path], u0[op.path], thresholds)
    raise ValueError(f"export: unknown op kind {op.kind!r}")


def _fold_neuron(op: Op, layer, theta: np.ndarray, linear, thresholds: str) -> None:
    """Folds the unit-threshold division and the shift into the layers feeding ``op``."""
    feeding = [linear.get(name) for name in op.inputs]
    if any(node is None for node in feeding):
        raise ValueError(f"export: spiking layer '{op.path}' is fed by a node without weights")
    if thresholds == "unit":
        for node in feeding:
            node.scale_outputs(1.0 / theta)
    if layer.shift:
        shift = np.float32(layer.shift)
        feeding[0].bias = feeding[0].bias + (shift if thresholds == "unit" else shift * theta)


def _if_node(nir, op: Op, shape, layer, theta, u0, thresholds: str):
    theta = _neuron(theta, shape)
    v_init = u0 if thresholds == "unit" else u0 * theta
    v_threshold = np.ones(shape, np.float32) if thresholds == "unit" else theta
    metadata = {
        "jaxsnn_layer": op.path,
        "v_init": np.broadcast_to(v_init, shape).astype(np.float32),
        "reset": "subtract",
        "fire": "v >= v_threshold",
        "max_spikes": 1,
        "shift_folded_into_bias": float(layer.shift),
    }
    return nir.IF(
        r=np.ones(shape, np.float32),
        v_threshold=v_threshold,
        v_reset=np.zeros(shape, np.float32),
        metadata=metadata,
    )


def _graph_metadata(num_steps, thresholds: str, pooling: str, layers, extra) -> dict:
    meta = {
        "producer": "jaxsnn (jax-ann2snn)",
        "semantics": SEMANTICS,
        "time": "discrete",
        "dt": 1.0,
        "reset": "subtract",
        "fire": "v >= v_threshold",
        "v_init": "per IF node, metadata 'v_init' (potential at t = 0, before the first input)",
        "input_encoding": "direct: the analog input is fed unchanged at every step",
        "readout": "sum over the num_steps steps of the Output node's value; class = argmax",
        "spike_output": "IF nodes emit unit spikes; the emitting layer's threshold is folded into "
        "the weights of the nodes it feeds (identity shortcuts: 1x1 Conv2d, diagonal threshold)",
        "thresholds": thresholds,
        "pooling": "average (AvgPool2d)"
        if pooling == "avg"
        else "SumPool2d; the 1/k^2 of our average pooling is folded into the next layer's weights",
    }
    if any(layer.shift for layer in layers):
        meta["shift"] = (
            "the calibrated neuron's constant per-step charge shift * threshold is folded into the "
            "bias of the layer feeding each IF node"
        )
    if num_steps is not None:
        meta["num_steps"] = int(num_steps)
    for key, value in (extra or {}).items():
        if not isinstance(value, str | int | float | bool | np.ndarray):
            raise ValueError(
                f"export: metadata '{key}' must be a str, number, bool or array (NIR stores flat "
                f"metadata), got {type(value).__name__}"
            )
        meta[key] = value
    return meta


def write(path, graph) -> None:
    """Writes ``graph`` to ``path`` (NIR's HDF5 format, gzip-compressed)."""
    import_nir().write(str(path), graph)


def converted_to_nir(
    conv,
    input_shape,
    *,
    num_steps: int,
    thresholds: str = "native",
    pooling: str = "avg",
    metadata: Mapping | None = None,
):
    """:func:`to_nir` of a converted SNN (``jaxsnn.methods.Converted``), as ``convert.py`` writes.

    The evaluation-only extras of a conversion are not part of the network: IC-SNN's coding
    compensation readout and IAT's early exit are noted in the metadata, not exported.
    """
    meta = dict(metadata or {})
    if getattr(conv, "compensation_layer", None):
        meta["not_exported"] = (
            f"coding-compensated readout of '{conv.compensation_layer}' (an evaluation extra); "
            "the graph is the uncompensated network"
        )
    if getattr(conv, "iat", None):
        meta["iat_thresholds"] = np.asarray(conv.iat["thresholds"], np.float32)
        meta["iat_metric"] = str(conv.iat["metric"])
    return to_nir(
        conv.model,
        conv.params,
        conv.membrane_init,
        input_shape,
        num_steps=num_steps,
        protocol=conv.protocol,
        thresholds=thresholds,
        pooling=pooling,
        metadata=meta,
    )
