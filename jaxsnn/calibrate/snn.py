r"""The calibration-family SNN and the layer plumbing shared by every calibration pass.

**Per-layer spike caps.** AdaFire (spec §6.1) gives every layer its own cap M. The shared
``Burst`` kernel takes M as a static Python ``int`` (it is a field of the kernel), so a per-layer
M would either need one module definition per assignment (one compile per candidate in the
sensitivity search, §6.3) or a module that looks its own path up in a table. We instead store M
as a per-layer **parameter** ``max_spikes`` next to ``threshold``: :class:`BurstActivation` is the
``Burst`` step written out with a traced cap. Consequences:

- the sensitivity search and SSC (``allocation.py``) vary caps and thresholds as traced values,
  so all ``layers × candidates`` simulations share **one** compiled program (``lax.map``);
- the SNN checkpoint is self-describing: every layer carries its θ and its M;
- with a uniform M it is bit-for-bit the ``Burst(M, shift)`` kernel in ``SpikingActivation``
  (checked in ``tests/test_burst.py``).

All membranes are in threshold units (``u = v/θ``), as in the rest of the project. The model always
tracks cumulative spike counts (``'membrane'/'count'``), from which the time-averaged rate of a
layer is ``count·θ/T``.
"""

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.convert import init_membrane
from jaxsnn.convert import tree as tree_lib
from jaxsnn.simulate import SimOutput, simulate

THRESHOLD, CAP = "threshold", "max_spikes"


def _per_sample_sum(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def broadcast_channels(value: jax.Array, ndim: int) -> jax.Array:
    """Reshapes a scalar or ``[C]`` value so that it broadcasts against a rank-``ndim`` array."""
    value = jnp.asarray(value)
    return value.reshape((1,) * (ndim - value.ndim) + value.shape)


class BurstActivation(nn.Module):
    r"""Burst (AdaFire / CAL) neuron with a per-layer cap held as the parameter ``max_spikes``.

    One step, in threshold units: **charge** :math:`u \leftarrow u + x/\theta + \delta`, **fire**
    :math:`s = \mathrm{clip}(\lfloor u\rfloor, 0, M)`, **reset by subtraction**
    :math:`u \leftarrow u - s`; emits :math:`s\,\theta`. ``δ = 1/(2T)`` and ``u(0) = 0`` give the
    CAL/BURST neuron (spec §5.1, §6.1); ``δ = 0``, ``M = 1`` and ``u(0) = 1/2`` give the IF neuron
    of QCFS/OPI (used by IC-SNN).

    Attributes:
      shift: δ, the per-step bias in threshold units.
      per_channel: θ has shape ``[C]`` (last axis); otherwise a scalar.
      param_dtype: dtype of θ and M at initialisation.
    """

    shift: float = 0.0
    per_channel: bool = True
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1],) if self.per_channel else ()
        theta = self.param(THRESHOLD, nn.initializers.ones, shape, self.param_dtype)
        cap = self.param(CAP, nn.initializers.ones, (), self.param_dtype)
        theta = broadcast_channels(jnp.asarray(theta, x.dtype), x.ndim)
        v = self.variable("membrane", "v", lambda: jnp.zeros(x.shape, x.dtype))
        count = self.variable("membrane", "count", lambda: jnp.zeros(x.shape, x.dtype))
        u = v.value + x / theta + jnp.asarray(self.shift, x.dtype)
        spikes = jnp.clip(jnp.floor(u), 0, jnp.asarray(cap, x.dtype))
        v.value = u - spikes
        count.value = count.value + spikes
        self.sow("stats", "spikes", _per_sample_sum(spikes))
        return spikes * theta


def make_burst_snn(ann_model: nn.Module, *, shift: float, per_channel: bool = True) -> nn.Module:
    """Converts an ANN definition into its BN-folded SNN twin with :class:`BurstActivation`."""
    overrides = {"act": functools.partial(BurstActivation, shift=shift, per_channel=per_channel)}
    if hasattr(ann_model, "fold_bn"):
        overrides["fold_bn"] = True
    return ann_model.clone(**overrides)


