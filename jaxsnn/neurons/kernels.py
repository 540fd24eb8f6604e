r"""Integrate-and-fire kernels as pure step functions over an explicit state.

Every neuron follows one contract (spyx ``StatefulLayer`` / diffrax ``init``/``step`` style)::

    state = neuron.init_state(shape, dtype, v0)
    spikes, state = neuron.step(x, state, threshold=theta)

``spikes`` are integer-valued spike *counts* per step (``{0, 1}`` for IF, ``{0..M}`` for burst
neurons); the value passed on to the next layer is ``spikes * theta``. The membrane is kept in
units of the threshold, :math:`u = v/\theta`, exactly like the reference code (spikingjelly's
unit-threshold node behind a ``1/θ`` input scaling), so float rounding matches it bit for bit
(spec I-7) for one θ per layer (QCFS/SRP; checked against the reference fixtures). With
per-channel θ (the calibration family) XLA:CPU may compute ``x·(1/θ)`` instead of ``x/θ``
(its algebraic simplifier rewrites division by a broadcast), a difference of at most 1 ulp per
charge; we accept it rather than materialise θ at full size every step. Each step runs
spikingjelly's three phases in this order: **charge**
(:math:`u \leftarrow u + x/\theta`), **fire** (:math:`s = 1[u \ge 1]`, ties fire) and **soft reset**
(:math:`u \leftarrow u - s`).
"""

import dataclasses
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp


class NeuronState(NamedTuple):
    """Membrane potential in units of the threshold (``u = v / θ``)."""

    v: jax.Array


class Neuron(Protocol):
    """What the simulator and the spiking layer need from a neuron kernel."""

    def init_state(self, shape, dtype, v0=0.5) -> NeuronState: ...

    def step(self, x, state: NeuronState, *, threshold) -> tuple[jax.Array, NeuronState]: ...


def _full_state(shape, dtype, v0) -> NeuronState:
    return NeuronState(v=jnp.broadcast_to(jnp.asarray(v0, dtype), shape))


@dataclasses.dataclass(frozen=True)
class IF:
    r"""Integrate-and-fire neuron with reset by subtraction (QCFS, OPI, SRP).

    One step: :math:`u \leftarrow u + x/\theta`; :math:`s = 1[u \ge 1]`; :math:`u \leftarrow u - s`.
    With :math:`u(0) = 1/2` and constant input the ``t``-step count equals
    :math:`\mathrm{clip}(\lfloor t x/\theta + 1/2\rfloor, 0, t)`, i.e. QCFS with ``L = t`` (I-1).
    """

    def init_state(self, shape, dtype, v0=0.5) -> NeuronState:
        """Starts every neuron at ``u = v0`` (0.5 is the optimal ``θ/2``)."""
        return _full_state(shape, dtype, v0)

    def step(self, x, state: NeuronState, *, threshold) -> tuple[jax.Array, NeuronState]:
        """Charge, fire, reset by subtraction; returns spikes in {0, 1}."""
        v = state.v + x / threshold
        spikes = (v >= 1).astype(v.dtype)
        return spikes, NeuronState(v=v - spikes)


@dataclasses.dataclass(frozen=True)
class Burst:
    r"""Burst (AdaFire / SNN-Calibration) neuron: up to ``max_spikes`` spikes per step.

    One step: :math:`u \leftarrow u + x/\theta + \delta`;
    :math:`s = \mathrm{clip}(\lfloor u\rfloor, 0, M)`; :math:`u \leftarrow u - s`; the per-step
    shift :math:`\delta` is ``1/(2T)`` in the calibration papers (the θ/2 of QCFS spread over T
    steps) and ``u(0) = 0``. Its T-step average equals QCFS with ``λ = Mθ`` and ``L = MT`` (I-3).

    Attributes:
      max_spikes: the cap M (1 gives the CAL neuron).
      shift: δ, the per-step bias in threshold units.
    """

    max_spikes: int = 1
    shift: float = 0.0

    def __post_init__(self):
        if not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ValueError(f"max_spikes must be an integer >= 1, got {self.max_spikes!r}")

    def init_state(self, shape, dtype, v0=0.0) -> NeuronState:
        """Starts every neuron at ``u = v0`` (0 in the calibration papers)."""
        return _full_state(shape, dtype, v0)

    def step(self, x, state: NeuronState, *, threshold) -> tuple[jax.Array, NeuronState]:
        """Charge (with shift), fire a burst of ``clip(floor(u), 0, M)``, reset by subtraction."""
        v = state.v + x / threshold + jnp.asarray(self.shift, state.v.dtype)
        spikes = jnp.clip(jnp.floor(v), 0, self.max_spikes)
        return spikes, NeuronState(v=v - spikes)
