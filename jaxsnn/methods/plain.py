r"""QCFS conversion (Bu et al., ICLR 2022) with the optimal initial potential (Bu et al., AAAI
2022): ``qcfs`` and its ``zero`` baseline.

Every QCFS (or clip-ReLU) activation becomes an IF neuron with reset by subtraction and threshold
θ = λ, the activation's trained clip value; BatchNorm is folded into the convolutions; the input
image is fed unchanged at every step and the last layer stays analog. ``qcfs`` starts every
neuron at :math:`v(0) = \theta/2`, which makes the expected conversion error zero (OPI); ``zero``
starts at 0, the baseline OPI replaces. No training data is read.
"""

from jaxsnn.convert import extract_thresholds, fold_batchnorm, to_snn_params
from jaxsnn.methods import common
from jaxsnn.methods.registry import Converted, Method, register


def qcfs_params(variables) -> dict:
    """SNN params with θ = λ: BN folded, every λ becomes a threshold with cap 1."""
    folded = fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    return to_snn_params(folded, extract_thresholds(folded))


def _plain(membrane_init: str):
    def convert(ann_model, variables, batches, opts) -> Converted:
        model, snn_kwargs = common.snn_model(ann_model)
        return Converted(model, qcfs_params(variables), membrane_init, snn_kwargs=snn_kwargs)

    return convert


register(
    Method(
        name="qcfs",
        summary="IF neurons, θ = λ, v(0) = θ/2 (optimal potential initialisation)",
        convert=_plain("half"),
        options=common.COMMON,
        paper="QCFS, ICLR 2022; OPI, AAAI 2022",
    )
)
register(
    Method(
        name="zero",
        summary="the same with v(0) = 0: the baseline",
        convert=_plain("zero"),
        options=common.COMMON,
        paper="OPI, AAAI 2022 (baseline)",
    )
)
