"""The event-data training recipe: AdamW's decay mask, the cosine floor and warm-up start, label
smoothing and mixup (pure in seed and step, so resume stays exact), and image configs unchanged
(the defaults leave the schedule's numbers and the plain cross-entropy step as they were)."""

import functools
import importlib
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxsnn import models
from jaxsnn.train import loop, sharding, steps
from jaxsnn.train.state import create_optimizer, create_schedule, create_train_state
from jaxsnn.train.steps import SoftTargets

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # Config files import `configs.common` from the repo root.
    sys.path.insert(0, str(ROOT))
common = importlib.import_module("configs.common")
tiny = importlib.import_module("configs.tiny")


def _schedule_config(**fields) -> ml_collections.ConfigDict:
    base = {"learning_rate": 1e-3, "num_epochs": 10, "schedule": "cosine"}
    return ml_collections.ConfigDict({**base, **fields})


def test_cosine_floor_and_warmup_start():
    plain = create_schedule(_schedule_config(), 5)
    zero = create_schedule(_schedule_config(min_learning_rate=0.0, warmup_learning_rate=0.0), 5)
    steps = jnp.arange(50)
    np.testing.assert_array_equal(plain(steps), zero(steps))  # Image configs: the same numbers.
    timm = create_schedule(_schedule_config(min_learning_rate=1e-5), 5)
    lr = timm(steps)
    assert float(lr[0]) == pytest.approx(1e-3) and float(lr[49]) > 1e-5
    np.testing.assert_allclose(
        lr[45], 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * 0.9)), rtol=1e-5
    )
    warm = create_schedule(
        _schedule_config(warmup_epochs=2, warmup_learning_rate=1e-5, min_learning_rate=1e-5), 5
    )
    lr = np.asarray(warm(steps))
    np.testing.assert_allclose(lr[[0, 5]], [1e-5, 0.505e-3], rtol=1e-5)
    np.testing.assert_allclose(
        lr[10], 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * 0.2)), rtol=1e-5
    )


def test_adamw_decays_kernels_only():
    config = ml_collections.ConfigDict()
    common.adamw_block(config, epochs=10)
    config.num_epochs = 10
    tx = create_optimizer(config, 5)
    params = {"conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)}, "threshold": 8.0}
    params["threshold"] = jnp.asarray(8.0)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["conv"]["kernel"], -1e-3 * 0.06)  # −lr·wd·p.
    np.testing.assert_array_equal(updates["conv"]["bias"], 0.0)
    np.testing.assert_array_equal(updates["threshold"], 0.0)


def test_soft_targets_smoothing_and_mixup():
    images = jnp.arange(4 * 2 * 2 * 1, dtype=jnp.float32).reshape(4, 2, 2, 1)
    labels = jnp.asarray([0, 1, 2, 1], jnp.int32)
    step = jnp.asarray(0, jnp.int32)
    key = jax.random.key(7)
    x, y = SoftTargets(3, label_smoothing=0.3).apply(images, labels, key=key, step=step)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_allclose(y[0], [0.8, 0.1, 0.1], rtol=1e-6)
    mix = SoftTargets(3, label_smoothing=0.1, mixup_alpha=0.5, mixup_prob=1.0)
    x, y = jax.jit(mix.apply)(images, labels, key=key, step=step)
    x2, y2 = jax.jit(mix.apply)(images, labels, key=key, step=step)
    np.testing.assert_array_equal(x, x2)  # A pure function of the key (seed and step).
    lam = float(y[0, 0] - y[0, 2]) / (0.9 + 0.1 / 3 - 0.1 / 3)  # Row 0 mixes labels 0 and 1.
    np.testing.assert_allclose(x, lam * images + (1 - lam) * images[::-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(y, axis=1), 1.0, rtol=1e-6)
    assert 0.0 < lam < 1.0
    never = SoftTargets(3, mixup_alpha=0.5, mixup_prob=0.0)
    np.testing.assert_array_equal(never.apply(images, labels, key=key, step=step)[0], images)
    stopped = SoftTargets(3, mixup_alpha=0.5, mixup_prob=1.0, mixup_stop_step=5)
    later = stopped.apply(images, labels, key=key, step=jnp.asarray(5, jnp.int32))[0]
    np.testing.assert_array_equal(later, images)


def test_mixup_steps_are_pure_in_seed_and_step(key):
    """What exact resume needs: a step's mixup depends on the run key and the step count only,
    so a restarted process (new jit, state from a checkpoint) repeats the uninterrupted run."""
    model = models.get_model("_CNNTiny", num_classes=3)
    config = ml_collections.ConfigDict({"num_epochs": 4})
    common.adamw_block(config, epochs=4)
    config.mixup_prob = 1.0
    tx = create_optimizer(config, 4)
    state = create_train_state(model, tx, (4, 8, 8, 1), key=key)
    batch = {
        "image": jax.random.normal(jax.random.fold_in(key, 1), (4, 8, 8, 1)),
        "label": jnp.asarray([0, 1, 2, 0], jnp.int32),
    }
    targets = loop.soft_targets(config, 3, 4)
    assert targets == SoftTargets(3, 0.1, 0.5, 1.0, mixup_stop_step=12)  # Epoch 3 of 4, × 4.
    targets = SoftTargets(3, 0.1, 0.5, 1.0)
    loop_key = jax.random.key(42)

    def jitted(targets):
        return jax.jit(functools.partial(steps.train_step, model=model, tx=tx, targets=targets))

    straight = jitted(targets)
    one, m1 = straight(state, batch, loop_key)
    two, _ = straight(one, batch, loop_key)
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), one)  # As after a restart.
    again, _ = jitted(targets)(restored, batch, loop_key)
    jax.tree.map(np.testing.assert_array_equal, again.params, two.params)
    plain, m0 = jitted(None)(state, batch, loop_key)
    assert float(m1["loss"]) != float(m0["loss"])  # The mixed, smoothed loss is another loss.
    with pytest.raises(ValueError, match=r"config.label_smoothing: must be a number in \[0, 1\)"):
        bad = tiny.get_config("steps=1")
        bad.label_smoothing = 1.0
        loop.validate_config(bad, sharding.make_mesh())
