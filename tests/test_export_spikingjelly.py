"""Exported NIR files against an independent simulator: SpikingJelly's NIR importer.

SpikingJelly (``import_from_nir``) builds a PyTorch network from the file;
:func:`jaxsnn.export.run_spikingjelly` sets its IF neurons to the semantics the file's metadata
states (README "Export"): ``v_reset=None`` (reset by subtraction) and ``v(0)`` from each node's
``v_init``, runs T steps with the image fed at every step, and sums the output. On dyadic
weights, thresholds and images (``nir_cases``) the per-layer spike counts and the summed outputs
must be identical to jaxsnn's, bit for bit; on real Fashion-MNIST with a trained SmallCNN the
classes must agree on ≥ 99 % of the images.

Needs the ``nir`` extra (``nir``, ``nirtorch``, ``spikingjelly``, ``torch``); skipped without it.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from nir_cases import dyadic_images, layer_spikes, make_snn

from jaxsnn import convert, export, models
from jaxsnn.data.datasets import DEFAULT_IDX_DIR
from jaxsnn.data.idx import find_idx_files, has_idx_files, read_idx
from jaxsnn.simulate import simulate
from jaxsnn.train.state import create_optimizer, create_train_state
from jaxsnn.train.steps import train_step

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
pytest.importorskip("torch")
pytest.importorskip("spikingjelly.activation_based.nir_exchange")


def _jaxsnn(model, params, membrane_init, images, num_steps):
    membrane = convert.init_membrane(model, images.shape, membrane_init)
    out = simulate(model, params, membrane, images, num_steps=num_steps, stats=True)
    return np.asarray(out.cumulative), layer_spikes(out.stats)


CASES = {
    "SmallCNN": ("SmallCNN", (4, 28, 28, 1), False, "native"),
    "ResNet-residual": ("_ResNetTiny", (4, 8, 8, 3), False, "native"),
    "ResNet-calibrated-unit": ("_ResNetTiny", (4, 8, 8, 3), True, "unit"),
}


@pytest.mark.parametrize("case", CASES)
def test_spikingjelly_reproduces_spike_counts_and_outputs_exactly(case, tmp_path):
    arch, shape, calibrated, thresholds = CASES[case]
    T = 8
    snn, params = make_snn(arch, shape, calibrated=calibrated, num_steps=T)
    init = "zero" if calibrated else "half"
    images = dyadic_images(shape)
    path = tmp_path / "snn.nir"
    graph = export.to_nir(snn, params, init, shape, num_steps=T, thresholds=thresholds)
    export.write(path, graph)
    ours, our_spikes = _jaxsnn(snn, params, init, images, T)
    theirs, their_spikes = export.run_spikingjelly(path, np.asarray(images), T)
    assert our_spikes.keys() == their_spikes.keys()
    for layer, spikes in our_spikes.items():
        np.testing.assert_array_equal(their_spikes[layer], spikes, err_msg=layer)
        assert spikes.sum() > 0, f"{layer} never spikes: the case tests nothing"
    np.testing.assert_array_equal(theirs, ours)
    if arch == "_ResNetTiny":  # the residual edges are exercised: an identity and a projection
        assert {"stage1_block1_identity", "stage2_block1_shortcut"} <= set(graph.nodes)


# --------------------------------------------------------------------------- real data


def _fashion_mnist(num_test: int):
    files = find_idx_files(DEFAULT_IDX_DIR)

    def norm(x):  # the pipeline's normalisation (jaxsnn.data.datasets, 'fashion_mnist')
        return ((x.astype(np.float32) / 255 - 0.2860) / 0.3530)[..., None]

    train = norm(read_idx(files["train_images"])), read_idx(files["train_labels"]).astype(np.int32)
    return train, norm(read_idx(files["test_images"])[:num_test])


@pytest.mark.slow
@pytest.mark.skipif(not has_idx_files(DEFAULT_IDX_DIR), reason="no Fashion-MNIST IDX files")
def test_spikingjelly_agrees_on_real_fashion_mnist(tmp_path):
    """A SmallCNN (QCFS, L = 4) trained briefly on the real data, converted with θ = λ.

    60 SGD steps (about 79 % SNN accuracy at T = 8 on these 256 test images) keep the test
    short; the README reports the same check on the 5-epoch demo network over the whole test
    split (bench/nir_agreement.py).
    """
    (x_train, y_train), x_test = _fashion_mnist(256)
    ann = models.get_model("SmallCNN", num_classes=10, act=functools.partial(models.QCFS, levels=4))
    settings = {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    tx = create_optimizer(
        ml_collections.ConfigDict({**settings, "schedule": "constant", "num_epochs": 1}), 1
    )
    state = create_train_state(ann, tx, (64, 28, 28, 1), key=jax.random.key(0))
    step = jax.jit(functools.partial(train_step, model=ann, tx=tx))
    rng = np.random.default_rng(0)
    for _ in range(60):
        idx = rng.integers(0, len(x_train), 64)
        state, _ = step(state, {"image": jnp.asarray(x_train[idx]), "label": y_train[idx]})
    snn, params = convert.convert(ann, {"params": state.params, "batch_stats": state.batch_stats})
    T = 8
    path = tmp_path / "snn.nir"
    export.write(path, export.to_nir(snn, params, "half", x_test.shape, num_steps=T))
    ours, our_spikes = _jaxsnn(snn, params, "half", jnp.asarray(x_test), T)
    theirs, their_spikes = export.run_spikingjelly(path, x_test, T)
    agreement = np.mean(np.argmax(ours[-1], -1) == np.argmax(theirs[-1], -1))
    assert agreement >= 0.99, f"class agreement {agreement:.4f}"
    for layer, spikes in our_spikes.items():  # a few threshold crossings may round differently
        assert abs(their_spikes[layer].sum() - spikes.sum()) <= 1e-3 * spikes.sum(), layer
