"""COS (Hao et al., ICLR 2023): calibrating offset spikes by shifting initial potentials.

The SNN is the QCFS conversion (θ = λ, v(0) = θ/2); per batch, the :class:`jaxsnn.simulate.COS`
protocol runs, layer by layer, a τ = ``presim``-step pre-simulation of each neuron on its own
input and moves its initial potential down by at least one threshold if it fired one spike too
many, or up if one too few; the T counted steps then replay the input from the start. Latency of
counted step t: τ + t (the shift needs the first τ inputs). No training data is read.
"""

from jaxsnn.methods import common
from jaxsnn.methods.plain import qcfs_params
from jaxsnn.methods.registry import Converted, Method, Option, register
from jaxsnn.simulate import COS


def _cos(ann_model, variables, batches, opts) -> Converted:
    model, snn_kwargs = common.snn_model(ann_model)
    protocol = COS(opts["presim"], guard=opts["cos_guard"])
    return Converted(
        model,
        qcfs_params(variables),
        "half",
        protocol=protocol,
        snn_kwargs=snn_kwargs,
        fields={"presim": opts["presim"], "cos_guard": opts["cos_guard"]},
    )


register(
    Method(
        name="cos",
        summary="calibrating offset spikes: per layer, τ pre-simulation steps shift each "
        "neuron's v(0) by ±θ; latency τ+t",
        convert=_cos,
        options=common.COMMON
        + (
            common.PRESIM,
            Option(
                "cos_guard",
                False,
                "Shift a neuron that fired at every pre-simulation step by one threshold "
                "instead of the released code's ≈ 1001 (its 'sentinel leak').",
            ),
        ),  # fmt: skip
        paper="COS, ICLR 2023",
    )
)
