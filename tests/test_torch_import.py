"""PyTorch state_dict import: key mapping, layout transforms, error messages, loading.

The mapping is checked three ways: a round trip (our random variables → a reference-layout
state_dict built by an independent inverse written here → import → the same variables), a forward
pass against the PyTorch functional port of the reference networks (tests/reference_torch.py;
float64, so it must agree to 1e-9), and error messages that name the offending PyTorch keys.
"""

import re
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsnn import tree as tree_lib
from jaxsnn.convert.torch_import import (
    _chw_to_hwc_rows,
    build_model,
    import_state_dict,
    import_torch_checkpoint,
    load_torch_state_dict,
)
from jaxsnn.models import init_variables

LEVELS = 4


def _random_variables(architecture: str, num_classes: int, input_size, seed: int = 0) -> dict:
    """Random float32 variables of our architecture (shapes from ``eval_shape``, values numpy)."""
    model = build_model(architecture, num_classes=num_classes, levels=LEVELS)
    shapes = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), (1, *input_size, 3)))
    rng = np.random.default_rng(seed)
    flat = {}
    for path, sds in tree_lib.flatten(shapes).items():
        if path.endswith(("threshold", "var", "scale")):
            value = rng.uniform(0.5, 2.0, sds.shape)
        else:
            value = rng.normal(0.0, 0.3, sds.shape)
        flat[path] = value.astype(np.float32)
    return tree_lib.unflatten(flat)


_BLOCK = {
    "conv1/conv": "residual_function.0",
    "conv1/bn": "residual_function.1",
    "act1": "residual_function.2",
    "conv2/conv": "residual_function.3",
    "conv2/bn": "residual_function.4",
    "shortcut/conv": "shortcut.0",
    "shortcut/bn": "shortcut.1",
    "act2": "relu",
}
_LEAF = {
    "kernel": "weight",
    "bias": "bias",
    "scale": "weight",
    "threshold": "up",
    "mean": "running_mean",
    "var": "running_var",
}


def _torch_module(module: str) -> str:
    """Independent inverse of the module map (README "State-dict layout")."""
    fixed = {
        "stem/conv": "conv1.0",
        "stem/bn": "conv1.1",
        "stem_act": "conv1.2",
        "head": "fc",
        "fc1": "classifier.1",
        "fc1_act": "classifier.2",
        "fc2": "classifier.4",
        "fc2_act": "classifier.5",
    }
    if module in fixed:
        return fixed[module]
    if m := re.fullmatch(r"stage(\d)_block(\d)/(.*)", module):
        return f"conv{int(m[1]) + 1}_x.{int(m[2]) - 1}.{_BLOCK[m[3]]}"
    m = re.fullmatch(r"block(\d)_conv(\d)(/conv|/bn|_act)", module)
    return f"layer{m[1]}.{4 * (int(m[2]) - 1) + ['/conv', '/bn', '_act'].index(m[3])}"


def _to_state_dict(variables: dict, vgg_head_as_classifier: bool) -> dict:
    """Our variables → reference-layout state_dict (OIHW convs, [out,in] linears, [1] ups)."""
    sd = {}
    for path, value in tree_lib.flatten(variables).items():
        _, rest = path.split("/", 1)
        module, leaf = tree_lib.layer_of(rest), rest.rsplit("/", 1)[-1]
        prefix = _torch_module(module)
        if module == "head" and vgg_head_as_classifier:
            prefix = "classifier.7"
        if leaf == "threshold":
            value = value.reshape(1)
        elif leaf == "kernel":
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
        sd[f"{prefix}.{_LEAF[leaf]}"] = np.ascontiguousarray(value)
        if leaf == "mean":
            sd[f"{prefix}.num_batches_tracked"] = np.array(0, np.int64)
    return sd


@pytest.mark.parametrize("architecture", ["resnet20", "vgg16"])
def test_round_trip(architecture):
    variables = _random_variables(architecture, num_classes=3, input_size=(32, 32))
    sd = _to_state_dict(variables, vgg_head_as_classifier=architecture == "vgg16")
    model, imported = import_state_dict(sd, architecture, num_classes=3, levels=LEVELS)
    assert model.num_classes == 3
    chex.assert_trees_all_equal(imported, variables, strict=True)  # float32 numpy originals


@pytest.fixture(scope="module")
def resnet20_state_dict() -> dict:
    return _to_state_dict(_random_variables("resnet20", 3, (8, 8)), vgg_head_as_classifier=False)


def _import(sd, **kw):
    return import_state_dict(sd, "resnet20", num_classes=3, levels=LEVELS, input_size=(8, 8), **kw)


def test_unexpected_key_named(resnet20_state_dict):
    sd = dict(resnet20_state_dict, **{"conv2_x.0.shortcut.0.weight": np.zeros((16, 16, 1, 1))})
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): conv2_x\.0\.shortcut\.0\.weight"):
        _import(sd)


