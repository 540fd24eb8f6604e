"""Exact agreement with the reference PyTorch code (QCFS and SRP fixtures, see shared/reference).

Every ``*.json`` in ``$JAXSNN_REFERENCE_DIR`` (default ``tests/fixtures/reference``, a copy of
shared/reference) is one case: a checkpoint (``.pth``), inputs and outputs (``.npz``) and metadata
(``.json``). In float64 the reference's discrete events (ANN levels, spikes, SRP masks) sit far
from their boundaries, so the float64 run must reproduce every ``*_f64`` count array **exactly**
and the real-valued outputs to 1e-9. The float32 arrays only agree statistically (other rounding
orders flip near-ties; README "Precision"), so they are checked with tolerances."""

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxsnn.convert import convert, init_membrane
from jaxsnn.convert import tree as tree_lib
from jaxsnn.convert.torch_import import import_state_dict, load_torch_state_dict, torch_prefix
from jaxsnn.models import QCFS
from jaxsnn.ops import qcfs_levels
from jaxsnn.simulate import simulate, simulate_srp

ENV = "JAXSNN_REFERENCE_DIR"
# A copy of shared/reference ships with the tests, so a clean clone (CI) checks them too.
DEFAULT_DIR = Path(__file__).resolve().parent / "fixtures" / "reference"
REAL_ATOL = 1e-9
_OPTIMIZATIONS_DISABLED = jax.config.values["jax_disable_most_optimizations"]


@dataclasses.dataclass(frozen=True)
class _NoCases:
    reason: str
    fail: bool


def _discover() -> list:
    explicit = os.environ.get(ENV)
    root = Path(explicit) if explicit else DEFAULT_DIR
    cases = sorted(root.glob("*.json")) if root.is_dir() else []
    if cases:
        return [pytest.param(p, id=p.stem) for p in cases]
    if explicit:
        return [
            pytest.param(
                _NoCases(f"{ENV}={explicit}: no *.json reference cases", True), id="no-cases"
            )
        ]
    return [
        pytest.param(_NoCases(f"no reference fixtures at {root} (set {ENV})", False), id="no-cases")
    ]


@dataclasses.dataclass(frozen=True)
class Case:
    meta: dict
    arrays: dict
    state_dict: dict

    @property
    def names(self) -> list[str]:
        return [a["name"] for a in self.meta["activations"]]


@pytest.fixture(scope="module", params=_discover())
def case(request) -> Case:
    if isinstance(request.param, _NoCases):
        (pytest.fail if request.param.fail else pytest.skip)(request.param.reason)
    pytest.importorskip("torch")
    path: Path = request.param
    meta = json.loads(path.read_text())
    pth, npz = path.with_name(meta["pth"]), path.with_suffix(".npz")
    for f in (pth, npz):
        if not f.is_file():
            pytest.fail(f"reference case {path.stem}: file {f} is missing")
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    return Case(meta, arrays, load_torch_state_dict(pth))


def _run(case: Case, dtype) -> dict:
    """Runs the ANN and the converted SNN on the case's input; returns numpy results."""
    meta = case.meta
    model, variables = import_state_dict(
        case.state_dict,
        meta["architecture"],
        num_classes=meta["num_classes"],
        levels=meta["L"],
        input_size=tuple(meta["input_size"]),
        dtype=dtype,
    )  # float32 checkpoint values cast exactly to ``dtype`` (model param_dtype too)
    images = jnp.asarray(np.transpose(case.arrays["input"], (0, 2, 3, 1)), dtype)
    logits, levels = _ann_forward(model, variables, images, meta["L"])
    order = _activation_order(levels, case)
    levels = np.stack([_level_histogram(levels[p], meta["L"]) for p in order])
    result = {"ann_logits": np.asarray(logits), "ann_level_counts": levels, "order": order}
    result.update(_snn_forward(model, variables, images, meta, order))
    return result


def _ann_forward(model, variables, images, num_levels: int):
    """ANN logits and every QCFS layer's integer levels, computed from its captured input."""

    @jax.jit
    def forward(variables, images):
        levels = {}

        def capture(next_fun, args, kwargs, context):
            if isinstance(context.module, QCFS) and context.method_name == "__call__":
                theta = context.module.variables["params"]["threshold"]
                levels["/".join(context.module.path)] = qcfs_levels(args[0], theta, num_levels)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(capture):
            logits = model.apply(variables, images)
        return logits, levels

    return forward(variables, images)


