"""Shared benchmark machinery: models, interleaved timing, machine info and records."""

import datetime
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxsnn import convert as convert_lib
from jaxsnn import provenance
from jaxsnn.models import get_model, init_variables

# (image shape HWC, number of classes) per benchmarked architecture.
INPUTS = {
    "SmallCNN": ((28, 28, 1), 10),
    "ResNet20": ((32, 32, 3), 10),
    "VGG16": ((32, 32, 3), 10),
    "_CNNTiny": ((8, 8, 1), 10),
    "_ResNetTiny": ((8, 8, 3), 10),
    "_VGGTiny": ((8, 8, 3), 10),
}


def machine_info() -> dict:
    """Describes the host: CPU count, CPU model, JAX version and backend."""
    m = provenance.machine()
    return {
        "nproc": m["cpu_count"],
        "cpu_model": m["cpu"],
        "jax_version": m["jax_version"],
        "backend": m["backend"],
    }


def record(benchmark: str, **fields) -> dict:
    """A result record with the common fields (date, machine) filled in."""
    out = {"benchmark": benchmark, "date": datetime.datetime.now().isoformat(timespec="seconds")}
    out.update(machine_info())
    out.update(fields)
    return out


def block(x):
    """Waits for every array in ``x`` (a pytree) and returns it."""
    return jax.block_until_ready(x)


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median wall time (s) of each zero-argument ``fn``; repetitions alternate between them.

    Each function is called once first as warm-up (compilation). Interleaving makes the
    comparison robust to load changes on a shared machine.
    """
    wall, _ = time_interleaved_samples(fns, reps)
    return {k: statistics.median(v) for k, v in wall.items()}


def time_interleaved_samples(
    fns: dict[str, Callable[[], object]], reps: int, warmup: bool = True
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU times (s) of every call, ``reps`` interleaved rounds.

    Round ``i`` calls every function once, in order, so ``wall[a][i] / wall[b][i]`` is a ratio
    taken side by side. Process CPU time (all threads) is less sensitive than wall time to other
    jobs taking the cores away, but it also counts the thread pool's spinning.

    Returns:
      ``(wall, cpu)``: ``{name: [seconds per round]}`` each.
    """
    if warmup:
        for fn in fns.values():
            block(fn())
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            block(fn())
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def ratio_summary(num: list[float], den: list[float], scale: float = 1.0) -> dict:
    """Median, min, max and quartiles of the per-round ratios ``num[i] / (scale · den[i])``."""
    r = sorted(a / (scale * b) for a, b in zip(num, den, strict=True))
    n = len(r)
    return {
        "median": statistics.median(r),
        "min": r[0],
        "max": r[-1],
        "q25": r[round(0.25 * (n - 1))],  # nearest rank
        "q75": r[round(0.75 * (n - 1))],
    }


def build(name: str, batch: int, seed: int = 0):
    """Builds the ANN, its folded twin and the SNN with random weights and non-trivial BN stats.

    Returns:
      A dict with ``ann``, ``folded_ann``, ``folded`` (BN-folded params), ``snn``, ``snn_params``,
      ``membrane``, ``images`` and ``variables`` (the unfolded ANN variables).
    """
    (h, w, c), classes = INPUTS[name]
    ann = get_model(name, num_classes=classes)
    key_init, key_bn, key_x = jax.random.split(jax.random.key(seed), 3)
    variables = init_variables(ann, key_init, (1, h, w, c))
    variables["batch_stats"] = _perturb_stats(variables.get("batch_stats", {}), key_bn)
    folded = convert_lib.fold_batchnorm(variables["params"], variables["batch_stats"])
    snn, snn_params = convert_lib.convert(ann, variables)
    # λ = 8 (the init) silences random-weight nets; θ = 1 gives realistic spiking activity.
    snn_params = convert_lib.scale_thresholds(snn_params, 1.0 / 8.0)
    images = jax.random.uniform(key_x, (batch, h, w, c), jnp.float32)
    membrane = convert_lib.init_membrane(snn, images.shape)
    return {
        "ann": ann,
        "folded_ann": ann.clone(fold_bn=True),
        "folded": folded,
        "snn": snn,
        "snn_params": snn_params,
        "membrane": membrane,
        "images": images,
        "variables": variables,
    }


def _perturb_stats(stats, key):
    """Random running means/variances so folding is not the identity."""
    leaves, treedef = jax.tree_util.tree_flatten(stats)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = [
        0.1 * jax.random.normal(k, x.shape, x.dtype) + (1.0 if i % 2 else 0.0)
        for i, (k, x) in enumerate(zip(keys, leaves, strict=True))
    ]
    # tree order within a BN is mean, var: keep the variance positive.
    out = [jnp.abs(x) + 0.5 if i % 2 else x for i, x in enumerate(out)]
    return jax.tree_util.tree_unflatten(treedef, out)


def compile_simulation(b: dict, T: int, *, unroll: int = 2, options: dict | None = None):
    """``jaxsnn.simulate.simulate`` for build ``b`` compiled ahead of time.

    The defaults are the library's evaluation settings (``unroll=2`` and
    ``jaxsnn.simulate.core.backend_compiler_options()``, i.e. region-based copy insertion on CPU);
    ``options={}`` compiles without any XLA option.

    Returns:
      ``(run, compiled)``: ``run()`` simulates ``b['images']`` for T steps.
    """
    from jaxsnn.simulate import simulate
    from jaxsnn.simulate.core import backend_compiler_options

    s, p, m, x = b["snn"], b["snn_params"], b["membrane"], b["images"]
    opts = backend_compiler_options() if options is None else options
    compiled = simulate.lower(s, p, m, x, num_steps=T, unroll=unroll).compile(
        compiler_options=dict(opts) or None
    )
    return (lambda: compiled(p, m, x)), compiled


def load_avg() -> float:
    """The 1-minute load average (other jobs on a shared machine distort timings)."""
    return os.getloadavg()[0]
