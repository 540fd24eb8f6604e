"""convert.py's engine end to end on tiny IDX data: results schema, outputs, methods, reload.

Bad inputs (config, checkpoints, .pth files) are in ``test_bad_inputs.py``."""

import json
import pathlib

import numpy as np

from jaxsnn.convert import pipeline


def _convert(config, workdir, **overrides):
    config = config.copy_and_resolve_references()
    config.convert.update(overrides)
    config.convert.progress = False
    return pipeline.convert_and_evaluate(config, workdir)


def test_qcfs_results_schema_and_outputs(trained):
    config, workdir = trained
    results = _convert(
        config, workdir, method="qcfs", T=4, sweep={"kind": "threshold", "values": [0.5, 1.0, 2.0]}
    )
    out = pathlib.Path(workdir) / "snn_qcfs"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["snn_accuracy"] == results["snn_accuracy"]
    assert len(results["snn_accuracy"]) == 4 and results["latency_steps"] == [1, 2, 3, 4]
    assert results["num_examples"] == 20  # padded last batch masked out
    assert 0.0 <= results["ann_accuracy"] <= 1.0
    assert set(results["thresholds"]) == {"conv1_act", "fc1_act"}
    assert set(results["layers"]) == {"conv1_act", "fc1_act"}
    layer = results["layers"]["conv1_act"]
    assert 0 <= layer["dead_fraction"] <= 1 and 0 <= layer["firing_rate"] <= 1
    assert results["energy"]["constants"]["e_mac_pj"] == 4.6
    assert np.asarray(results["sweep"]["accuracy"]).shape == (3, 4)
    for name in (
        "accuracy.png",
        "firing_rate.png",
        "activation_error.png",
        "sweep.png",
        "snn_metadata.json",
    ):
        assert (out / name).exists(), name
    assert (out / "snn_checkpoint").is_dir()
    assert not list(pathlib.Path(workdir).glob(".snn_qcfs.tmp-*"))


def test_srp_reports_honest_latency(trained):
    config, workdir = trained
    results = _convert(config, workdir, method="srp", T=3, presim=2)
    assert results["latency_steps"] == [3, 4, 5]
    assert set(results["srp_mask_fraction"]) == {"conv1_act", "fc1_act"}


def test_calibration_method_runs_through_the_same_schema(trained):
    config, workdir = trained
    config = config.copy_and_resolve_references()
    config.convert.calib_batches = 1
    config.convert.calib_batch_size = 8
    results = _convert(config, workdir, method="calib_light", T=4)
    assert len(results["snn_accuracy"]) == 4 and results["method_fields"]


def test_saved_snn_reloads_and_resimulates(trained):
    import jax.numpy as jnp

    from jaxsnn import convert
    from jaxsnn.simulate import simulate

    config, workdir = trained
    results = _convert(config, workdir, method="qcfs", T=4, output_dir="snn_reload")
    snn, params, meta = pipeline.load_snn(pathlib.Path(workdir) / "snn_reload", config)
    assert meta["thresholds"] == results["thresholds"] and meta["T"] == 4
    x = jnp.ones((2, 8, 8, 1), jnp.float32)
    out = simulate(snn, params, convert.init_membrane(snn, x.shape), x, num_steps=4)
    assert out.cumulative.shape == (4, 2, 10)
