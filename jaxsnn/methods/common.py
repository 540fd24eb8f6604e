"""What several methods share: option definitions, building the SNN, the calibration set-up.

- Options read by every method (``T``, IAT and the calibration data) and by every
  threshold-searching method, defined once here and listed by each method's registration.
- :func:`snn_model`: the SNN every method returns (:func:`jaxsnn.convert.make_snn_model` with
  counts tracked), with the keyword arguments that rebuild it from the ANN when it is reloaded.
- :class:`Setup`: the calibration data of one conversion (BN-folded params, the batches, the
  ANN's spiking-layer order, logits and activations on the first batch).
- :func:`run`, :func:`layer_rates`: simulate a (partly) converted SNN from given initial
  potentials, as the layer-sequential calibration passes do.

Every SNN run takes an optional input ``encoding`` (`jaxsnn.simulate.TimeBins`, or None for
direct input): with it, the SNN consumes the calibration images as time-major frames, one per
step, while the ANN (thresholds, targets) sees the images themselves.
"""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.convert import (
    fold_batchnorm,
    init_membrane,
    make_snn_model,
    threshold_shapes,
    to_snn_params,
)
from jaxsnn.methods.registry import Converted, Option
from jaxsnn.models import activation_layers, ann_activations
from jaxsnn.neurons import IF
from jaxsnn.simulate import SimOutput, TimeBins, simulate, snn_input, spike_rates

# --------------------------------------------------------------------------- options

STEPS = Option(
    "T", 32, "Counted simulation steps; accuracy is reported after every t ≤ T.", minimum=1
)
PRESIM = Option(
    "presim", 4, "Pre-simulation steps τ before the counted ones (latency of step t: τ + t).",
    minimum=0,
)  # fmt: skip
DATA = (
    Option("calib_batches", 7, "Training batches read for calibration (and IAT).", minimum=1),
    Option("calib_batch_size", 128, "Images per calibration batch.", minimum=1),
)
IAT = (
    Option(
        "iat", False,
        "Also fit input-aware adaptive timesteps (early exit) on the calibration batches and "
        "report their accuracy and mean steps.",
    ),
    Option("iat_metric", "entropy", "IAT exit score.", choices=("entropy", "confidence")),
    Option(
        "iat_dataset_kind", "cifar",
        "Form of the IAT exit thresholds: 0.6 + 0.4·e^(e_min − ē_t) ('cifar') or "
        "0.995 + 0.005·e^(…) ('imagenet').",
        choices=("cifar", "imagenet"),
    ),
)  # fmt: skip
COMMON = (STEPS, *IAT, *DATA)


def threshold_options(mode: str, *, channel_wise: bool = True, max_spikes: int | None = 1):
    """The options of data-driven thresholds, with this method's defaults.

    ``max_spikes=None`` leaves the cap option out (methods whose neurons are binary IF).
    """
    options = (
        Option(
            "threshold_mode", mode,
            "How thresholds are set from ANN activations on training batches: their maximum, a "
            "percentile, or the MSE-optimal clip of a quantised surrogate (grid of 95 "
            "candidates).",
            choices=("max", "percentile", "mse"),
        ),
        Option(
            "percentile", 99.99, "p (0–100) of threshold_mode='percentile'.", minimum=0.0
        ),
        Option(
            "channel_wise", channel_wise,
            "One threshold per channel for conv layers (dense layers are always layer-wise).",
        ),
        Option("threshold_batches", 7, "Batches in the thresholds' running average.", minimum=1),
        Option("threshold_momentum", 0.9, "Momentum of that running average.", minimum=0.0),
    )  # fmt: skip
    if max_spikes is None:
        return options
    cap = Option(
        "max_spikes", max_spikes,
        "Spikes a neuron may emit per step, M (1: binary IF; burst/ssc: the desired M_d of the "
        "cap search).",
        minimum=1,
    )  # fmt: skip
    return (*options, cap)


# --------------------------------------------------------------------------- the SNN


def snn_model(
    ann_model: nn.Module, *, shift: float = 0.0, per_channel: bool = False, masked: bool = False
) -> tuple[nn.Module, dict]:
    """The SNN twin of ``ann_model`` (spike counts tracked) and the kwargs that rebuild it."""
    kwargs = {"shift": float(shift), "per_channel": bool(per_channel), "masked": bool(masked)}
    return build_snn(ann_model, kwargs), kwargs


def snn_params(model: nn.Module, folded: Mapping, thresholds: Mapping, caps, input_shape) -> dict:
    """SNN params of ``model``: BN-folded weights, θ broadcast to its threshold shapes, caps."""
    shapes = threshold_shapes(model, input_shape)
    return to_snn_params(folded, thresholds, caps, shapes=shapes)


