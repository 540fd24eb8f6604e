"""P3: QCFS ANN training throughput, jaxsnn's jitted train step vs a PyTorch train step.

Each XLA-flag setting runs in its own subprocess (XLA_FLAGS is read at start-up); inside it the
JAX and PyTorch steps are timed interleaved, so the recorded ratio (JAX images/s ÷ PyTorch
images/s) is a side-by-side figure and PyTorch is the common yardstick across settings.
"""

import argparse
import functools
import json
import os
import subprocess
import sys

FLAG_SETS = {
    "default": "",
    "no_thunk_runtime": "--xla_cpu_use_thunk_runtime=false",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "no_multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    "onednn": "--xla_cpu_use_onednn=true",
}


def _jax_step(name: str, batch: int, dtype: str):
    import jax
    import jax.numpy as jnp
    import optax

    from bench.common import INPUTS
    from jaxsnn.models import get_model
    from jaxsnn.train.state import create_train_state
    from jaxsnn.train.steps import train_step

    (h, w, c), classes = INPUTS[name]
    pdt = jnp.bfloat16 if dtype == "bf16" else jnp.float32
    model = get_model(name, num_classes=classes, param_dtype=pdt)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.05, momentum=0.9))
    state = create_train_state(model, tx, (batch, h, w, c), key=jax.random.key(0))
    step = jax.jit(functools.partial(train_step, model=model, tx=tx), donate_argnums=0)
    kx, ky = jax.random.split(jax.random.key(1))
    data = {
        "image": jax.random.uniform(kx, (batch, h, w, c), pdt),
        "label": jax.random.randint(ky, (batch,), 0, classes),
    }
    box = {"state": state}

    def run():
        box["state"], metrics = step(box["state"], data)
        return metrics["loss"]

    return run


def _torch_step(name: str, batch: int):
    import torch

    from bench import torch_ref
    from bench.common import INPUTS

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    (h, w, c), classes = INPUTS[name]
    net = torch_ref.Net(name, "qcfs", bn=True, num_classes=classes).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = torch.rand(batch, c, h, w), torch.randint(0, classes, (batch,))

    def run():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return run


def child(name: str, batch: int, reps: int, dtype: str) -> dict:
    """Times the two train steps interleaved in this process; returns medians."""
    from bench import common

    times = common.time_interleaved(
        {"jax": _jax_step(name, batch, dtype), "torch": _torch_step(name, batch)}, reps
    )
    return {"jax_median_s": times["jax"], "torch_median_s": times["torch"]}


def run(networks: dict[str, int], reps: int, flag_sets=("default",), dtypes=("f32",)) -> list:
    """Runs one subprocess per (network, flag set, dtype); returns P3 records."""
    from bench import common

    records = []
    for name, batch in networks.items():
        for flags in flag_sets:
            for dtype in dtypes:
                rec = common.record(
                    "P3",
                    network=name,
                    T=None,
                    batch=batch,
                    variant=flags,
                    xla_flags=FLAG_SETS[flags],
                    dtype=dtype,
                    reps=reps,
                )
                env = dict(os.environ, XLA_FLAGS=FLAG_SETS[flags])
                cmd = [
                    sys.executable,
                    "-m",
                    "bench.p3",
                    "--child",
                    name,
                    str(batch),
                    str(reps),
                    dtype,
                ]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    rec.update(ratio=None, skipped=proc.stderr.strip()[-400:])
                else:
                    out = json.loads(proc.stdout.strip().splitlines()[-1])
                    rec.update(
                        out,
                        ratio=out["torch_median_s"] / out["jax_median_s"],
                        jax_images_per_s=batch / out["jax_median_s"],
                        torch_images_per_s=batch / out["torch_median_s"],
                    )
                records.append(rec)
                print(
                    f"P3 {name} {flags} {dtype}: jax/torch images/s ratio {rec['ratio']}",
                    flush=True,
                )
    return records


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4, metavar=("NETWORK", "BATCH", "REPS", "DTYPE"))
    a = parser.parse_args()
    net, b, r, dt = a.child
    print(json.dumps(child(net, int(b), int(r), dt)))
