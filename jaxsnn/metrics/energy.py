r"""Operation counts and the energy estimate: ANN MACs vs SNN synaptic operations.

ANN: every conv/dense does its MACs once per image, each at :math:`E_{MAC}`.
SNN: a weight layer fed by spikes does work only for non-zero inputs, so its synaptic operations
(accumulates) per step are :math:`\mathrm{MACs}\cdot\rho` with ρ the fraction of non-zero input
entries at that step (= spikes × fan-out, up to border effects of padding). A layer fed by the
analog image (the first conv, direct encoding) does full MACs every step. Energy:

.. math::
    E_{ANN} = E_{MAC}\sum_l \mathrm{MACs}_l, \qquad
    E_{SNN} = E_{MAC}\sum_{t,\,l\in\text{analog}} \mathrm{MACs}_l
            + E_{AC}\sum_{t,\,l\in\text{spiking}} \mathrm{MACs}_l\,\rho_l(t),

with :math:`E_{MAC} = 4.6` pJ and :math:`E_{AC} = 0.9` pJ (32-bit float, 45 nm CMOS; Horowitz,
"Computing's energy problem", ISSCC 2014), the constants the calibration papers use
(docs/methods.md, "Energy estimate").
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
ENERGY_CONSTANTS = {
    "e_mac_pj": E_MAC_PJ,
    "e_ac_pj": E_AC_PJ,
    "source": "Horowitz, ISSCC 2014 (45 nm, 32-bit float): MAC 4.6 pJ, accumulate 0.9 pJ",
    "formula": "E_ANN = E_MAC*sum(MACs); E_SNN = E_MAC*sum_t MACs(analog-input layers) + "
    "E_AC*sum_t sum_l MACs_l*density_l(t)",
}


def _is_weight_layer(module) -> bool:
    return isinstance(module, (nn.Conv, nn.Dense))


def _macs(module, x: jax.Array, y: jax.Array) -> int:
    """MACs per sample of one conv/dense call (static shapes)."""
    fan_in = int(np.prod(x.shape[1:])) if isinstance(module, nn.Dense) else None
    if isinstance(module, nn.Dense):
        return fan_in * int(y.shape[-1])
    kh, kw = module.kernel_size
    return int(np.prod(y.shape[1:])) * kh * kw * int(x.shape[-1])


def layer_macs(model: nn.Module, variables, input_shape, dtype=jnp.float32) -> dict[str, int]:
    """``{weight_layer_path: MACs per image}`` in forward order (shapes only, no compute)."""
    found: dict[str, int] = {}

    def record(next_fun, args, kwargs, context):
        y = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and _is_weight_layer(context.module):
            found["/".join(context.module.path)] = _macs(context.module, args[0], y)
        return y

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.apply(variables, jnp.zeros(input_shape, dtype)))
    return found


def sow_input_density(next_fun, args, kwargs, context):
    """Interceptor: sows each conv/dense input's per-sample non-zero fraction into ``'stats'``."""
    if context.method_name == "__call__" and _is_weight_layer(context.module):
        x = args[0]
        nnz = jnp.sum(x != 0, axis=tuple(range(1, x.ndim)), dtype=x.dtype)
        context.module.sow("stats", "input_density", nnz / jnp.asarray(x[0].size, x.dtype))
    return next_fun(*args, **kwargs)


def energy_report(
    macs: dict[str, int], density_sums: dict[str, float], num_steps: int, analog_layers: set[str]
) -> dict:
    """ANN vs SNN operation counts and energy (mJ) per image.

    Args:
      macs: MACs per image per weight layer (:func:`layer_macs`).
      density_sums: per weight layer, the input density summed over steps (mean over images).
      num_steps: T.
      analog_layers: weight layers whose input is analog at every step.
    """
    ann_macs = float(sum(macs.values()))
    snn_macs = float(sum(macs[p] * num_steps for p in analog_layers))
    sops = float(
        sum(m * density_sums.get(p, 0.0) for p, m in macs.items() if p not in analog_layers)
    )
    ann_mj = ann_macs * E_MAC_PJ * 1e-9
    snn_mj = (snn_macs * E_MAC_PJ + sops * E_AC_PJ) * 1e-9
    return {
        "ann_macs_per_image": ann_macs,
        "snn_macs_per_image": snn_macs,
        "snn_synaptic_ops_per_image": sops,
        "ann_energy_mj": ann_mj,
        "snn_energy_mj": snn_mj,
        "snn_over_ann_energy": snn_mj / ann_mj if ann_mj else float("nan"),
        "constants": ENERGY_CONSTANTS,
    }
