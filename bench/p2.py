"""P2: jaxsnn's simulation vs the same IF network in eager PyTorch (outer loop over t), on CPU.

Same computation on both sides: the BN-folded weights of one converted network copied into the
PyTorch twin (``bench.torch_ref``), the same images, T and batch, float32, and the same number of
threads (``threads``: all cores of this process's affinity, or fewer — a thread count below that
runs in a child process pinned with ``taskset`` to that many cores, so JAX's pools shrink too).
jaxsnn runs as the library evaluates (``bench.common.compile_simulation``: ``unroll=2`` and
region-based copy insertion). The outputs are compared (max |Δ| of the final cumulative logits,
argmax agreement) and the timings are the medians of ``reps`` interleaved rounds, with the
spread of the per-round ratios and the load average before and after.

On a shared machine PyTorch's OpenMP pool suffers more than XLA's from other jobs taking the
cores (a parallel region waits for its slowest thread), so a P2 taken under load flatters
jaxsnn: the records carry the load, and README quotes runs at low load only.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from bench import common, convfix


def _skipped(networks, why: str) -> list[dict]:
    return [
        common.record("P2", network=n, T=None, batch=b, ratio=None, skipped=why)
        for n, bs in networks.items()
        for b in (bs if isinstance(bs, (tuple, list)) else (bs,))
    ]


def measure(networks: dict, steps, reps: int, proposal_for=("VGG16",)) -> list[dict]:
    """P2 records in this process for ``{name: batch or (batches)}`` × ``steps``.

    For the networks in ``proposal_for`` jaxsnn is also timed with XLA's own convolutions
    (``bench.convfix.xla_conv_only``: without the library's small-input conv as one dot).
    """
    try:
        import torch

        from bench import torch_ref
    except ImportError as e:  # torch is an optional extra
        return _skipped(networks, f"torch not importable: {e}")
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    records = []
    for name, batches in networks.items():
        for batch in batches if isinstance(batches, (tuple, list)) else (batches,):
            b = common.build(name, batch)
            net = torch_ref.load_folded(torch_ref.Net(name, "if", bn=False), b["snn_params"])
            net = net.eval()
            x_t = torch.from_numpy(np.asarray(b["images"]).transpose(0, 3, 1, 2).copy())
            for T in steps:
                run_jax, _ = common.compile_simulation(b, T)
                fns = {
                    "jax": lambda run_jax=run_jax: run_jax().cumulative[-1],
                    "torch": lambda T=T: torch_ref.simulate_if(net, x_t, T),
                }
                if name in proposal_for:
                    with convfix.xla_conv_only():
                        run_xla, _ = common.compile_simulation(b, T)
                    fns["jax_xla_conv"] = lambda run_xla=run_xla: run_xla().cumulative[-1]
                load_before = common.load_avg()
                wall, cpu = common.time_interleaved_samples(fns, reps)
                out_t = fns["torch"]().numpy()
                load_after = common.load_avg()
                for jax_name in [k for k in fns if k.startswith("jax")]:
                    rec = _record(
                        name, T, batch, threads, wall, cpu, jax_name, fns[jax_name](), out_t, reps
                    )
                    rec.update(
                        load_before=load_before,
                        load_after=load_after,
                        torch_version=torch.__version__,
                    )
                    records.append(rec)
                    print(
                        f"P2 {name} B={batch} T={T} threads={threads} {rec['jax_settings']}: "
                        f"torch/jax {rec['ratio']:.2f} (rounds {rec['ratio_min']:.2f}-"
                        f"{rec['ratio_max']:.2f}, IQR {rec['ratio_q25']:.2f}-"
                        f"{rec['ratio_q75']:.2f}) max|d| {rec['max_abs_diff']:.1e} load "
                        f"{load_before:.1f}->{load_after:.1f}",
                        flush=True,
                    )
    return records


def _record(name, T, batch, threads, wall, cpu, jax_name, out_j, out_t, reps) -> dict:
    """One P2 record: torch ÷ the jax variant ``jax_name``, with spread and agreement."""
    out_j = np.asarray(out_j)
    s = common.ratio_summary(wall["torch"], wall[jax_name])
    med = {k: float(np.median(v)) for k, v in wall.items()}
    settings = "unroll=2 + backend_compiler_options (library evaluation)"
    if jax_name == "jax_xla_conv":
        settings += ", XLA's convs only (without jaxsnn.ops.conv's small-input path)"
    return common.record(
        "P2",
        network=name,
        T=T,
        batch=batch,
        variant=f"eager_torch, {threads} thread{'s' * (threads > 1)}"
        + (", jaxsnn with XLA convs" if jax_name == "jax_xla_conv" else ""),
        threads=threads,
        ratio=med["torch"] / med[jax_name],
        ratio_round_median=s["median"],
        ratio_min=s["min"],
        ratio_max=s["max"],
        ratio_q25=s["q25"],
        ratio_q75=s["q75"],
        cpu_ratio=common.ratio_summary(cpu["torch"], cpu[jax_name])["median"],
        jax_median_s=med[jax_name],
        torch_median_s=med["torch"],
        reps=reps,
        jax_settings=settings,
        max_abs_diff=float(np.max(np.abs(out_j - out_t))),
        argmax_agreement=float(np.mean(out_j.argmax(-1) == out_t.argmax(-1))),
    )


def run(networks: dict, steps, reps: int, threads=(None,)) -> list[dict]:
    """P2 records for every thread count in ``threads`` (None: all cores, in this process)."""
    records = []
    have = len(os.sched_getaffinity(0))
    for n in threads:
        if n is None or n >= have:
            records += measure(networks, steps, reps)
            continue
        cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:n])
        arg = json.dumps({"networks": networks, "steps": list(steps), "reps": reps})
        cmd = ["taskset", "-c", cores, sys.executable, "-m", "bench.p2", "--child", arg]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            records += _skipped(networks, f"{n}-thread child failed: {proc.stderr[-300:]}")
            continue
        print(proc.stdout.strip().rsplit("\n", 1)[0], flush=True)
        records += json.loads(proc.stdout.strip().splitlines()[-1])
    return records


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", required=True, help=argparse.SUPPRESS)
    cfg = json.loads(parser.parse_args().child)
    nets = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["networks"].items()}
    recs = measure(nets, cfg["steps"], cfg["reps"])
    print(json.dumps(recs))
