"""``calibrate(method_cfg, ...)``: the calibration-family conversions behind ``convert.py``.

Methods (``method_cfg.name``, or ``method_cfg.method`` as in ``config.convert``):

============== ==========================================================================
``calib_max``  burst neurons (cap ``max_spikes``, default 1 = the CAL neuron), θ = max (EMA);
               no correction (CAL "none", spec §6.8: the port's 'none' → max)
``calib_mse``  as ``calib_max`` with the MSE threshold search (§5.2)
``calib_light``  thresholds + bias calibration (§5.3)
``calib_advanced`` thresholds + optional weight calibration (``weight_calib_iters`` > 0) +
               potential calibration (§5.4; ``advanced_correction='bias'`` for BURST's variant)
``burst``      AdaFire (§6.2): thresholds with M₀, per-layer caps by sensitivity + frontier
               search (``search``), thresholds again, bias calibration (``calib='light'``), and
               the released code's unconditional final bias calibration
``ssc``        ``burst`` + SSC per-layer threshold ratios (§6.4) before the final bias calibration
``icsnn``      IF neurons, θ = ANN λ (or data-driven), A1 θ/2 or A2 data-driven v(0), A3(a)
               coding-compensation layer reported in ``fields`` (§7.3, [RECON])
============== ==========================================================================

Options (all optional; defaults in :data:`DEFAULTS`): ``threshold_mode`` ('max' | 'percentile' |
'mse'; default 'max' for calib_max, 'percentile' for icsnn, else 'mse'), ``percentile``,
``channel_wise`` (default True, False for icsnn), ``threshold_batches``, ``threshold_momentum``,
``max_spikes`` (global cap, or the desired M_d of the search; default 1, 4 for burst/ssc),
``search``, ``min_spikes``, ``initial_spikes`` (M₀), ``desired_spikes`` (default ``max_spikes``),
``spike_budget_ratio``, ``ssc_ratios``, ``ssc_budget`` ('spikes' | 'sensitivity'),
``ssc_spike_ratio``, ``threshold_ratio``, ``ssc_released_order``, ``calib``
('light' | 'none', burst/ssc), ``final_bias_calibration``, ``sensitivity_chunk``,
``weight_calib_iters`` / ``_samples`` / ``_batch`` / ``_lr`` / ``_rounding`` ('neuron' |
'reference'), ``advanced_correction``,
``icsnn_init`` ('a1' | 'a2'), ``icsnn_per_channel``, ``icsnn_thresholds`` ('ann' | 'data'),
``iat`` (fit IAT exit thresholds on the calibration batches), ``iat_metric``,
``iat_dataset_kind``, ``calib_seed``.

Deviations from the released code (each documented where it is implemented): BURST's
'none' threshold mode crashes, the port uses 'max' (``calib_max``); ``calib_advanced`` is CAL's
potential calibration (BURST's CIFAR "advanced" only re-runs bias calibration, and its ImageNet
path imports a missing weight calibration); weight calibration fits the neuron it calibrates,
(θ/T)·clip(⌊Tz/θ + ½⌋, 0, TM) (the θ/(2T) per-step shift adds ½ over T steps;
``weight_calib_rounding='reference'`` drops the ½ as CAL's code does); dead channels get safe
thresholds (``thresholds.py``); the desired cap is looked up by value; SSC's default budget is a
spike budget (``ssc_budget='spikes'``: min Σ sensitivity s.t. Σ spikes ≤ ``ssc_spike_ratio``
(0.7) × the spikes at r = 1), because the released sensitivity budget (``ssc_budget='sensitivity'``,
``threshold_ratio`` 0.95 × Σ_i S[r=1][i]) is infeasible unless raising a threshold lowers the
error — every S[r=1][i] equals the unchanged network's error; the SSC ratios are applied in
layer order (``ssc_released_order=True`` restores the released order) and an empty frontier raises
(``allocation.py``); BURST's per-step IAT output is provided by the simulator (``iat.py``).

The ANN is BN-folded here; calibration batches are dicts with ``'image'`` (and ``'label'`` for
IAT). The first batch is the one the sequential corrections and the sensitivity analysis use.
"""

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn.calibrate import allocation, correction, iat, icsnn
from jaxsnn.calibrate.snn import (
    activation_layers,
    ann_activations,
    build_snn_params,
    initial_membrane,
    layer_leaves,
    make_burst_snn,
    simulate_from,
)
from jaxsnn.calibrate.thresholds import determine_thresholds
from jaxsnn.convert import fold_batchnorm