def _activation_order(pre: dict, case: Case) -> list[str]:
    """Our layer paths in the json's ``activations`` order (via the PyTorch module names)."""
    ours = {torch_prefix(p, case.meta["architecture"]): p for p in pre}
    assert sorted(ours) == sorted(case.names), "activation layers differ from the json's list"
    return [ours[name] for name in case.names]


def _level_histogram(k, levels: int) -> np.ndarray:
    return np.bincount(np.asarray(k).ravel(), minlength=levels + 1).astype(np.int64)


def _snn_forward(model, variables, images, meta: dict, order: list[str]) -> dict:
    """Converts (BN folded) and simulates QCFS (τ = 0) or SRP; per-call outputs and counts."""
    srp = meta["method"] == "SRP"
    snn, params = convert(model, variables, masked=srp)
    if srp:
        out = simulate_srp(snn, params, images, presim=meta["tau"], num_steps=meta["T"], stats=True)
        runs = [r for r in (out.presim, out.sim) if r is not None]
        sim = out.sim
    else:
        membrane = init_membrane(snn, images.shape, "half", images.dtype)
        sim = simulate(snn, params, membrane, images, num_steps=meta["T"], stats=True)
        runs = [sim]

    def counts(name: str) -> np.ndarray:  # [S, n_act], summed over the batch
        per_layer = [np.concatenate([np.asarray(r.stats[p][name]) for r in runs]) for p in order]
        return np.rint(np.stack(per_layer, axis=1).sum(axis=2)).astype(np.int64)

    result = {
        "snn_step_outputs": np.concatenate([np.asarray(r.outputs) for r in runs]),
        "snn_cumulative": np.asarray(sim.cumulative),
        "snn_spike_counts": counts("spikes"),
        "snn_fire_counts": counts("fires" if srp else "spikes"),
    }
    if srp:  # the mask is set by srp_reset and not changed during the counted steps
        membrane = tree_lib.flatten(sim.membrane)
        result["srp_mask_ones"] = np.array(
            [int(np.asarray(membrane[f"{p}/mask"]).sum()) for p in order], np.int64
        )
    return result


@contextlib.contextmanager
def _optimized_xla():
    """Full XLA optimisation while running a case: these runs are compute-bound (≈6× faster)."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture(scope="module")
def run64(case: Case) -> dict:
    with jax.enable_x64(True), _optimized_xla():
        return _run(case, jnp.float64)


@pytest.fixture(scope="module")
def run32(case: Case) -> dict:
    with _optimized_xla():
        return _run(case, jnp.float32)


def _assert_counts_equal(ours, ref, name: str, case: Case, order, per_call: bool) -> None:
    """Exact equality; on failure names the first diverging call and layer."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    bad = np.argwhere(ours != ref)
    if bad.size == 0:
        return
    first = tuple(bad[0])
    if per_call:  # [S, n_act]: rows are calls, argwhere is row-major → first call, then layer
        call, layer = first
        where = f"call {call + 1} (of {ref.shape[0]}), layer '{case.names[layer]}' ({order[layer]})"
    else:  # [n_act, ...]
        layer = first[0]
        where = f"layer '{case.names[layer]}' ({order[layer]})"
    pytest.fail(
        f"{case.meta['case']}: {name} differs at {len(bad)} entries; first divergence at {where}: "
        f"ours {ours[first].tolist()} vs reference {ref[first].tolist()} "
        f"(row: ours {ours[first[0]].tolist()}, reference {ref[first[0]].tolist()})"
    )


def _assert_real_close(ours, ref, name: str, atol: float) -> None:
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    diff = float(np.max(np.abs(ours - ref)))
    assert diff <= atol, f"{name}: max abs diff {diff:.3e} > {atol:.1e}"


