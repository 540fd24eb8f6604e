"""Data parallelism: the 2-device step matches the 1-device step."""

import chex
import jax
import ml_collections
import numpy as np

from jaxsnn import models
from jaxsnn.train import sharding
from jaxsnn.train.state import create_optimizer, create_train_state


def _setup(key):
    config = ml_collections.ConfigDict(
        dict(optimizer="sgd", learning_rate=0.05, momentum=0.9, weight_decay=5e-4,
             schedule="cosine", num_epochs=2)
    )  # fmt: skip
    model = models.get_model("_CNNTiny", num_classes=4)
    tx = create_optimizer(config, steps_per_epoch=2)
    state = jax.device_get(create_train_state(model, tx, (8, 8, 8, 1), key=key))  # Host copy.
    rng = np.random.default_rng(0)
    batches = [
        {
            "image": rng.normal(size=(8, 8, 8, 1)).astype(np.float32),
            "label": rng.integers(0, 4, 8).astype(np.int32),
        }
        for _ in range(4)
    ]
    return model, tx, state, batches


def _run(mesh, model, tx, state, batches, key):
    train_fn = sharding.jit_train_step(mesh, model=model, tx=tx)
    state = sharding.replicate(state, mesh)
    loop_key = sharding.replicate(key, mesh)
    losses = []
    for batch in batches:
        sharded = sharding.shard_batch(batch, mesh)
        assert sharded["image"].sharding.mesh.devices.size == mesh.devices.size
        state, metrics = train_fn(state, sharded, loop_key)
        losses.append(float(jax.device_get(metrics["loss"])))
    assert train_fn._cache_size() == 1  # Donation and shardings cause no retrace.
    return np.asarray(losses), jax.device_get(state.params)


def test_two_devices_match_one_device(key):
    assert jax.device_count() == 2
    model, tx, state, batches = _setup(key)
    one = sharding.make_mesh(jax.devices()[:1])
    two = sharding.make_mesh(jax.devices())
    losses1, params1 = _run(one, model, tx, state, batches, key)
    losses2, params2 = _run(two, model, tx, state, batches, key)
    assert losses1[0] != losses1[-1]
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(params2, params1, rtol=1e-4, atol=1e-6, strict=True)


def test_no_distributed_init_without_request(monkeypatch):
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    assert not sharding.maybe_initialize_distributed(ml_collections.ConfigDict({"x": 1}))
