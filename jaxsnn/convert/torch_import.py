"""Import QCFS/SRP PyTorch checkpoints (``state_dict``) into jaxsnn Flax variable trees.

The reference repositories (``putshua/SNN_conversion_QCFS``, ``hzc1208/ANN2SNN_SRP``) save the ANN's
``state_dict`` after max-pool → average-pool and ReLU → QCFS, so every activation threshold is an
``.up`` key (architectures: docs/methods.md, "Architectures and training recipes"; key layout:
``tests/fixtures/reference/README.md``, "State-dict layout of the reference architectures"). The
mapping onto our trees is module-by-module:

======================================================  =========================================
PyTorch module prefix                                    Flax module path
======================================================  =========================================
``conv1.0`` / ``conv1.1`` / ``conv1.2``                  ``stem/conv`` / ``stem/bn`` / ``stem_act``
``conv{k}_x.{j}.residual_function.{0,1,2,3,4}``          ``stage{k-1}_block{j+1}/`` ``conv1/conv``,
                                                         ``conv1/bn``, ``act1``, ``conv2/conv``,
                                                         ``conv2/bn``
``conv{k}_x.{j}.shortcut.{0,1}``, ``….relu``             ``…/shortcut/conv``, ``…/shortcut/bn``,
                                                         ``…/act2``
``fc``                                                   ``head``
``layer{b}.{4i}``, ``.{4i+1}``, ``.{4i+2}`` (VGG)        ``block{b}_conv{i+1}/conv``, ``…/bn``,
                                                         ``block{b}_conv{i+1}_act``
``classifier.{1,2,4,5,7}`` (VGG)                         ``fc1``, ``fc1_act``, ``fc2``, ``fc2_act``,
                                                         ``head``
======================================================  =========================================

Leaves: conv ``weight`` [O,I,kh,kw] → ``kernel`` HWIO; linear ``weight`` [out,in] → ``kernel``
[in,out]; BN ``weight``/``bias`` → params ``scale``/``bias`` and ``running_mean``/``running_var``
→ batch_stats ``mean``/``var``; ``up`` [1] → scalar ``threshold``. ``num_batches_tracked`` is
ignored. VGG's first linear layer gets its input rows permuted from PyTorch's (C,H,W) flatten order
to our NHWC (H,W,C) order (a no-op at 32×32, where the feature map is 1×1).
"""

import functools
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxsnn import tree as tree_lib

ARCHITECTURES = {
    "resnet18": "ResNet18",
    "resnet20": "ResNet20",
    "resnet34": "ResNet34",
    "vgg16": "VGG16",
}
_IGNORED_SUFFIX = ".num_batches_tracked"
_MAX_LISTED = 20  # keys listed per kind in an error (a wrong architecture mismatches hundreds)
# (collection, Flax leaf name) -> PyTorch leaf name.
_LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "bias"): "bias",
    ("params", "scale"): "weight",
    ("params", "threshold"): "up",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}
