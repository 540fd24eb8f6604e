"""jaxsnn: exact, fast ANN-to-SNN conversion in JAX/Flax.

Public surface::

    from jaxsnn import models, convert, methods, simulate

Layers (each imports only from those before it): ``ops``, ``tree`` → ``neurons`` → ``models``
→ ``convert`` → ``simulate`` → ``methods``; ``metrics``, ``progress`` and ``data`` stand alone;
``train`` builds on ``models``/``data``; ``cli`` (the command-line engine) sits on top.
"""

from jaxsnn import convert, methods, metrics, models, neurons, ops, simulate, tree
from jaxsnn.convert import init_membrane, make_snn_model
from jaxsnn.simulate import simulate as run_snn
from jaxsnn.version import __version__ as __version__

__all__ = [
    "convert",
    "init_membrane",
    "make_snn_model",
    "methods",
    "metrics",
    "models",
    "neurons",
    "ops",
    "run_snn",
    "simulate",
    "tree",
]
