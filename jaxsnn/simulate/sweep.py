"""Vectorised sweeps: K threshold scalings (or initial potentials) in one compiled, vmapped call."""

from collections.abc import Mapping

import jax
from flax import linen as nn

from jaxsnn.convert import init_membrane, scale_thresholds
from jaxsnn.simulate.core import fast_jit, simulate


@fast_jit(static_argnames=("model", "num_steps"))
def sweep_threshold_scales(
    model: nn.Module, params: Mapping, membrane: Mapping, images, scales, *, num_steps: int
) -> jax.Array:
    """Cumulative readouts ``[K, T, B, classes]`` for θ·scales[k], k < K, in one vmapped call."""

    def one(scale):
        return simulate(
            model, scale_thresholds(params, scale), membrane, images, num_steps=num_steps
        ).cumulative

    return jax.vmap(one)(scales)


@fast_jit(static_argnames=("model", "num_steps"))
def sweep_initial_potentials(
    model: nn.Module, params: Mapping, images, fractions, *, num_steps: int
) -> jax.Array:
    """Cumulative readouts ``[K, T, B, classes]`` for v(0) = fractions[k]·θ, in one vmapped call."""

    def one(alpha):
        membrane = init_membrane(model, images.shape, alpha, images.dtype)
        return simulate(model, params, membrane, images, num_steps=num_steps).cumulative

    return jax.vmap(one)(fractions)
