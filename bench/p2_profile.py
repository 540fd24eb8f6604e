"""Where the P2 time goes on CPU: a network's convolutions one by one, XLA:CPU vs PyTorch (oneDNN).

``python -m bench.p2_profile [--network N] [--batch 16] [--reps 30] [--threads N] [--flags F,...]``
times every distinct convolution shape of the network (ResNet-20 by default; CIFAR, 32×32) as one
jitted ``lax.conv_general_dilated`` in jaxsnn's layout (NHWC × HWIO, symmetric padding) next to
``torch.nn.functional.conv2d`` on the same numbers (NCHW, and NHWC via ``channels_last``),
interleaved round by round, equal thread counts.
Each XLA flag set (``bench.p2_profile.FLAG_SETS``) runs in its own subprocess because XLA reads
``XLA_FLAGS`` once at start-up. Writes ``bench/p2_profile.json`` and prints one line per shape:
the per-call medians and ``torch ÷ jax`` (> 1: JAX faster), weighted by how often the shape occurs
in one forward pass.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

# (input H=W, C_in, C_out, kernel, stride, occurrences in one ResNet-20 forward).
RESNET20_CONVS = (
    (32, 3, 16, 3, 1, 1),
    (32, 16, 16, 3, 1, 6),
    (32, 16, 32, 3, 2, 1),
    (32, 16, 32, 1, 2, 1),
    (16, 32, 32, 3, 1, 5),
    (16, 32, 64, 3, 2, 1),
    (16, 32, 64, 1, 2, 1),
    (8, 64, 64, 3, 1, 5),
)
VGG16_CONVS = (
    (32, 3, 64, 3, 1, 1),
    (32, 64, 64, 3, 1, 1),
    (16, 64, 128, 3, 1, 1),
    (16, 128, 128, 3, 1, 1),
    (8, 128, 256, 3, 1, 1),
    (8, 256, 256, 3, 1, 2),
    (4, 256, 512, 3, 1, 1),
    (4, 512, 512, 3, 1, 2),
    (2, 512, 512, 3, 1, 3),
)
SMALLCNN_CONVS = ((28, 1, 32, 3, 1, 1), (14, 32, 64, 3, 1, 1))
CONVS = {"ResNet20": RESNET20_CONVS, "VGG16": VGG16_CONVS, "SmallCNN": SMALLCNN_CONVS}
FLAG_SETS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": (
        "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true"
    ),
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "no_thunk_runtime": "--xla_cpu_use_thunk_runtime=false",
    "no_multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
}


def child(batch: int, reps: int, network: str = "ResNet20") -> list[dict]:
    """Times every conv shape in this process (XLA_FLAGS as inherited)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from bench import common

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    rows = []
    rng = np.random.default_rng(0)
    for hw, cin, cout, k, s, n in CONVS[network]:
        x = rng.random((batch, hw, hw, cin), np.float32)
        w = rng.standard_normal((k, k, cin, cout), np.float32) / np.float32(np.sqrt(k * k * cin))
        pad = ((k // 2, k // 2), (k // 2, k // 2))

        @jax.jit
        def conv(x, w, s=s, pad=pad):
            return jax.lax.conv_general_dilated(
                x, w, (s, s), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        xj, wj = jnp.asarray(x), jnp.asarray(w)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
        xt_cl = xt.contiguous(memory_format=torch.channels_last)
        wt_cl = wt.contiguous(memory_format=torch.channels_last)

        def tconv(xt=xt, wt=wt, s=s, k=k):
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, stride=s, padding=k // 2)

        def tconv_cl(xt=xt_cl, wt=wt_cl, s=s, k=k):
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, stride=s, padding=k // 2)

        fns = {
            "jax": lambda conv=conv, xj=xj, wj=wj: conv(xj, wj),
            "torch": tconv,
            "torch_cl": tconv_cl,
        }
        wall, _ = common.time_interleaved_samples(fns, reps)
        ref = tconv().numpy().transpose(0, 2, 3, 1)
        rows.append(
            {
                "shape": f"{hw}x{hw}x{cin}->{cout} k{k} s{s}",
                "count": n,
                "batch": batch,
                "gflop": 2 * batch * (hw // s) ** 2 * cout * cin * k * k / 1e9,
                "max_abs_diff": float(np.max(np.abs(np.asarray(fns["jax"]()) - ref))),
                **{f"{k_}_median_s": statistics.median(v) for k_, v in wall.items()},
                "torch_over_jax": common.ratio_summary(wall["torch"], wall["jax"]),
                "torch_cl_over_jax": common.ratio_summary(wall["torch_cl"], wall["jax"]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="ResNet20", choices=sorted(CONVS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--flags", default="default,onednn,xnnpack")
    parser.add_argument(
        "--threads", type=int, default=0, help="pin to this many cores with taskset (0: all)"
    )
    parser.add_argument("--out", default="bench/p2_profile.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.batch, args.reps, args.network)))
        return
    from bench import common

    out = []
    for name in args.flags.split(","):
        env = dict(os.environ, XLA_FLAGS=FLAG_SETS[name])
        cmd = [sys.executable, "-m", "bench.p2_profile", "--child", "--batch", str(args.batch)]
        if args.threads:
            cores = sorted(os.sched_getaffinity(0))[: args.threads]
            cmd = ["taskset", "-c", ",".join(map(str, cores))] + cmd
        cmd += ["--reps", str(args.reps), "--network", args.network]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed: {proc.stderr.strip()[-300:]}", flush=True)
            out.append(common.record("P2_conv", variant=name, skipped=proc.stderr[-400:]))
            continue
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        jax_total = sum(r["jax_median_s"] * r["count"] for r in rows)
        torch_total = sum(r["torch_median_s"] * r["count"] for r in rows)
        cl_total = sum(r["torch_cl_median_s"] * r["count"] for r in rows)
        print(
            f"[{name}] {args.network} B={args.batch} one forward's convs: "
            f"jax {jax_total * 1e3:.2f} ms, "
            f"torch {torch_total * 1e3:.2f} ms, torch channels_last {cl_total * 1e3:.2f} ms, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for r in rows:
            print(
                f"  {r['shape']:<22} x{r['count']} jax {r['jax_median_s'] * 1e6:8.0f} us  "
                f"torch {r['torch_median_s'] * 1e6:8.0f} us  cl {r['torch_cl_median_s'] * 1e6:8.0f}"
                f" us  torch/jax {r['torch_over_jax']['median']:.2f} "
                f"({r['torch_over_jax']['min']:.2f}-{r['torch_over_jax']['max']:.2f}) "
                f"|d| {r['max_abs_diff']:.1e}",
                flush=True,
            )
        out.append(
            common.record(
                "P2_conv",
                network=args.network,
                batch=args.batch,
                variant=name,
                xla_flags=FLAG_SETS[name],
                reps=args.reps,
                threads=args.threads or len(os.sched_getaffinity(0)),
                load_avg=os.getloadavg()[0],
                jax_convs_s=jax_total,
                torch_convs_s=torch_total,
                torch_cl_convs_s=cl_total,
                rows=rows,
            )
        )
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
