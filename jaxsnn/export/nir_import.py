r"""Import a NIR graph into jaxsnn: a Flax SNN (:class:`NIRNet`), its params and initial membrane.

Node types (those :mod:`jaxsnn.export.nir_export` writes, plus ``Linear``, ``SumPool2d`` and
``Scale``): ``Input``, ``Output``, ``Conv2d``, ``Affine``, ``Linear``, ``AvgPool2d``,
``SumPool2d``, ``Flatten``, ``Scale`` and ``IF``; a node with several input edges sums them.
Anything else raises a ``ValueError`` naming the node.

Every ``IF`` node becomes jaxsnn's spiking layer with our semantics (discrete time, ``dt = 1``,
fire on :math:`v \ge \theta`, reset by subtraction; the export's metadata states them), which
requires ``r = 1`` and ``v_reset = 0``; its θ must be one value per layer or per channel (the
spiking layer holds no per-neuron θ). The initial potential is the node's ``v_init`` metadata when
present, else 0. The network runs channels-last like every jaxsnn model (images
``[B, H, W, C]``); NIR's channels-first weights and flatten order are converted once here.

The spiking layer emits :math:`s\,\theta`; a NIR ``IF`` node emits the unit spike :math:`s`, so
:class:`NIRNet` passes on ``1[s θ > 0]``, which is exactly :math:`s` for θ > 0 and a cap of 1.
"""

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn.export.nir_export import import_nir
from jaxsnn.neurons import CAP, IF, THRESHOLD, SpikingActivation

SUPPORTED = (
    "Input", "Output", "Conv2d", "Affine", "Linear", "AvgPool2d", "SumPool2d", "Flatten",
    "Scale", "IF",
)  # fmt: skip


class NodeSpec(NamedTuple):
    """One node of a :class:`NIRNet` (hashable, so the model is a static jit argument).

    Attributes:
      name: the NIR node name (also the Flax module name holding its params).
      kind: ``'input'``, ``'conv'``, ``'dense'``, ``'avgpool'``, ``'sumpool'``, ``'flatten'``,
        ``'scale'``, ``'spike'`` or ``'output'``.
      inputs: the nodes feeding it, summed in this order.
      attrs: kind-specific static settings (see :func:`_spec`).
    """

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    attrs: tuple = ()


class _Scale(nn.Module):
    shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        return x * self.param("scale", nn.initializers.ones, self.shape, jnp.float32)


def _pool(x, window, stride, pad, average: bool):
    summed = jax.lax.reduce_window(
        x,
        np.zeros((), x.dtype),
        jax.lax.add,
        (1, *window, 1),
        (1, *stride, 1),
        ((0, 0), *((p, p) for p in pad), (0, 0)),
    )
    return summed / jnp.asarray(window[0] * window[1], x.dtype) if average else summed


