r"""The integrate-and-fire kernel: one pure step function over an explicit state.

One neuron serves every method. It follows the ``init_state``/``step`` contract::

    state = neuron.init_state(shape, dtype, v0)
    spikes, state = neuron.step(x, state, threshold=theta, max_spikes=M)

and runs, in threshold units :math:`u = v/\theta` (the reference code's unit-threshold node
behind a :math:`1/\theta` input scaling, so float rounding matches it bit for bit), three phases in
this order:

- **charge** :math:`u \leftarrow u + x/\theta\ (+\ \delta)`;
- **fire** :math:`s = \mathrm{clip}(\lfloor u\rfloor, 0, M)`;
- **reset by subtraction** :math:`u \leftarrow u - s`.

``spikes`` are spike counts per step; the value passed on is :math:`s\,\theta`. With the cap
:math:`M = 1` and no shift this is the binary IF neuron of QCFS, OPI and SRP: :math:`s = 1[u \ge 1]`
(ties fire), and with :math:`u(0) = 1/2` and constant input its ``t``-step count is
:math:`\mathrm{clip}(\lfloor t x/\theta + 1/2\rfloor, 0, t)`, the QCFS activation with ``L = t``
(docs/methods.md, "IF neuron"). With :math:`M > 1`, :math:`\delta = 1/(2T)` and :math:`u(0) = 0` it
is the burst neuron of SNN calibration (Li et al., ICML 2021) and AdaFire (Adaptive Calibration,
AAAI 2025), whose ``T``-step average is QCFS with :math:`\lambda = M\theta` and ``L = MT``.

The cap is an argument of :meth:`IF.step`, so a layer can hold it as a traced parameter: every
candidate cap of a search then shares one compiled program. With a per-channel θ XLA:CPU may
compute ``x·(1/θ)`` instead of ``x/θ`` (its algebraic simplifier rewrites division by a
broadcast), at most 1 ulp per charge; we accept it rather than materialise θ at full size.
"""

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp

from jaxsnn.typing import Current, PerNeuron, Potential, Scalar, SpikeCount


class NeuronState(NamedTuple):
    """Membrane potential in units of the threshold (``u = v / θ``)."""

    v: Potential


@dataclasses.dataclass(frozen=True)
class IF:
    r"""Integrate-and-fire neuron with reset by subtraction and a spike cap.

    Attributes:
      max_spikes: the default cap M (1: binary IF; > 1: burst neuron); :meth:`step` takes the
        cap as an argument too, which wins.
      shift: δ, a constant charge added every step in threshold units (``1/(2T)`` for the
        calibration papers' neuron, 0 otherwise). Static: 0 adds nothing to the program.
    """

    max_spikes: int = 1
    shift: float = 0.0

    def __post_init__(self):
        if not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ValueError(f"max_spikes must be an integer >= 1, got {self.max_spikes!r}")

    def init_state(self, shape: Sequence[int], dtype, v0: PerNeuron = 0.5) -> NeuronState:
        """Starts every neuron at ``u = v0`` (0.5, the optimal ``θ/2``, by default)."""
        return NeuronState(v=jnp.broadcast_to(jnp.asarray(v0, dtype), shape))

    def step(
        self,
        x: Current,
        state: NeuronState,
        *,
        threshold: PerNeuron,
        max_spikes: int | Scalar | None = None,
    ) -> tuple[SpikeCount, NeuronState]:
        """Charge, fire up to ``max_spikes`` spikes, reset by subtraction; returns counts."""
        cap = self.max_spikes if max_spikes is None else max_spikes
        v = state.v + x / threshold
        if self.shift:
            v = v + jnp.asarray(self.shift, v.dtype)
        spikes = jnp.clip(jnp.floor(v), 0, cap)
        return spikes, NeuronState(v=v - spikes)
