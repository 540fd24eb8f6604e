"""NIR export and import (``jaxsnn.export``): layout, metadata, round trips, refusals, CLI.

The round trips write the graph to a ``.nir`` file, read it back into jaxsnn and require
bit-identical outputs and per-layer spike counts on dyadic weights, thresholds and images
(``nir_cases``). The comparison against an independent simulator is ``test_export_spikingjelly``.
"""

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from nir_cases import dyadic_images, layer_spikes, make_snn
from run_helpers import convert as convert_run

from jaxsnn import convert, export, tree
from jaxsnn.cli import convert as engine
from jaxsnn.export.nir_export import _flatten_order
from jaxsnn.simulate import COS, SRP, simulate

nir = pytest.importorskip("nir")

T = 8
IMAGE = (2, 8, 8, 3)


def _run(model, params, membrane_init, images, num_steps=T):
    membrane = convert.init_membrane(model, images.shape, membrane_init)
    return simulate(model, params, membrane, images, num_steps=num_steps, stats=True)


def _per_neuron_u0(snn, shape) -> dict:
    """Data-driven initial potentials (as potential calibration gives) on the dyadic grid."""
    rng = np.random.default_rng(5)
    shapes = tree.layer_leaves(convert.membrane_shapes(snn, shape), "v")
    return {
        layer: rng.integers(-8, 17, s.shape[1:]).astype(np.float32) / 16
        for layer, s in shapes.items()
    }


# The ImageNet stem's 3×3 average pool divides by 9, off the dyadic grid; the round trip stays
# exact because θ is a power of two: rounding commutes with the θ that the export moves past it.
CASES = {  # architecture, image shape, calibrated neuron, v(0), thresholds, pooling, model kwargs
    "cnn": ("_CNNTiny", (2, 8, 8, 1), False, "half", "native", "avg", {}),
    "vgg-sumpool": ("_VGGTiny", IMAGE, False, "half", "native", "sum", {}),
    "resnet-imagenet-stem": (
        "_ResNetTiny", (2, 16, 16, 3), False, "half", "native", "avg", {"stem": "imagenet"}
    ),
    "resnet-calibrated-unit": ("_ResNetTiny", IMAGE, True, "zero", "unit", "avg", {}),
    "resnet-calibrated-per-neuron-v0": (
        "_ResNetTiny", IMAGE, True, "per_neuron", "native", "sum", {}
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_round_trip_through_a_file_is_bit_exact(case, tmp_path):
    arch, shape, calibrated, init, thresholds, pooling, model_kw = CASES[case]
    snn, params = make_snn(arch, shape, calibrated=calibrated, num_steps=T, **model_kw)
    if init == "per_neuron":
        init = _per_neuron_u0(snn, shape)
    images = dyadic_images(shape)
    ref = _run(snn, params, init, images)
    path = tmp_path / "snn.nir"
    graph = export.to_nir(
        snn, params, init, shape, num_steps=T, thresholds=thresholds, pooling=pooling
    )
    export.write(path, graph)
    imported = export.from_nir(path)
    assert imported.num_steps == T and imported.input_shape == shape[1:]
    out = _run(imported.model, imported.params, imported.membrane_init, images)
    np.testing.assert_array_equal(out.cumulative, ref.cumulative)
    ours, theirs = layer_spikes(ref.stats), layer_spikes(out.stats)
    assert ours.keys() == theirs.keys()
    for layer, spikes in ours.items():
        np.testing.assert_array_equal(theirs[layer], spikes, err_msg=layer)
        assert spikes.sum() > 0, f"{layer} never spikes: the case tests nothing"


def test_graph_layout_and_metadata_survive_write_and_read(tmp_path):
    snn, params = make_snn("_ResNetTiny", IMAGE)
    graph = export.to_nir(snn, params, "half", IMAGE, num_steps=T, metadata={"method": "qcfs"})
    export.write(tmp_path / "snn.nir", graph)
    back = nir.read(tmp_path / "snn.nir")
    kernel = np.asarray(params["stem"]["conv"]["kernel"])
    np.testing.assert_array_equal(back.nodes["stem"].weight, kernel.transpose(3, 2, 0, 1))
    into_act2 = sorted(src for src, dst in back.edges if dst == "stage1_block1_act2")
    assert into_act2 == ["stage1_block1_conv2", "stage1_block1_identity"]  # the residual add
    theta = float(params["stem_act"]["threshold"])
    identity = back.nodes["stage1_block1_identity"].weight[:, :, 0, 0]
    np.testing.assert_array_equal(identity, theta * np.eye(4, dtype=np.float32))
    node = back.nodes["stem_act"]
    assert isinstance(node, nir.IF) and node.v_threshold.shape == (4, 8, 8)
    np.testing.assert_array_equal(node.r, 1.0)
    np.testing.assert_array_equal(node.v_threshold, theta)
    np.testing.assert_array_equal(node.metadata["v_init"], theta / 2)
    assert isinstance(back.nodes["gap"], nir.AvgPool2d) and isinstance(
        back.nodes["head"], nir.Affine
    )
    meta = export.from_nir(back).metadata
    assert meta["num_steps"] == T and meta["method"] == "qcfs" and meta["dt"] == 1.0
    assert meta["reset"] == "subtract" and meta["fire"] == "v >= v_threshold"
    assert meta["semantics"] == export.SEMANTICS


def test_flatten_reorders_channels_last_to_channels_first():
    x = np.arange(4 * 3 * 2).reshape(4, 3, 2)  # (C, H, W)
    order = _flatten_order(x.shape)
    np.testing.assert_array_equal(x.transpose(1, 2, 0).ravel()[order], x.ravel())


# --------------------------------------------------------------------------- refusals


def _tiny():
    return make_snn("_CNNTiny", (1, 8, 8, 1))


def test_burst_caps_are_refused():
    snn, params = _tiny()
    params = {**params, "fc1_act": {**params["fc1_act"], "max_spikes": jnp.asarray(3.0)}}
    with pytest.raises(ValueError, match="'fc1_act' has spike cap max_spikes = 3.*burst"):
        export.to_nir(snn, params, "half", (8, 8, 1))


@pytest.mark.parametrize("protocol", [SRP(4), COS(4)], ids=["srp", "cos"])
def test_pre_simulation_protocols_are_refused(protocol):
    snn, params = _tiny()
    with pytest.raises(ValueError, match=f"{type(protocol).__name__} start protocol.*4-step"):
        export.to_nir(snn, params, "half", (8, 8, 1), protocol=protocol)


def test_srp_masks_are_refused():
    snn, params = _tiny()
    masked = convert.make_snn_model(snn, masked=True)
    with pytest.raises(ValueError, match="'conv1_act' carries an SRP output mask"):
        export.to_nir(masked, params, "half", (8, 8, 1))


def test_unknown_architecture_is_refused():
    class Other(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(x.reshape((x.shape[0], -1)))

    with pytest.raises(ValueError, match="cannot export a Other"):
        export.to_nir(Other(), {}, "half", (8, 8, 1))


def test_bad_arguments_are_refused():
    snn, params = _tiny()
    with pytest.raises(ValueError, match="thresholds must be one of"):
        export.to_nir(snn, params, "half", (8, 8, 1), thresholds="per_neuron")
    with pytest.raises(ValueError, match="pooling must be one of"):
        export.to_nir(snn, params, "half", (8, 8, 1), pooling="max")
    with pytest.raises(ValueError, match="metadata 'nested'"):
        export.to_nir(snn, params, "half", (8, 8, 1), metadata={"nested": {"a": 1}})


def _graph(neuron):
    return nir.NIRGraph.from_list(nir.Input(np.array([3])), neuron, nir.Output(np.array([3])))


@pytest.mark.parametrize(
    "neuron,message",
    [
        (nir.LIF(np.ones(3), np.ones(3), np.zeros(3), np.ones(3)), "is a LIF; supported"),
        (nir.IF(np.full(3, 2.0), np.ones(3)), "r != 1"),
        (nir.IF(np.ones(3), np.ones(3), np.full(3, -1.0)), "v_reset != 0"),
    ],
    ids=["lif", "r", "v_reset"],
)
def test_from_nir_refuses_what_jaxsnn_cannot_run(neuron, message):
    with pytest.raises(ValueError, match=message):
        export.from_nir(_graph(neuron))


def test_from_nir_refuses_per_neuron_thresholds():
    v_threshold = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 2, 2)
    neuron = nir.IF(np.ones_like(v_threshold), v_threshold)
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([2, 2, 2])), neuron, nir.Output(np.array([2, 2, 2]))
    )
    with pytest.raises(ValueError, match="vary within a channel"):
        export.from_nir(graph)


