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


def test_xla_conv_only_switches_the_small_input_path_off():
    """``convfix.xla_conv_only`` times the library without its im2col path, then restores it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bench import convfix
    from jaxsnn.ops import conv_general_dilated

    x = jax.random.uniform(jax.random.key(0), (2, 2, 2, 5), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (3, 3, 5, 7), jnp.float32)
    args = (x, w, (1, 1), ((1, 1), (1, 1)))
    dn = {"dimension_numbers": ("NHWC", "HWIO", "NHWC")}
    want = jax.lax.conv_general_dilated(*args, **dn)
    with convfix.xla_conv_only():
        assert bool(jnp.all(conv_general_dilated(*args, **dn) == want))  # XLA's own conv
    np.testing.assert_allclose(conv_general_dilated(*args, **dn), want, atol=1e-5)


def test_library_conv_layers_trace_to_one_dot_on_small_inputs():
    """A ``ConvBN`` on a 2×2 input traces to one dot on CPU (the library's path), to XLA's conv
    under ``convfix.xla_conv_only``, and to XLA's conv on inputs larger than the kernel."""
    import jax
    import jax.numpy as jnp

    from bench import convfix
    from jaxsnn.models import ConvBN

    layer = ConvBN(6, use_bn=False)
    small = jax.random.uniform(jax.random.key(1), (2, 2, 2, 4), jnp.float32)
    params = layer.init(jax.random.key(0), small)
    text = str(jax.make_jaxpr(layer.apply)(params, small))
    assert "dot_general" in text and "conv_general_dilated" not in text
    with convfix.xla_conv_only():
        assert "conv_general_dilated" in str(jax.make_jaxpr(layer.apply)(params, small))
    large = jnp.zeros((2, 5, 5, 4), jnp.float32)
    assert "conv_general_dilated" in str(jax.make_jaxpr(layer.apply)(params, large))