_VGG_CLASSIFIER = {"fc1": 1, "fc1_act": 2, "fc2": 4, "fc2_act": 5, "head": 7}
_RESNET_BLOCK = {
    "conv1/conv": "residual_function.0",
    "conv1/bn": "residual_function.1",
    "act1": "residual_function.2",
    "conv2/conv": "residual_function.3",
    "conv2/bn": "residual_function.4",
    "shortcut/conv": "shortcut.0",
    "shortcut/bn": "shortcut.1",
    "act2": "relu",
}
_RESNET_STEM = {"stem/conv": "conv1.0", "stem/bn": "conv1.1", "stem_act": "conv1.2", "head": "fc"}


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Reads a PyTorch ``state_dict`` file into ``{key: numpy array}`` (CPU, ``weights_only``).

    Raises:
      ImportError: torch is not installed.
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file is not a readable ``state_dict``.
    """
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading PyTorch checkpoints needs torch: pip install 'jax-ann2snn[torch]'"
        ) from e
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"PyTorch checkpoint not found: {path}") from e
    except Exception as e:  # torch raises many types for truncated/corrupted files
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"cannot read PyTorch checkpoint {path}: {type(e).__name__}: {first}"
        ) from e
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise ValueError(f"PyTorch checkpoint {path} does not hold a state_dict of tensors")
    return {str(k): _to_numpy(v, torch) for k, v in loaded.items()}


def _to_numpy(tensor, torch) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # float16/bfloat16 have no exact numpy twin here
    return tensor.numpy()


def torch_prefix(flax_module: str, architecture: str) -> str:
    """The PyTorch module prefix of a Flax module (``stage1_block1/act2`` → ``conv2_x.0.relu``).

    Raises:
      ValueError: the path does not belong to ``architecture``'s layout.
    """
    _check_architecture(architecture)
    if architecture == "vgg16":
        if flax_module in _VGG_CLASSIFIER:
            return f"classifier.{_VGG_CLASSIFIER[flax_module]}"
        m = re.fullmatch(r"block(\d+)_conv(\d+)(/conv|/bn|_act)", flax_module)
        if m:
            index = 4 * (int(m[2]) - 1) + {"/conv": 0, "/bn": 1, "_act": 2}[m[3]]
            return f"layer{m[1]}.{index}"
    else:
        if flax_module in _RESNET_STEM:
            return _RESNET_STEM[flax_module]
        m = re.fullmatch(r"stage(\d+)_block(\d+)/(.+)", flax_module)
        if m and m[3] in _RESNET_BLOCK:
            return f"conv{int(m[1]) + 1}_x.{int(m[2]) - 1}.{_RESNET_BLOCK[m[3]]}"
    raise ValueError(f"no PyTorch counterpart for Flax module '{flax_module}' ({architecture})")


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown reference architecture {architecture!r}; "
            f"choose one of {sorted(ARCHITECTURES)}"
        )


def build_model(architecture: str, *, num_classes: int, levels: int, param_dtype=jnp.float32):
    """The jaxsnn ANN (QCFS activations, unfolded BN) matching a reference architecture."""
    from jaxsnn.models import QCFS, get_model

    _check_architecture(architecture)
    act = functools.partial(QCFS, levels=levels, param_dtype=param_dtype)
    kwargs = {"num_classes": num_classes, "act": act, "param_dtype": param_dtype}
    if architecture == "vgg16":
        kwargs["classifier"] = "qcfs"
    else:
        kwargs["stem"] = "cifar"  # the reference keeps the 3×3 stride-1 stem even at 224×224
    return get_model(ARCHITECTURES[architecture], **kwargs)


def _vgg_feature_hw(input_size) -> tuple[int, int]:
    h, w = input_size
    for _ in range(5):  # five 2×2/2 average pools, floor like PyTorch
        h, w = h // 2, w // 2
    return h, w


def _plan(architecture: str, expected: Mapping, input_size) -> dict:
    """``{torch_key: (flax_path, torch_shape, to_flax)}`` for every variable of ``expected``."""
    plan = {}
    for path, sds in tree_lib.flatten(expected).items():
        collection, rest = path.split("/", 1)
        module, leaf = tree_lib.layer_of(rest), rest.rsplit("/", 1)[-1]
        key = f"{torch_prefix(module, architecture)}.{_LEAF_NAMES[(collection, leaf)]}"
        shape = tuple(sds.shape)
        if leaf == "threshold":
            plan[key] = (path, (1,), lambda a: a.reshape(()))
        elif leaf == "kernel" and len(shape) == 4:
            kh, kw, cin, cout = shape
            plan[key] = (path, (cout, cin, kh, kw), lambda a: a.transpose(2, 3, 1, 0))
        elif leaf == "kernel" and architecture == "vgg16" and module == "fc1":
            h, w = _vgg_feature_hw(input_size)
            plan[key] = (path, shape[::-1], functools.partial(_chw_to_hwc_rows, hw=(h, w)))
        elif leaf == "kernel":
            plan[key] = (path, shape[::-1], lambda a: a.T)
        else:
            plan[key] = (path, shape, lambda a: a)
    return plan


def _chw_to_hwc_rows(weight: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Linear weight [out, C·H·W] in (C,H,W) flatten order → kernel [H·W·C, out], (H,W,C) order."""
    h, w = hw
    out, features = weight.shape
    c = features // (h * w)
    return weight.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out)


