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
    assert [r["variant"] for r in records] == ["threshold_scales K=3", "initial_potentials K=3"]
    for r in records:
        assert REQUIRED <= set(r)
        assert r["ratio"] > 0 and r["max_abs_diff"] < 1e-5 and r["argmax_agreement"] == 1.0
    assert report.markdown(records).count("\n| sweep |") == 2


def test_torch_twin_matches_jax_simulation():
    pytest.importorskip("torch")
    from bench import p2

    (r,) = p2.run({"_CNNTiny": 2}, steps=(3,), reps=2)
    assert REQUIRED <= set(r)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
    assert r["ratio_min"] <= r["ratio_round_median"] <= r["ratio_max"]
    assert r["threads"] >= 1 and r["load_before"] >= 0
