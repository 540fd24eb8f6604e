"""Export to and import from NIR, the neuromorphic intermediate representation (README "Export").

- :func:`to_nir` (a converted SNN → ``nir.NIRGraph``, with metadata that states our neuron's
  semantics exactly), :func:`converted_to_nir` (the same for a method's ``Converted``) and
  :func:`write` (→ a ``.nir`` file);
- :func:`from_nir`: a NIR graph or file → a jaxsnn SNN (:class:`NIRModel`) to simulate;
- :func:`run_spikingjelly`: an exported file run by SpikingJelly, the independent check.

Needs the optional ``nir`` package (extra ``nir``; SpikingJelly and torch for
:func:`run_spikingjelly`); importing this module does not.
"""

from jaxsnn.export.graph import Op, describe
from jaxsnn.export.nir_export import (
    POOLING_MODES,
    SEMANTICS,
    THRESHOLD_MODES,
    converted_to_nir,
    import_nir,
    to_nir,
    write,
)
from jaxsnn.export.nir_import import NIRModel, NIRNet, NodeSpec, from_nir
from jaxsnn.export.spikingjelly import run_spikingjelly

__all__ = [
    "NIRModel",
    "NIRNet",
    "NodeSpec",
    "Op",
    "POOLING_MODES",
    "SEMANTICS",
    "THRESHOLD_MODES",
    "converted_to_nir",
    "describe",
    "from_nir",
    "import_nir",
    "run_spikingjelly",
    "to_nir",
    "write",
]
