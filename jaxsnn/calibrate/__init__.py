"""Calibration-family conversions: data-driven thresholds, bias/potential/weight calibration,
per-layer burst caps (AdaFire), SSC threshold ratios, IAT early exit and IC-SNN.

Entry point for ``convert.py``: :func:`calibrate` (see :mod:`jaxsnn.calibrate.pipeline`).
"""

from jaxsnn.calibrate.allocation import (
    SSC_RATIOS,
    allocate_caps,
    allocate_ratios,
    apply_ratios,
    frontier_search,
    sensitivity_tables,
    symmetric_kl,
)
from jaxsnn.calibrate.correction import (
    bias_calibration,
    potential_calibration,
    weight_calibration,
)
from jaxsnn.calibrate.iat import (
    IATSums,
    fit_iat_thresholds,
    iat_predict,
    iat_scores,
    iat_statistics,
    iat_summary,
    iat_sums,
    iat_thresholds_from_statistics,
)
from jaxsnn.calibrate.icsnn import a2_initial_potential, compensated_logits, compensated_rate
from jaxsnn.calibrate.pipeline import DEFAULTS, METHODS, Calibrated, calibrate
from jaxsnn.calibrate.snn import (
    BurstActivation,
    activation_layers,
    ann_activations,
    build_snn_params,
    make_burst_snn,
    producer_of,
    spike_rates,
)
from jaxsnn.calibrate.thresholds import (
    DEAD_LAYER_THRESHOLD,
    batch_threshold,
    determine_thresholds,
    mse_candidates,
    safe_threshold,
    surrogate,
)

__all__ = [
    "DEAD_LAYER_THRESHOLD",
    "DEFAULTS",
    "IATSums",
    "METHODS",
    "SSC_RATIOS",
    "BurstActivation",
    "Calibrated",
    "a2_initial_potential",
    "activation_layers",
    "allocate_caps",
    "allocate_ratios",
    "ann_activations",
    "apply_ratios",
    "batch_threshold",
    "bias_calibration",
    "build_snn_params",
    "calibrate",
    "compensated_logits",
    "compensated_rate",
    "determine_thresholds",
    "fit_iat_thresholds",
    "frontier_search",
    "iat_predict",
    "iat_scores",
    "iat_statistics",
    "iat_summary",
    "iat_sums",
    "iat_thresholds_from_statistics",
    "make_burst_snn",
    "mse_candidates",
    "potential_calibration",
    "producer_of",
    "safe_threshold",
    "sensitivity_tables",
    "spike_rates",
    "surrogate",
    "symmetric_kl",
    "weight_calibration",
]
