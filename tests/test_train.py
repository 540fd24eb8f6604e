"""End-to-end training on tiny data: mock TFDS, generated IDX files, exact resume, guards."""

import importlib
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from idx_files import make_idx_dir

from jaxsnn import data, models
from jaxsnn.train import checkpoint, loop, steps
from jaxsnn.train.state import create_train_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # Config files import `configs.common` from the repo root.
    sys.path.insert(0, str(ROOT))
tiny = importlib.import_module("configs.tiny")

N_TRAIN, N_TEST, BATCH = 48, 20, 8  # 6 steps per epoch; the last test batch is padded.


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> pathlib.Path:
    """Four tiny 8×8 IDX files whose class is readable from the brightness."""
    return make_idx_dir(tmp_path_factory.mktemp("idx"), N_TRAIN, N_TEST, seed=0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> pathlib.Path:
    """A private TFDS data_dir shared by the tests of this module (IDX is prepared once)."""
    return tmp_path_factory.mktemp("tfds")


def _config(idx_dir, data_dir, arg: str = "", /, **overrides) -> ml_collections.ConfigDict:
    config = tiny.get_config(f"idx_dir={idx_dir}" + (f",{arg}" if arg else ""))
    config.data_dir = str(data_dir)
    config.update(overrides)
    return config


def _final_params(workdir) -> dict:
    mngr = checkpoint.make_manager(workdir, enable_async=False)
    step = mngr.latest_step()
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    mngr.close()
    return step, restored["state"]["params"]


def test_idx_end_to_end(idx_dir, data_dir, tmp_path):
    metrics = loop.train_and_evaluate(_config(idx_dir, data_dir), tmp_path)
    assert metrics["steps"] == N_TRAIN // BATCH and metrics["epochs"] == 1.0
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])
    assert metrics["images_per_s"] > 0
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "config.json").exists()
    step, params = _final_params(tmp_path)
    assert step == N_TRAIN // BATCH and "conv1_act" in params


def test_mock_tfds_one_step(tmp_path):
    config = tiny.get_config("dataset=mnist,steps=1")
    config.data_dir = str(tmp_path / "tfds")
    config.idx_dir = str(tmp_path / "no_idx")  # No local fallback: only the mock serves data.
    config.eval_batch_size = 16
    with tfds.testing.mock_data(num_examples=16):
        metrics = loop.train_and_evaluate(config, tmp_path / "run")
    assert metrics["steps"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0


def _interrupt_after(monkeypatch, n: int) -> None:
    """Makes the training data raise KeyboardInterrupt after ``n`` batches in total."""
    real, served = data.train_batches, [0]

    def batches(*args, **kwargs):
        for batch in real(*args, **kwargs):
            if served[0] == n:
                raise KeyboardInterrupt("simulated preemption")
            served[0] += 1
            yield batch

    monkeypatch.setattr(data, "train_batches", batches)


def test_resume_is_bit_identical(idx_dir, data_dir, tmp_path, monkeypatch):
    arg = "epochs=2,steps=9"  # 6 steps per epoch: the run crosses an epoch boundary.
    loop.train_and_evaluate(_config(idx_dir, data_dir, arg), tmp_path / "straight")

    # Stopped by max_steps mid-epoch (checkpointed there), then resumed.
    loop.train_and_evaluate(_config(idx_dir, data_dir, "epochs=2,steps=4"), tmp_path / "split")
    loop.train_and_evaluate(_config(idx_dir, data_dir, arg), tmp_path / "split")

    # Killed after 7 steps: the newest checkpoint is the epoch end (6); steps 6..9 rerun.
    with monkeypatch.context() as m:
        _interrupt_after(m, 7)
        with pytest.raises(KeyboardInterrupt):
            loop.train_and_evaluate(_config(idx_dir, data_dir, arg), tmp_path / "killed")
    assert _final_params(tmp_path / "killed")[0] == 6
    loop.train_and_evaluate(_config(idx_dir, data_dir, arg), tmp_path / "killed")

    step, expected = _final_params(tmp_path / "straight")
    assert step == 9
    for run in ("split", "killed"):
        got_step, got = _final_params(tmp_path / run)
        assert got_step == 9
        jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_threshold_projection_keeps_lambda_positive(key):
    model = models.get_model("_CNNTiny", num_classes=3)
    tx = optax.chain(optax.add_decayed_weights(1e3), optax.sgd(1.0))  # Pushes λ far below 0.
    state = create_train_state(model, tx, (4, 8, 8, 1), key=key)
    batch = {"image": jnp.ones((4, 8, 8, 1)), "label": jnp.arange(4, dtype=jnp.int32) % 3}
    step = jax.jit(lambda s, b: steps.train_step(s, b, model=model, tx=tx, threshold_min=1e-3))
    state, _ = step(state, batch)
    thresholds = [v for p, v in jax.tree_util.tree_leaves_with_path(state.params)
                  if p[-1].key == "threshold"]  # fmt: skip
    assert len(thresholds) == 2
    for theta in thresholds:
        np.testing.assert_allclose(theta, 1e-3)
    assert steps.project_thresholds({"a": {"threshold": jnp.asarray(-2.0)}}, 0.5)["a"][
        "threshold"
    ] == jnp.asarray(0.5)


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"activation": "gelu"}, ValueError, "config.activation"),
        ({"idx_dir": "/nonexistent/idx"}, FileNotFoundError, "config.idx_dir"),
    ],
)
def test_bad_config_fails_with_one_line(idx_dir, data_dir, tmp_path, overrides, error, field):
    config = _config(idx_dir, data_dir, **overrides)
    with pytest.raises(error) as info:
        loop.train_and_evaluate(config, tmp_path)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_parse_arg_and_every_config_loads():
    common = importlib.import_module("configs.common")
    arg = common.parse_arg("L=8,lr=0.5,runlocal,name=x", L=4, lr=0.1, runlocal=False, name="")
    assert (arg.L, arg.lr, arg.runlocal, arg.name) == (8, 0.5, True, "x")
    with pytest.raises(ValueError, match="'bogus': unknown"):
        common.parse_arg("bogus=1", L=4)
    with pytest.raises(ValueError, match="config arg L: expected int"):
        common.parse_arg("L=eight", L=4)
    for path in sorted((ROOT / "configs").glob("*.py")):
        if path.stem == "common":
            continue
        config = importlib.import_module(f"configs.{path.stem}").get_config()
        assert config.levels > 0 and config.convert.T > 0 and config.batch_size > 0
    assert importlib.import_module("configs.fashion_mnist_cnn").get_config("L=8").levels == 8


def test_tensorboard_event_files_are_written(idx_dir, data_dir, tmp_path):
    loop.train_and_evaluate(_config(idx_dir, data_dir, "steps=2"), tmp_path)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
