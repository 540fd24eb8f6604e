"""SNN simulation: ``lax.scan`` over time, SRP two-phase protocol, vmapped sweeps."""

from jaxsnn.simulate.core import SimOutput, collect_stats, simulate
from jaxsnn.simulate.srp import SRPOutput, simulate_srp, srp_reset
from jaxsnn.simulate.sweep import sweep_initial_potentials, sweep_threshold_scales

__all__ = [
    "SimOutput",
    "SRPOutput",
    "collect_stats",
    "simulate",
    "simulate_srp",
    "srp_reset",
    "sweep_initial_potentials",
    "sweep_threshold_scales",
]
