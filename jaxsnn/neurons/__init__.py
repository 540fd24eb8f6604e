"""Spiking neurons: the pure ``init_state``/``step`` IF kernel and the one Flax layer hosting it."""

from jaxsnn.neurons.kernels import IF, NeuronState
from jaxsnn.neurons.layer import CAP, THRESHOLD, SpikingActivation

__all__ = ["CAP", "IF", "NeuronState", "SpikingActivation", "THRESHOLD"]
