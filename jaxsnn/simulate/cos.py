r"""COS (Hao et al., ICLR 2023): calibrating offset spikes by shifting the initial potential.

An *offset spike* is one spike more or one spike fewer than the neuron should emit; COS removes it
per neuron and per sample by moving the neuron's initial potential by at least one threshold,
from a τ-step pre-simulation of the layer on its own input (docs/methods.md, "COS").

The released code runs the network layer by layer. For layer ``l``, on the input sequence its
(already calibrated) predecessor emits:

1. start at :math:`u = u_0` (½) and run τ steps on the first τ inputs, recording the smallest
   pre-reset potential among firing steps :math:`m_\downarrow` and the largest potential among
   non-firing steps :math:`m_\uparrow` (sentinels ±1000 when there is none);
2. from the final residual :math:`u_\tau` and count :math:`n_\tau`: *one spike too many* when
   :math:`u_\tau < 0` and :math:`n_\tau \ge 1`: :math:`u_0 \leftarrow u_0 - \max(1,
   m_\downarrow - 0.999)`; *one spike too few* when :math:`u_\tau \ge 1`: :math:`u_0
   \leftarrow u_0 + \max(1, 1.001 - m_\uparrow)`; otherwise unchanged;
3. reset to the new :math:`u_0` and run the counted steps on the same input sequence from its
   start (the pre-simulation inputs are replayed).

:func:`cos_start` computes the same start state with step-major scans: pass ``k`` runs τ steps of
the whole network with layers ``< k`` already at their calibrated :math:`u_0`, so layer ``k`` sees
exactly the first τ inputs of its calibrated predecessor; its potential sequence is then replayed
through the IF kernel to find the shift. The counted run then starts from all shifts. Cost: one
τ-step pass per spiking layer before the counted steps.

The released code's *sentinel leak*: a neuron that fired at every pre-simulation step and still
ends with :math:`u_\tau \ge 1` has no non-firing step, so :math:`m_\uparrow = -1000` and it is
shifted up by ≈ 1001 thresholds (it then fires at every step). ``guard=True`` shifts such a
neuron up by one threshold instead; the default keeps the released behaviour.

With time-major input (``time_major=True``, ``images`` of ``[N, B, ...]``) each pass runs on
frames ``0 .. τ-1`` and the counted run replays the sequence from frame 0, as the released code
replays its inputs (`jaxsnn.simulate.protocols`).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree
from jaxsnn.models import call_order
from jaxsnn.neurons import CAP, IF, THRESHOLD, NeuronState, SpikingActivation
from jaxsnn.simulate.core import simulate
from jaxsnn.simulate.encoding import take_frames

_SENTINEL = 1000.0


def spiking_layers(model: nn.Module, params: Mapping, membrane: Mapping, images) -> list[str]:
    """Paths of the spiking layers of an SNN in forward (call) order (shapes only)."""
    variables = {"params": params, "membrane": membrane}
    return call_order(
        model,
        variables,
        images,
        lambda m: isinstance(m, SpikingActivation),
        mutable=["membrane", "stats"],
    )


def layer_inputs(
    model, params, membrane, images, *, layer: str, num_steps: int, time_major: bool = False
) -> jax.Array:
    """The input current of spiking ``layer`` at each of ``num_steps`` steps: ``[T, B, ...]``.

    With ``time_major`` step ``t`` is fed frame ``t`` of ``images`` (modulo its length).
    """
    found: dict = {}

    def tap(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and "/".join(context.module.path) == layer:
            found["x"] = args[0]
        return next_fun(*args, **kwargs)

    def step(state, frame):
        with nn.intercept_methods(tap):
            _, new = model.apply(
                {"params": params, "membrane": state},
                frame if time_major else images,
                mutable=["membrane", "stats"],
            )
        return new["membrane"], found.pop("x")

    frames = take_frames(images, 0, num_steps) if time_major else None
    _, xs = jax.lax.scan(step, membrane, frames, length=num_steps)
    return xs


def cos_offset(xs: jax.Array, u0: jax.Array, theta, cap=1.0, *, guard: bool = False) -> jax.Array:
    """The calibrated initial potential (threshold units) of neurons fed ``xs [τ, B, ...]``.

    Args:
      xs: the input currents of the τ pre-simulation steps.
      u0: the uncalibrated initial potential (½), broadcastable to ``xs[0]``.
      theta: the layer's threshold, broadcast as the layer does (scalar or ``[1, ..., C]``).
      cap: the layer's spike cap (1 for the IF neurons COS is defined for).
      guard: shift a neuron with no non-firing step by one threshold, not ≈ 1001.

    Returns:
      ``u0 - δ↓`` (one spike too many), ``u0 + δ↑`` (one too few) or ``u0``, shape ``xs[0]``.
    """
    neuron = IF()
    dtype = xs.dtype
    start = jnp.broadcast_to(jnp.asarray(u0, dtype), xs.shape[1:])

    def step(carry, x):
        state, n, low, high = carry
        spikes, state = neuron.step(x, state, threshold=theta, max_spikes=cap)
        pre_reset = state.v + spikes
        fired = spikes > 0
        low = jnp.where(fired, jnp.minimum(low, pre_reset), low)
        high = jnp.where(fired, high, jnp.maximum(high, pre_reset))
        return (state, n + spikes, low, high), None

    big = jnp.full(xs.shape[1:], _SENTINEL, dtype)
    init = (NeuronState(start), jnp.zeros_like(start), big, -big)
    (state, n, low, high), _ = jax.lax.scan(step, init, xs)
    one = jnp.asarray(1.0, dtype)
    down = jnp.maximum(one, low - jnp.asarray(0.999, dtype))
    up = jnp.maximum(one, jnp.asarray(1.001, dtype) - high)
    if guard:
        up = jnp.where(high <= -_SENTINEL, one, up)
    too_many = (state.v < 0) & (n >= 1)
    too_few = state.v >= 1
    return jnp.where(too_many, start - down, jnp.where(too_few, start + up, start))


def cos_start(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images,
    *,
    presim: int,
    guard: bool = False,
    time_major: bool = False,
) -> dict:
    """The COS start state: every spiking layer's ``v`` shifted per neuron and per sample.

    ``membrane`` is the uncalibrated start (``v = ½`` for COS); counts and masks are kept as
    they are (zero / one). ``presim = 0`` returns ``membrane`` unchanged (plain QCFS). With
    ``time_major`` the passes run on frames ``0 .. presim-1`` of ``images``.
    """
    if presim == 0:
        return membrane
    thetas = tree.layer_leaves(params, THRESHOLD)
    caps = tree.layer_leaves(params, CAP)
    starts = tree.layer_leaves(membrane, "v")
    calibrated: dict[str, jax.Array] = {}
    first = images[0] if time_major else images
    for layer in spiking_layers(model, params, membrane, first):
        current = tree.replace_leaves(membrane, {f"{k}/v": v for k, v in calibrated.items()})
        xs = layer_inputs(
            model, params, current, images, layer=layer, num_steps=presim, time_major=time_major
        )
        theta = jnp.asarray(thetas[layer], xs.dtype)
        if theta.ndim:  # As the layer broadcasts a per-channel θ (a scalar stays a scalar).
            theta = theta.reshape((1,) * (xs.ndim - 2) + theta.shape)
        calibrated[layer] = cos_offset(
            xs, starts[layer], theta, jnp.asarray(caps[layer], xs.dtype), guard=guard
        )
    return tree.replace_leaves(membrane, {f"{k}/v": v for k, v in calibrated.items()})


def simulate_cos(
    model,
    params,
    membrane,
    images,
    *,
    presim: int,
    num_steps: int,
    guard: bool = False,
    time_major: bool = False,
    **kw,
):
    """Runs COS: the calibrated start (:func:`cos_start`), then ``num_steps`` counted steps.

    With ``time_major`` the counted steps replay ``images`` from frame 0.
    """
    start = cos_start(
        model, params, membrane, images, presim=presim, guard=guard, time_major=time_major
    )
    if time_major:
        images = take_frames(images, 0, num_steps)
    return simulate(model, params, start, images, num_steps=num_steps, time_major=time_major, **kw)