def import_state_dict(
    state_dict: Mapping,
    architecture: str,
    *,
    num_classes: int,
    levels: int,
    input_size=(32, 32),
    dtype=jnp.float32,
):
    """Converts a QCFS/SRP PyTorch ``state_dict`` into ``(ann_model, {'params', 'batch_stats'})``.

    Args:
      state_dict: ``{key: array-like}`` as saved by the reference code (``.up`` keys included).
      architecture: ``'vgg16'``, ``'resnet18'``, ``'resnet20'`` or ``'resnet34'``.
      num_classes: K.
      levels: QCFS quantisation steps L of the ANN.
      input_size: (H, W) of the inputs; fixes VGG's flatten size (512·7·7 at 224×224).
      dtype: dtype of every imported array and the model's ``param_dtype`` (the checkpoints are
        float32; ``jnp.float64``, exact from float32, needs ``jax.enable_x64``).

    Returns:
      The ANN model (``jaxsnn.models``, QCFS activations, BN not folded) and its variables.

    Raises:
      ValueError: naming the PyTorch keys that are missing, unexpected or of the wrong shape.
    """
    from jaxsnn.models import init_variables

    model = build_model(architecture, num_classes=num_classes, levels=levels, param_dtype=dtype)
    # Shapes only: a float32 twin avoids Flax BatchNorm's float32 init stats meeting float64 input.
    shape_model = build_model(architecture, num_classes=num_classes, levels=levels)
    input_shape = (1, *input_size, 3)
    expected = jax.eval_shape(lambda: init_variables(shape_model, jax.random.key(0), input_shape))
    plan = _plan(architecture, expected, input_size)
    given = {k: v for k, v in state_dict.items() if not str(k).endswith(_IGNORED_SUFFIX)}
    if given and all(str(k).startswith("module.") for k in given):  # saved from DataParallel
        given = {str(k)[len("module.") :]: v for k, v in given.items()}
    _check_keys(plan, given, architecture)
    flat = {}
    for key, (path, _, to_flax) in plan.items():
        flat[path] = jnp.asarray(to_flax(np.asarray(given[key])), dtype)
    return model, tree_lib.unflatten(flat)


def _check_keys(plan: Mapping, given: Mapping, architecture: str) -> None:
    missing = sorted(k for k in plan if k not in given)
    unexpected = [k for k in given if k not in plan]
    wrong = [
        f"{k}: got {tuple(np.shape(given[k]))}, expected {plan[k][1]}"
        for k in sorted(plan)
        if k in given and tuple(np.shape(given[k])) != plan[k][1]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{name} ({len(items)}): {', '.join(items[:_MAX_LISTED])}"
            f"{', ...' if len(items) > _MAX_LISTED else ''}"
            for name, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("wrong shapes", wrong),
            )
            if items
        ]
        raise ValueError(f"state_dict does not match {architecture}: " + "; ".join(parts))


def import_torch_checkpoint(
    path, architecture: str, *, num_classes: int, levels: int, input_size=(32, 32)
):
    """Loads a reference ``.pth`` and imports it: ``(ann_model, variables)`` (float32)."""
    return import_state_dict(
        load_torch_state_dict(path),
        architecture,
        num_classes=num_classes,
        levels=levels,
        input_size=input_size,
    )
