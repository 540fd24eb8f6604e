"""Smoke test of the benchmark machinery (bench/) on tiny networks: record schema, not timings."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root

from bench import common, fastsim, p1, report  # noqa: E402
from jaxsnn import convert as convert_lib  # noqa: E402
from jaxsnn.models import get_model  # noqa: E402
from jaxsnn.neurons import IF  # noqa: E402
from jaxsnn.simulate import simulate  # noqa: E402

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
# The exact variants added next to plain (every one must equal the plain simulation bit for bit).
NEW_EXACT = (
    "region_copy",
    "unroll2_region_copy",
    "unroll4_region_copy",
    "readout_outside",
    "time_folded",
    "time_folded_c2",
    "time_folded_c4",
)


def test_p1_records_and_report(tmp_path):
    variants = ("plain", "unroll2", "donated", "time_folded", "time_folded_c2", "bf16")
    records = p1.run({"_CNNTiny": 2}, steps=(2,), reps=2, variants=variants)
    # time_folded_c2 at T=2 is time_folded itself: skipped.
    assert {r["variant"] for r in records} == set(variants) - {"time_folded_c2"}
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


def test_cached_first_layer_equals_plain_exactly():
    assert p1.check_cached_equal("_CNNTiny", batch=3, T=5)
    assert p1.check_cached_equal("_ResNetTiny", batch=2, T=4)


@pytest.mark.parametrize("name", ["_CNNTiny", "_ResNetTiny"])
def test_new_variants_equal_plain_exactly(name):
    equal = p1.check_equal(NEW_EXACT, name, batch=3, T=8)
    assert equal == dict.fromkeys(NEW_EXACT, True)


def test_time_folded_keeps_every_membrane_variable():
    """Burst neurons, per-channel θ, SRP mask, spike counts: the layer's own code runs them all."""
    ann = get_model("_CNNTiny", num_classes=10)
    snn = convert_lib.make_snn_model(
        ann, IF(2, 0.1), per_channel=True, masked=True, track_counts=True
    )
    k_init, k_x, k_mask = jax.random.split(jax.random.key(0), 3)
    images = jax.random.uniform(k_x, (3, 8, 8, 1), jnp.float32)
    params = jax.jit(snn.init)(k_init, images)["params"]
    params = convert_lib.scale_thresholds(params, 0.25)
    membrane = convert_lib.init_membrane(snn, images.shape)
    membrane = jax.tree_util.tree_map_with_path(
        lambda path, a: (
            jax.random.bernoulli(k_mask, 0.7, a.shape).astype(a.dtype)
            if "mask" in jax.tree_util.keystr(path)
            else a
        ),
        membrane,
    )
    plain = simulate(snn, params, membrane, images, num_steps=6)
    assert float(jnp.sum(plain.membrane["conv1_act"]["count"])) > 0  # the net does spike
    for out in (
        fastsim.simulate_time_folded(snn, params, membrane, images, num_steps=6),
        fastsim.simulate_time_folded(snn, params, membrane, images, num_steps=6, chunk=3),
        fastsim.simulate_readout_outside(snn, params, membrane, images, num_steps=6),
    ):
        assert p1._same(out, plain)


def test_time_folded_chunk_must_divide_steps():
    b = common.build("_CNNTiny", 2)
    with pytest.raises(ValueError, match="chunk"):
        fastsim.simulate_time_folded(
            b["snn"], b["snn_params"], b["membrane"], b["images"], num_steps=5, chunk=2
        )


def test_torch_twin_matches_jax_simulation():
    pytest.importorskip("torch")
    from bench import p2

    (r,) = p2.run({"_CNNTiny": 2}, steps=(3,), reps=1)
    assert REQUIRED <= set(r)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