# --------------------------------------------------------------------------- ANN side


def activation_layers(ann_model: nn.Module, variables: Mapping, input_shape) -> list[str]:
    """Paths of the activation layers in forward (call) order; shapes only, no compute.

    The order is recorded while tracing (jitted dicts come back key-sorted, which would put
    ``stem_act`` after ``stage*``).
    """
    called: list[str] = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__":
            called.append("/".join(context.module.path))
        return next_fun(*args, **kwargs)

    def run():
        with nn.intercept_methods(record):
            return ann_model.apply(
                variables, jnp.zeros(input_shape, jnp.float32), mutable=["activations"]
            )

    _, sown = jax.eval_shape(run)
    acts = {tree_lib.layer_of(p) for p in tree_lib.flatten(sown.get("activations", {}))}
    order = list(dict.fromkeys(p for p in called if p in acts))
    if not order:
        raise ValueError("the ANN sows no 'activations' (use the QCFS/ClipReLU/ReLU activations)")
    return order


@functools.partial(jax.jit, static_argnames=("ann_model",))
def ann_activations(ann_model: nn.Module, variables: Mapping, images: jax.Array):
    """Returns ``(logits [B, K], {layer_path: post-activation output})`` of the ANN (eval mode)."""
    logits, sown = ann_model.apply(variables, images, mutable=["activations"])
    acts = {
        tree_lib.layer_of(p): v[0] if isinstance(v, tuple) else v
        for p, v in tree_lib.flatten(sown.get("activations", {})).items()
    }
    return logits, acts


def producer_of(act_path: str, params: Mapping) -> str:
    """Path of the conv/dense whose output (plus a residual, if any) feeds activation ``act_path``.

    The naming rules of the project's architectures: ``<prefix>/act<k>`` ← ``<prefix>/conv<k>``
    (ResNet blocks: ``act2`` is fed by ``conv2`` plus the shortcut), ``<prefix>/<base>_act`` ←
    ``<prefix>/<base>`` (``stem_act``, VGG ``block1_conv1_act``, ``fc1_act``, CNN ``conv1_act``);
    a ``ConvBN`` producer resolves to its ``conv`` child. Raises ``ValueError`` if the resolved
    layer has no ``kernel``/``bias`` in ``params``.
    """
    prefix, _, name = act_path.rpartition("/")
    if name.endswith("_act"):
        base = name[: -len("_act")]
    elif name.startswith("act") and name[3:].isdigit():
        base = f"conv{name[3:]}"
    else:
        raise ValueError(f"cannot infer the layer feeding activation '{act_path}'")
    path = f"{prefix}/{base}" if prefix else base
    flat = tree_lib.flatten(params)
    if f"{path}/conv/kernel" in flat:
        path = f"{path}/conv"
    if f"{path}/kernel" not in flat or f"{path}/bias" not in flat:
        raise ValueError(
            f"activation '{act_path}': producer '{path}' has no kernel and bias in "
            "the (BN-folded) params"
        )
    return path


# --------------------------------------------------------------------------- SNN side


def build_snn_params(
    snn_model: nn.Module,
    folded_params: Mapping,
    thresholds: Mapping,
    caps: Mapping | int,
    input_shape,
) -> dict:
    """Converts BN-folded ANN params + ``{layer: θ}`` + caps into the params of ``snn_model``.

    ANN thresholds (QCFS λ) are dropped; scalar θ are broadcast to the layer's ``[C]`` shape.
    """
    shapes = jax.eval_shape(
        lambda: snn_model.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32))
    )["params"]
    flat_ann = tree_lib.flatten(folded_params)
    out = {}
    for path, sds in tree_lib.flatten(shapes).items():
        layer, name = tree_lib.layer_of(path), path.rsplit("/", 1)[-1]
        if name == THRESHOLD:
            out[path] = jnp.broadcast_to(jnp.asarray(thresholds[layer], sds.dtype), sds.shape)
        elif name == CAP:
            cap = caps if isinstance(caps, int) else caps[layer]
            out[path] = jnp.asarray(cap, sds.dtype)
        elif path in flat_ann and jnp.shape(flat_ann[path]) == sds.shape:
            out[path] = flat_ann[path]
        else:
            raise ValueError(
                f"build_snn_params: '{path}' {sds.shape} is missing from the folded "
                "ANN params or has another shape"
            )
    return tree_lib.unflatten(out)


