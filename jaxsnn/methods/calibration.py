r"""SNN calibration (Li et al., "A free lunch from ANN", ICML 2021): ``calib_max``, ``calib_mse``,
``calib_light``, ``calib_advanced``.

All four use the calibration papers' neuron: reset by subtraction, a per-step shift
:math:`\theta/(2T)` (the QCFS ½ spread over T steps), :math:`u(0) = 0` and a spike cap M
(``max_spikes``, 1 by default), with thresholds from ANN activations on training batches
(:mod:`jaxsnn.methods.thresholds`). They differ in the correction that follows:

============== ===========================================================================
``calib_max``  none; θ = the maximum activation (our choice for BURST's 'none' mode,
               whose released code crashes there)
``calib_mse``  none; θ from the MSE grid search
``calib_light``  bias calibration (:func:`~jaxsnn.methods.correction.bias_calibration`)
``calib_advanced`` optional weight calibration (``weight_calib_iters`` > 0), then potential
               calibration (``advanced_correction='potential'``) or BURST's variant, a second
               bias calibration (``'bias'``)
============== ===========================================================================

The helpers here (:func:`burst_snn`, :func:`thresholded_params`, :func:`bias_calibrated`) are
shared with the burst methods (:mod:`jaxsnn.methods.burst`). Deviations from the released code
are listed in docs/methods.md ("Calibration").
"""

import jax
import numpy as np

from jaxsnn.methods import common, correction
from jaxsnn.methods.registry import Converted, Method, Option, register
from jaxsnn.methods.thresholds import determine_thresholds
from jaxsnn.models import ann_activations

PAPER = "Li et al., ICML 2021 (SNN Calibration)"


def burst_snn(setup: common.Setup):
    """The calibration papers' SNN: per-channel θ, per-step shift ``1/(2T)``, counts tracked."""
    return common.snn_model(setup.ann_model, shift=1.0 / (2 * setup.num_steps), per_channel=True)


def thresholds_for(setup: common.Setup, opts: dict, caps) -> dict:
    """Data-driven thresholds ``{layer: θ}`` for spike caps ``caps`` (options of the method)."""
    return determine_thresholds(
        setup.ann_model,
        setup.variables,
        setup.images,
        num_steps=setup.num_steps,
        layers=setup.layers,
        mode=opts["threshold_mode"],
        max_spikes=caps,
        channel_wise=opts["channel_wise"],
        percentile=opts["percentile"],
        num_batches=opts["threshold_batches"],
        momentum=opts["threshold_momentum"],
    )


def thresholded_params(setup: common.Setup, opts: dict, model, caps: dict) -> dict:
    """SNN params of ``model`` with data-driven thresholds for ``caps`` (BN-folded ANN weights)."""
    thresholds = thresholds_for(setup, opts, caps)
    return common.snn_params(model, setup.folded, thresholds, caps, setup.images[0].shape)


def sequential_pass(setup: common.Setup, model) -> correction.Pass:
    """The layer-sequential corrections' inputs: the first calibration batch, all layers."""
    return correction.Pass(
        model, setup.images[0], setup.ann_acts, setup.layers, setup.num_steps, setup.encoding
    )


def bias_calibrated(setup: common.Setup, model, params, u0) -> dict:
    """Sequential bias calibration on the first batch, runs from ``u0``."""
    return correction.bias_calibration(sequential_pass(setup, model), params, u0)


def base_fields(setup: common.Setup, opts: dict, caps: dict) -> dict:
    """The fields every burst-neuron method reports."""
    return {
        "threshold_mode": opts["threshold_mode"],
        "channel_wise": bool(opts["channel_wise"]),
        "shift": 1.0 / (2 * setup.num_steps),
        "max_spikes_per_layer": dict(caps),
        "max_spikes_overall": max(caps.values()),
        "layers": list(setup.layers),
    }


