"""Conversion as a chain of small pure functions over variable trees.

``fold_batchnorm`` → ``extract_thresholds`` → ``to_snn_params`` → ``init_membrane``, plus
``make_snn_model``, which turns the ANN module definition into its SNN twin (same architecture,
the spiking layer in place of every activation, BN folded). None of them edits its input. Every
conversion method (docs/methods.md) builds its SNN with these functions, so all methods produce
the same kind of SNN: :class:`jaxsnn.neurons.SpikingActivation` layers with a threshold and a
spike cap per layer.
"""

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.models.layers import BN_EPSILON
from jaxsnn.neurons import CAP, IF, THRESHOLD, SpikingActivation
from jaxsnn.typing import Membrane


def fold_batchnorm(params: Mapping, batch_stats: Mapping, eps: float = BN_EPSILON) -> dict:
    r"""Converts ANN params with BatchNorm into params of the BN-folded architecture.

    For every ``ConvBN`` (``conv`` + ``bn``), with :math:`s = \sqrt{\sigma^2 + \epsilon}`:
    :math:`W' = W\,\gamma/s` (per output channel) and :math:`b' = \beta + (b - \mu)\,\gamma/s`.
    """

    def fold(p: Mapping, stats: Mapping, path: str) -> dict:
        if "bn" in p and "conv" in p:
            return {"conv": _fold_one(p["conv"], p["bn"], stats.get("bn"), path, eps)}
        out = {}
        for k, v in p.items():
            child = f"{path}/{k}" if path else k
            out[k] = fold(v, stats.get(k, {}), child) if isinstance(v, Mapping) else v
        return out

    return fold(params, batch_stats, "")


def _fold_one(conv: Mapping, bn: Mapping, stats: Mapping | None, path: str, eps: float) -> dict:
    if stats is None or "mean" not in stats or "var" not in stats:
        raise ValueError(f"fold_batchnorm: no batch_stats (mean/var) for BatchNorm '{path}/bn'")
    kernel = conv["kernel"]
    scale = bn["scale"] / jnp.sqrt(stats["var"] + jnp.asarray(eps, stats["var"].dtype))
    bias = conv.get("bias", jnp.zeros_like(stats["mean"]))
    out_axis_scale = scale.reshape((1,) * (kernel.ndim - 1) + scale.shape)
    return {"kernel": kernel * out_axis_scale, "bias": bn["bias"] + (bias - stats["mean"]) * scale}


def extract_thresholds(params: Mapping) -> dict[str, jax.Array]:
    """Converts a params tree into ``{layer_path: θ}``, checking every θ is finite and > 0."""
    out = tree.layer_leaves(params, THRESHOLD)
    if not out:
        raise ValueError("no activation thresholds found in params (expected '.../threshold')")
    for layer, theta in out.items():
        check_threshold(layer, theta)
    return out


def check_threshold(layer: str, theta) -> None:
    """Raises ``ValueError`` naming ``layer`` unless θ is finite and strictly positive."""
    try:
        value = np.asarray(theta)
    except jax.errors.TracerArrayConversionError:
        return  # traced inside a sweep: checked where it was concrete
    if not np.all(np.isfinite(value)) or not np.all(value > 0):
        raise ValueError(
            f"threshold of layer '{layer}' must be finite and > 0, got {value.ravel()[:4]}"
        )


def to_snn_params(
    params: Mapping,
    thresholds: Mapping[str, jax.Array],
    caps: Mapping[str, int] | int = 1,
    *,
    shapes: Mapping[str, tuple] | None = None,
) -> dict:
    """Converts (BN-folded) ANN params into SNN params: θ and the spike cap M per spiking layer.

    Args:
      params: BN-folded ANN params. The QCFS/clip-ReLU λ leaves (``.../threshold``), if any, are
        replaced; a plain-ReLU ANN has none and gets new ones.
      thresholds: ``{layer: θ}`` (scalar or per channel); when ``params`` hold λ leaves, exactly
        their layers.
      caps: the spike cap per layer (``{layer: M}``) or one for all (1: binary IF neurons).
      shapes: ``{layer: θ shape}`` of the SNN (:func:`threshold_shapes`); each θ is broadcast to
        it (a per-layer θ in a per-channel SNN). Without it θ keeps its own shape.

    Returns:
      The SNN's ``'params'``: the ANN weights plus ``threshold`` and ``max_spikes`` leaves.
    """
    current = tree.layer_leaves(params, THRESHOLD)
    missing = sorted(set(current) - set(thresholds))
    unexpected = sorted(set(thresholds) - set(current)) if current else []
    if missing or unexpected:
        raise ValueError(
            f"thresholds do not match the activation layers: missing {missing}, "
            f"unexpected {unexpected}"
        )
    flat = {
        p: v for p, v in tree.flatten(params).items() if tree.leaf_name(p) not in (THRESHOLD, CAP)
    }
    for layer, theta in thresholds.items():
        check_threshold(layer, theta)
        dtype = jnp.result_type(current[layer]) if layer in current else jnp.float32
        theta = jnp.asarray(theta, dtype)
        if shapes is not None:
            theta = jnp.broadcast_to(theta, shapes[layer])
        cap = caps if isinstance(caps, int) else caps[layer]
        flat[f"{layer}/{THRESHOLD}"] = theta
        flat[f"{layer}/{CAP}"] = jnp.asarray(cap, dtype)
    return tree.unflatten(flat)