def test_checkpoint_matches_json(case):
    """The .pth holds the json's keys, shapes and bytes; imported λ are the json's ``up`` values."""
    listed = case.meta["state_dict"]
    assert list(case.state_dict) == [e["key"] for e in listed]
    for entry in listed:
        value = np.asarray(case.state_dict[entry["key"]])
        assert list(value.shape) == entry["shape"], entry["key"]
        digest = hashlib.sha256(value.astype(value.dtype.newbyteorder("<")).tobytes()).hexdigest()
        assert digest == entry["sha256"], f"{entry['key']}: bytes differ from the json's sha256"
    meta = case.meta
    _, variables = import_state_dict(
        case.state_dict,
        meta["architecture"],
        num_classes=meta["num_classes"],
        levels=meta["L"],
        input_size=tuple(meta["input_size"]),
    )
    params = tree_lib.flatten(variables["params"])
    ours = {
        torch_prefix(tree_lib.layer_of(p), meta["architecture"]): v
        for p, v in params.items()
        if p.endswith("/threshold")
    }
    for entry, up in zip(meta["activations"], case.arrays["activation_up"], strict=True):
        assert float(ours[entry["name"]]) == float.fromhex(entry["up_float32_hex"]) == float(up)


def test_ann_float64_exact(case, run64):
    a = case.arrays
    _assert_counts_equal(
        run64["ann_level_counts"],
        a["ann_level_counts_f64"],
        "ann_level_counts_f64",
        case,
        run64["order"],
        per_call=False,
    )
    _assert_real_close(run64["ann_logits"], a["ann_logits_f64"], "ann_logits_f64", REAL_ATOL)


def test_snn_float64_exact(case, run64):
    a, order = case.arrays, run64["order"]
    for name in ("snn_spike_counts", "snn_fire_counts"):
        _assert_counts_equal(run64[name], a[f"{name}_f64"], f"{name}_f64", case, order, True)
    if "srp_mask_ones_f64" in a:
        _assert_counts_equal(
            run64["srp_mask_ones"],
            a["srp_mask_ones_f64"],
            "srp_mask_ones_f64",
            case,
            order,
            per_call=False,
        )
    for name in ("snn_step_outputs", "snn_cumulative"):
        _assert_real_close(run64[name], a[f"{name}_f64"], f"{name}_f64", REAL_ATOL)


def _relative(ours, ref) -> np.ndarray:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0)


def test_float32_statistics(case, run32):
    """float32 agrees only statistically (README "Precision"); these bounds are ~10× the spread."""
    a = case.arrays
    logit_tol = 0.1 * np.abs(a["ann_logits"]).max()
    _assert_real_close(run32["ann_logits"], a["ann_logits"], "ann_logits", logit_tol)
    levels, ref_levels = run32["ann_level_counts"], a["ann_level_counts"]
    moved = np.abs(levels - ref_levels).sum(axis=1) / ref_levels.sum(axis=1)
    assert moved.max() <= 0.02, f"ANN level histograms differ by up to {moved.max():.2%} per layer"
    for name in ("snn_spike_counts", "snn_fire_counts"):
        rel = _relative(run32[name].sum(axis=0), a[name].sum(axis=0))
        assert rel.max() <= 0.02, f"{name}: per-layer totals differ by up to {rel.max():.2%}"
    if "srp_mask_ones" in a:
        rel = _relative(run32["srp_mask_ones"], a["srp_mask_ones"])
        assert rel.max() <= 0.02, f"srp_mask_ones differ by up to {rel.max():.2%}"
    cum_tol = 0.05 * np.abs(a["snn_cumulative"]).max()
    _assert_real_close(run32["snn_cumulative"], a["snn_cumulative"], "snn_cumulative", cum_tol)
    _assert_argmax_mostly_equal(run32["snn_cumulative"][-1], a["snn_cumulative"][-1], cum_tol)


def _assert_argmax_mostly_equal(ours, ref, tol: float) -> None:
    """Final-step argmax: ≥ 90 % equal, and every disagreement a near tie of the reference."""
    differ = np.argmax(ours, axis=-1) != np.argmax(ref, axis=-1)
    top2 = np.sort(ref, axis=-1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert np.all(margin[differ] <= 2 * tol), f"argmax differs at clear margins {margin[differ]}"
    assert differ.mean() <= 0.1 or differ.sum() <= 1, (
        f"final argmax agreement {1 - differ.mean():.0%}"
    )


def test_global_config_restored():
    """The float64 and optimisation switches above must not leak into other test modules."""
    assert not jax.config.values["jax_enable_x64"]
    assert jax.config.values["jax_disable_most_optimizations"] == _OPTIMIZATIONS_DISABLED
