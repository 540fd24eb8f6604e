"""The sections of the device check, each run as ``python -m bench.device.sections NAME``.

Every section runs in its own process under a time budget (``--budget-s``): it checks the
budget before each measurement, skips what no longer fits (recording that it did) and appends
each record as soon as it is measured (``bench.device.records``). The driver kills a section
that overruns, and whatever it had recorded stays.

Comparisons follow the P2 rules: the same weights, T, batch and device for both sides, the
outputs compared (max |Δ| of the cumulative logits, final-T argmax agreement), and the medians
of interleaved rounds with the spread of the per-round ratios.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback

from bench.device import plan as plan_lib
from bench.device import records


class Budget:
    """Seconds left in this section, with a safety margin for writing the last record."""

    def __init__(self, seconds: float, margin: float = 2.0):
        self.end = time.monotonic() + seconds - margin

    def left(self) -> float:
        return self.end - time.monotonic()


# ----------------------------------------------------------------------------------------------
# shared helpers


def _record(benchmark: str, **fields) -> dict:
    from bench import common

    rec = common.record(benchmark, **fields)
    rec["load_avg"] = os.getloadavg()[0]
    rec.setdefault("device_kind", _device_kind())
    return rec


def _device_kind() -> str:
    import jax

    return jax.devices()[0].device_kind


def _torch_device(platform: str):
    import torch

    if platform == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("--platform gpu but torch.cuda.is_available() is False")
        return torch.device("cuda")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return torch.device("cpu")


def _sync(fn, device):
    """``fn`` followed by a device synchronisation (torch launches asynchronously on CUDA)."""
    import torch

    if device.type != "cuda":
        return fn

    def synced():
        out = fn()
        torch.cuda.synchronize()
        return out

    return synced


def measure(fns: dict, *, min_reps: int, max_reps: int, min_time_s: float, budget: Budget):
    """Interleaved rounds of already warmed-up zero-argument functions.

    Rounds continue until at least ``min_reps`` rounds and ``min_time_s`` seconds of the slowest
    function were taken, or ``max_reps`` rounds, or the budget runs out (never fewer than 2).

    Returns:
      ``{name: [seconds per round]}``.
    """
    from bench import common

    wall: dict = {k: [] for k in fns}
    while True:
        start = time.monotonic()
        w, _ = common.time_interleaved_samples(fns, 1, warmup=False)
        for k, v in w.items():
            wall[k] += v
        n, took = len(wall[next(iter(wall))]), time.monotonic() - start
        slowest = max(sum(v) for v in wall.values())
        if n >= max_reps or (n >= min_reps and slowest >= min_time_s):
            return wall
        if n >= 2 and budget.left() < 2 * took:
            return wall


def _timed_first_call(fn):
    """Calls ``fn`` once (compilation, autotuning) and returns its seconds."""
    from bench import common

    start = time.perf_counter()
    common.block(fn())
    return time.perf_counter() - start


def compile_simulation(b, T: int, unroll: int = 2):
    """jaxsnn's ``simulate`` for build ``b`` as the library evaluates (see ``bench.common``)."""
    from bench import common

    return common.compile_simulation(b, T, unroll=unroll)


def _agreement(out, ref) -> dict:
    """max |Δ| of the cumulative logits (all t) and final-T argmax agreement of two [T, B, K]."""
    import numpy as np

    a, r = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return {
        "max_abs_diff": float(np.max(np.abs(a - r))),
        "max_abs_ref": float(np.max(np.abs(r))),
        "argmax_agreement": float(np.mean(a[-1].argmax(-1) == r[-1].argmax(-1))),
    }


def _spread(num, den, scale=1.0) -> dict:
    from bench import common

    s = common.ratio_summary(num, den, scale)
    return {"ratio_round_median": s["median"], "ratio_min": s["min"], "ratio_max": s["max"]}


def _cast_floats(tree, dtype):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def _skip(benchmark: str, why: str, **fields) -> None:
    print(f"  skipped {benchmark} {fields}: {why}", flush=True)
    records.add(_record(benchmark, skipped=why, **fields))


