r"""Burst neurons (AdaFire; Adaptive Calibration, AAAI 2025): ``burst`` and ``ssc``.

``burst``: the calibration papers' neuron with a per-layer spike cap chosen by a sensitivity
analysis and an exact frontier search (:mod:`jaxsnn.methods.allocation`):

1. thresholds for the initial cap M₀ (``initial_spikes``) in every layer;
2. (``search``) for every layer and candidate cap in ``[min_spikes, M₀]``, the symmetric KL
   between SNN and ANN outputs and the layer's spike count; the caps minimising Σ KL with
   Σ spikes ≤ ``spike_budget_ratio`` × the spikes at the desired cap ``max_spikes`` in every
   layer; thresholds again for the chosen caps (without the search: ``max_spikes`` everywhere);
3. bias calibration (``calib='light'``), then the released pipeline's unconditional final bias
   calibration (``final_bias_calibration``).

``ssc`` adds, before the final bias calibration, per-layer threshold ratios r ∈ ``ssc_ratios``
(θ ← rθ) chosen by the same search: by default the least total sensitivity within a spike
budget of ``ssc_spike_ratio`` × the spikes at r = 1 (``ssc_budget='spikes'``), or the released
code's sensitivity budget (``'sensitivity'``), which is feasible only if raising a threshold
lowers the error (docs/methods.md, "SSC budget"). The ratio is folded into the layer's θ.
"""

import numpy as np

from jaxsnn.convert import init_membrane
from jaxsnn.methods import allocation, common
from jaxsnn.methods.calibration import (
    base_fields,
    bias_calibrated,
    burst_snn,
    thresholded_params,
)
from jaxsnn.methods.registry import Converted, Method, Option, register

PAPER = "Adaptive Calibration (AdaFire), AAAI 2025"


def _sensitivities(setup, opts, model, params, u0, kind, candidates, **kw):
    """Sensitivity and energy tables ``[L, C]`` on the first calibration batch, runs from ``u0``."""
    images = setup.images[0]
    return allocation.sensitivity_tables(
        model,
        params,
        init_membrane(model, images.shape, dict(u0), images.dtype),
        images,
        setup.ann_logits,
        layers=setup.layers,
        num_steps=setup.num_steps,
        kind=kind,
        candidates=candidates,
        chunk=opts["sensitivity_chunk"],
        encoding=setup.encoding,
        **kw,
    )


def _search_caps(setup, opts, model, params, u0, fields) -> dict:
    """Sensitivity analysis + frontier search → ``{layer: M}``."""
    m0, lo = int(opts["initial_spikes"]), int(opts["min_spikes"])
    candidates = list(range(lo, m0 + 1))
    sens, energy = _sensitivities(setup, opts, model, params, u0, "cap", candidates, base_cap=m0)
    chosen, budget = allocation.allocate_caps(
        sens, energy, candidates, desired=int(opts["max_spikes"]), ratio=opts["spike_budget_ratio"]
    )
    fields.update(
        cap_candidates=candidates,
        spike_budget=budget,
        cap_sensitivity=sens.tolist(),
        cap_energy=energy.tolist(),
    )
    return common.layer_dict(setup.layers, chosen, int)


def _ssc(setup, opts, model, params, u0, fields) -> dict:
    """Per-layer threshold ratios; returns the rescaled params."""
    ratios = [float(r) for r in opts["ssc_ratios"]]
    sens, energy = _sensitivities(setup, opts, model, params, u0, "ratio", ratios)
    kind = opts["ssc_budget"]
    chosen, budget = allocation.allocate_ratios(
        sens,
        energy,
        ratios,
        ratio=opts["ssc_spike_ratio"] if kind == "spikes" else opts["threshold_ratio"],
        released_order=opts["ssc_released_order"],
        budget_kind=kind,
    )
    one = ratios.index(1.0)
    fields.update(
        ssc_ratios=common.layer_dict(setup.layers, chosen, float),
        ssc_budget_kind=kind,
        ssc_budget=budget,
        ssc_spikes_at_ratio_1=float(np.sum(energy[:, one])),
        ssc_spikes_chosen=float(sum(energy[i, ratios.index(r)] for i, r in enumerate(chosen))),
        ssc_released_order=bool(opts["ssc_released_order"]),
        ssc_sensitivity=sens.tolist(),
        ssc_energy=energy.tolist(),
    )
    return allocation.apply_ratios(params, setup.layers, chosen)


