"""Bad inputs, one test per kind: each must fail with a one-line error that names the field.

Every test also checks that nothing half-written is left behind: the run directory is unchanged
(no results.json, no ``snn_*`` or temporary directories, no new, moved or deleted checkpoints).
The conversion cases reuse the session's tiny trained run (``trained`` in conftest.py).
"""

import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from jaxsnn import convert, data, methods, models
from jaxsnn import tree as tree_lib
from jaxsnn.cli import convert as engine
from jaxsnn.convert.torch_import import build_model as build_reference_model
from jaxsnn.convert.torch_import import import_state_dict, torch_prefix
from jaxsnn.simulate import simulate, simulate_srp
from jaxsnn.train import checkpoint, loop, sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def _snapshot(root):
    """Every path under ``root`` with its size and mtime (``None``: ``root`` does not exist).

    The run's log file (``jaxsnn.log``, where the command-line tools record every failure) is
    not an output and is left out."""
    root = pathlib.Path(root)
    if not root.exists():
        return None
    return sorted(
        (str(p.relative_to(root)), 0 if p.is_dir() else p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.name != "jaxsnn.log"
    )


@contextlib.contextmanager
def _rejected(error: type, field: str, *untouched):
    """Expects ``error``, its one-line message containing ``field``; ``untouched`` stays as is."""
    before = [_snapshot(d) for d in untouched]
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    print(f"{error.__name__}: {message}")  # The observed text (pytest -rP shows it).
    assert "\n" not in message and field in message, message
    assert [_snapshot(d) for d in untouched] == before


def _configured(config, **overrides) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``overrides``; dotted keys reach into blocks (``convert.T``)."""
    config = config.copy_and_resolve_references()
    config.convert.progress = False
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def _run(entry: str, config, workdir):
    if entry == "train":
        return loop.train_and_evaluate(config, workdir)
    return engine.convert_and_evaluate(config, workdir)


def _setup(entry: str, trained, tmp_path):
    """``(config, workdir)``: a fresh directory for training, the trained run for conversion."""
    config, workdir = trained
    return config, (tmp_path / "run" if entry == "train" else workdir)


@pytest.fixture(scope="module")
def tiny_snn():
    """An untrained ``_CNNTiny`` (3 classes) and its SNN: ``(ann, variables, snn, params)``."""
    ann = models.get_model("_CNNTiny", num_classes=3)
    variables = models.init_variables(ann, jax.random.key(0), (2, 8, 8, 1))
    snn, params = convert.convert(ann, variables)
    return ann, variables, snn, params


def _reference_state_dict(num_classes: int, input_size=(8, 8)) -> dict[str, np.ndarray]:
    """A complete PyTorch-layout ResNet-20 state_dict (constant values: only keys/shapes matter)."""
    model = build_reference_model("resnet20", num_classes=num_classes, levels=4)
    shapes = jax.eval_shape(
        lambda: models.init_variables(model, jax.random.key(0), (1, *input_size, 3))
    )
    names = {"kernel": "weight", "scale": "weight", "bias": "bias", "threshold": "up"}
    names |= {"mean": "running_mean", "var": "running_var"}
    state_dict = {}
    for path, sds in tree_lib.flatten(shapes).items():
        rest = path.split("/", 1)[1]
        leaf, shape = rest.rsplit("/", 1)[-1], sds.shape
        if leaf == "threshold":
            shape = (1,)
        elif leaf == "kernel":  # HWIO -> OIHW, [in, out] -> [out, in]
            shape = (*shape[3:1:-1], *shape[:2]) if len(shape) == 4 else shape[::-1]
        key = f"{torch_prefix(tree_lib.layer_of(rest), 'resnet20')}.{names[leaf]}"
        state_dict[key] = np.ones(shape, np.float32)
    return state_dict


def _save_pth(path: pathlib.Path, state_dict: dict) -> pathlib.Path:
    torch = pytest.importorskip("torch")
    torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, path)
    return path


# --------------------------------------------------------------------------- config fields


@pytest.mark.parametrize("entry", ["data", "train", "convert"])
def test_unknown_dataset(trained, tmp_path, entry):
    if entry == "data":
        with _rejected(ValueError, "config.dataset: unknown dataset 'xyz'"):
            data.get_dataset_info(ml_collections.ConfigDict({"dataset": "xyz"}))
        return
    config, workdir = _setup(entry, trained, tmp_path)
    with _rejected(ValueError, "config.dataset", workdir):
        _run(entry, _configured(config, dataset="svhn"), workdir)


@pytest.mark.parametrize("entry", ["train", "convert"])
def test_unknown_architecture(trained, tmp_path, entry):
    config, workdir = _setup(entry, trained, tmp_path)
    with _rejected(ValueError, "config.model: unknown architecture 'ResNet99'", workdir):
        _run(entry, _configured(config, model="ResNet99"), workdir)


@pytest.mark.parametrize("method", ["magic", "QCFS"])
def test_unknown_conversion_method(trained, method):
    config, workdir = trained
    with _rejected(ValueError, f"config.convert.method: unknown method {method!r}", workdir):
        _run("convert", _configured(config, **{"convert.method": method}), workdir)


@pytest.mark.parametrize("entry,levels", [("train", 0), ("train", -3), ("convert", 0)])
def test_non_positive_levels(trained, tmp_path, entry, levels):
    config, workdir = _setup(entry, trained, tmp_path)
    with _rejected(
        ValueError, f"config.levels: L must be a positive integer, got {levels}", workdir
    ):
        _run(entry, _configured(config, levels=levels), workdir)


@pytest.mark.parametrize(
    "entry,steps",
    [("convert", 0), ("convert", -2), ("simulate", 0), ("simulate", -1), ("simulate", 2.0)],
)
def test_non_positive_timesteps(trained, tiny_snn, entry, steps):
    if entry == "simulate":
        _, _, snn, params = tiny_snn
        x = jnp.ones((2, 8, 8, 1))
        with _rejected(ValueError, "num_steps (T) must be a positive integer"):
            simulate(snn, params, convert.init_membrane(snn, x.shape), x, num_steps=steps)
        return
    config, workdir = trained
    expected = f"got {steps}" if isinstance(steps, int) else ""
    with _rejected(ValueError, f"config.convert.T: must be an integer >= 1, {expected}", workdir):
        _run("convert", _configured(config, **{"convert.T": steps}), workdir)


@pytest.mark.parametrize("entry", ["convert", "simulate_srp"])
def test_negative_presim(trained, tiny_snn, entry):
    if entry == "simulate_srp":
        ann, _, _, params = tiny_snn
        masked = convert.make_snn_model(ann, masked=True)
        with _rejected(ValueError, "presim (tau) must be an integer >= 0, got -1"):
            simulate_srp(masked, params, jnp.ones((2, 8, 8, 1)), presim=-1, num_steps=2)
        return
    config, workdir = trained
    config = _configured(config, **{"convert.method": "srp", "convert.presim": -1})
    with _rejected(ValueError, "config.convert.presim: must be an integer >= 0, got -1", workdir):
        _run("convert", config, workdir)


@pytest.mark.parametrize(
    "entry,field,size",
    [
        ("mesh", "batch_size", 3),
        ("train", "batch_size", 3),
        ("train", "eval_batch_size", 5),
        ("convert", "eval_batch_size", 5),
    ],
)
def test_batch_size_not_divisible_by_devices(trained, tmp_path, entry, field, size):
    assert jax.device_count() == 2
    expected = f"config.{field}={size}: must be divisible by the 2 devices"
    if entry == "mesh":
        mesh = sharding.make_mesh()
        sharding.check_batch_size(8, mesh)
        with _rejected(ValueError, expected):
            sharding.check_batch_size(size, mesh)
        return
    config, workdir = _setup(entry, trained, tmp_path)
    with _rejected(ValueError, expected, workdir):
        _run(entry, _configured(config, **{field: size}), workdir)


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("entry", ["train", "convert"])
def test_checkpoint_of_another_architecture(trained, entry):
    config, workdir = trained
    other = _configured(config, model="_VGGTiny")
    if entry == "convert":
        with _rejected(ValueError, "config.model='_VGGTiny' (checkpoint: '_CNNTiny')", workdir):
            _run("convert", other, workdir)
        return
    # Resuming training with another model: nothing may be restored, moved or overwritten
    # (config.json included).
    with _rejected(ValueError, "trained with config.model='_CNNTiny'", workdir):
        _run("train", other, workdir)
    assert list(checkpoint.make_manager(workdir, enable_async=False).all_steps()) == [2, 4]


@pytest.mark.parametrize(
    "field,value",
    [("learning_rate", NAN), ("weight_decay", -1.0), ("init_threshold", INF)],
)
def test_non_finite_optimiser_and_threshold_settings(trained, tmp_path, field, value):
    config, workdir = _setup("train", trained, tmp_path)
    with _rejected(ValueError, f"config.{field}: must be", tmp_path):
        _run("train", _configured(config, **{field: value}), workdir)


@pytest.mark.parametrize("case", ["no_checkpoints", "no_such_step", "no_pth"])
def test_missing_checkpoint(trained, tmp_path, case):
    config, workdir = trained
    if case == "no_checkpoints":
        workdir = tmp_path / "empty"
        workdir.mkdir()
        with _rejected(
            FileNotFoundError, f"no ANN checkpoint in {workdir / 'checkpoints'}", workdir
        ):
            _run("convert", _configured(config), workdir)
    elif case == "no_such_step":
        field = "config.convert.checkpoint=99: no such step"
        with _rejected(FileNotFoundError, field, workdir):
            _run("convert", _configured(config, **{"convert.checkpoint": "99"}), workdir)
    else:
        pytest.importorskip("torch")
        pth = tmp_path / "nope.pth"
        config = _configured(
            config,
            **{"convert.torch_checkpoint": str(pth), "convert.torch_architecture": "resnet20"},
        )
        field = f"config.convert.torch_checkpoint: PyTorch checkpoint not found: {pth}"
        with _rejected(FileNotFoundError, field, tmp_path):
            _run("convert", config, tmp_path)


def _truncate_files(directory: pathlib.Path) -> None:
    for f in directory.rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


@pytest.mark.parametrize("case", ["best_falls_back", "only_checkpoint", "explicit_step"])
def test_corrupted_checkpoint_on_convert(trained, tmp_path, caplog, case):
    """As in training, a corrupted best/latest falls back (with a warning) to an older readable
    checkpoint; an explicitly chosen or the only checkpoint is an error naming its path. Convert
    never moves checkpoints (train.py quarantines them on its next resume)."""
    config, source = trained
    workdir = tmp_path / "run"
    ckpts = workdir / "checkpoints"
    shutil.copytree(source / "checkpoints", ckpts)
    _truncate_files(ckpts / "4" / "state")  # Step 4 is the best (the only one with metrics).
    if case == "best_falls_back":
        results = _run("convert", _configured(config, **{"convert.T": 2}), workdir)
        assert results["source_checkpoint"]["step"] == 2
        assert results["source_checkpoint"]["skipped_unreadable"] == [4]
        warnings = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
        assert len(warnings) == 1 and f"{ckpts / '4'} is unreadable" in warnings[0], warnings
        assert "converting step 2 instead" in warnings[0]
        assert sorted(p.name for p in workdir.iterdir()) == ["checkpoints", "snn_qcfs-T2"]
        assert sorted(p.name for p in ckpts.iterdir()) == ["2", "4"]
        return
    if case == "only_checkpoint":
        shutil.rmtree(ckpts / "2")
    overrides = {"convert.checkpoint": "4"} if case == "explicit_step" else {}
    with _rejected(ValueError, f"checkpoint {ckpts / '4'} is unreadable (corrupted?)", workdir):
        _run("convert", _configured(config, **overrides), workdir)


@pytest.mark.parametrize("entry", ["import", "convert"])
def test_pth_with_missing_keys(trained, tmp_path, entry):
    state_dict = _reference_state_dict(num_classes=10)
    del state_dict["conv3_x.1.relu.up"]
    field = "state_dict does not match resnet20: missing keys (1): conv3_x.1.relu.up"
    if entry == "import":
        with _rejected(ValueError, field):
            import_state_dict(state_dict, "resnet20", num_classes=10, levels=4, input_size=(8, 8))
        return
    pth = _save_pth(tmp_path / "ckpt.pth", state_dict)
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = _configured(
        trained[0],
        **{"convert.torch_checkpoint": str(pth), "convert.torch_architecture": "resnet20"},
    )
    with _rejected(ValueError, f"config.convert.torch_checkpoint: {field}", workdir):
        _run("convert", config, workdir)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    "stage,bad",
    [("ann", b) for b in (0.0, -1.0, NAN, INF)]
    + [("to_snn_params", b) for b in (0.0, -1.0, NAN, INF)]
    + [("calibration", b) for b in (-1.0, NAN)],
)
def test_bad_threshold_is_rejected_with_layer_name(trained, tiny_snn, monkeypatch, stage, bad):
    """θ must be finite and > 0 wherever it comes from: the ANN's λ, replacement thresholds given
    to ``to_snn_params``, or a calibration; the check runs before any simulation."""
    field = "threshold of layer 'fc1_act' must be finite and > 0"
    ann, variables, _, params = tiny_snn
    if stage == "ann":
        bad_params = tree_lib.map_with_path(
            lambda p, v: jnp.float32(bad) if p == "fc1_act/threshold" else v, variables["params"]
        )
        with _rejected(ValueError, field):
            convert.convert(ann, {"params": bad_params, "batch_stats": variables["batch_stats"]})
        return
    if stage == "to_snn_params":
        thresholds = {**convert.extract_thresholds(params), "fc1_act": jnp.float32(bad)}
        with _rejected(ValueError, field):
            convert.to_snn_params(params, thresholds)
        return
    real = methods.convert

    def calibrate_with_bad_threshold(*args, **kwargs):
        result = real(*args, **kwargs)
        poisoned = tree_lib.map_with_path(
            lambda p, v: jnp.full_like(v, bad) if p == "fc1_act/threshold" else v, result.params
        )
        return dataclasses.replace(result, params=poisoned)

    def evaluate(*args, **kwargs):
        raise AssertionError("simulated an SNN with an invalid threshold")

    monkeypatch.setattr(methods, "convert", calibrate_with_bad_threshold)
    monkeypatch.setattr(engine, "evaluate", evaluate)
    config, workdir = trained
    config = _configured(
        config,
        **{"convert.method": "calib_max", "convert.calib_batches": 1, "convert.T": 2},
        **{"convert.calib_batch_size": 8},
    )
    with _rejected(ValueError, field, workdir):
        _run("convert", config, workdir)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    "case,expected",
    [
        ((2, 8, 8, 3), "images: expected 1 channel(s)"),
        ((2, 12, 12, 1), "images: shape (2, 12, 12, 1) does not fit this SNN"),
        ((3, 8, 8, 1), "images: expected batch size 2"),
        ((2, 8, 8), "images: expected rank 4"),
        ("cifar10_config", "config.dataset='cifar10' (checkpoint: 'idx')"),
        ("pth_on_1_channel_data", "config.dataset='idx': its images (8, 8, 1) do not fit"),
    ],
    ids=["channels", "image_size", "batch", "rank", "cifar10_config", "pth_on_1_channel_data"],
)
def test_wrong_image_shape(trained, tiny_snn, tmp_path, case, expected):
    """The functional API says which shape it expected; the CLI path names config.dataset."""
    config, workdir = trained
    if case == "cifar10_config":  # A 1-channel 8×8 checkpoint converted for 32×32×3 images.
        with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
            with _rejected(ValueError, expected, workdir):
                _run("convert", _configured(config, dataset="cifar10"), workdir)
        return
    if case == "pth_on_1_channel_data":  # The reference networks take RGB images.
        pth = _save_pth(tmp_path / "ckpt.pth", _reference_state_dict(num_classes=10))
        workdir = tmp_path / "run"
        workdir.mkdir()
        config = _configured(
            config,
            **{"convert.torch_checkpoint": str(pth), "convert.torch_architecture": "resnet20"},
        )
        with _rejected(ValueError, expected, workdir):
            _run("convert", config, workdir)
        return
    _, _, snn, params = tiny_snn
    membrane = convert.init_membrane(snn, (2, 8, 8, 1))
    with _rejected(ValueError, expected) as info:
        simulate(snn, params, membrane, jnp.ones(case), num_steps=2)
    assert str(case) in str(info.value)  # Expected and got, side by side.


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("log_every", [1, 100])
def test_nan_loss_stops_without_nan_checkpoint(trained, tmp_path, monkeypatch, log_every):
    real = data.train_batches

    def poisoned(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2:  # Third step of the epoch.
                batch = {**batch, "image": np.full_like(batch["image"], np.nan)}
            yield batch

    monkeypatch.setattr(data, "train_batches", poisoned)
    config = _configured(trained[0], max_steps=None, log_every_steps=log_every)
    with _rejected(FloatingPointError, "non-finite loss at step 3"):
        loop.train_and_evaluate(config, tmp_path)
    mngr = checkpoint.make_manager(tmp_path, enable_async=False)
    assert list(mngr.all_steps()) == [2]  # The periodic checkpoint before the NaN; none after.
    restored = mngr.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored["state"]["params"]))


# --------------------------------------------------------------------------- command lines

# train.py with NaN images from the first batch on (the data pipeline patched in the process).
_POISONED_TRAIN = """
import runpy, sys
import numpy as np
from jaxsnn import data
real = data.train_batches
data.train_batches = lambda *a, **k: (
    {**b, "image": np.full_like(b["image"], np.nan)} for b in real(*a, **k)
)
sys.argv[0] = "train.py"
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.parametrize("script", ["convert.py", "train.py"])
def test_cli_prints_one_line_error_and_exits_2(trained, tmp_path, script):
    config, workdir = trained
    args = [
        f"--config={ROOT / 'configs' / 'tiny.py'}:idx_dir={config.idx_dir}",
        f"--config.data_dir={config.data_dir}",
    ]
    if script == "convert.py":
        command = [sys.executable, "convert.py", *args, f"--workdir={workdir}"]
        command.append("--config.convert.T=0")
        field = "error: config.convert.T: must be an integer >= 1, got 0"
    else:
        workdir = tmp_path / "run"
        command = [sys.executable, "-c", _POISONED_TRAIN, *args, f"--workdir={workdir}"]
        field = "error: non-finite loss at step 1"
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    before = _snapshot(workdir)
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    print(errors)
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith(field) and "Traceback" not in done.stderr, done.stderr[-3000:]
    if script == "convert.py":
        assert _snapshot(workdir) == before
    else:  # No checkpoint of the NaN state.
        assert not [p for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
