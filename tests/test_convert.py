"""Conversion stages: BN folding keeps outputs; thresholds, SNN params, membrane init, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsnn import convert, models
from jaxsnn import tree as tree_lib
from jaxsnn.models import QCFS, ReLU

ARCH_INPUTS = [
    ("_CNNTiny", (2, 8, 8, 1), {}),
    ("_VGGTiny", (2, 8, 8, 3), {}),
    ("_ResNetTiny", (2, 8, 8, 3), {}),
    ("_ResNetTiny", (2, 16, 16, 3), {"stem": "imagenet"}),
    ("SmallCNN", (2, 28, 28, 1), {}),
    ("ResNet20", (2, 16, 16, 3), {}),
    ("ResNet18", (1, 16, 16, 3), {}),
    ("ResNet34", (1, 16, 16, 3), {}),
    ("VGG16", (1, 32, 32, 3), {}),
]


def _perturbed_variables(model, key, shape):
    """Variables with BN statistics and affine params far from identity, so folding matters."""
    variables = models.init_variables(model, key, shape)
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    noisy = [leaf + 0.3 * jax.random.uniform(k, leaf.shape) for k, leaf in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, noisy)


@pytest.mark.parametrize("name,shape,kwargs", ARCH_INPUTS, ids=lambda a: str(a))
def test_fold_batchnorm_preserves_outputs(name, shape, kwargs, key):
    ann = models.get_model(name, num_classes=5, act=ReLU, **kwargs)
    variables = _perturbed_variables(ann, key, shape)
    x = jax.random.normal(jax.random.fold_in(key, 2), shape)
    folded = convert.fold_batchnorm(variables["params"], variables.get("batch_stats", {}))
    ref = jax.jit(ann.apply)(variables, x)
    out = jax.jit(ann.clone(fold_bn=True).apply)({"params": folded}, x)
    np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-4 * float(jnp.max(jnp.abs(ref))))


def test_fold_batchnorm_formula_on_one_conv():
    conv = {"kernel": jnp.ones((1, 1, 1, 2)), "bias": jnp.array([1.0, 2.0])}
    bn = {"scale": jnp.array([2.0, 3.0]), "bias": jnp.array([0.5, -0.5])}
    stats = {"bn": {"mean": jnp.array([1.0, 4.0]), "var": jnp.array([4.0, 9.0])}}
    out = convert.fold_batchnorm({"x": {"conv": conv, "bn": bn}}, {"x": stats}, eps=0.0)
    np.testing.assert_allclose(out["x"]["conv"]["kernel"][0, 0, 0], [1.0, 1.0])
    np.testing.assert_allclose(out["x"]["conv"]["bias"], [0.5 + 0.0, -0.5 + (2 - 4) * 1.0])
    assert "bn" not in out["x"]


def test_fold_batchnorm_missing_stats_names_layer(key):
    ann = models.get_model("_CNNTiny", num_classes=3)
    variables = models.init_variables(ann, key, (1, 8, 8, 1))
    with pytest.raises(ValueError, match="conv1/bn"):
        convert.fold_batchnorm(variables["params"], {})


def test_thresholds_become_snn_thresholds_and_are_validated(key):
    ann = models.get_model("_ResNetTiny", num_classes=3, act=functools.partial(QCFS, levels=4))
    variables = models.init_variables(ann, key, (1, 8, 8, 3))
    thresholds = convert.extract_thresholds(variables["params"])
    assert set(thresholds) == {
        "stem_act",
        "stage1_block1/act1",
        "stage1_block1/act2",
        "stage2_block1/act1",
        "stage2_block1/act2",
    }
    assert all(float(t) == 8.0 for t in thresholds.values())
    snn, params = convert.convert(ann, variables, input_shape=(1, 8, 8, 3))
    assert convert.extract_thresholds(params).keys() == thresholds.keys()
    new = {k: jnp.float32(i + 1.0) for i, k in enumerate(thresholds)}
    out = convert.extract_thresholds(convert.to_snn_params(params, new))
    assert {k: float(v) for k, v in out.items()} == {k: float(v) for k, v in new.items()}


def test_mismatched_trees_are_rejected(key):
    ann = models.get_model("_CNNTiny", num_classes=3)
    other = models.get_model("_VGGTiny", num_classes=3)
    variables = models.init_variables(other, key, (1, 8, 8, 1))
    with pytest.raises(ValueError, match="do not match the architecture: missing"):
        convert.convert(ann, variables, input_shape=(1, 8, 8, 1))
    good = models.init_variables(ann, key, (1, 8, 8, 1))
    wrong_classes = models.init_variables(ann.clone(num_classes=4), key, (1, 8, 8, 1))
    with pytest.raises(ValueError, match="head/(kernel|bias)' has shape"):
        convert.validate_variables(ann, wrong_classes, (1, 8, 8, 1))
    thresholds = convert.extract_thresholds(good["params"])
    with pytest.raises(ValueError, match="thresholds do not match"):
        convert.to_snn_params(good["params"], {**thresholds, "nope": jnp.float32(1.0)})


def test_init_membrane_modes(key):
    ann = models.get_model("_CNNTiny", num_classes=3)
    snn = convert.make_snn_model(ann, masked=True, track_counts=True)
    shape = (2, 8, 8, 1)
    half = tree_lib.flatten(convert.init_membrane(snn, shape))
    assert half["conv1_act/v"].shape == (2, 8, 8, 4) and half["fc1_act/v"].shape == (2, 8)
    assert float(half["conv1_act/v"][0, 0, 0, 0]) == 0.5
    assert (
        float(jnp.min(half["conv1_act/mask"])) == 1.0 and float(jnp.max(half["fc1_act/count"])) == 0
    )
    zero = tree_lib.flatten(convert.init_membrane(snn, shape, "zero"))
    assert float(jnp.max(jnp.abs(zero["fc1_act/v"]))) == 0.0
    frac = tree_lib.flatten(convert.init_membrane(snn, shape, 0.25))
    assert float(frac["fc1_act/v"][1, 3]) == 0.25
    data = jnp.arange(8.0)
    mapped = tree_lib.flatten(convert.init_membrane(snn, shape, {"fc1_act": data}))
    np.testing.assert_array_equal(mapped["fc1_act/v"][1], data)
    assert float(mapped["conv1_act/v"][0, 0, 0, 0]) == 0.5
    with pytest.raises(ValueError, match="unknown membrane init mode"):
        convert.init_membrane(snn, shape, "bogus")
