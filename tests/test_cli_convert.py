"""convert.py's engine end to end on tiny IDX data: schema, run folders, provenance, reloads.

Bad inputs (config, checkpoints, .pth files) are in ``test_bad_inputs.py``."""

import json
import os
import pathlib
import stat
import subprocess
import sys

import numpy as np
import pytest
from run_helpers import convert as convert_run

from jaxsnn import methods
from jaxsnn.cli import convert as engine
from jaxsnn.cli import outputs

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Small enough for the tiny net: every data-driven method calibrates on one batch of 8.
SMALL = {
    "calib_batches": 1,
    "calib_batch_size": 8,
    "initial_spikes": 3,
    "max_spikes": 2,
    "spike_budget_ratio": 2.0,
}


def _small(name: str) -> dict:
    """``SMALL`` restricted to the options method ``name`` reads."""
    return {k: v for k, v in SMALL.items() if k in methods.get(name).defaults()}


def test_qcfs_results_schema_and_outputs(trained):
    config, workdir = trained
    results = convert_run(
        config, workdir, method="qcfs", T=4, sweep={"kind": "threshold", "values": [0.5, 1.0, 2.0]}
    )
    out = pathlib.Path(workdir) / "snn_qcfs-T4"
    assert results["output_dir"] == str(out)
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
    for name in ("accuracy.png", "firing_rate.png", "activation_error.png", "sweep.png"):
        assert (out / name).exists(), name
    assert (out / "snn_checkpoint").is_dir() and (out / outputs.SNN_METADATA).exists()
    assert not list(pathlib.Path(workdir).glob(".snn_qcfs*.tmp-*"))
    mode = stat.S_IMODE(out.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask, oct(mode)  # a normal folder, not mkdtemp's 0700


def test_results_record_their_provenance(trained):
    config, workdir = trained
    results = convert_run(config, workdir, method="qcfs", T=2)
    assert results["method_options"] == methods.resolve_options("qcfs", {"T": 2})
    assert results["config"]["convert"]["method"] == "qcfs"
    assert results["dataset"] == {"name": "idx", "split": "test", "num_examples": 20}
    source = results["source_checkpoint"]
    assert source["step"] == 4 and len(source["sha256"]) == 64
    prov = results["provenance"]
    assert prov["jax_version"] and prov["backend"] == "cpu" and prov["devices"] == 2
    assert prov["command"] and prov["jaxsnn_version"]
    assert results["levels"] == config.levels and results["fitted_to_T"] is False


def test_srp_reports_honest_latency(trained):
    config, workdir = trained
    results = convert_run(config, workdir, method="srp", T=3, presim=2)
    assert results["latency_steps"] == [3, 4, 5]
    assert set(results["srp_mask_fraction"]) == {"conv1_act", "fc1_act"}
    assert pathlib.Path(results["output_dir"]).name == "snn_srp-T3-presim=2"


def test_calibration_method_runs_through_the_same_schema(trained):
    config, workdir = trained
    results = convert_run(config, workdir, method="calib_light", T=4, **_small("calib_light"))
    assert len(results["snn_accuracy"]) == 4 and results["method_fields"]
    assert results["fitted_to_T"] is True


def test_two_conversions_in_one_workdir_both_survive(trained):
    """Options that change the result change the folder: no run overwrites another."""
    config, workdir = trained
    a = convert_run(config, workdir, method="calib_max", T=2, **_small("calib_max"))
    b = convert_run(
        config,
        workdir,
        method="calib_max",
        T=2,
        threshold_mode="percentile",
        percentile=99.9,
        **_small("calib_max"),
    )
    assert a["output_dir"] != b["output_dir"]
    assert "percentile=99.9" in b["output_dir"] and "threshold_mode=percentile" in b["output_dir"]
    for r in (a, b):
        on_disk = json.loads((pathlib.Path(r["output_dir"]) / "results.json").read_text())
        assert on_disk["method_options"] == json.loads(json.dumps(r["method_options"]))
    assert json.loads((pathlib.Path(b["output_dir"]) / "results.json").read_text())[
        "method_options"
    ]["percentile"] == pytest.approx(99.9)


def test_identical_rerun_reuses_its_folder_and_another_config_is_refused(trained):
    config, workdir = trained
    first = convert_run(config, workdir, method="zero", T=2, output_dir="snn_fixed")
    again = convert_run(config, workdir, method="zero", T=2, output_dir="snn_fixed")
    assert again["snn_accuracy"] == first["snn_accuracy"]
    folder = pathlib.Path(first["output_dir"])
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    with pytest.raises(FileExistsError, match="holds another conversion"):
        convert_run(config, workdir, method="qcfs", T=2, output_dir="snn_fixed")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before
    replaced = convert_run(
        config, workdir, method="qcfs", T=2, output_dir="snn_fixed", overwrite=True
    )
    assert json.loads((folder / "results.json").read_text())["method"] == replaced["method"]


def test_rerun_from_results_json_reproduces_the_accuracies(trained):
    config, workdir = trained
    results = convert_run(config, workdir, method="srp", T=3, presim=1)
    again = engine.rerun(pathlib.Path(results["output_dir"]) / "results.json")
    assert again["snn_accuracy"] == results["snn_accuracy"]
    assert again["ann_accuracy"] == results["ann_accuracy"]
    assert again["source_checkpoint"]["sha256"] == results["source_checkpoint"]["sha256"]


@pytest.mark.parametrize("name", methods.names())
def test_load_snn_round_trips_every_method(trained, name):
    """The saved SNN (caps, thresholds, v0, start protocol, IAT, compensation included) reloads
    and re-simulates with identical per-step accuracy."""
    config, workdir = trained
    extra = {"iat": True} if name == "calib_max" else {}
    results = convert_run(config, workdir, method=name, T=3, **_small(name), **extra)
    conv, meta = outputs.load_snn(results["output_dir"])
    assert meta["method"] == name and meta["T"] == 3
    assert type(conv.protocol).__name__.lower() == {"srp": "srp", "cos": "cos"}.get(name, "direct")
    again = engine.evaluate_saved(results["output_dir"])
    assert again["snn_accuracy"] == results["snn_accuracy"]
    for key in ("iat", "compensated_accuracy"):
        assert again.get(key) == results.get(key)
    if name == "icsnn":
        assert "compensated_accuracy" in results


def test_cos_starts_from_shifted_potentials_and_reports_latency(trained):
    config, workdir = trained
    results = convert_run(config, workdir, method="cos", T=3, presim=2)
    assert results["latency_steps"] == [3, 4, 5]
    assert results["method_fields"]["presim"] == 2


def test_options_table_in_readme_is_generated_from_the_registry():
    """README's option table is what ``convert.py --help_methods`` prints: they cannot drift."""
    readme = (ROOT / "README.md").read_text()
    assert methods.option_table_markdown() in readme
    assert methods.method_table_markdown() in readme


def _script_env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    return env


def test_help_methods_prints_the_tables():
    done = subprocess.run(
        [sys.executable, "convert.py", "--help_methods"],
        env=_script_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert methods.option_table_markdown().strip() in done.stdout
    assert "percentile" in done.stdout


def test_non_tty_run_prints_progress_lines_and_no_library_chatter(trained, tmp_path):
    """Without a terminal, convert.py reports progress as lines; TFDS/Orbax chatter goes to the
    run's log file, not the console."""
    config, workdir = trained
    command = [
        sys.executable,
        "convert.py",
        f"--config={ROOT / 'configs' / 'tiny.py'}:idx_dir={config.idx_dir}",
        f"--config.data_dir={config.data_dir}",
        f"--workdir={workdir}",
        "--config.convert.T=2",
        "--config.eval_batch_size=2",
        "--config.convert.output_dir=snn_console",
    ]
    done = subprocess.run(
        command, env=_script_env(), capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [line for line in done.stdout.splitlines() if "evaluating:" in line]
    assert progress and "batch/s" in progress[-1] and "10/10 (100%)" in progress[-1], done.stdout
    assert "Using custom data configuration" not in done.stderr + done.stdout
    assert "Using custom data configuration" in (pathlib.Path(workdir) / "jaxsnn.log").read_text()
    assert "method=qcfs" in done.stdout


_ONE_DEVICE_RUN = """
import json, sys
import importlib
sys.path.insert(0, {root!r})
import jax
from jaxsnn.cli import convert as engine
config = importlib.import_module("configs.tiny").get_config("idx_dir={idx}")
config.data_dir = {data_dir!r}
config.convert.progress = False
out = {{}}
for method, extra in {runs!r}:
    c = config.copy_and_resolve_references()
    c.convert.update(dict(method=method, T=3, output_dir="one_device_" + method, **extra))
    r = engine.convert_and_evaluate(c, {workdir!r})
    out[method] = {{k: r[k] for k in ("snn_accuracy", "spikes_per_image", "thresholds")}}
    out[method]["devices"] = jax.device_count()
print("RESULT" + json.dumps(out))
"""


def test_two_devices_give_the_results_of_one(trained):
    """convert.py data-parallel on 2 devices (this process) = 1 device (a fresh process):
    per-step accuracy, spike counts and thresholds, for a plain, the SRP and a calibrated method."""
    config, workdir = trained
    runs = [("qcfs", {}), ("srp", {"presim": 2}), ("calib_light", _small("calib_light"))]
    two = {}
    for method, extra in runs:
        r = convert_run(config, workdir, method=method, T=3, output_dir=f"two_{method}", **extra)
        two[method] = {k: r[k] for k in ("snn_accuracy", "spikes_per_image", "thresholds")}
    script = _ONE_DEVICE_RUN.format(
        root=str(ROOT),
        idx=config.idx_dir,
        data_dir=config.data_dir,
        runs=runs,
        workdir=str(workdir),
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_script_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads(done.stdout.split("RESULT", 1)[1])
    for method, _ in runs:
        assert one[method].pop("devices") == 1
        assert one[method] == json.loads(json.dumps(two[method])), method


def test_a_sweep_the_method_cannot_run_is_refused_before_evaluating(trained, monkeypatch):
    config, workdir = trained

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated before refusing the sweep")

    monkeypatch.setattr(engine, "evaluate_run", no_evaluation)
    sweep = {"kind": "threshold", "values": [0.5, 1.0]}
    with pytest.raises(ValueError, match="sweeps run methods without a pre-simulation"):
        convert_run(config, workdir, method="srp", T=2, presim=2, sweep=sweep, output_dir="sw")
    assert not (pathlib.Path(workdir) / "sw").exists()