def build_snn(ann_model: nn.Module, snn_kwargs: Mapping) -> nn.Module:
    """Rebuilds an SNN definition from ``Converted.snn_kwargs`` (also for reloaded SNNs)."""
    return make_snn_model(
        ann_model,
        IF(shift=float(snn_kwargs.get("shift", 0.0))),
        per_channel=bool(snn_kwargs.get("per_channel", False)),
        masked=bool(snn_kwargs.get("masked", False)),
        track_counts=True,
    )


def start_membrane(
    conv: Converted,
    images: jax.Array,
    num_steps: int | None = None,
    encoding: TimeBins | None = None,
) -> dict:
    """The state the counted steps of ``conv`` start from on ``images`` (protocol applied).

    With ``encoding`` the protocol's pre-simulation consumes the frames of a run of
    ``num_steps`` counted steps (`jaxsnn.simulate.protocols`); direct input needs no T.
    """
    membrane = init_membrane(conv.model, images.shape, conv.membrane_init, images.dtype)
    if encoding is not None and num_steps is None:
        raise ValueError("start_membrane: time-major input needs num_steps (the counted T)")
    inputs, time_major = snn_input(images, num_steps or 1, encoding)
    return conv.protocol.start(conv.model, conv.params, membrane, inputs, time_major=time_major)


def run_converted(
    conv: Converted,
    images: jax.Array,
    num_steps: int,
    encoding: TimeBins | None = None,
    **kw,
) -> SimOutput:
    """Simulates ``conv`` on ``images``: its start protocol, then ``num_steps`` counted steps."""
    membrane = start_membrane(conv, images, num_steps, encoding)
    if encoding is None:
        return simulate(conv.model, conv.params, membrane, images, num_steps=num_steps, **kw)
    frames = conv.protocol.counted_frames(encoding(images, num_steps), num_steps)
    return simulate(
        conv.model, conv.params, membrane, frames, num_steps=num_steps, time_major=True, **kw
    )


# --------------------------------------------------------------------------- calibration


class Setup(NamedTuple):
    """The data a calibration pass works on.

    Attributes:
      ann_model, variables: the trained ANN (unfolded; it is never modified).
      folded: its BN-folded params.
      images: the calibration image batches (the first one drives the sequential corrections and
        the sensitivity searches).
      batches: the calibration batches as given (dicts with ``'image'``, ``'label'``).
      layers: the activation (spiking) layers in forward order.
      ann_logits, ann_acts: the ANN's logits and post-activation outputs on ``images[0]``.
      num_steps: T.
      encoding: the SNN's input encoding (None: direct; `jaxsnn.simulate.TimeBins`: the
        images are consumed as time-major frames).
    """

    ann_model: nn.Module
    variables: Mapping
    folded: dict
    images: list
    batches: list
    layers: list
    ann_logits: jax.Array
    ann_acts: dict
    num_steps: int
    encoding: TimeBins | None = None


def make_setup(
    ann_model: nn.Module,
    variables: Mapping,
    batches: Sequence,
    num_steps: int,
    encoding: TimeBins | None = None,
) -> Setup:
    """Reads the calibration batches once and runs the ANN on the first."""
    batches = list(batches)
    if not batches:
        raise ValueError("calibration needs at least one batch of training images")
    images = [jnp.asarray(b["image"] if isinstance(b, Mapping) else b) for b in batches]
    folded = fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    layers = activation_layers(ann_model, variables, images[0].shape)
    ann_logits, ann_acts = ann_activations(ann_model, variables, images[0])
    return Setup(
        ann_model,
        variables,
        folded,
        images,
        batches,
        layers,
        ann_logits,
        ann_acts,
        num_steps,
        encoding,
    )


def simulate_from(
    model: nn.Module,
    params: Mapping,
    u0,
    images: jax.Array,
    num_steps: int,
    encoding: TimeBins | None = None,
) -> SimOutput:
    """Simulates T steps from initial potentials ``u0`` (a membrane mode or ``{layer: u0}``)."""
    mode = u0 if isinstance(u0, str) else dict(u0)
    membrane = init_membrane(model, images.shape, mode, images.dtype)
    inputs, time_major = snn_input(images, num_steps, encoding)
    return simulate(model, params, membrane, inputs, num_steps=num_steps, time_major=time_major)


def layer_rates(
    model: nn.Module,
    params: Mapping,
    u0,
    images: jax.Array,
    num_steps: int,
    encoding: TimeBins | None = None,
) -> dict[str, jax.Array]:
    r"""Every spiking layer's time-averaged output :math:`\theta N(T)/T`, T steps from ``u0``."""
    out = simulate_from(model, params, u0, images, num_steps, encoding)
    return spike_rates(params, out.membrane, num_steps)


def layer_dict(layers: Sequence[str], values: Sequence, cast) -> dict:
    """``{layer: cast(value)}`` over two parallel sequences."""
    return {layer: cast(v) for layer, v in zip(layers, values, strict=True)}


def leaves(params: Mapping, name: str) -> dict:
    """``{layer: leaf}`` of every leaf called ``name`` (re-exported for the method modules)."""
    return tree.layer_leaves(params, name)
