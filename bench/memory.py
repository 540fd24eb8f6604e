"""Peak host memory (VmHWM) of an SNN evaluation, measured in a fresh subprocess per T."""

import argparse
import json
import subprocess
import sys


def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def child(name: str, batch: int, steps: int) -> dict:
    """Builds the net, records VmHWM, runs the simulation, records VmHWM again."""
    import jax

    from bench import common
    from jaxsnn.simulate import simulate

    b = common.build(name, batch)
    jax.block_until_ready(b["snn_params"])
    before = _vm_hwm_kib()
    out = simulate(b["snn"], b["snn_params"], b["membrane"], b["images"], num_steps=steps)
    jax.block_until_ready(out)
    return {"hwm_before_sim_kib": before, "hwm_kib": _vm_hwm_kib()}


def run(name: str, batch: int, steps=(8, 64)) -> list:
    """One subprocess per T; records both peaks and their ratio (largest T ÷ smallest T)."""
    from bench import common

    peaks = {}
    for t in steps:
        cmd = [sys.executable, "-m", "bench.memory", name, str(batch), str(t)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return [
                common.record(
                    "memory",
                    network=name,
                    T=t,
                    batch=batch,
                    ratio=None,
                    skipped=proc.stderr.strip()[-400:],
                )
            ]
        peaks[t] = json.loads(proc.stdout.strip().splitlines()[-1])
    lo, hi = min(steps), max(steps)
    rec = common.record(
        "memory",
        network=name,
        T=hi,
        batch=batch,
        variant=f"T{hi}_vs_T{lo}",
        ratio=peaks[hi]["hwm_kib"] / peaks[lo]["hwm_kib"],
        peak_rss_mib={str(t): p["hwm_kib"] / 1024 for t, p in peaks.items()},
        peak_rss_before_sim_mib={str(t): p["hwm_before_sim_kib"] / 1024 for t, p in peaks.items()},
        reps=1,
    )
    print(
        f"memory {name} B={batch}: peak RSS T={hi} / T={lo} = {rec['ratio']:.3f} "
        f"{rec['peak_rss_mib']}",
        flush=True,
    )
    return [rec]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("network")
    parser.add_argument("batch", type=int)
    parser.add_argument("steps", type=int)
    a = parser.parse_args()
    print(json.dumps(child(a.network, a.batch, a.steps)))
