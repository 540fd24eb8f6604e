"""ANN→SNN conversion stages (pure functions over variable trees)."""

from jaxsnn.convert.stages import (
    MembraneInit,
    check_threshold,
    convert,
    extract_thresholds,
    fold_batchnorm,
    init_membrane,
    make_snn_model,
    membrane_shapes,
    scale_thresholds,
    threshold_shapes,
    to_snn_params,
    validate_variables,
)

__all__ = [
    "MembraneInit",
    "check_threshold",
    "convert",
    "extract_thresholds",
    "fold_batchnorm",
    "init_membrane",
    "make_snn_model",
    "membrane_shapes",
    "scale_thresholds",
    "threshold_shapes",
    "to_snn_params",
    "validate_variables",
]