def scale_thresholds(params: Mapping, scale) -> dict:
    """Multiplies every neuron threshold by ``scale`` (a scalar, traceable: vmap sweeps)."""

    def rescale(path: str, leaf):
        return leaf * scale if tree.leaf_name(path) == THRESHOLD else leaf

    return tree.map_with_path(rescale, params)


def make_snn_model(
    ann_model: nn.Module,
    neuron: IF = IF(),
    *,
    per_channel: bool = False,
    masked: bool = False,
    track_counts: bool = False,
) -> nn.Module:
    """Converts an ANN module definition into its SNN twin: spiking activations, BN folded.

    Args:
      ann_model: the ANN definition (any architecture of :mod:`jaxsnn.models`).
      neuron: the kernel: ``IF()`` (binary, the default) or ``IF(shift=1/(2T))`` for the
        calibration papers' neuron; the cap itself is the parameter ``max_spikes``.
      per_channel: one threshold per channel.
      masked: keep SRP output masks in the membrane.
      track_counts: keep cumulative spike counts in the membrane (diagnostics, calibration).
    """
    act = functools.partial(
        SpikingActivation,
        neuron=neuron,
        per_channel=per_channel,
        masked=masked,
        track_counts=track_counts,
    )
    overrides = {"act": act}
    if hasattr(ann_model, "fold_bn"):
        overrides["fold_bn"] = True
    return ann_model.clone(**overrides)


def _init_shapes(snn_model: nn.Module, input_shape, dtype=jnp.float32) -> dict:
    return jax.eval_shape(lambda: snn_model.init(jax.random.key(0), jnp.zeros(input_shape, dtype)))


def threshold_shapes(snn_model: nn.Module, input_shape) -> dict[str, tuple]:
    """``{spiking layer: θ shape}`` of ``snn_model`` (no compute)."""
    params = _init_shapes(snn_model, input_shape).get("params", {})
    return {layer: s.shape for layer, s in tree.layer_leaves(params, THRESHOLD).items()}


MembraneInit = str | float | jax.Array | Callable | Mapping


def membrane_shapes(snn_model: nn.Module, input_shape, dtype=jnp.float32) -> dict:
    """The ``'membrane'`` collection's shapes for a batch of ``input_shape`` (no compute)."""
    return _init_shapes(snn_model, input_shape, dtype).get("membrane", {})


def init_membrane(
    snn_model: nn.Module,
    input_shape: Sequence[int],
    mode: MembraneInit = "half",
    dtype=jnp.float32,
) -> Membrane:
    """Converts an SNN definition and batch shape into the initial ``'membrane'`` collection.

    ``v`` is in threshold units. ``mode``: ``"half"`` (v = θ/2, optimal, default), ``"zero"``,
    a fraction α (v = αθ; may be traced for vmap sweeps), a mapping ``{layer_path: array}``
    (data-driven, broadcast to the layer's shape; other layers get θ/2), or a callable
    ``hook(layer_path, shape, dtype) -> array``. SRP masks start at 1, spike counts at 0.
    """
    shapes = membrane_shapes(snn_model, input_shape, dtype)

    def fill(path: str, sds):
        name, layer = tree.leaf_name(path), tree.layer_of(path)
        if name == "mask":
            return jnp.ones(sds.shape, dtype)
        if name == "count":
            return jnp.zeros(sds.shape, dtype)
        return jnp.broadcast_to(_initial_v(mode, layer, sds.shape, dtype), sds.shape)

    return tree.map_with_path(fill, shapes)


def _initial_v(mode: MembraneInit, layer: str, shape, dtype) -> jax.Array:
    if isinstance(mode, str):
        if mode == "half":
            return jnp.asarray(0.5, dtype)
        if mode == "zero":
            return jnp.asarray(0.0, dtype)
        raise ValueError(
            f"unknown membrane init mode {mode!r}; use 'half', 'zero', a fraction, "
            "a {layer: array} mapping or a callable"
        )
    if isinstance(mode, Mapping):
        return jnp.asarray(mode[layer], dtype) if layer in mode else jnp.asarray(0.5, dtype)
    if callable(mode):
        return jnp.asarray(mode(layer, shape, dtype), dtype)
    return jnp.asarray(mode, dtype)


def validate_variables(
    model: nn.Module, variables: Mapping, input_shape, dtype=jnp.float32
) -> None:
    """Raises ``ValueError`` naming the first variable that does not fit ``model``."""
    expected = _init_shapes(model, input_shape, dtype)
    for collection in ("params", "batch_stats"):
        tree.assert_same_structure(
            expected.get(collection, {}), variables.get(collection, {}), f"'{collection}'"
        )


def convert(
    ann_model: nn.Module, variables: Mapping, input_shape=None, **snn_kwargs
) -> tuple[nn.Module, dict]:
    """ANN definition + variables → (SNN definition, SNN params) with θ = λ (QCFS conversion).

    With ``input_shape`` the variables are first checked against the architecture.
    ``snn_kwargs`` go to :func:`make_snn_model`.
    """
    if input_shape is not None:
        validate_variables(ann_model, variables, input_shape)
    params = fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    snn_params = to_snn_params(params, extract_thresholds(params))
    return make_snn_model(ann_model, **snn_kwargs), snn_params
