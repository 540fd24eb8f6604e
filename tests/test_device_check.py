"""The prepared GPU check (bench/device/) runs end to end on CPU: every section, tiny networks.

This is the dry run that makes a lent GPU's run a formality: ``run.sh --platform cpu --quick``,
with the sections in one process (``--in-process``, so the imports happen once). Timings are not
asserted; what is asserted is that every section ran, wrote its records, and that the compared
simulations agree.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ lives at the repo root

from bench.device import layouts, plan  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_out")
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    env.pop("JAX_PLATFORMS", None)  # run.sh sets it from --platform
    proc = subprocess.run(
        # A budget far above the ~1 min this takes: on a loaded machine nothing may be skipped.
        ["bash", "bench/device/run.sh", "--platform", "cpu", "--quick", "--in-process"]
        + ["--budget-s", "3000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    records = json.loads((out / "results_cpu_quick.json").read_text())
    return out, records, proc.stdout


def test_every_section_ran(dry_run):
    out, records, stdout = dry_run
    status = {r["section"]: r["status"] for r in records if r["benchmark"] == "section"}
    assert status == {name: "ok" for name, _, _ in plan.SECTIONS}, status
    assert (out / "results_cpu_quick.md").read_text().startswith("# jaxsnn device check")
    assert (out / "run_cpu_quick.log").read_text().strip().endswith(stdout.strip()[-200:])
    problems = [r for r in records if r.get("error") or r.get("skipped")]
    assert not problems, problems


def test_environment_and_smoke_records(dry_run):
    _, records, _ = dry_run
    (env,) = [r for r in records if r["benchmark"] == "env"]
    assert env["import_failures"] == {} and env["range_mismatches"] == {}
    (smoke,) = [r for r in records if r["benchmark"] == "smoke"]
    assert smoke["ok"] and smoke["passed"] >= 1 and smoke["failed"] == 0


def test_comparisons_agree(dry_run):
    """jaxsnn vs eager PyTorch and vs the pure-JAX layouts: same logits on the tiny nets."""
    _, records, _ = dry_run
    p2 = [r for r in records if r["benchmark"] == "P2" and not r.get("skipped")]
    layout = [r for r in records if r["benchmark"] == "layout" and not r.get("skipped")]
    assert {r["network"] for r in p2} == set(plan.QUICK["p1p2"]["networks"])
    assert {r["variant"] for r in layout} == {"jaxsnn", "stepwise", "time_folded"}
    for r in p2 + layout:
        assert r["max_abs_diff"] < 1e-5 and r["argmax_agreement"] == 1.0, r
        assert r["ratio"] > 0 and r["ratio_min"] <= r["ratio_round_median"] <= r["ratio_max"]
    p1 = [r for r in records if r["benchmark"] == "P1"]
    assert {r["variant"] for r in p1} == {"default (unroll=2)", "unroll=1"}


def test_precision_memory_and_training_records(dry_run):
    _, records, _ = dry_run
    prec = {r["variant"]: r for r in records if r["benchmark"] == "precision"}
    assert set(prec) == {"highest", "default", "tensorfloat32", "bf16"}
    assert prec["highest"]["max_abs_diff"] == 0.0
    assert prec["bf16"]["max_abs_diff"] > 0  # bf16 rounds the logits: the deviation is visible
    mem = [r for r in records if r["benchmark"] == "memory"]
    assert [r["variant"] for r in mem] == ["T=2", "T=4", "T4_vs_T2"]
    assert all(r["peak_mib"] > 0 for r in mem[:2]) and mem[2]["ratio"] > 0
    sweeps = [r for r in records if r["benchmark"] == "sweep"]
    assert {r["variant"] for r in sweeps} >= {"threshold_scales K=3", "initial_potentials K=3"}
    assert all(r["max_abs_diff"] < 1e-5 for r in sweeps)
    train = {r["variant"]: r for r in records if r["benchmark"] == "train"}
    assert set(train) == {"jax", "torch"} and all(r["images_per_s"] > 0 for r in train.values())


@pytest.mark.parametrize("name", ["_CNNTiny", "_ResNetTiny", "_VGGTiny"])
def test_layouts_match_jaxsnn(name):
    """Both pure-JAX layouts reproduce jaxsnn's simulation of the same converted network."""
    import numpy as np

    from bench import common
    from jaxsnn.simulate import simulate

    b = common.build(name, 3)
    ref = simulate(b["snn"], b["snn_params"], b["membrane"], b["images"], num_steps=5).cumulative
    for fn in (layouts.stepwise, layouts.time_folded):
        out = fn(name, b["snn_params"], b["images"], num_steps=5)
        assert out.shape == ref.shape
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5)