METHODS = ("calib_max", "calib_mse", "calib_light", "calib_advanced", "burst", "ssc", "icsnn")
BURST_METHODS = ("burst", "ssc")
DEFAULTS = {
    "threshold_mode": None,
    "percentile": 99.99,
    "channel_wise": None,
    "threshold_batches": 7,
    "threshold_momentum": 0.9,
    "max_spikes": None,
    "search": True,
    "min_spikes": 1,
    "initial_spikes": 8,
    "desired_spikes": None,
    "spike_budget_ratio": 0.95,
    "ssc_ratios": allocation.SSC_RATIOS,
    "ssc_budget": "spikes",
    "ssc_spike_ratio": 0.7,
    "threshold_ratio": 0.95,
    "ssc_released_order": False,
    "calib": "light",
    "final_bias_calibration": True,
    "sensitivity_chunk": 4,
    "weight_calib_iters": 0,
    "weight_calib_samples": 1024,
    "weight_calib_batch": 32,
    "weight_calib_lr": 1e-5,
    "weight_calib_rounding": "neuron",
    "advanced_correction": "potential",
    "icsnn_init": "a2",
    "icsnn_per_channel": False,
    "icsnn_thresholds": "ann",
    "iat": False,
    "iat_metric": "entropy",
    "iat_dataset_kind": "cifar",
    "calib_seed": 0,
}


class Calibrated(NamedTuple):
    """A calibrated SNN.

    Attributes:
      model: the SNN module (:class:`~jaxsnn.calibrate.snn.BurstActivation` layers, counts tracked).
      params: its params (per-layer ``threshold`` and ``max_spikes`` included).
      membrane_init: ``'zero'``, ``'half'`` or ``{layer: u0}`` (threshold units) for
        :func:`jaxsnn.convert.init_membrane`.
      fields: JSON-able method results (caps, ratios, budgets, IAT thresholds, ...).
    """

    model: nn.Module
    params: dict
    membrane_init: object
    fields: dict


def _options(cfg: Mapping, name: str) -> dict:
    unknown_defaults = {
        "threshold_mode": {"calib_max": "max", "icsnn": "percentile"}.get(name, "mse"),
        "channel_wise": name != "icsnn",
        "max_spikes": 4 if name in BURST_METHODS else 1,
    }
    opts = {}
    for key, default in DEFAULTS.items():
        value = cfg.get(key, default) if hasattr(cfg, "get") else default
        missing = value is None and key in unknown_defaults
        opts[key] = unknown_defaults[key] if missing else value
    if opts["desired_spikes"] is None:
        opts["desired_spikes"] = opts["max_spikes"]
    _validate(opts, name)
    return opts


def _validate(opts: dict, name: str) -> None:
    """One-line ``ValueError`` naming the offending option."""
    for key in ("max_spikes", "min_spikes", "initial_spikes", "desired_spikes"):
        value = opts[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key}: must be an integer >= 1, got {value!r}")
    if name in BURST_METHODS and opts["search"]:
        lo, hi, want = opts["min_spikes"], opts["initial_spikes"], opts["desired_spikes"]
        if not lo <= want <= hi:
            raise ValueError(
                f"desired_spikes (default: max_spikes) = {want} must lie in "
                f"[min_spikes, initial_spikes] = [{lo}, {hi}]"
            )
    if opts["ssc_budget"] not in ("spikes", "sensitivity"):
        raise ValueError(
            f"ssc_budget: must be 'spikes' or 'sensitivity', got {opts['ssc_budget']!r}"
        )
    for key in ("ssc_spike_ratio", "threshold_ratio", "spike_budget_ratio"):
        value = opts[key]
        if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{key}: must be a positive number, got {value!r}")
    if opts["weight_calib_rounding"] not in ("neuron", "reference"):
        raise ValueError(
            "weight_calib_rounding: must be 'neuron' or 'reference', got "
            f"{opts['weight_calib_rounding']!r}"
        )
    if 1.0 not in [float(r) for r in opts["ssc_ratios"]]:
        raise ValueError(f"ssc_ratios: must contain 1.0, got {list(opts['ssc_ratios'])}")


def _layer_dict(layers, values, cast) -> dict:
    return {layer: cast(v) for layer, v in zip(layers, values, strict=True)}


class _Setup(NamedTuple):
    ann_model: nn.Module
    variables: Mapping
    folded: dict
    images: list
    layers: list
    ann_logits: jax.Array
    ann_acts: dict
    num_steps: int


def _thresholds(setup: _Setup, opts: dict, caps) -> dict:
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


def _snn_params(setup: _Setup, opts: dict, model, caps) -> dict:
    """SNN params with the data-driven thresholds for ``caps`` (BN-folded ANN weights)."""
    thresholds = _thresholds(setup, opts, caps)
    return build_snn_params(model, setup.folded, thresholds, caps, setup.images[0].shape)


