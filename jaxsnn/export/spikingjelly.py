"""Run an exported NIR file in SpikingJelly with the semantics its metadata states.

SpikingJelly 2.0's importer (``spikingjelly.activation_based.nir_exchange.import_from_nir``) maps
``IF`` to its ``IFNode`` with ``v_reset`` from the file and ``v(0) = v_reset``, in steps of
``dt`` (``r`` must equal ``1/dt``). :func:`run_spikingjelly` imports with ``dt = 1``, switches
every ``IFNode`` to reset by subtraction (``v_reset=None``; it fires on ``v >= v_threshold`` like
jaxsnn), starts it at the node's ``v_init`` metadata, feeds the image at every step and sums the
output: an independent simulator for the tests and ``bench/nir_agreement.py`` (README "Export").

Needs the ``nir`` extra (``nir``, ``nirtorch``, ``spikingjelly``, ``torch``). SpikingJelly takes
one threshold per ``IF`` node: export per-channel thresholds with ``thresholds='unit'``.
"""

import numpy as np

from jaxsnn.export.nir_export import import_nir


def _modules():
    try:
        import torch
        from spikingjelly.activation_based import neuron
        from spikingjelly.activation_based.nir_exchange import import_from_nir
    except ImportError:
        raise ValueError(
            "running NIR files in SpikingJelly needs the 'nir' extra: pip install -e '.[nir]'"
        ) from None
    return torch, neuron, import_from_nir


def run_spikingjelly(graph, images, num_steps: int):
    """Simulates a NIR graph (or ``.nir`` path) in SpikingJelly on channels-last ``images``.

    Args:
      graph: a ``nir.NIRGraph`` written by :func:`jaxsnn.export.to_nir`, or its file.
      images: ``[B, H, W, C]`` (jaxsnn's layout), fed unchanged at every step.
      num_steps: T.

    Returns:
      ``(cumulative [T, B, K], {IF node: spikes [T, B]})`` as numpy arrays: the running sum of
      the output and each ``IF`` node's spike count per step and example.
    """
    nir = import_nir()
    torch, neuron, import_from_nir = _modules()
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(str(graph))
    images = np.asarray(images, np.float32)
    net = import_from_nir(graph, dt=1.0)  # r = 1 = 1/dt: one step per time unit
    counts: dict[str, list] = {}

    def record(name):
        def hook(module, args, out):
            spikes = out[0]
            counts.setdefault(name, []).append(spikes.sum(dim=tuple(range(1, spikes.ndim))))

        return hook

    for name, child in net.named_children():
        if isinstance(getattr(child, "module", None), neuron.IFNode):
            v_init = torch.tensor(np.asarray(graph.nodes[name].metadata["v_init"], np.float32))
            child.module.v_reset = None  # reset by subtraction
            child.module.v = v_init.expand(len(images), *v_init.shape)
            child.register_forward_hook(record(name))
    x = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2) if images.ndim == 4 else images))
    state, total, cumulative = None, 0.0, []
    with torch.no_grad():
        for _ in range(num_steps):
            out, state = net(x, state)
            total = total + out
            cumulative.append(total.numpy().copy())
    spikes = {k: np.stack([c.numpy() for c in v]) for k, v in counts.items()}
    return np.stack(cumulative), spikes
