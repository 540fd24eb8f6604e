"""Simulation variants measured against :func:`jaxsnn.simulate.simulate` (P1).

* **First-layer current computed once.** With direct encoding the first conv/dense sees the same
  image every step, so its output is loop-invariant. :func:`simulate_cached_first_layer` computes
  it once before the scan and, inside the scan, a flax method interceptor makes the first
  ``nn.Conv``/``nn.Dense`` call return the cached tensor. Same ops on the same inputs, so the
  result equals the plain path exactly.
* **Buffer donation.** :func:`simulate_donated` jits the simulation with the initial membrane
  donated, so XLA may reuse its buffers for the carry.
"""

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn.simulate import SimOutput, simulate

_LAYERS = (nn.Conv, nn.Dense)


def _first_layer_interceptor(replace=None):
    """An interceptor that records (or replaces) the output of the first conv/dense call.

    Returns:
      ``(interceptor, box)``; after an apply, ``box['out']`` holds the first layer's output.
    """
    box: dict = {}

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__" or not isinstance(context.module, _LAYERS):
            return next_fun(*args, **kwargs)
        if "seen" in box:
            return next_fun(*args, **kwargs)
        box["seen"] = True
        if replace is not None:
            return replace
        box["out"] = next_fun(*args, **kwargs)
        return box["out"]

    return interceptor, box


def first_layer_output(model: nn.Module, params: Mapping, membrane: Mapping, images) -> jax.Array:
    """The first conv/dense output for ``images`` (the rest of the model is dead code under jit)."""
    interceptor, box = _first_layer_interceptor()
    with nn.intercept_methods(interceptor):
        model.apply({"params": params, "membrane": membrane}, images, mutable=["membrane"])
    return box["out"]


@functools.partial(jax.jit, static_argnames=("model", "num_steps", "unroll"))
def simulate_cached_first_layer(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images: jax.Array,
    *,
    num_steps: int,
    unroll: int = 1,
) -> SimOutput:
    """Like ``simulate(..., stats=False)`` but with the first layer's current computed once."""
    cached = first_layer_output(model, params, membrane, images)

    def step(carry, _):
        state, total = carry
        interceptor, _ = _first_layer_interceptor(replace=cached)
        with nn.intercept_methods(interceptor):
            out, new_vars = model.apply(
                {"params": params, "membrane": state}, images, mutable=["membrane"]
            )
        total = total + out
        return (new_vars["membrane"], total), (total, out)

    out_shape = jax.eval_shape(
        lambda: model.apply({"params": params, "membrane": membrane}, images, mutable=["membrane"])
    )[0]
    total0 = jnp.zeros(out_shape.shape, out_shape.dtype)
    (final, _), (cumulative, outputs) = jax.lax.scan(
        step, (membrane, total0), None, length=num_steps, unroll=unroll
    )
    return SimOutput(cumulative, outputs, {}, final)


@functools.partial(
    jax.jit, static_argnames=("model", "num_steps", "unroll"), donate_argnames=("membrane",)
)
def simulate_donated(model, params, membrane, images, *, num_steps: int, unroll: int = 1):
    """``simulate`` with the initial membrane buffers donated to the computation."""
    return simulate(model, params, membrane, images, num_steps=num_steps, unroll=unroll)
