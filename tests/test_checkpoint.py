"""The Orbax wrapper: round trip into an abstract tree, retention, corrupted-latest fallback."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxsnn import models
from jaxsnn.train import checkpoint
from jaxsnn.train.state import make_init_fn

CONFIG = ml_collections.ConfigDict({"model": "_CNNTiny", "levels": 4, "convert": {"T": 8}})


@pytest.fixture
def init_fn(key):
    model = models.get_model("_CNNTiny", num_classes=3)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
    return make_init_fn(model, tx, (1, 8, 8, 1), key=key)


def _bumped(state, step: int):
    """A state that differs from ``state`` in every float leaf and in the step."""
    state = jax.tree.map(lambda x: x + step if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
    return state.replace(step=jnp.asarray(step, jnp.int32))


def test_round_trip_into_abstract_tree(init_fn, tmp_path):
    mngr = checkpoint.make_manager(tmp_path, keep=2)
    fresh, step = checkpoint.restore_or_init(mngr, init_fn)
    assert step is None
    saved = _bumped(fresh, 7)
    checkpoint.save(mngr, 7, saved, CONFIG, {"test_accuracy": 0.5})
    checkpoint.wait_until_finished(mngr)

    restored, step = checkpoint.restore_or_init(checkpoint.make_manager(tmp_path), init_fn)
    assert step == 7
    assert jax.tree.structure(restored) == jax.tree.structure(saved)
    jax.tree.map(np.testing.assert_array_equal, restored, saved)
    assert checkpoint.restore_config(mngr).convert.T == 8


def test_keeps_latest_n_and_best(init_fn, tmp_path):
    mngr = checkpoint.make_manager(tmp_path, keep=2, enable_async=False)
    state = init_fn()
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.2), (5, 0.3)]:
        checkpoint.save(mngr, step, state, CONFIG, {"test_accuracy": acc})
    assert list(mngr.all_steps()) == [2, 4, 5]
    checkpoint.save(mngr, 6, state, CONFIG)  # Mid-epoch: no metrics.
    assert list(mngr.all_steps()) == [2, 5, 6]
    assert checkpoint.best_step(mngr) == 2


def test_corrupted_latest_falls_back_to_previous(init_fn, tmp_path, caplog):
    mngr = checkpoint.make_manager(tmp_path, enable_async=False)
    fresh = init_fn()
    checkpoint.save(mngr, 1, _bumped(fresh, 1), CONFIG)
    checkpoint.save(mngr, 2, _bumped(fresh, 2), CONFIG)
    for f in (tmp_path / "checkpoints" / "2" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3])  # Truncate every file.

    restored, step = checkpoint.restore_or_init(checkpoint.make_manager(tmp_path), init_fn)
    assert step == 1
    jax.tree.map(np.testing.assert_array_equal, restored, _bumped(fresh, 1))
    assert any("step 2 is unreadable" in r.getMessage() for r in caplog.records)
    assert list((tmp_path / "corrupt_checkpoints").iterdir())