def _sensitivities(setup: _Setup, opts: dict, model, params, u0, kind, candidates, **kw):
    """Sensitivity and energy tables ``[L, C]`` on the first calibration batch, runs from ``u0``.

    ``kind``/``candidates``/``kw``: as :func:`~jaxsnn.calibrate.allocation.sensitivity_tables`
    (``'cap'`` with ``base_cap`` M₀, or ``'ratio'``).
    """
    images = setup.images[0]
    return allocation.sensitivity_tables(
        model,
        params,
        initial_membrane(model, images, u0),
        images,
        setup.ann_logits,
        layers=setup.layers,
        num_steps=setup.num_steps,
        kind=kind,
        candidates=candidates,
        chunk=opts["sensitivity_chunk"],
        **kw,
    )


def _search_caps(setup: _Setup, opts: dict, model, params, u0, fields) -> dict:
    """AdaFire: sensitivity analysis + frontier search → ``{layer: M}`` (spec §6.3)."""
    m0, lo = int(opts["initial_spikes"]), int(opts["min_spikes"])
    candidates = list(range(lo, m0 + 1))
    sens, energy = _sensitivities(setup, opts, model, params, u0, "cap", candidates, base_cap=m0)
    chosen, budget = allocation.allocate_caps(
        sens,
        energy,
        candidates,
        desired=int(opts["desired_spikes"]),
        ratio=opts["spike_budget_ratio"],
    )
    fields.update(
        cap_candidates=candidates,
        spike_budget=budget,
        cap_sensitivity=sens.tolist(),
        cap_energy=energy.tolist(),
    )
    return _layer_dict(setup.layers, chosen, int)


def _ssc(setup: _Setup, opts: dict, model, params, u0, fields) -> dict:
    """SSC: per-layer threshold ratios (spec §6.4); returns the rescaled params."""
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
    fields.update(
        ssc_ratios=_layer_dict(setup.layers, chosen, float),
        ssc_budget_kind=kind,
        ssc_budget=budget,
        ssc_spikes_at_ratio_1=float(np.sum(energy[:, ratios.index(1.0)])),
        ssc_spikes_chosen=float(sum(energy[i, ratios.index(r)] for i, r in enumerate(chosen))),
        ssc_released_order=bool(opts["ssc_released_order"]),
        ssc_sensitivity=sens.tolist(),
        ssc_energy=energy.tolist(),
    )
    return allocation.apply_ratios(params, setup.layers, chosen)


def _weight_calibration(setup: _Setup, opts: dict, model, params, u0, key) -> dict:
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
    )


def _burst_family(name: str, setup: _Setup, opts: dict, key) -> Calibrated:
    T, layers, images = setup.num_steps, setup.layers, setup.images[0]
    model = make_burst_snn(setup.ann_model, shift=1.0 / (2 * T))
    search = name in BURST_METHODS and bool(opts["search"])
    caps = _layer_dict(
        layers, [opts["initial_spikes"] if search else opts["max_spikes"]] * len(layers), int
    )
    params = _snn_params(setup, opts, model, caps)
    u0 = {layer: 0.0 for layer in layers}
    fields = {
        "threshold_mode": opts["threshold_mode"],
        "channel_wise": bool(opts["channel_wise"]),
        "shift": 1.0 / (2 * T),
        "search": search,
    }
    sequential = {"layers": layers, "num_steps": T}

    def bias_calibrated(params):  # sequential bias calibration on the first batch, from u0
        return correction.bias_calibration(model, params, u0, images, setup.ann_acts, **sequential)

    if search:
        caps = _search_caps(setup, opts, model, params, u0, fields)
        params = _snn_params(setup, opts, model, caps)
    light = name == "calib_light" or (name in BURST_METHODS and opts["calib"] == "light")
    if light:
        params = bias_calibrated(params)
    if name == "calib_advanced":
        if int(opts["weight_calib_iters"]) > 0:
            params = _weight_calibration(setup, opts, model, params, u0, key)
        if opts["advanced_correction"] == "potential":
            u0 = correction.potential_calibration(
                model, params, u0, images, setup.ann_acts, **sequential
            )
        elif opts["advanced_correction"] == "bias":
            params = bias_calibrated(params)
        else:
            raise ValueError(
                "advanced_correction must be 'potential' or 'bias', got "
                f"{opts['advanced_correction']!r}"
            )
    if name == "ssc":
        params = _ssc(setup, opts, model, params, u0, fields)
    if name in BURST_METHODS and opts["final_bias_calibration"]:
        # The released pipeline re-runs bias calibration unconditionally (spec §6.2 step 9).
        params = bias_calibrated(params)
    potential = name == "calib_advanced" and opts["advanced_correction"] == "potential"
    membrane_init = {k: np.asarray(v) for k, v in u0.items()} if potential else "zero"
    fields.update(
        max_spikes_per_layer=caps,
        max_spikes_overall=max(caps.values()),
        membrane_init="calibrated" if potential else "zero",
    )
    return Calibrated(model, params, membrane_init, fields)