def _guard(benchmark: str, fields: dict, fn) -> None:
    """Runs one measurement; an exception becomes a recorded error instead of ending the section."""
    try:
        fn()
    except Exception as err:  # one failing network must not cost the others their figures
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        records.add(_record(benchmark, error=f"{type(err).__name__}: {err}"[:300], **fields))


# ----------------------------------------------------------------------------------------------
# env: versions, devices, dependency ranges, imports


def section_env(cfg, budget: Budget, platform: str) -> None:
    """Versions, the devices both frameworks see, pyproject ranges and an import of everything."""
    import importlib
    import importlib.metadata as md
    import pkgutil

    import jax

    versions = {}
    for dist in (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "orbax-checkpoint",
        "chex",
        "numpy",
        "torch",
        "ml_collections",
        "tensorflow-datasets",
        "array_record",
        "grain",
        "protobuf",
        "tensorboardX",
        "jaxtyping",
    ):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    mismatches = _check_ranges()
    failed = {}
    import jaxsnn

    names = ["jaxsnn"] + [
        m.name
        for m in pkgutil.walk_packages(jaxsnn.__path__, "jaxsnn.")
        if "__main__" not in m.name
    ]
    names += ["tensorflow_datasets", "ml_collections", "orbax.checkpoint", "tensorboardX", "optax"]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:
            failed[name] = f"{type(err).__name__}: {err}"[:200]
    dev = jax.devices()[0]
    mem = getattr(dev, "memory_stats", lambda: None)() or {}
    torch_info = {}
    try:
        import torch

        torch_info = {"torch_cuda": torch.version.cuda, "torch_cuda_available": False}
        if torch.cuda.is_available():
            torch_info.update(torch_cuda_available=True, torch_device=torch.cuda.get_device_name(0))
    except ImportError as err:
        torch_info = {"torch_error": str(err)}
    smi = None
    try:
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    rec = _record(
        "env",
        python=sys.version.split()[0],
        versions=versions,
        jax_devices=[str(d) for d in jax.devices()],
        device_memory_gib=(mem.get("bytes_limit") or 0) / 2**30,
        nvidia_smi=smi,
        range_mismatches=mismatches,
        import_failures=failed,
        imported=len(names) - len(failed),
        **torch_info,
    )
    records.add(rec)
    print(f"  versions {versions}", flush=True)
    print(f"  devices {rec['jax_devices']} {torch_info} {smi}", flush=True)
    print(f"  pyproject range mismatches: {mismatches or 'none'}", flush=True)
    print(f"  imported {rec['imported']}/{len(names)} modules; failures: {failed or 'none'}")


