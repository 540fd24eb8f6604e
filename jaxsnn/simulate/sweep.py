"""Sweeps: K threshold scalings (or initial potentials) in one compiled call.

The K simulations run as ``lax.map`` over the swept values. On CPU they run one after the other
inside the program (``batch_size=1``): a vmapped sweep simulates one K·B batch, which at batch
16–32 was 0.88–0.93× the speed of K separate calls on a quiet 2-core CPU (0.44–0.59× under load;
``bench/sweep.py``), while one value at a time runs the loop's shapes at the loop's speed.
Initial-potential sweeps equal the loop bit for bit; threshold sweeps to float32 rounding (inside
the sweep XLA may divide by the scaled θ differently). On other backends all K run vmapped
together (``batch_size=K``). ``group=c`` overrides either choice: c values are vmapped together,
the groups run one after the other. On CPU a small batch of a wide network can gain from it
(VGG-16 with batch 4: the vmapped sweep was 1.16–1.18× the loop's speed, one value at a time
0.83–0.94×; see the README's Benchmarks).
"""

from collections.abc import Mapping

import jax
from flax import linen as nn

from jaxsnn.convert import init_membrane, scale_thresholds
from jaxsnn.simulate.core import fast_jit, simulate


def _sweep(one, values, group: int | None) -> jax.Array:
    if group is None:
        group = 1 if jax.default_backend() == "cpu" else len(values)
    if group < 1:
        raise ValueError(f"group must be a positive number of values, got {group}")
    return jax.lax.map(one, values, batch_size=min(group, len(values)))


@fast_jit(static_argnames=("model", "num_steps", "group"))
def sweep_threshold_scales(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images,
    scales,
    *,
    num_steps: int,
    group: int | None = None,
) -> jax.Array:
    """Cumulative readouts ``[K, T, B, classes]`` for θ·scales[k], k < K, in one compiled call.

    ``group``: how many values run vmapped together (default: 1 on CPU, all K elsewhere).
    """

    def one(scale):
        scaled = scale_thresholds(params, scale)
        return simulate(model, scaled, membrane, images, num_steps=num_steps).cumulative

    return _sweep(one, scales, group)


@fast_jit(static_argnames=("model", "num_steps", "group"))
def sweep_initial_potentials(
    model: nn.Module,
    params: Mapping,
    images,
    fractions,
    *,
    num_steps: int,
    group: int | None = None,
) -> jax.Array:
    """Cumulative readouts ``[K, T, B, classes]`` for v(0) = fractions[k]·θ, in one call.

    ``group``: how many values run vmapped together (default: 1 on CPU, all K elsewhere).
    """

    def one(alpha):
        membrane = init_membrane(model, images.shape, alpha, images.dtype)
        return simulate(model, params, membrane, images, num_steps=num_steps).cumulative

    return _sweep(one, fractions, group)