def test_wrong_shape_named(resnet20_state_dict):
    sd = dict(resnet20_state_dict)
    sd["conv4_x.0.residual_function.3.weight"] = sd["conv4_x.0.residual_function.3.weight"][:, :8]
    with pytest.raises(
        ValueError,
        match=r"conv4_x\.0\.residual_function\.3\.weight: got "
        r"\(64, 8, 3, 3\), expected \(64, 64, 3, 3\)",
    ):
        _import(sd)


def test_wrong_class_count_named(resnet20_state_dict):
    with pytest.raises(ValueError, match=r"fc\.weight: got \(3, 64\), expected \(10, 64\)"):
        import_state_dict(resnet20_state_dict, "resnet20", num_classes=10, levels=LEVELS)


def test_unknown_architecture(resnet20_state_dict):
    with pytest.raises(ValueError, match="unknown reference architecture 'resnet50'"):
        import_state_dict(resnet20_state_dict, "resnet50", num_classes=3, levels=LEVELS)


def test_dataparallel_prefix_stripped(resnet20_state_dict):
    sd = {f"module.{k}": v for k, v in resnet20_state_dict.items()}
    _, variables = _import(sd)
    np.testing.assert_array_equal(
        np.asarray(variables["params"]["head"]["kernel"]), resnet20_state_dict["fc.weight"].T
    )


def test_flatten_permutation_chw_to_hwc():
    """NHWC flatten @ permuted kernel == PyTorch (C,H,W) flatten @ original weight (numpy only)."""
    rng = np.random.default_rng(1)
    c, h, w, out = 5, 7, 3, 4
    weight = rng.normal(size=(out, c * h * w))
    features = rng.normal(size=(2, c, h, w))  # NCHW
    torch_order = features.reshape(2, -1) @ weight.T
    ours = features.transpose(0, 2, 3, 1).reshape(2, -1) @ _chw_to_hwc_rows(weight, (h, w))
    np.testing.assert_allclose(ours, torch_order, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_chw_to_hwc_rows(weight[:, :c], (1, 1)), weight[:, :c].T)


# ---- forward equivalence against the PyTorch functional port (tests/reference_torch.py) ----


def _torch_forward(sd: dict, architecture: str, x: np.ndarray) -> np.ndarray:
    """Reference forward (README "Semantics"), NCHW, float64, straight from the state_dict."""
    pytest.importorskip("torch")
    import reference_torch

    logits, _ = reference_torch.ann_forward(sd, architecture, x, levels=LEVELS, num_classes=3)
    return logits


def _scaled_random_state_dict(architecture, num_classes, input_size, seed):
    """A state_dict whose layers keep a mix of silent, intermediate and saturated outputs."""
    variables = _random_variables(architecture, num_classes, input_size, seed)
    flat = tree_lib.flatten(variables)
    for path, value in flat.items():
        if path.endswith("kernel"):
            fan_in = int(np.prod(value.shape[:-1]))
            flat[path] = (value / 0.3 * np.sqrt(2.0 / fan_in)).astype(np.float32)
    variables = tree_lib.unflatten(flat)
    return _to_state_dict(variables, vgg_head_as_classifier=architecture == "vgg16")


@pytest.mark.parametrize(
    "architecture, input_size",
    [("resnet20", (8, 8)), ("vgg16", (64, 32))],  # 64×32: VGG features are 2×1, flatten permutes
)
def test_forward_matches_torch_reference(architecture, input_size):
    sd = _scaled_random_state_dict(architecture, 3, input_size, seed=2)
    x = np.random.default_rng(3).normal(size=(2, 3, *input_size))
    expected = _torch_forward(sd, architecture, x)
    with jax.enable_x64(True):
        model, variables = import_state_dict(
            sd, architecture, num_classes=3, levels=LEVELS, input_size=input_size, dtype=jnp.float64
        )
        logits = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    assert np.abs(expected).max() > 1e-3  # the signal reached the readout
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-9)


# ---- loading .pth files ----


def test_load_and_import_checkpoint(tmp_path, resnet20_state_dict):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt.pth"
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in resnet20_state_dict.items()}, path)
    loaded = load_torch_state_dict(path)
    assert list(loaded) == list(resnet20_state_dict)
    np.testing.assert_array_equal(loaded["conv1.0.weight"], resnet20_state_dict["conv1.0.weight"])
    _, variables = import_torch_checkpoint(
        path, "resnet20", num_classes=3, levels=LEVELS, input_size=(8, 8)
    )
    np.testing.assert_array_equal(
        np.asarray(variables["params"]["stage1_block1"]["act2"]["threshold"]),
        resnet20_state_dict["conv2_x.0.relu.up"][0],
    )


def test_load_wrapped_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"a.weight": torch.ones(2, dtype=torch.float16)}, "epoch": 3}, path)
    loaded = load_torch_state_dict(path)
    assert list(loaded) == ["a.weight"] and loaded["a.weight"].dtype == np.float32


def test_load_corrupted_file(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "bad.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(f"cannot read PyTorch checkpoint {path}")):
        load_torch_state_dict(path)


def test_load_not_a_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        load_torch_state_dict(path)


def test_missing_torch_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'jax-ann2snn[torch]'")):
        load_torch_state_dict(tmp_path / "x.pth")
