"""Conversion as a chain of small pure functions over variable trees (spec §1.3, §2.3).

``fold_batchnorm`` → ``extract_thresholds`` → ``to_snn_params`` → ``init_membrane``, plus
``make_snn_model`` which turns the ANN module definition into its SNN twin (same architecture,
spiking activation, BN folded). None of them edits its input.
"""

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn.convert import tree as tree_lib
from jaxsnn.models.layers import BN_EPSILON
from jaxsnn.neurons import IF, Neuron, SpikingActivation

THRESHOLD = "threshold"


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
    out = {
        tree_lib.layer_of(p): v
        for p, v in tree_lib.flatten(params).items()
        if p.rsplit("/", 1)[-1] == THRESHOLD
    }
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


def to_snn_params(params: Mapping, thresholds: Mapping[str, jax.Array]) -> dict:
    """Converts (BN-folded) ANN params into SNN params whose neuron thresholds are ``thresholds``.

    ``thresholds`` must name exactly the activation layers of ``params``; a per-channel θ may
    replace a scalar λ (calibration methods).
    """
    current = extract_thresholds(params)
    missing, unexpected = (
        sorted(set(current) - set(thresholds)),
        sorted(set(thresholds) - set(current)),
    )
    if missing or unexpected:
        raise ValueError(
            f"thresholds do not match the activation layers: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for layer, theta in thresholds.items():
        check_threshold(layer, theta)

    def replace(path: str, leaf):
        if path.rsplit("/", 1)[-1] == THRESHOLD:
            return jnp.asarray(thresholds[tree_lib.layer_of(path)], jnp.result_type(leaf))
        return leaf

    return tree_lib.map_with_path(replace, params)


def scale_thresholds(params: Mapping, scale) -> dict:
    """Multiplies every neuron threshold by ``scale`` (a scalar, traceable: vmap sweeps)."""

    def rescale(path: str, leaf):
        return leaf * scale if path.rsplit("/", 1)[-1] == THRESHOLD else leaf

    return tree_lib.map_with_path(rescale, params)


def make_snn_model(
    ann_model: nn.Module,
    neuron: Neuron = IF(),
    *,
    per_channel: bool = False,
    masked: bool = False,
    track_counts: bool = False,
) -> nn.Module:
    """Converts an ANN module definition into its SNN twin: spiking activations, BN folded."""
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


MembraneInit = str | float | jax.Array | Callable | Mapping


def membrane_shapes(snn_model: nn.Module, input_shape, dtype=jnp.float32) -> dict:
    """The ``'membrane'`` collection's shapes for a batch of ``input_shape`` (no compute)."""
    variables = jax.eval_shape(
        lambda: snn_model.init(jax.random.key(0), jnp.zeros(input_shape, dtype))
    )
    return variables.get("membrane", {})


def init_membrane(
    snn_model: nn.Module, input_shape, mode: MembraneInit = "half", dtype=jnp.float32
) -> dict:
    """Converts an SNN definition and batch shape into the initial ``'membrane'`` collection.

    ``v`` is in threshold units. ``mode``: ``"half"`` (v = θ/2, optimal, default), ``"zero"``,
    a fraction α (v = αθ; may be traced for vmap sweeps), a mapping ``{layer_path: array}``
    (data-driven, broadcast to the layer's shape; other layers get θ/2), or a callable
    ``hook(layer_path, shape, dtype) -> array``. SRP masks start at 1, spike counts at 0.
    """
    shapes = membrane_shapes(snn_model, input_shape, dtype)

    def fill(path: str, sds):
        name, layer = path.rsplit("/", 1)[-1], tree_lib.layer_of(path)
        if name == "mask":
            return jnp.ones(sds.shape, dtype)
        if name == "count":
            return jnp.zeros(sds.shape, dtype)
        return jnp.broadcast_to(_initial_v(mode, layer, sds.shape, dtype), sds.shape)

    return tree_lib.map_with_path(fill, shapes)


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
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(input_shape, dtype)))
    for collection in ("params", "batch_stats"):
        tree_lib.assert_same_structure(
            expected.get(collection, {}), variables.get(collection, {}), f"'{collection}'"
        )


def convert(
    ann_model: nn.Module, variables: Mapping, input_shape=None, **snn_kwargs
) -> tuple[nn.Module, dict]:
    """ANN definition + variables → (SNN definition, SNN params) with θ = λ (QCFS conversion).

    With ``input_shape`` the variables are first checked against the architecture.
    """
    if input_shape is not None:
        validate_variables(ann_model, variables, input_shape)
    params = fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    snn_params = to_snn_params(params, extract_thresholds(params))
    return make_snn_model(ann_model, **snn_kwargs), snn_params
