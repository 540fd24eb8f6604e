"""P2 with every core as its own XLA device: the batch split over one CPU device per core.

``python -m bench.p2_devices [--networks SmallCNN,ResNet20,VGG16] [--batch 16] [--T 4]
[--rounds 5] [--calls 7]`` → ``bench/p2_devices.{json,md}``.

XLA:CPU runs one convolution on all cores of its pool, but at these small shapes it hardly gains
from the second core (``bench.p2_profile --threads 2``), while PyTorch's oneDNN does. Data
parallelism sidesteps that: with ``--xla_force_host_platform_device_count=N`` the host is N
devices, and the library's usual ``NamedSharding`` over the batch (what ``convert.py`` does with
every device it sees) runs one slice per core. This module times three configurations, each in its
own process because XLA reads its flags once at start-up:

- ``torch``: the eager PyTorch twin (``bench.torch_ref``) with ``torch.set_num_threads(N)``;
- ``jax_1device``: the library's simulation on the default single CPU device (= ``bench.p2``);
- ``jax_Ndevices``: the same simulation with the batch sharded over N host devices.

A round runs the three processes one after the other; each reports the median of ``calls`` timed
calls after one warm-up, so the per-round ratios are taken minutes apart at most, and the spread
over rounds is reported. Every process saves its final cumulative logits: the N-device result is
checked bit for bit against the single-device one, and both against PyTorch (max |Δ|, argmax).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

MODES = ("torch", "jax_1device", "jax_Ndevices")


def _child(name: str, batch: int, T: int, mode: str, calls: int, out: str) -> None:
    """Times one configuration in this process; prints its median seconds, saves its logits."""
    import jax

    from bench import common

    b = common.build(name, batch)
    if mode == "torch":
        import torch

        from bench import torch_ref

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        net = torch_ref.load_folded(torch_ref.Net(name, "if", bn=False), b["snn_params"]).eval()
        x_t = torch.from_numpy(np.asarray(b["images"]).transpose(0, 3, 1, 2).copy())

        def fn():
            return torch_ref.simulate_if(net, x_t, T)

    elif mode == "jax_1device":
        run, _ = common.compile_simulation(b, T)

        def fn():
            return run().cumulative[-1]

    else:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        from jaxsnn.simulate import simulate
        from jaxsnn.simulate.core import backend_compiler_options

        mesh = Mesh(np.array(jax.devices()), ("data",))
        rows = NamedSharding(mesh, PartitionSpec("data"))
        params = jax.device_put(b["snn_params"], NamedSharding(mesh, PartitionSpec()))
        membrane = jax.device_put(b["membrane"], rows)
        images = jax.device_put(b["images"], rows)
        compiled = simulate.lower(b["snn"], params, membrane, images, num_steps=T, unroll=2)
        compiled = compiled.compile(compiler_options=dict(backend_compiler_options()) or None)

        def fn():
            return compiled(params, membrane, images).cumulative[-1]

    wall, _ = common.time_interleaved_samples({mode: fn}, calls)
    np.save(out, np.asarray(fn()))
    print(json.dumps({"median_s": statistics.median(wall[mode]), "devices": jax.device_count()}))


def _spawn(name, batch, T, mode, calls, out) -> dict:
    env = dict(os.environ)
    if mode == "jax_Ndevices":
        n = len(os.sched_getaffinity(0))
        flag = f"--xla_force_host_platform_device_count={n}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    arg = json.dumps([name, batch, T, mode, calls, out])
    cmd = [sys.executable, "-m", "bench.p2_devices", "--child", arg]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(networks, batch: int = 16, T: int = 4, rounds: int = 5, calls: int = 7) -> list[dict]:
    """One record per network and jax configuration: torch ÷ jax over ``rounds`` rounds."""
    from bench import common

    records = []
    threads = len(os.sched_getaffinity(0))
    for name in networks:
        times = {m: [] for m in MODES}
        loads = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(rounds):
                loads.append(common.load_avg())
                for mode in MODES:
                    got = _spawn(name, batch, T, mode, calls, os.path.join(tmp, f"{mode}.npy"))
                    times[mode].append(got["median_s"])
            outs = {m: np.load(os.path.join(tmp, f"{m}.npy")) for m in MODES}
        for mode in MODES[1:]:
            spread = common.ratio_summary(times["torch"], times[mode])
            diff = float(np.abs(outs[mode] - outs["torch"]).max())
            agree = float((outs[mode].argmax(-1) == outs["torch"].argmax(-1)).mean())
            rec = common.record(
                "P2",
                network=name,
                T=T,
                batch=batch,
                threads=threads,
                variant=f"eager_torch, {threads} threads, {mode.replace('N', str(threads))}",
                ratio=statistics.median(times["torch"]) / statistics.median(times[mode]),
                ratio_min=spread["min"],
                ratio_max=spread["max"],
                exact=f"{diff:.3g} / {agree:.3f}",
                equals_1device=bool(np.array_equal(outs[mode], outs["jax_1device"])),
                jax_median_s=statistics.median(times[mode]),
                torch_median_s=statistics.median(times["torch"]),
                reps=rounds,
                load=statistics.median(loads),
            )
            records.append(rec)
            print(
                f"P2 {name} B={batch} T={T} {rec['variant']}: torch/jax {rec['ratio']:.2f} "
                f"(rounds {spread['min']:.2f}-{spread['max']:.2f}) max|d| {diff:.1e} "
                f"equals 1 device: {rec['equals_1device']} load {rec['load']:.1f}",
                flush=True,
            )
    return records


def markdown(records: list[dict]) -> str:
    """The records as a Markdown table with the machine line."""
    if not records:
        return ""
    r0 = records[0]
    lines = [
        "# P2 with one XLA CPU device per core",
        "",
        f"Machine: {r0['nproc']} CPUs, {r0['cpu_model']}; jax {r0['jax_version']}; {r0['date']}.",
        "ratio = eager PyTorch time ÷ jaxsnn time (> 1: jaxsnn faster), median over rounds.",
        "",
        "| network | T | batch | variant | ratio | rounds (min–max) "
        "| max \\|Δ\\| / argmax vs torch | = 1 device | jax s | torch s | rounds | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['network']} | {r['T']} | {r['batch']} | {r['variant']} | {r['ratio']:.3g} | "
            f"{r['ratio_min']:.3f}–{r['ratio_max']:.3f} | {r['exact']} | "
            f"{'yes' if r['equals_1device'] else 'no'} | {r['jax_median_s']:.4g} | "
            f"{r['torch_median_s']:.4g} | {r['reps']} | {r['load']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--networks", default="SmallCNN,ResNet20,VGG16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--out", default="bench/p2_devices.json")
    args = parser.parse_args()
    if args.child:
        _child(*json.loads(args.child))
    else:
        recs = run(args.networks.split(","), args.batch, args.T, args.rounds, args.calls)
        with open(args.out, "w") as f:
            json.dump(recs, f, indent=1)
        with open(args.out.removesuffix(".json") + ".md", "w") as f:
            f.write(markdown(recs))
