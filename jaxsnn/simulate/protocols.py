"""Start protocols: what runs before the T counted steps of an SNN evaluation.

A protocol maps the initial membrane to the state the counted steps start from, per batch:

- :class:`Direct`: nothing (QCFS, OPI, the calibration family);
- :class:`SRP`: τ pre-simulation steps that set per-neuron output masks (:mod:`.srp`);
- :class:`COS`: τ-step pre-simulations that shift each neuron's initial potential (:mod:`.cos`).

The latency of counted step ``t`` is ``presim + t``. Protocols are small frozen dataclasses
(hashable, so jitted functions can take them as static arguments) that serialise to JSON for the
saved SNN (:func:`to_json`, :func:`from_json`).
"""

import dataclasses
from collections.abc import Mapping

from jaxsnn.simulate.cos import cos_start
from jaxsnn.simulate.srp import check_presim, srp_start


@dataclasses.dataclass(frozen=True)
class Direct:
    """No pre-simulation: the counted steps start from the initial membrane."""

    presim: int = 0

    def start(self, model, params, membrane, images):
        """Returns ``membrane`` unchanged."""
        return membrane


@dataclasses.dataclass(frozen=True)
class SRP:
    """SRP: τ = ``presim`` steps, then masks ``1[u > 10⁻³]`` and ``u = ½`` (needs ``masked``)."""

    presim: int = 4

    def __post_init__(self):
        check_presim(self.presim)

    def start(self, model, params, membrane, images):
        """The masked start state (:func:`jaxsnn.simulate.srp.srp_start`)."""
        return srp_start(model, params, membrane, images, presim=self.presim)


@dataclasses.dataclass(frozen=True)
class COS:
    """COS: per layer, τ = ``presim`` steps shift each neuron's ``u(0)`` by ±(≥ 1) threshold."""

    presim: int = 4
    guard: bool = False

    def __post_init__(self):
        check_presim(self.presim)

    def start(self, model, params, membrane, images):
        """The offset-calibrated start state (:func:`jaxsnn.simulate.cos.cos_start`)."""
        return cos_start(model, params, membrane, images, presim=self.presim, guard=self.guard)


Protocol = Direct | SRP | COS
_KINDS = {"direct": Direct, "srp": SRP, "cos": COS}


def to_json(protocol: Protocol) -> dict:
    """``{'kind': 'srp', 'presim': 4}``-style description."""
    kind = next(k for k, cls in _KINDS.items() if isinstance(protocol, cls))
    return {"kind": kind, **dataclasses.asdict(protocol)}


def from_json(data: Mapping) -> Protocol:
    """Inverse of :func:`to_json`."""
    fields = dict(data)
    kind = fields.pop("kind", "direct")
    if kind not in _KINDS:
        raise ValueError(f"unknown start protocol {kind!r}; one of {sorted(_KINDS)}")
    return _KINDS[kind](**fields)
