"""Start protocols: what runs before the T counted steps of an SNN evaluation.

A protocol maps the initial membrane to the state the counted steps start from, per batch:

- :class:`Direct`: nothing (QCFS, OPI, the calibration family);
- :class:`SRP`: τ pre-simulation steps that set per-neuron output masks (:mod:`.srp`);
- :class:`COS`: τ-step pre-simulations that shift each neuron's initial potential (:mod:`.cos`).

The latency of counted step ``t`` is ``presim + t``.

With time-major input (``time_major=True``: ``images`` is ``[N, B, ...]``, one frame per step;
frame indices are taken modulo ``N``), what each protocol consumes:

- :class:`Direct`: the counted steps take frames ``0 .. T-1``;
- :class:`SRP`: the τ pre-simulation steps take frames ``0 .. τ-1`` and the counted steps the
  next ones, ``τ .. τ+T-1``: the network runs on, as it would on a live stream (with ``N = T``
  frames the counted window wraps round and still sees every frame once);
- :class:`COS`: each layer's τ-step pre-simulation takes frames ``0 .. τ-1``, then the counted
  steps replay the sequence from frame 0, as the released code replays its inputs.

:meth:`counted_frames` gives the frames of the counted steps. Protocols are small frozen dataclasses
(hashable, so jitted functions can take them as static arguments) that serialise to JSON for the
saved SNN (:func:`to_json`, :func:`from_json`).
"""

import dataclasses
from collections.abc import Mapping

from jaxsnn.simulate.cos import cos_start
from jaxsnn.simulate.encoding import take_frames
from jaxsnn.simulate.srp import check_presim, srp_start


@dataclasses.dataclass(frozen=True)
class Direct:
    """No pre-simulation: the counted steps start from the initial membrane."""

    presim: int = 0

    def start(self, model, params, membrane, images, *, time_major: bool = False):
        """Returns ``membrane`` unchanged."""
        return membrane

    def counted_frames(self, frames, num_steps: int):
        """The frames of the ``num_steps`` counted steps: ``0 .. T-1`` (time-major input)."""
        return take_frames(frames, 0, num_steps)


@dataclasses.dataclass(frozen=True)
class SRP:
    """SRP: τ = ``presim`` steps, then masks ``1[u > 10⁻³]`` and ``u = ½`` (needs ``masked``)."""

    presim: int = 4

    def __post_init__(self):
        check_presim(self.presim)

    def start(self, model, params, membrane, images, *, time_major: bool = False):
        """The masked start state (:func:`jaxsnn.simulate.srp.srp_start`)."""
        return srp_start(model, params, membrane, images, presim=self.presim, time_major=time_major)

    def counted_frames(self, frames, num_steps: int):
        """The frames of the counted steps: ``τ .. τ+T-1`` (after the pre-simulation's)."""
        return take_frames(frames, self.presim, num_steps)


@dataclasses.dataclass(frozen=True)
class COS:
    """COS: per layer, τ = ``presim`` steps shift each neuron's ``u(0)`` by ±(≥ 1) threshold."""

    presim: int = 4
    guard: bool = False

    def __post_init__(self):
        check_presim(self.presim)

    def start(self, model, params, membrane, images, *, time_major: bool = False):
        """The offset-calibrated start state (:func:`jaxsnn.simulate.cos.cos_start`)."""
        return cos_start(
            model,
            params,
            membrane,
            images,
            presim=self.presim,
            guard=self.guard,
            time_major=time_major,
        )

    def counted_frames(self, frames, num_steps: int):
        """The frames of the counted steps: ``0 .. T-1`` (replayed after the pre-simulation)."""
        return take_frames(frames, 0, num_steps)


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
