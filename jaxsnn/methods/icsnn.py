r"""IC-SNN (Mathematics 2023, 11(1):58): initialised membrane potential and coding compensation.

Only the paper's abstract could be read; the method here is our reconstruction, documented in
docs/methods.md ("IC-SNN"):

- **A1** (initial potential from the trained ANN): IF neurons, θ = the ANN's λ (or data-driven
  thresholds for a plain-ReLU ANN), :math:`v(0) = \theta/2` (= OPI).
- **A2** (initial potential from the training set), the default: layer-sequentially,
  :math:`v^l(0) = \theta^l/2 + T(\overline{a^l_{ANN}} - \overline{r^l_{SNN}})`, means per neuron
  position over the first calibration batch (or per channel), measured with the already
  corrected layers < l (CAL's potential calibration,
  :func:`~jaxsnn.methods.correction.potential_calibration`, started from ½).
- **A3(a)** (coding compensation by a residual read-out), on by default: at the end of the window
  the last hidden spiking layer's rate is replaced by the compensated rate
  :math:`\mathrm{clip}(\theta(N(T) + u(T) - u(0))/T, 0, M\theta)` and the network's tail is
  applied to it (:func:`jaxsnn.simulate.compensated_logits`); the evaluation reports that
  final-step accuracy next to the uncompensated one.
"""

import jax.numpy as jnp
import numpy as np

from jaxsnn.methods import common
from jaxsnn.methods.calibration import sequential_pass, thresholds_for
from jaxsnn.methods.correction import potential_calibration
from jaxsnn.methods.registry import Converted, Method, Option, register
from jaxsnn.neurons import THRESHOLD


def _icsnn(ann_model, variables, batches, opts, *, encoding=None) -> Converted:
    setup = common.make_setup(ann_model, variables, batches, opts["T"], encoding)
    layers, images = setup.layers, setup.images[0]
    model, snn_kwargs = common.snn_model(ann_model, per_channel=True)
    lam = common.leaves(setup.folded, THRESHOLD)
    use_ann = opts["icsnn_thresholds"] == "ann" and all(layer in lam for layer in layers)
    caps = common.layer_dict(layers, [1] * len(layers), int)
    thresholds = lam if use_ann else thresholds_for(setup, opts, caps)
    params = common.snn_params(model, setup.folded, thresholds, caps, images.shape)
    fields = {
        "threshold_mode": "ann_lambda" if use_ann else opts["threshold_mode"],
        "icsnn_init": opts["icsnn_init"],
        "max_spikes_per_layer": caps,
        "max_spikes_overall": 1,
        "layers": list(layers),
    }
    compensation = layers[-1] if opts["icsnn_compensation"] else None
    if compensation is not None:
        fields["compensation_layer"] = compensation
    membrane_init = "half"
    if opts["icsnn_init"] == "a2":
        # A2: CAL's potential calibration started from ½ (threshold units).
        u0 = potential_calibration(
            sequential_pass(setup, model),
            params,
            {layer: jnp.asarray(0.5, images.dtype) for layer in layers},
            per_channel=opts["icsnn_per_channel"],
        )
        membrane_init = {k: np.asarray(v) for k, v in u0.items()}
        fields["icsnn_per_channel"] = bool(opts["icsnn_per_channel"])
    return Converted(
        model,
        params,
        membrane_init,
        snn_kwargs=snn_kwargs,
        fields=fields,
        compensation_layer=compensation,
    )


register(
    Method(
        name="icsnn",
        summary="IF neurons, data-driven initial potential (A2) and coding compensation (A3a): "
        "our reconstruction",
        convert=_icsnn,
        options=common.COMMON
        + common.threshold_options("percentile", channel_wise=False, max_spikes=None)
        + (
            Option(
                "icsnn_init",
                "a2",
                "Initial potential: θ/2 (a1) or θ/2 + the data-driven correction (a2).",
                choices=("a1", "a2"),
            ),
            Option("icsnn_per_channel", False, "A2's correction per channel, not per neuron."),
            Option(
                "icsnn_thresholds",
                "ann",
                "Thresholds: the ANN's λ (when it has them) or data-driven (threshold_mode).",
                choices=("ann", "data"),
            ),
            Option(
                "icsnn_compensation",
                True,
                "Also report the coding-compensated final-step accuracy (A3a).",
            ),
        ),  # fmt: skip
        needs_data=True,
        fitted_to_T=True,
        paper="IC-SNN, Mathematics 2023 (reconstruction)",
    )
)