class NIRNet(nn.Module):
    """A NIR graph as a jaxsnn SNN: runs ``nodes`` in order on channels-last images.

    Attributes:
      nodes: the graph in topological order (the first is the input, the last the output).
    """

    nodes: tuple[NodeSpec, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        values: dict[str, jax.Array] = {}
        for spec in self.nodes:
            if spec.kind == "input":
                values[spec.name] = x
                continue
            h = values[spec.inputs[0]]
            for other in spec.inputs[1:]:
                h = h + values[other]
            values[spec.name] = self._apply(spec, h)
        return values[self.nodes[-1].name]

    def _apply(self, spec: NodeSpec, h: jax.Array) -> jax.Array:
        kind, a = spec.kind, spec.attrs
        if kind == "conv":
            features, kernel, strides, padding, dilation, groups = a
            return nn.Conv(
                features,
                kernel,
                strides=strides,
                padding=padding,
                kernel_dilation=dilation,
                feature_group_count=groups,
                name=spec.name,
            )(h)
        if kind == "dense":
            features, use_bias = a
            return nn.Dense(features, use_bias=use_bias, name=spec.name)(h)
        if kind in ("avgpool", "sumpool"):
            return _pool(h, *a, average=kind == "avgpool")
        if kind == "flatten":
            if h.ndim == 4:  # NIR flattens channels-first
                h = jnp.transpose(h, (0, 3, 1, 2))
            return h.reshape((h.shape[0], -1))
        if kind == "scale":
            return _Scale(a[0], name=spec.name)(h)
        if kind == "spike":
            (per_channel,) = a
            out = SpikingActivation(neuron=IF(), per_channel=per_channel, name=spec.name)(h)
            return (out > 0).astype(out.dtype)
        if kind == "output":
            return h
        raise ValueError(f"NIRNet: unknown node kind {kind!r}")


class NIRModel(NamedTuple):
    """An imported NIR graph.

    Attributes:
      model: the :class:`NIRNet`.
      params: its ``'params'`` (weights, and θ and ``max_spikes`` = 1 per ``IF`` node).
      membrane_init: ``{IF node: u(0)}`` in threshold units, for
        :func:`jaxsnn.convert.init_membrane`.
      input_shape: one image, ``(H, W, C)`` (or ``(F,)``).
      num_steps: T from the metadata (``None`` when the graph does not record it).
      metadata: the graph's metadata (strings decoded).
    """

    model: NIRNet
    params: dict
    membrane_init: dict
    input_shape: tuple[int, ...]
    num_steps: int | None
    metadata: dict


def _plain(value) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _plain(value.item())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _pair(value) -> tuple[int, int]:
    arr = np.asarray(value).astype(int).ravel()
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def _channels_last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 0, -1) if x.ndim == 3 else x


def _order(graph) -> list[str]:
    """The node names in topological order, inputs first (Kahn; ties in the graph's order)."""
    indegree = {name: 0 for name in graph.nodes}
    for src, dst in graph.edges:
        indegree[dst] += 1
    ready = collections.deque(n for n in graph.nodes if indegree[n] == 0)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for src, dst in graph.edges:
            if src == name:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    ready.append(dst)
    if len(order) != len(graph.nodes):
        raise ValueError("from_nir: the graph has a cycle (recurrent graphs are not supported)")
    return order


def _threshold(name: str, v_threshold: np.ndarray) -> tuple[np.ndarray, bool]:
    """θ as one value (per layer) or one per channel; raises for per-neuron thresholds."""
    if np.all(v_threshold == v_threshold.ravel()[0]):
        return np.asarray(v_threshold.ravel()[0], np.float32), False
    per_channel = v_threshold.reshape(v_threshold.shape[0], -1)[:, 0]
    if v_threshold.ndim == 3 and np.all(v_threshold == per_channel[:, None, None]):
        return per_channel.astype(np.float32), True
    if v_threshold.ndim == 1:
        return v_threshold.astype(np.float32), True
    raise ValueError(
        f"from_nir: IF node '{name}' has thresholds that vary within a channel; jaxsnn's spiking "
        "layer holds one threshold per layer or per channel"
    )


