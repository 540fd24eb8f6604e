"""Smoke test of the benchmark machinery (bench/) on tiny networks: record schema, not timings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root

from bench import p1, report  # noqa: E402

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


def test_p1_records_and_report(tmp_path):
    records = p1.run({"_CNNTiny": 2}, steps=(2,), reps=1)
    variants = {r["variant"] for r in records}
    assert variants == {"plain", "unroll2", "unroll4", "first_layer_cached", "donated"}
    for r in records:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["benchmark"] == "P1" and r["T"] == 2 and r["batch"] == 2
        assert r["snn_median_s"] > 0 and r["ann_median_s"] > 0 and r["ratio"] > 0
    text = report.markdown(records)
    assert text.count("\n| P1 |") == len(records)
    report.plot_p1(records, str(tmp_path / "p1.png"))
    assert (tmp_path / "p1.png").stat().st_size > 0


def test_cached_first_layer_equals_plain_exactly():
    assert p1.check_cached_equal("_CNNTiny", batch=3, T=5)
    assert p1.check_cached_equal("_ResNetTiny", batch=2, T=4)


def test_torch_twin_matches_jax_simulation():
    pytest.importorskip("torch")
    from bench import p2

    (r,) = p2.run({"_CNNTiny": 2}, steps=(3,), reps=1)
    assert REQUIRED <= set(r)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
