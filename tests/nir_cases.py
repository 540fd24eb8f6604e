"""SNNs on a dyadic grid for the NIR tests: every product and sum is exact in float32.

Weights are multiples of 1/8 in [-1/2, 1/2], biases multiples of 1/16, thresholds powers of two
(½, 1, 2), images multiples of 1/16 in [0, 1] and the shift 1/(2T) with T a power of two. All
intermediate values then stay on a grid of at most ~20 significant bits, so any summation order
(XLA's, PyTorch's) gives the same float32 result and two simulators must agree bit for bit.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsnn import convert, models, tree
from jaxsnn.neurons import IF


def dyadic_params(params, seed: int = 0) -> dict:
    """``params`` with every kernel, bias and threshold redrawn on the dyadic grid."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, shape = tree.leaf_name(path), np.shape(leaf)
        if name == "kernel":
            return jnp.asarray(rng.integers(-4, 5, shape) / 8, jnp.float32)
        if name == "bias":
            return jnp.asarray(rng.integers(-4, 5, shape) / 16, jnp.float32)
        if name == "threshold":
            return jnp.asarray(2.0 ** rng.integers(-1, 2, shape), jnp.float32)
        return leaf

    return tree.map_with_path(draw, params)


def dyadic_images(shape, seed: int = 2) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).integers(0, 17, shape) / 16, jnp.float32)


def make_snn(
    arch: str, shape, *, calibrated: bool = False, num_steps: int = 8, seed: int = 0, **model_kw
):
    """``(snn, params)``: architecture ``arch`` converted, weights and θ on the dyadic grid.

    ``calibrated``: the calibration papers' neuron (per-channel θ, shift 1/(2T)), cap 1.
    ``model_kw``: more constructor arguments of the architecture (``stem='imagenet'``).
    """
    act = functools.partial(models.QCFS, levels=4)
    ann = models.get_model(arch, num_classes=5, act=act, **model_kw)
    variables = models.init_variables(ann, jax.random.key(1), shape)
    kw = {"per_channel": True, "neuron": IF(shift=1 / (2 * num_steps))} if calibrated else {}
    snn, params = convert.convert(ann, variables, input_shape=shape, **kw)
    if calibrated:
        shapes = convert.threshold_shapes(snn, shape)
        params = convert.to_snn_params(params, convert.extract_thresholds(params), shapes=shapes)
    return snn, dyadic_params(params, seed)


def layer_spikes(stats) -> dict:
    """``{NIR node name: spikes [T, B]}`` from :func:`jaxsnn.simulate.simulate`'s stats."""
    return {
        layer.replace("/", "_"): np.asarray(v["spikes"])
        for layer, v in stats.items()
        if "spikes" in v
    }
