"""Prototype: convolutions whose kernel is larger than their input, as one matrix product.

XLA:CPU (jaxlib 0.10.2) runs a 3×3, padding-1 convolution on a 2×2 input about 60× slower than the
same arithmetic as a matrix product (``bench/p2_profile.py --network VGG16``: B = 16,
2×2×512 → 512 takes 275 ms single-threaded against 4.5 ms, while oneDNN takes 5 ms). VGG-16's
last stage is exactly that case: its three convs there are about 90 % of a VGG-16 forward pass
on this CPU. :func:`conv_general_dilated` gathers the k·k shifted windows of the padded input
(im2col) and contracts them with the kernel in a single ``dot_general``, but only where the input
is smaller than the kernel (plain NHWC/HWIO, no dilation, no groups); every other convolution is
``lax.conv_general_dilated`` unchanged. The product sums in another order than XLA's convolution,
so the results agree to float32 rounding, not bit for bit.

:func:`patched_flax_conv` makes ``flax.linen.Conv`` use it while a model is traced, so the
benchmarks can measure the proposal without touching ``jaxsnn/``. In the library it would be the
``conv_general_dilated=`` argument of the ``nn.Conv`` in ``jaxsnn.models.layers.ConvBN``.
"""

import contextlib
import types

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(
    lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)


def _im2col_applies(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, groups) -> bool:
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    kh, kw = rhs.shape[0], rhs.shape[1]
    return dn == _NHWC and plain and groups == 1 and (lhs.shape[1] < kh or lhs.shape[2] < kw)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """``lax.conv_general_dilated``, or im2col + one dot where the input is smaller than the kernel.

    Same signature and result (to float32 rounding) as ``lax.conv_general_dilated``.
    """
    if not _im2col_applies(
        lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count
    ):
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            precision=precision,
            **kwargs,
        )
    kh, kw, cin, cout = rhs.shape
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    (p0, p1), (q0, q1) = padding
    x = jnp.pad(lhs, ((0, 0), (p0, p1), (q0, q1), (0, 0)))
    sh, sw = window_strides
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    cols = [
        x[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # [B, ho, wo, kh·kw·cin], kernel order (i, j, c)
    return lax.dot_general(
        patches, rhs.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())), precision=precision
    )


@contextlib.contextmanager
def patched_flax_conv():
    """While active, ``flax.linen.Conv`` traces through :func:`conv_general_dilated`.

    JAX's trace caches are cleared on entry and exit: a function traced before (same static
    arguments and shapes) would otherwise reuse its unpatched trace, or the patched one after.
    """
    from flax.linen import linear

    shim = types.SimpleNamespace(**{k: getattr(lax, k) for k in dir(lax) if not k.startswith("__")})
    shim.conv_general_dilated = conv_general_dilated
    original = linear.lax
    linear.lax = shim
    jax.clear_caches()
    try:
        yield
    finally:
        linear.lax = original
        jax.clear_caches()


def check(name: str = "VGG16", batch: int = 2, T: int = 4) -> dict:
    """How far the patched simulation is from the plain one (max |Δ| of the cumulative logits)."""
    from bench import common

    b = common.build(name, batch)
    ref = common.compile_simulation(b, T)[0]().cumulative
    with patched_flax_conv():
        out = common.compile_simulation(b, T)[0]().cumulative
    return {"max_abs_diff": float(jnp.max(jnp.abs(out - ref))), "shape": jax.numpy.shape(out)}


def run_p1(networks: dict[str, int], steps, reps: int) -> list[dict]:
    """P1 of the library settings with and without the proposal, ANN and SNN alike.

    With the proposal adopted both the ANN and the SNN would run the patched convolution, so the
    ``convfix`` ratio divides the patched SNN by T × the patched ANN. Records say how much faster
    each side got (``snn_speedup``, ``ann_speedup``) and how far the patched logits are from the
    library's (``max_abs_diff``, final-T ``argmax_agreement``).
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
            fns = {"ann": ann_fn(), "snn": common.compile_simulation(b, T)[0]}
            with patched_flax_conv():
                fns["ann_fix"] = ann_fn()
                fns["snn_fix"] = common.compile_simulation(b, T)[0]
            load_before = common.load_avg()
            wall, _ = common.time_interleaved_samples(fns, reps)
            med = {k: statistics.median(v) for k, v in wall.items()}
            ref, out = fns["snn"]().cumulative, fns["snn_fix"]().cumulative
            for variant, snn, ann in (
                ("unroll2_region_copy", "snn", "ann"),
                ("unroll2_region_copy+convfix", "snn_fix", "ann_fix"),
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
                    f"speed-up vs library {rec['snn_speedup']:.2f}x, load {load_before:.1f}",
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
