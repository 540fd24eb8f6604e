"""P1: SNN simulation cost relative to T ANN forward passes, and the variants tried.

Every variant except ``bf16`` must return exactly what ``jaxsnn.simulate.simulate`` returns; each
record says whether it did (``exact_equal``, checked at the benchmarked size against ``plain``).
Variants (see ``bench/fastsim.py``):

* ``plain``: the production ``simulate`` (one jitted ``lax.scan`` over T of the whole network);
  ``unrollN``: its scan unrolled N times.
* ``region_copy``: ``plain`` compiled with XLA's region-based copy insertion, which drops the
  per-step copy of every membrane buffer the default scan body makes; ``unrollN_region_copy``
  combines it with unrolling.
* ``readout_outside``: the scan carries only the membrane; the running sum is a second scan.
* ``first_layer_cached``: the first conv computed once (direct encoding).
* ``donated``: the initial membrane donated (the cost of copying it is subtracted).
* ``time_folded`` (layer-major, spec §4.3): each conv/dense runs once on ``[T·B, ...]`` and each
  spiking layer scans its IF dynamics over T; ``time_folded_cN`` does N steps per pass.
* ``bf16``: ``plain`` on bfloat16 params, membrane and images: not exact, the record gives the
  deviation of the cumulative logits from float32 (``max_abs_diff``, ``argmax_agreement``).
"""

import statistics

import jax
import jax.numpy as jnp

from bench import common, fastsim
from jaxsnn.simulate import simulate

_REGION = fastsim.REGION_COPY
# name -> (jitted simulation, its static keyword arguments, XLA compiler options).
COMPILED = {
    "unroll2": (simulate, {"unroll": 2}, None),
    "unroll4": (simulate, {"unroll": 4}, None),
    "region_copy": (simulate, {}, _REGION),
    "unroll2_region_copy": (simulate, {"unroll": 2}, _REGION),
    "unroll4_region_copy": (simulate, {"unroll": 4}, _REGION),
    "readout_outside": (fastsim.simulate_readout_outside, {}, None),
    "first_layer_cached": (fastsim.simulate_cached_first_layer, {}, None),
    "time_folded": (fastsim.simulate_time_folded, {}, None),
    "time_folded_c2": (fastsim.simulate_time_folded, {"chunk": 2}, None),
    "time_folded_c4": (fastsim.simulate_time_folded, {"chunk": 4}, None),
}
EXACT_VARIANTS = ("plain", *COMPILED, "donated")
ALL_VARIANTS = (*EXACT_VARIANTS, "bf16")
# The variant recommended as the production default (see the README's P1 section).
RECOMMENDED = "unroll2_region_copy"


def _ann_fn(b):
    apply = jax.jit(lambda p, x: b["folded_ann"].apply({"params": p}, x))
    return lambda: apply(b["folded"], b["images"])


def _applicable(variant: str, T: int) -> bool:
    chunk = COMPILED.get(variant, (None, {}, None))[1].get("chunk")
    return chunk is None or (T % chunk == 0 and chunk < T)


def _snn_fns(b, T: int, variants=("plain",), temp_mib: dict | None = None) -> dict:
    """Zero-argument functions running each named variant (those that apply at this T).

    When ``temp_mib`` is a dict it receives each compiled variant's XLA temporary buffer size.
    """
    s, p, m, x = b["snn"], b["snn_params"], b["membrane"], b["images"]
    fns = {}
    for name in variants:
        if not _applicable(name, T):
            continue
        if name == "plain":
            fns[name] = lambda: simulate(s, p, m, x, num_steps=T)
            if temp_mib is not None:  # a second, ahead-of-time compile only for its size
                c = fastsim.compile_simulation(simulate, s, p, m, x, num_steps=T)
                temp_mib[name] = c.memory_analysis().temp_size_in_bytes / 2**20
        elif name in COMPILED:
            fn, static, options = COMPILED[name]
            c = fastsim.compile_simulation(fn, s, p, m, x, options=options, num_steps=T, **static)
            fns[name] = lambda c=c: c(p, m, x)
            if temp_mib is not None:
                temp_mib[name] = c.memory_analysis().temp_size_in_bytes / 2**20
        elif name == "donated":

            def donated():
                fresh = jax.tree_util.tree_map(lambda a: a.copy(), m)  # donation consumes it
                return fastsim.simulate_donated(s, p, fresh, x, num_steps=T)

            fns[name] = donated
            # subtracted from 'donated' (cost of making a fresh input)
            fns["_membrane_copy"] = lambda: jax.tree_util.tree_map(lambda a: a.copy(), m)
        elif name == "bf16":
            pb, mb, xb = (fastsim.cast_floats(t, jnp.bfloat16) for t in (p, m, x))

            def bf16(pb=pb, mb=mb, xb=xb):
                return simulate(s, pb, mb, xb, num_steps=T)

            fns[name] = bf16
        else:
            raise ValueError(f"unknown P1 variant {name!r}; choose from {ALL_VARIANTS}")
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
            copy_w, copy_c = wall.pop("_membrane_copy", None), cpu.pop("_membrane_copy", None)
            if copy_w is not None:  # 'donated' without the cost of copying its input
                wall["donated"] = [a - c for a, c in zip(wall["donated"], copy_w, strict=True)]
                cpu["donated"] = [a - c for a, c in zip(cpu["donated"], copy_c, strict=True)]
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
    missing = [v for v in wanted if v not in fns]
    if missing:
        raise ValueError(f"variants {missing} do not apply at T={T}")
    plain = fns["plain"]()
    return {v: _same(fns[v](), plain) for v in wanted if v != "plain"}


def check_cached_equal(name: str = "_CNNTiny", batch: int = 4, T: int = 6) -> bool:
    """True when the cached-first-layer simulation equals the plain one exactly."""
    return check_equal(("first_layer_cached",), name, batch, T)["first_layer_cached"]


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
