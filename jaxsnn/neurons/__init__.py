"""Spiking neurons: pure ``init_state``/``step`` kernels and the Flax layer that hosts them."""

from jaxsnn.neurons.kernels import IF, Burst, Neuron, NeuronState
from jaxsnn.neurons.layer import SpikingActivation

__all__ = ["IF", "Burst", "Neuron", "NeuronState", "SpikingActivation"]