# --------------------------------------------------------------------------- command line


SMALL = {"calib_batches": 1, "calib_batch_size": 8}


@pytest.mark.parametrize("method", ["qcfs", "calib_light"])
def test_convert_writes_snn_nir_beside_results(trained, method):
    config, workdir = trained
    opts = SMALL if method != "qcfs" else {}
    # Its own folder: other modules convert qcfs at T=4 on the shared model with other options.
    results = convert_run(
        config, workdir, method=method, T=4, export="nir", output_dir=f"snn_nir_{method}", **opts
    )
    out = pathlib.Path(results["output_dir"])
    assert (out / "results.json").exists()
    imported = export.from_nir(out / "snn.nir")
    assert imported.metadata["method"] == method and imported.num_steps == 4
    assert set(imported.membrane_init) == {"conv1_act", "fc1_act"}
    recorded = json.loads((out / "results.json").read_text())["thresholds"]
    graph = nir.read(out / "snn.nir")
    for layer, theta in recorded.items():  # θ per layer (qcfs) or per channel (calibration)
        v_threshold = graph.nodes[layer].v_threshold
        np.testing.assert_allclose(v_threshold.reshape(len(np.atleast_1d(theta)), -1)[:, 0], theta)


def test_convert_refuses_an_inexpressible_method_before_evaluating(trained):
    config, workdir = trained
    with pytest.raises(ValueError, match="SRP start protocol"):
        convert_run(config, workdir, method="srp", T=2, export="nir", output_dir="srp_nir")
    assert not (pathlib.Path(workdir) / "srp_nir").exists()


def test_bad_export_value_names_the_field(trained):
    config, _ = trained
    config = config.copy_and_resolve_references()
    config.convert.export = "onnx"
    with pytest.raises(ValueError, match=r"^config.convert.export: must be '' or 'nir'"):
        engine.validate_convert_config(config)


def test_export_without_the_nir_package_names_the_extra(trained, monkeypatch):
    config, _ = trained
    config = config.copy_and_resolve_references()
    config.convert.export = "nir"
    monkeypatch.setitem(sys.modules, "nir", None)  # as if the extra were not installed
    with pytest.raises(ValueError, match=r"^config.convert.export: NIR export needs the 'nir'"):
        engine.validate_convert_config(config)
