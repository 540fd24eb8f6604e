"""SRP (Hao et al., AAAI 2023): residual membrane potential masks from a τ-step pre-simulation.

The SNN is the QCFS conversion (θ = λ, v(0) = θ/2) built with output masks; per batch, the
:class:`jaxsnn.simulate.SRP` protocol runs τ = ``presim`` plain steps, masks every neuron whose
residual potential is ≤ 10⁻³ (it would emit spikes its ANN activation does not have) and restarts
from θ/2 for the T counted steps. Latency of counted step t: τ + t.
"""

from jaxsnn.methods import common
from jaxsnn.methods.plain import qcfs_params
from jaxsnn.methods.registry import Converted, Method, register
from jaxsnn.simulate import SRP


def _srp(ann_model, variables, batches, opts) -> Converted:
    model, snn_kwargs = common.snn_model(ann_model, masked=True)
    return Converted(
        model,
        qcfs_params(variables),
        "half",
        protocol=SRP(opts["presim"]),
        snn_kwargs=snn_kwargs,
        fields={"presim": opts["presim"]},
    )


register(
    Method(
        name="srp",
        summary="residual membrane potential: τ pre-simulation steps set output masks, then T "
        "counted steps; latency τ+t",
        convert=_srp,
        options=common.COMMON + (common.PRESIM,),
        paper="SRP, AAAI 2023",
    )
)
