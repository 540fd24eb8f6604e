"""The sweeps users run, against the loop they replace.

For K threshold scales (``jaxsnn.simulate.sweep_threshold_scales``) and K initial potentials
(``sweep_initial_potentials``), one call is timed against K sequential
``jaxsnn.simulate.simulate`` calls on the same inputs (the K parameter trees / membranes are made
before timing, so the loop pays only for its simulations). Both sides use the library's public
defaults, as a user calls them. ``ratio`` = loop time ÷ sweep time: above 1 the sweep is faster.
The records also say how far the sweep's logits are from the loop's.

The library's sweep is ``jax.lax.map`` over the K values, one at a time on CPU. Next to it the
records time the alternatives, through the sweep's ``group`` argument: ``map_c`` runs ``c``
values at a time vmapped (the groups in a loop inside the same compiled call) and ``vmap`` all K
at once (the default on other backends). On this CPU the full vmap lost to the loop at batch
16–32 and won at VGG-16's batch 4 (README, Benchmarks).
"""

import statistics

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from jaxsnn import convert as convert_lib
from jaxsnn.simulate import simulate, sweep_initial_potentials, sweep_threshold_scales


def _fns(b, kind: str, K: int, T: int, map_sizes=(4,)):
    """Zero-argument functions returning ``[K, T, B, classes]``: ``sweep`` (the library's),
    ``loop``, ``map_c`` for each ``c`` in ``map_sizes`` below K, and ``vmap`` (all K at once)."""
    s, p, m, x = b["snn"], b["snn_params"], b["membrane"], b["images"]
    if kind == "threshold_scales":
        values = jnp.linspace(0.5, 1.5, K, dtype=jnp.float32)
        trees = [convert_lib.scale_thresholds(p, v) for v in values]
        jax.block_until_ready(trees)

        def sweep():
            return sweep_threshold_scales(s, p, m, x, values, num_steps=T)

        def loop():
            return [simulate(s, tree, m, x, num_steps=T).cumulative for tree in trees]

        def mapped(c):
            return lambda: sweep_threshold_scales(s, p, m, x, values, num_steps=T, group=c)

    else:
        values = jnp.linspace(0.0, 1.0, K, dtype=jnp.float32)
        membranes = [convert_lib.init_membrane(s, x.shape, v, x.dtype) for v in values]
        jax.block_until_ready(membranes)

        def sweep():
            return sweep_initial_potentials(s, p, x, values, num_steps=T)

        def loop():
            return [simulate(s, p, mem, x, num_steps=T).cumulative for mem in membranes]

        def mapped(c):
            return lambda: sweep_initial_potentials(s, p, x, values, num_steps=T, group=c)

    fns = {"sweep": sweep, "loop": loop}
    fns.update({f"map_{c}": mapped(c) for c in map_sizes if 1 < c < K})
    fns["vmap"] = mapped(K)
    return fns


def run(networks: dict[str, int], ks=(4, 16), T: int = 8, reps: int = 5, kinds=None) -> list:
    """Sweep-vs-loop records per network (``{name: batch}``), sweep kind and K."""
    kinds = kinds or ("threshold_scales", "initial_potentials")
    records = []
    for name, batch in networks.items():
        b = common.build(name, batch)
        for kind in kinds:
            for K in ks:
                fns = _fns(b, kind, K, T)
                load_before = common.load_avg()
                wall, cpu = common.time_interleaved_samples(fns, reps)
                want = np.stack([np.asarray(c) for c in fns["loop"]()])
                for variant in [k for k in fns if k != "loop"]:
                    got = np.asarray(fns[variant]())
                    spread = common.ratio_summary(wall["loop"], wall[variant])
                    rec = common.record(
                        "sweep",
                        network=name,
                        T=T,
                        batch=batch,
                        variant=f"{kind} K={K}" + ("" if variant == "sweep" else f" {variant}"),
                        K=K,
                        ratio=statistics.median(wall["loop"]) / statistics.median(wall[variant]),
                        ratio_round_median=spread["median"],
                        ratio_min=spread["min"],
                        ratio_max=spread["max"],
                        cpu_ratio=common.ratio_summary(cpu["loop"], cpu[variant])["median"],
                        sweep_median_s=statistics.median(wall[variant]),
                        loop_median_s=statistics.median(wall["loop"]),
                        reps=reps,
                        load_before=load_before,
                        load_after=common.load_avg(),
                        exact_equal=bool(np.array_equal(got, want)),
                        max_abs_diff=float(np.max(np.abs(got - want))),
                        argmax_agreement=float(
                            np.mean(got[:, -1].argmax(-1) == want[:, -1].argmax(-1))
                        ),
                    )
                    records.append(rec)
                    print(
                        f"sweep {name} B={batch} T={T} {rec['variant']}: loop/sweep "
                        f"{rec['ratio']:.2f} (rounds {spread['min']:.2f}-{spread['max']:.2f}) "
                        f"exact={rec['exact_equal']} max|d| {rec['max_abs_diff']:.1e} "
                        f"load {load_before:.1f}",
                        flush=True,
                    )
    return records
