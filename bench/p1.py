"""P1: SNN simulation cost relative to T ANN forward passes, and the variants tried."""

import jax

from bench import common, fastsim
from jaxsnn.simulate import simulate


def _ann_fn(b):
    apply = jax.jit(lambda p, x: b["folded_ann"].apply({"params": p}, x))
    return lambda: apply(b["folded"], b["images"])


def _snn_fns(b, T: int, variants: bool) -> dict:
    s, p, m, x = b["snn"], b["snn_params"], b["membrane"], b["images"]
    fns = {"plain": lambda: simulate(s, p, m, x, num_steps=T)}
    if not variants:
        return fns
    for u in (2, 4):
        fns[f"unroll{u}"] = lambda u=u: simulate(s, p, m, x, num_steps=T, unroll=u)
    fns["first_layer_cached"] = lambda: fastsim.simulate_cached_first_layer(s, p, m, x, num_steps=T)

    def donated():
        fresh = jax.tree_util.tree_map(lambda a: a.copy(), m)  # donation consumes its input
        return fastsim.simulate_donated(s, p, fresh, x, num_steps=T)

    def copy_only():
        return jax.tree_util.tree_map(lambda a: a.copy(), m)

    fns["donated"] = donated
    fns["_membrane_copy"] = copy_only  # subtracted from 'donated' (cost of making a fresh input)
    return fns


def run(networks: dict[str, int], steps, reps: int, variants_at=None) -> list[dict]:
    """Times SNN vs ANN for each network (``{name: batch}``) and T in ``steps``.

    Variants (unroll, cached first layer, donation) are timed for the T values in
    ``variants_at`` (all T when None).
    """
    records = []
    for name, batch in networks.items():
        b = common.build(name, batch)
        ann = _ann_fn(b)
        for T in steps:
            variants = variants_at is None or T in variants_at
            fns = {"ann": ann, **_snn_fns(b, T, variants)}
            times = common.time_interleaved(fns, reps)
            copy_t = times.pop("_membrane_copy", 0.0)
            for variant, t in times.items():
                if variant == "ann":
                    continue
                t_snn = t - copy_t if variant == "donated" else t
                records.append(
                    common.record(
                        "P1",
                        network=name,
                        T=T,
                        batch=batch,
                        variant=variant,
                        ratio=t_snn / (T * times["ann"]),
                        ratio_vs_plain=t_snn / times["plain"],
                        snn_median_s=t_snn,
                        ann_median_s=times["ann"],
                        reps=reps,
                    )
                )
                print(
                    f"P1 {name} T={T} B={batch} {variant}: ratio {records[-1]['ratio']:.3f}",
                    flush=True,
                )
    return records


def check_cached_equal(name: str = "_CNNTiny", batch: int = 4, T: int = 6) -> bool:
    """True when the cached-first-layer simulation equals the plain one exactly."""
    b = common.build(name, batch)
    args = (b["snn"], b["snn_params"], b["membrane"], b["images"])
    plain = simulate(*args, num_steps=T)
    cached = fastsim.simulate_cached_first_layer(*args, num_steps=T)
    leaves = zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(cached), strict=True)
    return all(bool((a == c).all()) for a, c in leaves)


def record_equality() -> dict:
    """A record of the exact-equality check of the cached-first-layer path (ratio 1 = equal)."""
    equal = check_cached_equal("_CNNTiny") and check_cached_equal("_ResNetTiny")
    print(f"P1 first_layer_cached equals plain exactly: {equal}", flush=True)
    return common.record(
        "P1_check",
        network="_CNNTiny,_ResNetTiny",
        T=6,
        batch=4,
        variant="first_layer_cached_equals_plain",
        ratio=1.0 if equal else 0.0,
        exact_equal=equal,
        reps=1,
    )


def run_with_flags(networks: dict[str, int], steps, reps: int, flag_set: str) -> list[dict]:
    """Plain P1 in a subprocess under an XLA flag set (see ``bench.p3.FLAG_SETS``)."""
    import json
    import os
    import subprocess
    import sys

    from bench.p3 import FLAG_SETS

    env = dict(os.environ, XLA_FLAGS=FLAG_SETS[flag_set])
    arg = json.dumps({"networks": networks, "steps": list(steps), "reps": reps})
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
                variant=f"plain+{flag_set}",
                skipped=proc.stderr[-400:],
            )
        ]
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in records:
        r.update(variant=f"plain+{flag_set}", xla_flags=FLAG_SETS[flag_set])
        print(f"P1 {r['network']} T={r['T']} {r['variant']}: ratio {r['ratio']:.3f}", flush=True)
    return records


if __name__ == "__main__":
    import json
    import sys

    cfg = json.loads(sys.argv[1])
    print(json.dumps(run(cfg["networks"], cfg["steps"], cfg["reps"], variants_at=())))
