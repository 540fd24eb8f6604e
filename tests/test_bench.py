"""Smoke test of the benchmark machinery (bench/) on tiny networks: record schema, not timings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root

from bench import p1, report, sweep  # noqa: E402

REQUIRED = {
    "benchmark",
    "network",
    "T",
    "batch",
    "backend",
    "ratio",
    "reps",
    "date",
    "nproc",
    "cpu_model",
    "jax_version",
}
# The exact variants next to plain (every one must equal the plain simulation bit for bit).
EXACT = tuple(v for v in p1.EXACT_VARIANTS if v != "plain")


def test_p1_records_and_report(tmp_path):
    variants = ("plain", "unroll2", "unroll2_region_copy", "bf16")
    records = p1.run({"_CNNTiny": 2}, steps=(2,), reps=2, variants=variants)
    assert {r["variant"] for r in records} == set(variants)
    for r in records:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["benchmark"] == "P1" and r["T"] == 2 and r["batch"] == 2
        assert r["snn_median_s"] > 0 and r["ann_median_s"] > 0 and r["ratio"] > 0
        assert r["ratio_min"] <= r["ratio_round_median"] <= r["ratio_max"]
        assert r["exact_equal"] == (r["variant"] != "bf16")
    (bf16,) = [r for r in records if r["variant"] == "bf16"]
    assert bf16["max_abs_diff"] >= 0 and 0 <= bf16["argmax_agreement"] <= 1
    text = report.markdown(records)
    assert text.count("\n| P1 |") == len(records)
    assert "| no (" in text and "| yes |" in text
    report.plot_p1(records, str(tmp_path / "p1.png"))
    assert (tmp_path / "p1.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["_CNNTiny", "_ResNetTiny"])
def test_compile_variants_equal_plain_exactly(name):
    equal = p1.check_equal(EXACT, name, batch=3, T=8)
    assert equal == dict.fromkeys(EXACT, True)


def test_archived_variants_are_reported(tmp_path):
    """Removed variants keep their measured rows in results.md (bench/results_archive.json)."""
    text = report.archive_markdown(
        str(Path(__file__).resolve().parents[1] / "bench" / "results_archive.json")
    )
    assert "## Variants tried and removed from the code" in text
    for variant in ("time_folded", "first_layer_cached", "donated", "readout_outside"):
        assert f"| {variant}" in text
    assert report.archive_markdown(str(tmp_path / "missing.json")) == ""


def test_sweep_records_match_the_loop():
    records = sweep.run({"_CNNTiny": 2}, ks=(3,), T=3, reps=1)
    assert [r["variant"] for r in records] == [
        "threshold_scales K=3",
        "threshold_scales K=3 vmap",
        "initial_potentials K=3",
        "initial_potentials K=3 vmap",
    ]
    for r in records:
        assert REQUIRED <= set(r)
        assert r["ratio"] > 0 and r["max_abs_diff"] < 1e-5 and r["argmax_agreement"] == 1.0
    # The library's sweep runs the loop's shapes, one value at a time: the loop's values.
    assert all(r["exact_equal"] for r in records if r["variant"].endswith("K=3"))
    assert report.markdown(records).count("\n| sweep |") == 4


def test_torch_twin_matches_jax_simulation():
    pytest.importorskip("torch")
    from bench import p2

    (r,) = p2.run({"_CNNTiny": 2}, steps=(3,), reps=2)
    assert REQUIRED <= set(r)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
    assert r["ratio_min"] <= r["ratio_round_median"] <= r["ratio_max"]
    assert r["threads"] >= 1 and r["load_before"] >= 0


@pytest.mark.parametrize(
    "shape, stride", [((2, 2, 2, 5), 1), ((2, 1, 1, 5), 1), ((2, 2, 2, 5), 2), ((2, 6, 6, 5), 1)]
)
def test_convfix_matches_lax_conv(shape, stride):
    """The proposed conv equals lax's to float32 rounding; where it does not apply it is lax's."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bench import convfix

    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, shape, jnp.float32)
    w = jax.random.normal(kw, (3, 3, shape[-1], 7), jnp.float32)
    args = (x, w, (stride, stride), ((1, 1), (1, 1)))
    dn = {"dimension_numbers": ("NHWC", "HWIO", "NHWC")}
    want = jax.lax.conv_general_dilated(*args, **dn)
    got = convfix.conv_general_dilated(*args, **dn)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    if shape[1] >= 3:  # input not smaller than the kernel: lax's convolution itself
        assert bool(jnp.all(got == want))


def test_convfix_patch_reroutes_flax_conv_only_inside():
    """Under the patch a Flax 3×3 conv on a 2×2 input traces to one dot, with the same output."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import linen as nn
    from flax.linen import linear

    from bench import convfix

    conv = nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)))
    x = jax.random.uniform(jax.random.key(1), (2, 2, 2, 4), jnp.float32)
    params = conv.init(jax.random.key(0), x)
    before = linear.lax
    want = conv.apply(params, x)
    with convfix.patched_flax_conv():
        assert linear.lax.conv_general_dilated is convfix.conv_general_dilated
        text = str(jax.make_jaxpr(conv.apply)(params, x))
        got = conv.apply(params, x)
    assert linear.lax is before
    assert "dot_general" in text and "conv_general_dilated" not in text
    assert "conv_general_dilated" in str(jax.make_jaxpr(conv.apply)(params, x))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