def _check_ranges() -> dict:
    """``{requirement: installed version}`` for every pyproject dependency the version misses."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"].get("torch", []))
    bad = {}
    for spec in reqs:
        req = Requirement(spec)
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            bad[spec] = None
            continue
        if not req.specifier.contains(have.split("+")[0], prereleases=True):
            bad[spec] = have
    return bad


# ----------------------------------------------------------------------------------------------
# smoke: the exactness tests on this device


def section_smoke(cfg, budget: Budget, platform: str) -> None:
    """Runs the smoke subset of the test suite on this device (``JAX_PLATFORMS`` as set)."""
    import re

    args = list(cfg)
    files = [a for a in args if a.startswith("tests/")]
    if files and not any(os.path.exists(f) for f in files):
        args = ["tests", "-k", "simulate or convert or reference"]  # the files were renamed
    else:
        args = [a for a in args if not a.startswith("tests/") or os.path.exists(a)]
    cmd = [sys.executable, "-m", "pytest", "-v", "--tb=short", "-p", "no:cacheprovider", *args]
    print("  $ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=max(budget.left() - 1, 5)
        )
        out, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        code = "timeout"
    print(out[-3000:], flush=True)
    # Counted per test line (``-v``), so a run cut off at its budget still reports its progress.
    counts = {
        k.lower(): len(re.findall(rf"^\S+::.* {k}\b", out, re.M))
        for k in ("PASSED", "FAILED", "SKIPPED", "ERROR")
    }
    records.add(
        _record(
            "smoke",
            pytest_args=args,
            exit_code=code,
            seconds=time.monotonic() - start,
            ok=code == 0 and counts["passed"] > 0,
            **counts,
            tail=out[-1500:] if code != 0 else None,
        )
    )


# ----------------------------------------------------------------------------------------------
# P1 and P2


def _torch_twin(b, name, device):
    import numpy as np
    import torch

    from bench import torch_ref

    net = torch_ref.load_folded(torch_ref.Net(name, "if", bn=False), b["snn_params"])
    net = net.eval().to(device)
    x = torch.from_numpy(np.asarray(b["images"]).transpose(0, 3, 1, 2).copy()).to(device)
    return net, x


def _cuda_graph(net, x, T):
    """The eager IF loop captured once as a CUDA graph; replaying it re-runs all T steps."""
    import torch

    from bench import torch_ref

    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            torch_ref.simulate_if(net, static_x, T)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = torch_ref.simulate_if(net, static_x, T)

    def replay():
        graph.replay()
        return static_out

    return replay


def _to_numpy_tmajor_last(t):
    return t.detach().float().cpu().numpy()


def section_p1p2(cfg, budget: Budget, platform: str) -> None:
    """P1 (SNN ÷ T·ANN) and P2 (eager PyTorch ÷ jaxsnn) per network, batch and T."""
    import jax
    import torch

    from bench import common, torch_ref

    # Both sides in full float32: the same computation (TF32 is measured in its own section).
    jax.config.update("jax_default_matmul_precision", "highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = _torch_device(platform)
    nets = cfg["networks"]
    items = [
        (T, i, name)
        for T in cfg["steps"]
        for i in range(max(len(v) for v in nets.values()))
        for name, batches in nets.items()
        if i < len(batches)
    ]
    cache: dict = {}
    last_cost: dict = {}
    for T, i, name in items:
        batch = nets[name][i]
        fields = {"network": name, "T": T, "batch": batch}
        # Estimated cost: this network/batch's last item scaled by T, else a floor.
        est = last_cost.get((name, batch), (0.0, 1))
        need = est[0] * T / est[1] if est[0] else 3.0
        if budget.left() < need:
            _skip("P2", f"time budget ({budget.left():.0f} s left, ~{need:.0f} s needed)", **fields)
            continue
        start = time.monotonic()

        def one(T=T, name=name, batch=batch, fields=fields):
            if (name, batch) not in cache:
                cache.clear()  # one network's buffers at a time on the device
                b = common.build(name, batch)
                ann_apply = jax.jit(lambda p, x, b=b: b["folded_ann"].apply({"params": p}, x))
                net, x_t = _torch_twin(b, name, device)
                cache[(name, batch)] = (b, ann_apply, net, x_t)
            b, ann_apply, net, x_t = cache[(name, batch)]
            snn, compiled = compile_simulation(b, T)
            fns = {
                "ann": lambda: ann_apply(b["folded"], b["images"]),
                "snn": snn,
                "torch": _sync(lambda: torch_ref.simulate_if(net, x_t, T), device),
            }
            if T in cfg["unroll1_at"]:
                fns["snn_unroll1"] = compile_simulation(b, T, unroll=1)[0]
            if cfg["cuda_graphs"] and device.type == "cuda":
                fns["torch_cuda_graph"] = _sync(_cuda_graph(net, x_t, T), device)
            first = {k: _timed_first_call(f) for k, f in fns.items()}
            wall = measure(
                fns,
                min_reps=cfg["min_reps"],
                max_reps=cfg["max_reps"],
                min_time_s=cfg["min_time_s"],
                budget=budget,
            )
            med = {k: statistics.median(v) for k, v in wall.items()}
            ours = fns["snn"]().cumulative
            theirs = _to_numpy_tmajor_last(fns["torch"]())
            agree = _agreement(ours[-1:], theirs[None])
            common_fields = dict(
                fields,
                reps=len(wall["snn"]),
                first_call_s=first,
                median_s=med,
                xla_temp_mib=compiled.memory_analysis().temp_size_in_bytes / 2**20,
                precision="float32 (highest; TF32 off in torch)",
            )
            recs = [
                _record(
                    "P1",
                    variant="default (unroll=2)",
                    ratio=med["snn"] / (T * med["ann"]),
                    **_spread(wall["snn"], wall["ann"], T),
                    **common_fields,
                )
            ]
            if "snn_unroll1" in med:
                recs.append(
                    _record(
                        "P1",
                        variant="unroll=1",
                        ratio=med["snn_unroll1"] / (T * med["ann"]),
                        **_spread(wall["snn_unroll1"], wall["ann"], T),
                        **common_fields,
                    )
                )
            recs.append(
                _record(
                    "P2",
                    variant="eager_torch",
                    ratio=med["torch"] / med["snn"],
                    **_spread(wall["torch"], wall["snn"]),
                    **agree,
                    torch_version=torch.__version__,
                    **common_fields,
                )
            )
            if "torch_cuda_graph" in med:
                graph_out = _to_numpy_tmajor_last(fns["torch_cuda_graph"]())
                recs.append(
                    _record(
                        "P2",
                        variant="torch_cuda_graph",
                        ratio=med["torch_cuda_graph"] / med["snn"],
                        **_spread(wall["torch_cuda_graph"], wall["snn"]),
                        **_agreement(ours[-1:], graph_out[None]),
                        torch_version=torch.__version__,
                        **common_fields,
                    )
                )
            for r in recs:
                records.add(r)
                print(
                    f"  {r['benchmark']} {name} B={batch} T={T} {r['variant']}: {r['ratio']:.3f} "
                    f"({r['ratio_min']:.3f}-{r['ratio_max']:.3f}, {r['reps']} reps)"
                    + (f" max|d| {r['max_abs_diff']:.2e}" if "max_abs_diff" in r else ""),
                    flush=True,
                )

        _guard("P2", fields, one)
        last_cost[(name, batch)] = (time.monotonic() - start, T)


# ----------------------------------------------------------------------------------------------
# precision: bf16 and TF32 against full float32


def section_precision(cfg, budget: Budget, platform: str) -> None:
    """jaxsnn at matmul precision highest / default / tensorfloat32 and in bf16: time, accuracy."""
    import jax
    import jax.numpy as jnp

    from bench import common

    T = cfg["T"]
    for name, batch in cfg["networks"].items():
        if budget.left() < 5:
            _skip("precision", "time budget", network=name, T=T, batch=batch)
            continue

        def one(name=name, batch=batch):
            b = common.build(name, batch)
            fns, outs = {}, {}
            for variant in ("highest", "default", "tensorfloat32", "bf16"):
                if variant == "bf16":
                    bb = dict(b)
                    for k in ("snn_params", "membrane", "images"):
                        bb[k] = _cast_floats(b[k], jnp.bfloat16)
                    fn, _ = compile_simulation(bb, T)
                else:
                    with jax.default_matmul_precision(variant):
                        fn, _ = compile_simulation(b, T)
                fns[variant] = fn
            first = {k: _timed_first_call(f) for k, f in fns.items()}
            wall = measure(fns, min_reps=3, max_reps=15, min_time_s=0.5, budget=budget)
            for k, f in fns.items():
                outs[k] = f().cumulative.astype(jnp.float32)
            for variant in fns:
                rec = _record(
                    "precision",
                    network=name,
                    T=T,
                    batch=batch,
                    variant=variant,
                    ratio=statistics.median(wall[variant]) / statistics.median(wall["highest"]),
                    **_spread(wall[variant], wall["highest"]),
                    median_s=statistics.median(wall[variant]),
                    first_call_s=first[variant],
                    reps=len(wall[variant]),
                    **_agreement(outs[variant], outs["highest"]),
                )
                records.add(rec)
                print(
                    f"  precision {name} B={batch} T={T} {variant}: time ÷ highest "
                    f"{rec['ratio']:.3f}, max|d| {rec['max_abs_diff']:.3g}, argmax "
                    f"{rec['argmax_agreement']:.3f}",
                    flush=True,
                )

        _guard("precision", {"network": name, "T": T, "batch": batch}, one)


# ----------------------------------------------------------------------------------------------
# layouts: step-wise scan vs time-folded


def section_layouts(cfg, budget: Budget, platform: str) -> None:
    """jaxsnn vs the pure-JAX step-wise and time-folded layouts (bench.device.layouts)."""
    import functools

    import jax

    from bench import common
    from bench.device import layouts

    jax.config.update("jax_default_matmul_precision", "highest")
    for name, batch in cfg["networks"].items():
        for T in cfg["steps"]:
            fields = {"network": name, "T": T, "batch": batch}
            if budget.left() < 5:
                _skip("layout", "time budget", **fields)
                continue

            def one(name=name, batch=batch, T=T):
                b = common.build(name, batch)
                p, x = b["snn_params"], b["images"]
                fns, temp = {}, {}
                fns["jaxsnn"], compiled = compile_simulation(b, T)
                temp["jaxsnn"] = compiled.memory_analysis().temp_size_in_bytes
                for variant, fn in (
                    ("stepwise", layouts.stepwise),
                    ("time_folded", layouts.time_folded),
                ):
                    c = jax.jit(functools.partial(fn, name, num_steps=T)).lower(p, x).compile()
                    temp[variant] = c.memory_analysis().temp_size_in_bytes
                    fns[variant] = functools.partial(c, p, x)
                first = {k: _timed_first_call(f) for k, f in fns.items()}
                wall = measure(fns, min_reps=3, max_reps=15, min_time_s=0.5, budget=budget)
                ref = fns["jaxsnn"]().cumulative
                for variant in fns:
                    out = ref if variant == "jaxsnn" else fns[variant]()
                    rec = _record(
                        "layout",
                        variant=variant,
                        ratio=statistics.median(wall[variant]) / statistics.median(wall["jaxsnn"]),
                        **_spread(wall[variant], wall["jaxsnn"]),
                        median_s=statistics.median(wall[variant]),
                        first_call_s=first[variant],
                        xla_temp_mib=temp[variant] / 2**20,
                        reps=len(wall[variant]),
                        **_agreement(out, ref),
                        **fields,
                    )
                    records.add(rec)
                    print(
                        f"  layout {name} B={batch} T={T} {variant}: time ÷ jaxsnn "
                        f"{rec['ratio']:.3f}, temp {rec['xla_temp_mib']:.0f} MiB, max|d| "
                        f"{rec['max_abs_diff']:.2g}",
                        flush=True,
                    )

            _guard("layout", fields, one)


# ----------------------------------------------------------------------------------------------
# memory: peak device memory at two T, one fresh process each


def section_memory(cfg, budget: Budget, platform: str) -> None:
    """Peak device memory of one evaluation at each T, each in a fresh process."""
    peaks = {}
    for T in cfg["steps"]:
        fields = {"network": cfg["network"], "T": T, "batch": cfg["batch"]}
        if budget.left() < 5:
            _skip("memory", "time budget", **fields)
            continue
        cmd = [sys.executable, "-m", "bench.device.sections", "_memory_child"]
        cmd += [cfg["network"], str(cfg["batch"]), str(T)]
        env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        if cfg.get("fast_compile"):
            env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=max(budget.left() - 1, 3)
            )
        except subprocess.TimeoutExpired:
            _skip("memory", "time budget (child timed out)", **fields)
            continue
        if proc.returncode != 0:
            records.add(_record("memory", error=proc.stderr.strip()[-400:], **fields))
            continue
        peaks[T] = json.loads(proc.stdout.strip().splitlines()[-1])
        rec = _record("memory", variant=f"T={T}", **peaks[T], **fields)
        records.add(rec)
        print(
            f"  memory {cfg['network']} B={cfg['batch']} T={T}: peak {rec['peak_mib']:.0f} MiB "
            f"({rec['source']}), XLA temp {rec['xla_temp_mib']:.0f} MiB",
            flush=True,
        )
    if len(peaks) == 2:
        lo, hi = sorted(peaks)
        ratio = peaks[hi]["peak_mib"] / peaks[lo]["peak_mib"]
        records.add(
            _record(
                "memory",
                network=cfg["network"],
                T=hi,
                batch=cfg["batch"],
                variant=f"T{hi}_vs_T{lo}",
                ratio=ratio,
            )
        )
        print(f"  memory peak T={hi} ÷ T={lo}: {ratio:.3f}", flush=True)


def memory_child(name: str, batch: int, T: int) -> dict:
    """Peak memory of one evaluation in this (fresh) process."""
    import jax

    from bench import common

    b = common.build(name, batch)
    fn, compiled = compile_simulation(b, T)
    jax.block_until_ready(fn())
    stats = jax.devices()[0].memory_stats() or {}
    out = {"xla_temp_mib": compiled.memory_analysis().temp_size_in_bytes / 2**20}
    if "peak_bytes_in_use" in stats:
        out.update(peak_mib=stats["peak_bytes_in_use"] / 2**20, source="device peak_bytes_in_use")
    else:
        with open("/proc/self/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        out.update(peak_mib=hwm / 1024, source="host VmHWM (no device memory stats)")
    return out


# ----------------------------------------------------------------------------------------------
# train: QCFS ANN training images/s on synthetic CIFAR-shaped data


def _jax_train_step(name: str, batch: int, image_shape):
    """One jitted SGD step of the QCFS ANN with BatchNorm in training mode (own, minimal)."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxsnn.models import get_model, init_variables

    model = get_model(name, num_classes=10)
    k_init, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    variables = init_variables(model, k_init, (1, *image_shape))
    tx = optax.sgd(0.05, momentum=0.9)
    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    x = jax.random.uniform(k_x, (batch, *image_shape), jnp.float32)
    y = jax.random.randint(k_y, (batch,), 0, 10)

    def loss_fn(params, stats):
        logits, new = model.apply(
            {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, new["batch_stats"]

    @jax.jit
    def step(state):
        params, stats, opt = state
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), stats, opt), loss

    box = {"state": state}

    def run():
        box["state"], loss = step(box["state"])
        return loss

    return run