def layer_leaves(params: Mapping, name: str) -> dict[str, jax.Array]:
    """``{layer_path: leaf}`` for every leaf called ``name`` (``threshold``, ``max_spikes``)."""
    return {
        tree_lib.layer_of(p): v
        for p, v in tree_lib.flatten(params).items()
        if p.rsplit("/", 1)[-1] == name
    }


def replace_leaves(params: Mapping, new: Mapping[str, jax.Array]) -> dict:
    """A new tree with the leaves at the full paths in ``new`` replaced (shape-checked)."""
    flat = tree_lib.flatten(params)
    for path, value in new.items():
        if path not in flat:
            raise KeyError(f"no leaf '{path}' in params")
        if jnp.shape(value) != jnp.shape(flat[path]):
            raise ValueError(f"'{path}': shape {jnp.shape(value)} != {jnp.shape(flat[path])}")
    return tree_lib.unflatten({**flat, **new})


def spike_rates(params: Mapping, membrane: Mapping, num_steps: int) -> dict[str, jax.Array]:
    """Time-averaged output ``count·θ/T`` of every spiking layer from a final ``'membrane'``."""
    thresholds = layer_leaves(params, THRESHOLD)
    counts = layer_leaves(membrane, "count")
    return {
        layer: c * broadcast_channels(thresholds[layer], c.ndim) / num_steps
        for layer, c in counts.items()
    }


def initial_membrane(snn_model: nn.Module, images: jax.Array, u0: Mapping | str) -> dict:
    """The ``'membrane'`` collection with ``v = u0[layer]`` (broadcast) and zero counts.

    ``u0`` is a ``{layer: u0}`` mapping (threshold units) or a mode of
    :func:`jaxsnn.convert.init_membrane` (``'zero'``, ``'half'``), as in ``Calibrated``.
    """
    mode = u0 if isinstance(u0, str) else dict(u0)
    return init_membrane(snn_model, images.shape, mode, images.dtype)


def simulate_from(
    snn_model: nn.Module, params: Mapping, u0: Mapping | str, images: jax.Array, num_steps: int
) -> SimOutput:
    """Simulates T steps from :func:`initial_membrane` ``(u0)``; the full :class:`SimOutput`."""
    membrane = initial_membrane(snn_model, images, u0)
    return simulate(snn_model, params, membrane, images, num_steps=num_steps)


def run_snn(snn_model: nn.Module, params: Mapping, u0: Mapping, images: jax.Array, num_steps: int):
    """Simulates T steps; returns ``(mean logits [B, K], final membrane)``."""
    out = simulate_from(snn_model, params, u0, images, num_steps)
    return out.cumulative[-1] / num_steps, out.membrane


def layer_rates(
    snn_model: nn.Module, params: Mapping, u0: Mapping, images: jax.Array, num_steps: int
) -> dict[str, jax.Array]:
    r"""Simulates T steps from ``u0`` and returns every spiking layer's time-averaged output.

    :math:`S^l = \theta^l N^l(T)/T` per neuron (shape of the layer's output), from the tracked
    spike counts (:func:`spike_rates`): the quantity the layer-sequential corrections compare with
    the ANN output.
    """
    out = simulate_from(snn_model, params, u0, images, num_steps)
    return spike_rates(params, out.membrane, num_steps)
