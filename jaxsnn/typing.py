"""Shape-annotated aliases used across jaxsnn (jaxtyping).

Annotations only: nothing checks them at run time. Axis names: ``B`` batch, ``H W C`` image or
feature-map height, width and channels, ``K`` classes, ``T`` time steps. ``*neurons`` is the shape
of one layer's neurons (``[B, H, W, C]`` after a conv, ``[B, F]`` after a dense layer);
``*#neurons`` is anything that broadcasts against it (a scalar, one value per channel ``[C]``, or
one per neuron). Shapes go in these aliases rather than inline: a string inside an annotation
reads as a forward reference to the linter.
"""

from typing import Any

import jax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree

PRNGKey = jax.Array
Images = Float[Array, "B H W C"]
Frames = Float[Array, "T B H W C"]  # Time-major input: frame t feeds step t + 1.
Logits = Float[Array, "B K"]
Labels = Int[Array, " B"]
Mask = Bool[Array, " B"]  # Which rows of a padded batch are real examples.
LogitSeq = Float[Array, "T B K"]  # Time-major: entry t-1 belongs to step t.
StepValues = Float[Array, "T B"]  # One value per step and sample.
SpikeSeq = Float[Array, "T B ..."]
Params = PyTree[Array]
Variables = dict[str, Any]

# One layer of neurons: the input current of a step, the membrane potential in threshold units
# (u = v/θ), and the spike counts of a step all have the layer's shape.
Current = Float[Array, "*neurons"]
Potential = Float[Array, "*neurons"]
SpikeCount = Float[Array, "*neurons"]
# A per-layer, per-channel or per-neuron value broadcast against a layer: θ, u(0).
PerNeuron = Float[ArrayLike, "*#neurons"]
Scalar = Float[ArrayLike, ""]  # e.g. a layer's spike cap M, possibly traced.
# The 'membrane' variable collection: {layer path: {'v', 'mask', 'count'}}, every leaf batch-first.
Membrane = PyTree[Float[Array, "B ..."]]

__all__ = [
    "PRNGKey",
    "Images",
    "Frames",
    "Logits",
    "Labels",
    "Mask",
    "LogitSeq",
    "StepValues",
    "SpikeSeq",
    "Params",
    "Variables",
    "Current",
    "Potential",
    "SpikeCount",
    "PerNeuron",
    "Scalar",
    "Membrane",
]