def _spec(nir, name: str, node, inputs: tuple, params: dict, membrane: dict) -> NodeSpec:
    """The :class:`NodeSpec` of one NIR node; fills its ``params`` and initial membrane."""
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight, np.float32)
        padding = _plain(node.padding)  # 'same'/'valid' read back from a file are bytes
        if isinstance(padding, str):
            padding = padding.upper()
        else:
            padding = tuple((p, p) for p in _pair(padding))
        params[name] = {
            "kernel": weight.transpose(2, 3, 1, 0),  # OIHW -> HWIO
            "bias": np.asarray(node.bias, np.float32),
        }
        attrs = (
            weight.shape[0],
            tuple(weight.shape[2:]),
            _pair(node.stride),
            padding,
            _pair(node.dilation),
            int(np.asarray(node.groups)),
        )
        return NodeSpec(name, "conv", inputs, attrs)
    if isinstance(node, nir.Affine | nir.Linear):
        weight = np.asarray(node.weight, np.float32)
        params[name] = {"kernel": weight.T}
        if isinstance(node, nir.Affine):
            params[name]["bias"] = np.asarray(node.bias, np.float32)
        return NodeSpec(name, "dense", inputs, (weight.shape[0], isinstance(node, nir.Affine)))
    if isinstance(node, nir.AvgPool2d | nir.SumPool2d):
        kind = "avgpool" if isinstance(node, nir.AvgPool2d) else "sumpool"
        attrs = (_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
        return NodeSpec(name, kind, inputs, attrs)
    if isinstance(node, nir.Flatten):
        shape = node.input_type["input"]
        last = -1 if shape is None else np.asarray(shape).size - 1
        if node.start_dim != 0 or node.end_dim not in (-1, last):
            raise ValueError(
                f"from_nir: Flatten '{name}' flattens dims {node.start_dim}..{node.end_dim}; "
                "only a full flatten (0..-1, batch excluded) is supported"
            )
        return NodeSpec(name, "flatten", inputs)
    if isinstance(node, nir.Scale):
        scale = _channels_last(np.asarray(node.scale, np.float32))
        params[name] = {"scale": scale}
        return NodeSpec(name, "scale", inputs, (tuple(scale.shape),))
    if isinstance(node, nir.IF):
        return _if_spec(name, node, inputs, params, membrane)
    raise ValueError(
        f"from_nir: node '{name}' is a {type(node).__name__}; supported: {', '.join(SUPPORTED)}"
    )


def _if_spec(name: str, node, inputs: tuple, params: dict, membrane: dict) -> NodeSpec:
    r, v_reset = np.asarray(node.r), np.asarray(node.v_reset)
    if not np.all(r == 1):
        raise ValueError(f"from_nir: IF node '{name}' has r != 1; fold r into its input weights")
    if not np.all(v_reset == 0):
        raise ValueError(
            f"from_nir: IF node '{name}' has v_reset != 0; jaxsnn's neuron resets by subtraction"
        )
    v_threshold = np.asarray(node.v_threshold, np.float32)
    theta, per_channel = _threshold(name, v_threshold)
    params[name] = {THRESHOLD: theta, CAP: np.asarray(1.0, np.float32)}
    v_init = node.metadata.get("v_init") if node.metadata else None
    if v_init is None:
        membrane[name] = np.zeros(_channels_last(v_threshold).shape, np.float32)
    else:
        v_init = np.broadcast_to(np.asarray(v_init, np.float32), v_threshold.shape)
        membrane[name] = _channels_last(v_init / v_threshold)
    return NodeSpec(name, "spike", inputs, (per_channel,))


def from_nir(graph) -> NIRModel:
    """Converts a NIR graph (or the path of a ``.nir`` file) into a jaxsnn SNN.

    Run it like any jaxsnn SNN::

        m = from_nir("snn.nir")
        membrane = convert.init_membrane(m.model, images.shape, m.membrane_init)
        out = simulate.simulate(m.model, m.params, membrane, images, num_steps=m.num_steps)

    Raises:
      ValueError: a node type or setting jaxsnn cannot run (module docstring), one line.
    """
    nir = import_nir()
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(str(graph))
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"from_nir: expected one Input and one Output node, got {inputs} and {outputs}"
        )
    feeding: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        feeding[dst].append(src)
    params: dict = {}
    membrane: dict = {}
    specs = []
    for name in _order(graph):
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            if name != inputs[0] or feeding[name]:
                raise ValueError(f"from_nir: the Input node '{name}' has incoming edges")
            specs.insert(0, NodeSpec(name, "input"))
            continue
        if not feeding[name]:
            raise ValueError(f"from_nir: node '{name}' has no input")
        if isinstance(node, nir.Output):
            specs.append(NodeSpec(name, "output", tuple(feeding[name])))
            continue
        specs.append(_spec(nir, name, node, tuple(feeding[name]), params, membrane))
    if specs[-1].kind != "output":
        raise ValueError(f"from_nir: the Output node '{outputs[0]}' is not the last to run")
    shape = tuple(int(s) for s in np.asarray(graph.nodes[inputs[0]].input_type["input"]).ravel())
    metadata = {k: _plain(v) for k, v in (graph.metadata or {}).items()}
    num_steps = metadata.get("num_steps")
    return NIRModel(
        model=NIRNet(tuple(specs)),
        params=jax.tree.map(jnp.asarray, params),
        membrane_init=membrane,
        input_shape=(*shape[1:], shape[0]) if len(shape) == 3 else shape,
        num_steps=None if num_steps is None else int(num_steps),
        metadata=metadata,
    )
