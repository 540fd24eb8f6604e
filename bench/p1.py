"""P1: SNN simulation cost relative to T ANN forward passes, and the compile settings tried.

Every variant except ``bf16`` must return exactly what ``jaxsnn.simulate.simulate`` returns; each
record says whether it did (``exact_equal``, checked at the benchmarked size against ``plain``).
Each variant is ``simulate`` compiled ahead of time (``bench.common.compile_simulation``):

* ``plain``: ``unroll=1`` and no XLA option; ``unrollN``: the scan unrolled N times.
* ``region_copy``: ``plain`` compiled with XLA's region-based copy insertion, which drops the
  per-step copy of every membrane buffer the default scan body makes; ``unrollN_region_copy``
  combines it with unrolling. ``unroll2_region_copy`` is what the library evaluates with.
* ``public``: ``jaxsnn.simulate.simulate(model, params, membrane, images, num_steps=T)`` called
  as the README does, with its defaults (the same settings as ``unroll2_region_copy``).
* ``bf16``: the library settings on bfloat16 params, membrane and images: not exact, the record
  gives the deviation of the cumulative logits from float32 (``max_abs_diff``,
  ``argmax_agreement``).

Variants measured once and removed from the code (first layer computed once, buffer donation,
readout outside the scan, time-folded layouts) keep their measured rows in
``bench/results_archive.json``, shown at the end of ``bench/results.md``.
"""

import statistics

import jax
import jax.numpy as jnp

from bench import common

_REGION = {"xla_cpu_copy_insertion_use_region_analysis": True}
# name -> (unroll, XLA compiler options).
COMPILED = {
    "plain": (1, {}),
    "unroll2": (2, {}),
    "unroll4": (4, {}),
    "region_copy": (1, _REGION),
    "unroll2_region_copy": (2, _REGION),
    "unroll4_region_copy": (4, _REGION),
}
EXACT_VARIANTS = (*COMPILED, "public")
ALL_VARIANTS = (*EXACT_VARIANTS, "bf16")
# The variant the library evaluates with (see the README's P1 section).
RECOMMENDED = "unroll2_region_copy"


def cast_floats(tree, dtype):
    """``tree`` with every floating-point leaf cast to ``dtype``."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def _ann_fn(b):
    apply = jax.jit(lambda p, x: b["folded_ann"].apply({"params": p}, x))
    return lambda: apply(b["folded"], b["images"])


def _snn_fns(b, T: int, variants=("plain",), temp_mib: dict | None = None) -> dict:
    """Zero-argument functions running each named variant.

    When ``temp_mib`` is a dict it receives each compiled variant's XLA temporary buffer size.
    """
    fns = {}
    for name in variants:
        if name in COMPILED:
            unroll, options = COMPILED[name]
            fns[name], c = common.compile_simulation(b, T, unroll=unroll, options=options)
        elif name == "public":  # jaxsnn.simulate.simulate called as users call it (defaults)
            from jaxsnn.simulate import simulate

            s, p, m, x = b["snn"], b["snn_params"], b["membrane"], b["images"]
            fns[name] = lambda s=s, p=p, m=m, x=x: simulate(s, p, m, x, num_steps=T)
            continue
        elif name == "bf16":
            bb = dict(b)
            for k in ("snn_params", "membrane", "images"):
                bb[k] = cast_floats(b[k], jnp.bfloat16)
            fns[name], c = common.compile_simulation(bb, T)
        else:
            raise ValueError(f"unknown P1 variant {name!r}; choose from {ALL_VARIANTS}")
        if temp_mib is not None:
            temp_mib[name] = c.memory_analysis().temp_size_in_bytes / 2**20
    return fns


def _same(a, b) -> bool:
    """Exact equality of two SimOutputs (cumulative, outputs and final membrane)."""
    la = jax.tree_util.tree_leaves((a.cumulative, a.outputs, a.membrane))
    lb = jax.tree_util.tree_leaves((b.cumulative, b.outputs, b.membrane))
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and bool((x == y).all()) for x, y in zip(la, lb, strict=True)
    )


def _deviation(out, ref) -> dict:
    """How far a reduced-precision run's cumulative logits are from the float32 reference."""
    c, r = out.cumulative.astype(jnp.float32), ref.cumulative
    agree = jnp.mean(jnp.argmax(c, -1) == jnp.argmax(r, -1), axis=-1)  # [T]
    return {
        "max_abs_diff": float(jnp.max(jnp.abs(c - r))),
        "max_abs_diff_final": float(jnp.max(jnp.abs(c[-1] - r[-1]))),
        "max_abs_ref_final": float(jnp.max(jnp.abs(r[-1]))),
        "argmax_agreement": float(agree[-1]),
        "argmax_agreement_min_t": float(jnp.min(agree)),
    }


