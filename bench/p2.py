"""P2: jaxsnn's jitted scan vs an eager PyTorch IF simulation (outer loop over t), same weights."""

import os

import numpy as np

from bench import common


def run(networks: dict[str, int], steps, reps: int) -> list[dict]:
    """Times both simulators per network (``{name: batch}``) and T; records the speedup."""
    try:
        import torch

        from bench import torch_ref
    except ImportError as e:  # torch is an optional extra
        return [
            common.record(
                "P2",
                network=n,
                T=None,
                batch=b,
                backend="cpu",
                ratio=None,
                skipped=f"torch not importable: {e}",
            )
            for n, b in networks.items()
        ]
    from jaxsnn.simulate import simulate

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    records = []
    for name, batch in networks.items():
        b = common.build(name, batch)
        net = torch_ref.load_folded(torch_ref.Net(name, "if", bn=False), b["snn_params"]).eval()
        x_t = torch.from_numpy(np.asarray(b["images"]).transpose(0, 3, 1, 2).copy())
        for T in steps:
            args = (b["snn"], b["snn_params"], b["membrane"], b["images"])
            fns = {
                "jax": lambda args=args, T=T: simulate(*args, num_steps=T).cumulative[-1],
                "torch": lambda T=T: torch_ref.simulate_if(net, x_t, T),
            }
            times = common.time_interleaved(fns, reps)
            out_j = np.asarray(fns["jax"]())
            out_t = fns["torch"]().numpy()
            records.append(
                common.record(
                    "P2",
                    network=name,
                    T=T,
                    batch=batch,
                    variant="eager_torch",
                    ratio=times["torch"] / times["jax"],
                    jax_median_s=times["jax"],
                    torch_median_s=times["torch"],
                    reps=reps,
                    torch_threads=threads,
                    torch_version=torch.__version__,
                    max_abs_diff=float(np.max(np.abs(out_j - out_t))),
                    argmax_agreement=float(np.mean(out_j.argmax(-1) == out_t.argmax(-1))),
                )
            )
            print(
                f"P2 {name} T={T}: speedup jax/torch {records[-1]['ratio']:.2f} "
                f"(max|diff| {records[-1]['max_abs_diff']:.2e})",
                flush=True,
            )
    return records