def _icsnn(setup: _Setup, opts: dict) -> Calibrated:
    T, layers, images = setup.num_steps, setup.layers, setup.images[0]
    model = make_burst_snn(setup.ann_model, shift=0.0)
    lam = layer_leaves(setup.folded, "threshold")
    use_ann = opts["icsnn_thresholds"] == "ann" and all(layer in lam for layer in layers)
    thresholds = lam if use_ann else _thresholds(setup, opts, 1)
    caps = _layer_dict(layers, [1] * len(layers), int)
    params = build_snn_params(model, setup.folded, thresholds, caps, images.shape)
    fields = {
        "threshold_mode": "ann_lambda" if use_ann else opts["threshold_mode"],
        "icsnn_init": opts["icsnn_init"],
        "compensation_layer": layers[-1],
        "max_spikes_per_layer": caps,
        "max_spikes_overall": 1,
    }
    if opts["icsnn_init"] == "a1":
        return Calibrated(model, params, "half", fields)
    if opts["icsnn_init"] != "a2":
        raise ValueError(f"icsnn_init must be 'a1' or 'a2', got {opts['icsnn_init']!r}")
    u0 = icsnn.a2_initial_potential(
        model,
        params,
        images,
        setup.ann_acts,
        layers=layers,
        num_steps=T,
        per_channel=bool(opts["icsnn_per_channel"]),
    )
    fields["icsnn_per_channel"] = bool(opts["icsnn_per_channel"])
    return Calibrated(model, params, {k: np.asarray(v) for k, v in u0.items()}, fields)


def _fit_iat(result: Calibrated, batches: Sequence[Mapping], opts: dict, num_steps: int) -> dict:
    s_sum, n_sum = 0.0, 0
    for batch in batches:
        if not isinstance(batch, Mapping) or "label" not in batch:
            raise ValueError("iat: the calibration batches need labels ({'image', 'label'})")
        images = jnp.asarray(batch["image"])
        cum = simulate_from(
            result.model, result.params, result.membrane_init, images, num_steps
        ).cumulative
        mask = batch.get("mask")
        s, n = iat.iat_statistics(
            cum, jnp.asarray(batch["label"]), None if mask is None else jnp.asarray(mask)
        )
        s_sum, n_sum = s_sum + np.asarray(s), n_sum + np.asarray(n)
    tau = iat.iat_thresholds_from_statistics(s_sum, n_sum, dataset_kind=opts["iat_dataset_kind"])
    return {
        "iat_thresholds": tau.tolist(),
        "iat_metric": opts["iat_metric"],
        "iat_dataset_kind": opts["iat_dataset_kind"],
    }


def calibrate(
    method_cfg: Mapping,
    ann_model: nn.Module,
    variables: Mapping,
    calib_batches: Sequence[Mapping],
    *,
    num_steps: int,
    key: jax.Array | None = None,
) -> Calibrated:
    """Converts an ANN into a calibrated SNN with the method named in ``method_cfg``.

    Args:
      method_cfg: ConfigDict/mapping with ``name`` (or ``method``) in :data:`METHODS` and options.
      ann_model, variables: the trained ANN (``params`` + ``batch_stats``; BN is folded here).
      calib_batches: training batches (dicts with ``'image'``, ``'label'`` for IAT).
      num_steps: T.
      key: randomness of weight calibration (default ``key(calib_seed)``).
    """
    name = method_cfg.get("name") or method_cfg.get("method")
    if name not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {name!r}")
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps <= 0:
        raise ValueError(f"num_steps (T) must be a positive integer, got {num_steps!r}")
    batches = list(calib_batches)
    if not batches:
        raise ValueError("calibrate: no calibration batches")
    start = time.time()
    opts = _options(method_cfg, name)
    images = [jnp.asarray(b["image"] if isinstance(b, Mapping) else b) for b in batches]
    folded = fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    layers = activation_layers(ann_model, variables, images[0].shape)
    ann_logits, ann_acts = ann_activations(ann_model, variables, images[0])
    setup = _Setup(ann_model, variables, folded, images, layers, ann_logits, ann_acts, num_steps)
    key = jax.random.key(int(opts["calib_seed"])) if key is None else key
    result = _icsnn(setup, opts) if name == "icsnn" else _burst_family(name, setup, opts, key)
    result.fields.update(method=name, layers=list(layers))
    if opts["iat"]:
        result.fields.update(_fit_iat(result, batches, opts, num_steps))
    result.fields["calibration_seconds"] = time.time() - start
    return result
