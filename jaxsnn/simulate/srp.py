"""SRP (Hao et al., AAAI 2023): residual-membrane-potential masks from a τ-step pre-simulation.

Step-major protocol of the released code: run τ plain IF steps from ``u = 1/2``; after step τ
every neuron stores ``m = 1[u > 10^{-3}]`` (strict, threshold units) and is reset to ``u = 1/2``;
then T steps run in which neurons integrate, fire and reset exactly as before but emit
``s·m·θ``. All layers take their masks at the same global step τ. Only the T steps are
accumulated; the honest latency of entry ``t`` is ``τ + t`` (docs/methods.md, "SRP"). With
time-major input the pre-simulation consumes frames ``0 .. τ-1`` (`jaxsnn.simulate.protocols`).
"""

from collections.abc import Mapping
from typing import NamedTuple

import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree as tree_lib
from jaxsnn.convert import init_membrane
from jaxsnn.simulate.core import SimOutput, simulate
from jaxsnn.simulate.encoding import take_frames

SRP_EPSILON = 1e-3


class SRPOutput(NamedTuple):
    """Pre-simulation (τ steps, ``None`` when τ = 0) and counted simulation (T steps)."""

    presim: SimOutput | None
    sim: SimOutput


def srp_reset(membrane: Mapping, eps: float = SRP_EPSILON) -> dict:
    """Converts the membrane after the pre-simulation into the SRP start state (mask, u = 1/2)."""
    flat = tree_lib.flatten(membrane)
    out = {}
    for path, value in flat.items():
        name, layer = tree_lib.leaf_name(path), tree_lib.layer_of(path)
        if name == "v":
            out[path] = jnp.full_like(value, 0.5)
        elif name == "mask":
            out[path] = (flat[f"{layer}/v"] > eps).astype(value.dtype)
        elif name == "count":
            out[path] = jnp.zeros_like(value)
        else:
            out[path] = value
    return tree_lib.unflatten(out)


def check_presim(presim) -> int:
    """``presim`` (τ) as a non-negative int; a one-line ValueError otherwise."""
    if not isinstance(presim, int) or isinstance(presim, bool) or presim < 0:
        raise ValueError(f"presim (tau) must be an integer >= 0, got {presim!r}")
    return presim


def srp_start(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images,
    *,
    presim: int,
    time_major: bool = False,
):
    """The SRP start state: ``presim`` plain steps from ``membrane``, then :func:`srp_reset`.

    With ``time_major`` the ``presim`` steps consume frames ``0 .. presim-1`` of ``images``.
    """
    if not any(tree_lib.leaf_name(p) == "mask" for p in tree_lib.flatten(membrane)):
        raise ValueError("SRP needs an SNN built with masked=True (make_snn_model)")
    if presim == 0:
        return membrane
    if time_major:
        images = take_frames(images, 0, presim)
    pre = simulate(model, params, membrane, images, num_steps=presim, time_major=time_major)
    return srp_reset(pre.membrane)


def simulate_srp(
    model: nn.Module,
    params: Mapping,
    images,
    *,
    presim: int,
    num_steps: int,
    stats: bool = False,
    unroll: int | None = None,
    time_major: bool = False,
) -> SRPOutput:
    """Runs SRP: ``presim`` (τ ≥ 0) mask-finding steps, then ``num_steps`` counted steps.

    ``model`` must be built with ``masked=True`` (see :func:`jaxsnn.convert.make_snn_model`).
    With ``time_major`` (``images`` of ``[N, B, ...]``) the pre-simulation takes frames
    ``0 .. τ-1`` and the counted steps frames ``τ .. τ+T-1``, modulo ``N``.
    """
    check_presim(presim)
    kw = {"time_major": time_major} | ({} if unroll is None else {"unroll": unroll})
    first = images[0] if time_major else images
    membrane = init_membrane(model, first.shape, "half", first.dtype)
    if not any(tree_lib.leaf_name(p) == "mask" for p in tree_lib.flatten(membrane)):
        raise ValueError("simulate_srp needs an SNN built with masked=True")

    def frames(first_frame: int, count: int):
        return take_frames(images, first_frame, count) if time_major else images

    pre = None
    if presim > 0:
        pre = simulate(
            model, params, membrane, frames(0, presim), num_steps=presim, stats=stats, **kw
        )
        membrane = srp_reset(pre.membrane)
    sim = simulate(
        model, params, membrane, frames(presim, num_steps), num_steps=num_steps, stats=stats, **kw
    )
    return SRPOutput(pre, sim)