def run(
    networks: dict[str, int], steps, reps: int, variants_at=None, variants=ALL_VARIANTS
) -> list[dict]:
    """Times SNN vs ANN for each network (``{name: batch}``) and T in ``steps``.

    ``variants`` are timed (next to ``plain``) for the T values in ``variants_at`` (all T when
    None); other T time ``plain`` only. Each record carries the median ratio, the spread of the
    per-round ratios, the same ratio in process CPU time, whether the variant's output equals
    ``plain``'s exactly, and XLA's temporary buffer size for the compiled program (MiB).
    """
    records = []
    for name, batch in networks.items():
        b = common.build(name, batch)
        ann = _ann_fn(b)
        for T in steps:
            wanted = ("plain",)
            if variants_at is None or T in variants_at:
                wanted += tuple(v for v in variants if v != "plain")
            temp_mib: dict = {}
            fns = {"ann": ann, **_snn_fns(b, T, wanted, temp_mib)}
            results = {k: common.block(fn()) for k, fn in fns.items()}  # warm-up (compile)
            wall, cpu = common.time_interleaved_samples(fns, reps, warmup=False)
            t_ann = statistics.median(wall["ann"])
            t_plain = statistics.median(wall["plain"])
            for variant in wall:
                if variant == "ann":
                    continue
                t_snn = statistics.median(wall[variant])
                spread = common.ratio_summary(wall[variant], wall["ann"], T)
                extra = {}
                if variant == "bf16":
                    extra = _deviation(results[variant], results["plain"])
                records.append(
                    common.record(
                        "P1",
                        network=name,
                        T=T,
                        batch=batch,
                        variant=variant,
                        ratio=t_snn / (T * t_ann),
                        ratio_vs_plain=t_snn / t_plain,
                        ratio_round_median=spread["median"],
                        ratio_min=spread["min"],
                        ratio_max=spread["max"],
                        ratio_q25=spread["q25"],
                        ratio_q75=spread["q75"],
                        ratio_vs_plain_round_median=common.ratio_summary(
                            wall[variant], wall["plain"]
                        )["median"],
                        cpu_ratio=common.ratio_summary(cpu[variant], cpu["ann"], T)["median"],
                        exact_equal=_same(results[variant], results["plain"]),
                        xla_temp_mib=temp_mib.get(variant),
                        load_avg=common.load_avg(),
                        snn_median_s=t_snn,
                        ann_median_s=t_ann,
                        reps=reps,
                        **extra,
                    )
                )
                r = records[-1]
                print(
                    f"P1 {name} T={T} B={batch} {variant}: ratio {r['ratio']:.3f} "
                    f"(rounds {r['ratio_min']:.3f}-{r['ratio_max']:.3f}, cpu {r['cpu_ratio']:.3f})"
                    f" exact={r['exact_equal']}",
                    flush=True,
                )
    return records


def check_equal(
    variants=EXACT_VARIANTS, name: str = "_CNNTiny", batch: int = 4, T: int = 8
) -> dict[str, bool]:
    """``{variant: output equals the plain simulation's exactly}`` for one network and T."""
    b = common.build(name, batch)
    wanted = ("plain", *(v for v in variants if v != "plain"))
    fns = _snn_fns(b, T, wanted)
    plain = fns["plain"]()
    return {v: _same(fns[v](), plain) for v in wanted if v != "plain"}


def record_equality(variants=EXACT_VARIANTS, T: int = 8) -> list[dict]:
    """Records of the exact-equality checks on the tiny nets (ratio 1 = equal, 0 = not)."""
    nets = ("_CNNTiny", "_ResNetTiny")
    checks = [check_equal(variants, net, 4, T) for net in nets]
    records = []
    for variant in checks[0]:
        equal = all(c[variant] for c in checks)
        print(f"P1 {variant} equals plain exactly: {equal}", flush=True)
        records.append(
            common.record(
                "P1_check",
                network=",".join(nets),
                T=T,
                batch=4,
                variant=f"{variant}_equals_plain",
                ratio=1.0 if equal else 0.0,
                exact_equal=equal,
                reps=1,
            )
        )
    return records


def run_with_flags(
    networks: dict[str, int], steps, reps: int, flag_set: str, variants=("plain",)
) -> list[dict]:
    """P1 ``variants`` in a subprocess under an XLA flag set (see ``bench.p3.FLAG_SETS``)."""
    import json
    import os
    import subprocess
    import sys

    from bench.p3 import FLAG_SETS

    env = dict(os.environ, XLA_FLAGS=FLAG_SETS[flag_set])
    arg = json.dumps(
        {"networks": networks, "steps": list(steps), "reps": reps, "variants": list(variants)}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.p1", arg], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return [
            common.record(
                "P1",
                network=",".join(networks),
                T=None,
                batch=None,
                ratio=None,
                variant=f"{'/'.join(variants)}+{flag_set}",
                skipped=proc.stderr[-400:],
            )
        ]
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in records:
        r.update(variant=f"{r['variant']}+{flag_set}", xla_flags=FLAG_SETS[flag_set])
        print(f"P1 {r['network']} T={r['T']} {r['variant']}: ratio {r['ratio']:.3f}", flush=True)
    return records


if __name__ == "__main__":
    import json
    import sys

    cfg = json.loads(sys.argv[1])
    variants = tuple(cfg.get("variants", ("plain",)))
    print(json.dumps(run(cfg["networks"], cfg["steps"], cfg["reps"], variants=variants)))