def _check(opts: dict) -> None:
    lo, hi, want = opts["min_spikes"], opts["initial_spikes"], opts["max_spikes"]
    if opts["search"] and not lo <= want <= hi:
        raise ValueError(
            f"max_spikes (the desired cap M_d of the search) = {want} must lie in "
            f"[min_spikes, initial_spikes] = [{lo}, {hi}]"
        )
    if "ssc_ratios" in opts and 1.0 not in [float(r) for r in opts["ssc_ratios"]]:
        raise ValueError(f"ssc_ratios: must contain 1.0, got {list(opts['ssc_ratios'])}")


def _burst(with_ssc: bool):
    def convert(ann_model, variables, batches, opts, *, encoding=None) -> Converted:
        _check(opts)
        setup = common.make_setup(ann_model, variables, batches, opts["T"], encoding)
        model, snn_kwargs = burst_snn(setup)
        search = bool(opts["search"])
        first = opts["initial_spikes"] if search else opts["max_spikes"]
        caps = common.layer_dict(setup.layers, [first] * len(setup.layers), int)
        params = thresholded_params(setup, opts, model, caps)
        u0 = {layer: 0.0 for layer in setup.layers}
        fields: dict = {"search": search}
        if search:
            caps = _search_caps(setup, opts, model, params, u0, fields)
            params = thresholded_params(setup, opts, model, caps)
        if opts["calib"] == "light":
            params = bias_calibrated(setup, model, params, u0)
        if with_ssc:
            params = _ssc(setup, opts, model, params, u0, fields)
        if opts["final_bias_calibration"]:
            params = bias_calibrated(setup, model, params, u0)
        fields = {**base_fields(setup, opts, caps), **fields, "membrane_init": "zero"}
        return Converted(model, params, "zero", snn_kwargs=snn_kwargs, fields=fields)

    return convert


BURST = (
    Option("search", True, "Choose each layer's cap by sensitivity + frontier search."),
    Option("min_spikes", 1, "Smallest candidate cap of the search.", minimum=1),
    Option("initial_spikes", 8, "M₀: the cap of every layer while the search measures.", minimum=1),
    Option(
        "spike_budget_ratio", 0.95,
        "The search's spike budget, × the spikes with the desired cap in every layer.",
        minimum=0.0,
    ),
    Option("calib", "light", "Bias calibration after the search.", choices=("light", "none")),
    Option(
        "final_bias_calibration", True,
        "The released pipeline's unconditional last bias calibration.",
    ),
    Option("sensitivity_chunk", 4, "Sensitivity runs vmapped together (memory vs speed).",
           minimum=1),
)  # fmt: skip
SSC = (
    Option(
        "ssc_ratios", allocation.SSC_RATIOS,
        "Candidate threshold ratios r (θ ← rθ); must contain 1.0.",
    ),
    Option(
        "ssc_budget", "spikes",
        "SSC's budget: spikes (Σ spikes ≤ ssc_spike_ratio × the spikes at r = 1) or the "
        "released sensitivity budget (Σ KL ≤ threshold_ratio × Σ KL at r = 1).",
        choices=("spikes", "sensitivity"),
    ),
    Option("ssc_spike_ratio", 0.7, "The spike budget of ssc_budget='spikes'.", minimum=0.0),
    Option("threshold_ratio", 0.95, "The sensitivity budget of ssc_budget='sensitivity'.",
           minimum=0.0),
    Option(
        "ssc_released_order", False,
        "Apply the chosen ratios in the released code's (reversed) layer order.",
    ),
)  # fmt: skip

_OPTIONS = common.COMMON + common.threshold_options("mse", max_spikes=4) + BURST
register(
    Method(
        name="burst",
        summary="AdaFire burst neurons: per-layer spike caps by sensitivity + exact frontier "
        "search, bias calibration",
        convert=_burst(with_ssc=False),
        options=_OPTIONS,
        needs_data=True,
        fitted_to_T=True,
        paper=PAPER,
    )
)
register(
    Method(
        name="ssc",
        summary="`burst` + per-layer threshold ratios (SSC) under a spike budget",
        convert=_burst(with_ssc=True),
        options=_OPTIONS + SSC,
        needs_data=True,
        fitted_to_T=True,
        paper=PAPER,
    )
)