def _weight_calibrated(setup: common.Setup, opts: dict, model, params, u0, key) -> dict:
    batches, acts, n = [], [], 0
    for images in setup.images:
        if n >= opts["weight_calib_samples"]:
            break
        batches.append(images[: opts["weight_calib_samples"] - n])
        acts.append(ann_activations(setup.ann_model, setup.variables, batches[-1])[1])
        n += batches[-1].shape[0]
    return correction.weight_calibration(
        model,
        params,
        u0,
        batches,
        acts,
        layers=setup.layers,
        num_steps=setup.num_steps,
        iters=int(opts["weight_calib_iters"]),
        batch_size=int(opts["weight_calib_batch"]),
        learning_rate=float(opts["weight_calib_lr"]),
        half_shift=opts["weight_calib_rounding"] == "neuron",
        key=key,
        encoding=setup.encoding,
    )


def _calibrated(correct: str):
    """The conversion function of one CAL variant (``correct``: none | light | advanced)."""

    def convert(ann_model, variables, batches, opts, *, encoding=None) -> Converted:
        setup = common.make_setup(ann_model, variables, batches, opts["T"], encoding)
        model, snn_kwargs = burst_snn(setup)
        caps = common.layer_dict(setup.layers, [opts["max_spikes"]] * len(setup.layers), int)
        params = thresholded_params(setup, opts, model, caps)
        u0 = {layer: 0.0 for layer in setup.layers}
        fields = base_fields(setup, opts, caps)
        membrane_init = "zero"
        if correct == "light":
            params = bias_calibrated(setup, model, params, u0)
        elif correct == "advanced":
            if opts["weight_calib_iters"] > 0:
                key = jax.random.key(opts["calib_seed"])
                params = _weight_calibrated(setup, opts, model, params, u0, key)
            if opts["advanced_correction"] == "potential":
                u0 = correction.potential_calibration(sequential_pass(setup, model), params, u0)
                membrane_init = {k: np.asarray(v) for k, v in u0.items()}
            else:
                params = bias_calibrated(setup, model, params, u0)
        fields["membrane_init"] = "zero" if membrane_init == "zero" else "calibrated"
        return Converted(model, params, membrane_init, snn_kwargs=snn_kwargs, fields=fields)

    return convert


ADVANCED = (
    Option(
        "advanced_correction", "potential",
        "calib_advanced's last correction: potential calibration (CAL) or a second bias "
        "calibration (BURST's CIFAR 'advanced').",
        choices=("potential", "bias"),
    ),
    Option(
        "weight_calib_iters", 0,
        "Adam steps of weight calibration per layer before the last correction (0: off; CAL's "
        "ImageNet recipe: 5000).",
        minimum=0,
    ),
    Option("weight_calib_samples", 1024, "Images used by weight calibration.", minimum=1),
    Option("weight_calib_batch", 32, "Minibatch of weight calibration.", minimum=1),
    Option("weight_calib_lr", 1e-5, "Adam learning rate of weight calibration (cosine to 0).",
           minimum=0.0),
    Option(
        "weight_calib_rounding", "neuron",
        "Surrogate fitted by weight calibration: the neuron's own rounding "
        "(θ/T)·clip(⌊Tz/θ + ½⌋, 0, TM), or the released code's floor without the ½.",
        choices=("neuron", "reference"),
    ),
    Option("calib_seed", 0, "Seed of weight calibration's minibatch sampling.", minimum=0),
)  # fmt: skip

_VARIANTS = (
    ("calib_max", "max", "none", "burst neurons, θ = max activation (EMA); no correction"),
    ("calib_mse", "mse", "none", "burst neurons, θ from the MSE grid search; no correction"),
    ("calib_light", "mse", "light", "MSE thresholds + bias calibration"),
    (
        "calib_advanced",
        "mse",
        "advanced",
        "MSE thresholds + (optional weight calibration) + potential calibration",
    ),
)

for _name, _mode, _correct, _summary in _VARIANTS:
    register(
        Method(
            name=_name,
            summary=_summary,
            convert=_calibrated(_correct),
            options=common.COMMON
            + common.threshold_options(_mode)
            + (ADVANCED if _correct == "advanced" else ()),
            needs_data=True,
            fitted_to_T=True,
            paper=PAPER,
        )
    )
