"""The library's small-input convolution (``jaxsnn.ops.conv``) against XLA's own, measured.

XLA:CPU (jaxlib 0.10.2) runs a 3×3, padding-1 convolution on a 2×2 input about 60× slower than the
same arithmetic as a matrix product (``bench/p2_profile.py --network VGG16``: B = 16,
2×2×512 → 512 takes 275 ms single-threaded against 4.5 ms, while oneDNN takes 5 ms). VGG-16's
last stage is exactly that case. ``jaxsnn.ops.conv_general_dilated`` computes such convolutions
as im2col + one ``dot_general`` on CPU (every conv layer of ``jaxsnn.models`` uses it);
:func:`xla_conv_only` switches that off while a model is traced, so the benchmarks can time the
library with and without it.
"""

import contextlib

import jax
import jax.numpy as jnp

from jaxsnn.ops import conv as conv_lib


@contextlib.contextmanager
def xla_conv_only():
    """While active, every convolution traced is XLA's own (the library's im2col path is off).

    JAX's trace caches are cleared on entry and exit: a function traced before (same static
    arguments and shapes) would otherwise reuse its trace from the other setting.
    """
    original = conv_lib._im2col_applies
    conv_lib._im2col_applies = lambda *args, **kwargs: False
    jax.clear_caches()
    try:
        yield
    finally:
        conv_lib._im2col_applies = original
        jax.clear_caches()


def check(name: str = "VGG16", batch: int = 2, T: int = 4) -> dict:
    """How far the library's simulation is from one with XLA's convs (max |Δ| of the logits)."""
    from bench import common

    b = common.build(name, batch)
    out = common.compile_simulation(b, T)[0]().cumulative
    with xla_conv_only():
        ref = common.compile_simulation(b, T)[0]().cumulative
    return {"max_abs_diff": float(jnp.max(jnp.abs(out - ref))), "shape": jax.numpy.shape(out)}


def run_p1(networks: dict[str, int], steps, reps: int) -> list[dict]:
    """P1 of the library settings with and without the proposal, ANN and SNN alike.

    The ANN and the SNN both run the same convolution, so each ratio divides the SNN by T × the
    ANN of the same setting. Records say how much faster the library's setting is than XLA's
    convs (``snn_speedup``, ``ann_speedup``) and how far apart the logits are (``max_abs_diff``,
    final-T ``argmax_agreement``).
    """
    import statistics

    from bench import common

    records = []
    for name, batch in networks.items():
        b = common.build(name, batch)

        def ann_fn(b=b):
            apply = jax.jit(lambda p, x: b["folded_ann"].apply({"params": p}, x))
            compiled = apply.lower(b["folded"], b["images"]).compile()
            return lambda: compiled(b["folded"], b["images"])

        for T in steps:
            fns = {"ann_fix": ann_fn(), "snn_fix": common.compile_simulation(b, T)[0]}
            with xla_conv_only():
                fns["ann"] = ann_fn()
                fns["snn"] = common.compile_simulation(b, T)[0]
            load_before = common.load_avg()
            wall, _ = common.time_interleaved_samples(fns, reps)
            med = {k: statistics.median(v) for k, v in wall.items()}
            ref, out = fns["snn"]().cumulative, fns["snn_fix"]().cumulative
            for variant, snn, ann in (
                ("unroll2_region_copy, XLA convs", "snn", "ann"),
                ("unroll2_region_copy (library)", "snn_fix", "ann_fix"),
            ):
                spread = common.ratio_summary(wall[snn], wall[ann], T)
                rec = common.record(
                    "P1",
                    network=name,
                    T=T,
                    batch=batch,
                    variant=variant,
                    ratio=med[snn] / (T * med[ann]),
                    ratio_round_median=spread["median"],
                    ratio_min=spread["min"],
                    ratio_max=spread["max"],
                    snn_median_s=med[snn],
                    ann_median_s=med[ann],
                    snn_speedup=med["snn"] / med[snn],
                    ann_speedup=med["ann"] / med[ann],
                    reps=reps,
                    load_avg=load_before,
                )
                if snn == "snn_fix":
                    rec.update(
                        exact_equal=bool(jnp.all(out == ref)),
                        max_abs_diff=float(jnp.max(jnp.abs(out - ref))),
                        argmax_agreement=float(
                            jnp.mean(jnp.argmax(out[-1], -1) == jnp.argmax(ref[-1], -1))
                        ),
                    )
                records.append(rec)
                print(
                    f"P1 {name} B={batch} T={T} {variant}: {rec['ratio']:.3f} "
                    f"(rounds {spread['min']:.3f}-{spread['max']:.3f}); SNN {med[snn]:.3f} s, "
                    f"speed-up vs XLA convs {rec['snn_speedup']:.2f}x, load {load_before:.1f}",
                    flush=True,
                )
    return records


if __name__ == "__main__":
    import json
    import sys

    from bench import report

    recs = run_p1({"VGG16": 8}, steps=(8, 16, 32), reps=int(sys.argv[1]) if sys.argv[1:] else 3)
    with open("bench/convfix.json", "w") as f:
        json.dump(recs, f, indent=1)
    with open("bench/convfix.md", "w") as f:
        f.write(report.markdown(recs))
