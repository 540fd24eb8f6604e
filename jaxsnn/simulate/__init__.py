"""SNN simulation: ``lax.scan`` over time (direct or time-major input), start protocols (SRP, COS),
input encodings, readouts, vmapped sweeps."""

from jaxsnn.simulate.core import (
    EVAL_UNROLL,
    SimOutput,
    backend_compiler_options,
    collect_stats,
    fast_jit,
    simulate,
)
from jaxsnn.simulate.cos import cos_offset, cos_start, simulate_cos, spiking_layers
from jaxsnn.simulate.encoding import TimeBins, snn_input, take_frames, time_bin_weights
from jaxsnn.simulate.protocols import COS, SRP, Direct, Protocol
from jaxsnn.simulate.readout import compensated_logits, compensated_rate, spike_rates
from jaxsnn.simulate.srp import SRPOutput, simulate_srp, srp_reset, srp_start
from jaxsnn.simulate.sweep import sweep_initial_potentials, sweep_threshold_scales

__all__ = [
    "COS",
    "EVAL_UNROLL",
    "SRP",
    "Direct",
    "Protocol",
    "SRPOutput",
    "SimOutput",
    "TimeBins",
    "backend_compiler_options",
    "collect_stats",
    "compensated_logits",
    "compensated_rate",
    "cos_offset",
    "cos_start",
    "fast_jit",
    "simulate",
    "simulate_cos",
    "simulate_srp",
    "snn_input",
    "spike_rates",
    "spiking_layers",
    "srp_reset",
    "srp_start",
    "sweep_initial_potentials",
    "sweep_threshold_scales",
    "take_frames",
    "time_bin_weights",
]