def _torch_train_step(name: str, batch: int, image_shape, device):
    import torch

    from bench import torch_ref

    h, w, c = image_shape
    net = torch_ref.Net(name, "qcfs", bn=True).train().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = torch.rand(batch, c, h, w, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return _sync(run, device)


def section_train(cfg, budget: Budget, platform: str) -> None:
    """Training images/s (library default precision) of the demo net and ResNet-20."""
    from bench import common

    device = _torch_device(platform)
    for name, batch in cfg["networks"].items():
        shape = plan_lib.TRAIN_IMAGE.get(name, common.INPUTS[name][0])
        fields = {"network": name, "batch": batch, "T": None, "image_shape": list(shape)}
        if budget.left() < 5:
            _skip("train", "time budget", **fields)
            continue

        def one(name=name, batch=batch, shape=shape, fields=fields):
            fns = {"jax": _jax_train_step(name, batch, shape)}
            if name in cfg["torch"]:
                fns["torch"] = _torch_train_step(name, batch, shape, device)
            first = {k: _timed_first_call(f) for k, f in fns.items()}
            wall = measure(
                fns, min_reps=cfg["steps"], max_reps=cfg["steps"], min_time_s=0, budget=budget
            )
            med = {k: statistics.median(v) for k, v in wall.items()}
            for k, v in med.items():
                rec = _record(
                    "train",
                    variant=k,
                    images_per_s=batch / v,
                    step_median_s=v,
                    first_call_s=first[k],
                    reps=len(wall[k]),
                    ratio=(med["torch"] / v) if "torch" in med else None,
                    **fields,
                )
                records.add(rec)
                print(f"  train {name} B={batch} {k}: {batch / v:.0f} images/s", flush=True)

        _guard("train", fields, one)


# ----------------------------------------------------------------------------------------------
# torch.compile'd eager loop (P2 against a compiled PyTorch), last: compile time is unknown


def section_torch_compile(cfg, budget: Budget, platform: str) -> None:
    """P2 against ``torch.compile`` of the IF network (one step compiled, loop over T in Python)."""
    import jax
    import torch

    from bench import common, torch_ref

    jax.config.update("jax_default_matmul_precision", "highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = _torch_device(platform)
    T = cfg["T"]
    for name, batch in cfg["networks"].items():
        fields = {"network": name, "T": T, "batch": batch}
        if budget.left() < 20:
            _skip("P2", "time budget", variant="torch_compile", **fields)
            continue

        def one(name=name, batch=batch, fields=fields):
            b = common.build(name, batch)
            net, x_t = _torch_twin(b, name, device)
            cnet = torch.compile(net)
            snn, _ = compile_simulation(b, T)
            fns = {
                "snn": snn,
                "torch_compile": _sync(lambda: torch_ref.simulate_if(cnet, x_t, T), device),
            }
            first = {k: _timed_first_call(f) for k, f in fns.items()}
            wall = measure(fns, min_reps=3, max_reps=15, min_time_s=0.5, budget=budget)
            out = _to_numpy_tmajor_last(fns["torch_compile"]())
            rec = _record(
                "P2",
                variant="torch_compile",
                ratio=statistics.median(wall["torch_compile"]) / statistics.median(wall["snn"]),
                **_spread(wall["torch_compile"], wall["snn"]),
                first_call_s=first,
                reps=len(wall["snn"]),
                **_agreement(fns["snn"]().cumulative[-1:], out[None]),
                **fields,
            )
            records.add(rec)
            print(f"  P2 {name} B={batch} T={T} torch_compile: {rec['ratio']:.3f}", flush=True)

        _guard("P2", dict(fields, variant="torch_compile"), one)


def section_sweep(cfg, budget: Budget, platform: str) -> None:
    """The library's sweeps and their other `group` sizes against K ``simulate`` calls."""
    from bench import sweep

    for name, batch in cfg["networks"].items():
        if budget.left() < 10:
            _skip("sweep", "time budget", network=name, batch=batch, T=cfg["T"])
            continue

        def one(name=name, batch=batch):
            for rec in sweep.run({name: batch}, ks=cfg["ks"], T=cfg["T"], reps=cfg["reps"]):
                rec.update(load_avg=os.getloadavg()[0], device_kind=_device_kind())
                records.add(rec)

        _guard("sweep", {"network": name, "batch": batch, "T": cfg["T"]}, one)


SECTIONS = {
    "env": section_env,
    "smoke": section_smoke,
    "p1p2": section_p1p2,
    "precision": section_precision,
    "layouts": section_layouts,
    "memory": section_memory,
    "train": section_train,
    "sweep": section_sweep,
    "torch_compile": section_torch_compile,
}


def run(name: str, budget_s: float, platform: str, quick: bool) -> None:
    """Runs section ``name`` in this process with ``budget_s`` seconds."""
    budget = Budget(budget_s)
    cfg = plan_lib.get(quick)
    if cfg["fast_compile"]:
        import jax

        jax.config.update("jax_disable_most_optimizations", True)
    section_cfg = cfg.get(name)
    if name == "memory":
        section_cfg = dict(section_cfg, fast_compile=cfg["fast_compile"])
    SECTIONS[name](section_cfg, budget, platform)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        name, batch, T = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(memory_child(name, batch, T)))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--platform", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget-s", type=float, required=True)
    args = parser.parse_args()
    run(args.section, args.budget_s, args.platform, args.quick)


if __name__ == "__main__":
    main()
