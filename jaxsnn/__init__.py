"""jaxsnn: exact, fast ANN-to-SNN conversion in JAX/Flax.

Public surface::

    from jaxsnn import models, convert, simulate
"""

from jaxsnn import convert, metrics, models, neurons, ops, simulate
from jaxsnn.convert import init_membrane, make_snn_model
from jaxsnn.simulate import simulate as run_snn

__version__ = "0.1.0"

__all__ = [
    "convert",
    "init_membrane",
    "make_snn_model",
    "metrics",
    "models",
    "neurons",
    "ops",
    "run_snn",
    "simulate",
]
