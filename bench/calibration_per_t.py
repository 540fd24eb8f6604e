"""Every conversion method on real Fashion-MNIST with one conversion **per T**.

Every method is calibrated and evaluated separately for each T ∈ {1, 2, 4, 8, 16, 32} (the CAL /
AdaFire neuron's θ/(2T) shift, the thresholds and the corrections are fitted for that T), on the
full test split, for a QCFS-trained and a ReLU-trained ``SmallCNN``::

    python -m bench.calibration_per_t [--qcfs-workdir /tmp/fm_L4] [--relu-workdir /tmp/fm_relu]
        [--steps 1,2,4,8,16,32] [--only calib_max,burst_M4] [--out bench/calibration_per_t.json]

The ANNs come from ``train.py`` (commands in the output). Each finished (net, variant, T) record
is appended to the JSON at once and skipped when the command is re-run (unless the variant's
options have changed since: then it is redone and replaced), so an interrupted run loses nothing.
Writes ``<out>.json``, ``<out>.md`` (accuracy at t = T, spikes/image, IAT) and ``<out>.png``
(accuracy vs T per method).
"""

import argparse
import copy
import datetime
import fcntl
import importlib
import json
import os
import platform
import shlex
import sys
import time

import numpy as np

STEPS = (1, 2, 4, 8, 16, 32)
CONFIG = "configs/fashion_mnist_cnn.py"
NETS = {
    "QCFS L=4": {"arg": "L=4", "overrides": {}, "workdir_flag": "qcfs_workdir"},
    "ReLU": {"arg": "", "overrides": {"activation": "relu"}, "workdir_flag": "relu_workdir"},
}
TRAIN_COMMANDS = {
    "QCFS L=4": "python train.py --config configs/fashion_mnist_cnn.py:L=4 --workdir {workdir}",
    "ReLU": "python train.py --config configs/fashion_mnist_cnn.py --workdir {workdir} "
    "--config.activation=relu",
}
# name -> (label, config.convert overrides, nets it applies to (None: all)).
VARIANTS = {
    "qcfs": (
        "QCFS conversion (θ = λ, v(0) = θ/2), no calibration",
        {"method": "qcfs"},
        ("QCFS L=4",),
    ),
    "srp": ("SRP (τ = 4 pre-simulation steps; latency τ + t)", {"method": "srp"}, ("QCFS L=4",)),
    "cos": ("COS (τ = 4 pre-simulation steps; latency τ + t)", {"method": "cos"}, ("QCFS L=4",)),
    "calib_max": ("max thresholds", {"method": "calib_max"}, None),
    "calib_mse": ("MSE thresholds", {"method": "calib_mse"}, None),
    "calib_light": ("MSE + light (bias) calibration", {"method": "calib_light"}, None),
    "calib_advanced": (
        "MSE + advanced (potential) calibration",
        {"method": "calib_advanced"},
        None,
    ),
    "calib_advanced_w": (
        "MSE + weight calibration (5000 Adam it., neuron rounding) + potential calibration",
        {"method": "calib_advanced", "weight_calib_iters": 5000, "weight_calib_rounding": "neuron"},
        None,
    ),
    "burst_M2": (
        "burst M = 2 (no search) + light calibration; + IAT",
        {"method": "burst", "max_spikes": 2, "search": False, "iat": True},
        None,
    ),
    "burst_M4": (
        "burst, search M₀ = 8 → M_d = 4 (budget 0.95×) + light calibration",
        {"method": "burst", "max_spikes": 4, "search": True},
        None,
    ),
    "ssc_0.7": (
        "SSC: burst search (M_d = 4) + threshold ratios under 0.7× spike budget",
        {"method": "ssc", "max_spikes": 4, "ssc_budget": "spikes", "ssc_spike_ratio": 0.7},
        None,
    ),
    "icsnn": (
        "IC-SNN: data-driven v(0) (A2) + coding compensation (A3a)",
        {"method": "icsnn"},
        None,
    ),
}


def _machine() -> str:
    from jaxsnn.provenance import machine

    m = machine()
    return f"{platform.node()}: {m['cpu']} ({m['cpu_count']} cores), JAX {m['backend']} backend"


def _method_summary(fields: dict) -> str:
    parts = []
    if fields.get("threshold_mode"):
        parts.append(f"θ={fields['threshold_mode']}")
    caps = fields.get("max_spikes_per_layer")
    if caps:
        parts.append("M=" + "/".join(str(v) for v in caps.values()))
    if fields.get("search"):
        parts.append("search")
    if fields.get("ssc_ratios"):
        parts.append("SSC r=" + "/".join(f"{v:g}" for v in fields["ssc_ratios"].values()))
    for key in ("membrane_init", "icsnn_init"):
        if isinstance(fields.get(key), str):
            parts.append(f"{key}={fields[key]}")
    if fields.get("presim"):
        parts.append(f"τ={fields['presim']}")
    return ", ".join(parts)


def _load_config(net: str):
    module = importlib.import_module(CONFIG[:-3].replace("/", "."))
    config = module.get_config(NETS[net]["arg"] or None)
    for key, value in NETS[net]["overrides"].items():
        config[key] = value
    config.convert.progress = False
    return config


def _key(rec: dict) -> tuple:
    return rec["net"], rec["variant"], rec["T"]


def _read(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["records"]


def _write(path: str, records: list, meta: dict) -> list:
    """Merges ``records`` into the file (under a lock: several runs may share it); returns all."""
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {_key(r): r for r in _read(path)} | {_key(r): r for r in records}
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({**meta, "records": list(merged.values())}, f, indent=1)
        os.replace(tmp, path)
    return list(merged.values())


def run_one(run, variant: str, T: int) -> dict:
    """Converts with ``variant`` for ``T`` and evaluates on the whole test split; one record.

    ``run`` is the prepared ANN (:func:`jaxsnn.cli.convert.prepare`); conversion and evaluation
    are exactly what ``convert.py`` does.
    """
    from jaxsnn import methods
    from jaxsnn.cli import convert as engine

    cfg = copy.deepcopy(run.config)
    cfg.convert.T = T
    for key, value in VARIANTS[variant][1].items():
        cfg.convert[key] = value
    opts = engine.method_options(cfg.convert)
    method = cfg.convert.method
    start = time.time()
    needs = methods.needs_data(method, opts)
    batches = engine.calibration_batches(cfg, opts, run.shard) if needs else []
    conv = methods.convert(method, run.ann_model, run.variables, batches, opts)
    calibrated = time.time()
    s = engine.evaluate_run(run._replace(config=cfg), conv, T, f"{variant} T={T}")
    fields = {k: v for k, v in conv.fields.items() if not k.endswith(("_sensitivity", "_energy"))}
    return {
        "variant": variant,
        "T": T,
        "method": method,
        "overrides": dict(VARIANTS[variant][1]),
        "method_options": json.loads(json.dumps(opts)),
        "ann_accuracy": s["ann_accuracy"],
        "accuracy_at_T": s["snn_accuracy"][-1],
        "snn_accuracy": s["snn_accuracy"],
        "latency_at_T": conv.protocol.presim + T,
        "spikes_per_image": sum(v["spikes_per_image"] for v in s["layers"].values()),
        "energy_mj": s["energy"]["snn_energy_mj"],
        "iat": s.get("iat"),
        "compensated_accuracy": s.get("compensated_accuracy"),
        "method_fields": fields,
        "method_summary": _method_summary(fields),
        "ann_sha256": run.source.get("sha256"),
        "num_examples": s["num_examples"],
        "calibration_seconds": calibrated - start,
        "evaluation_seconds": time.time() - calibrated,
    }


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def markdown(records: list, meta: dict, steps) -> str:
    by = {_key(r): r for r in records}
    head = ["method"] + [f"T={t}" for t in steps]
    lines = [
        "# Calibration family on real Fashion-MNIST, one calibration per T (issue 5)",
        "",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']}  ",
        "Data: full Fashion-MNIST test split (10 000 images); calibration on 7 training batches "
        "of 128 (first batch for the sequential corrections and sensitivities). Each cell is a "
        "separate calibration for that T, read at t = T. Commands:",
        "",
    ]
    lines += [f"- `{c}`" for c in sorted({r.get("command") or meta["command"] for r in records})]
    for net in NETS:
        rows = [v for v in VARIANTS if any(k[:2] == (net, v) for k in by)]
        if not rows:
            continue
        ann = next(r["ann_accuracy"] for k, r in by.items() if k[0] == net)
        lines += ["", f"## {net} SmallCNN (ANN {_pct(ann)} %)", "", "SNN accuracy (%) at t = T:"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v in rows:
            cells = [f"{v}: {VARIANTS[v][0]}"]
            cells += [
                _pct(by[(net, v, t)]["accuracy_at_T"]) if (net, v, t) in by else "" for t in steps
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Spikes per image (all layers, T steps):", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v in rows:
            cells = [v]
            cells += [
                f"{by[(net, v, t)]['spikes_per_image']:.0f}" if (net, v, t) in by else ""
                for t in steps
            ]
            lines.append("| " + " | ".join(cells) + " |")
        iat_rows = [(v, t) for v in rows for t in steps if (by.get((net, v, t)) or {}).get("iat")]
        if iat_rows:
            lines += ["", "IAT (early exit, thresholds fitted on the calibration batches):", ""]
            lines += ["| method | T | accuracy at T | IAT accuracy | IAT mean timesteps |"]
            lines += ["|---|---|---|---|---|"]
            for v, t in iat_rows:
                r = by[(net, v, t)]
                lines.append(
                    f"| {v} | {t} | {_pct(r['accuracy_at_T'])} | {_pct(r['iat']['accuracy'])} | "
                    f"{r['iat']['mean_timesteps']:.2f} |"
                )
        comp_rows = [
            (v, t)
            for v in rows
            for t in steps
            if (by.get((net, v, t)) or {}).get("compensated_accuracy") is not None
        ]
        if comp_rows:
            lines += ["", "Coding compensation (IC-SNN A3a), final-step readout:", ""]
            lines += ["| method | T | accuracy at T | compensated accuracy at T |"]
            lines += ["|---|---|---|---|"]
            for v, t in comp_rows:
                r = by[(net, v, t)]
                lines.append(
                    f"| {v} | {t} | {_pct(r['accuracy_at_T'])} | "
                    f"{_pct(r['compensated_accuracy'])} |"
                )
        lines += ["", f"Method fields (T = {max(steps)} run):", ""]
        for v in rows:
            r = by.get((net, v, max(steps)))
            if r and r["method_summary"]:
                lines.append(f"- {v}: {r['method_summary']}")
    lines += ["", "## ANN training commands", ""]
    lines += [f"- {net}: `{cmd}`" for net, cmd in meta["train_commands"].items()]
    return "\n".join(lines) + "\n"


def plot(records: list, path: str, steps) -> None:
    """Accuracy vs T per method: one column per net, full range on top, zoom near the ANN below.

    Each method keeps its colour and marker in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xhp"
    style = {
        v: {"color": colours[i % len(colours)], "marker": markers[i % len(markers)]}
        for i, v in enumerate(VARIANTS)
    }
    fig, axes = plt.subplots(2, len(NETS), figsize=(6 * len(NETS), 8), sharex=True)
    axes = np.asarray(axes).reshape(2, len(NETS))
    for col, net in enumerate(NETS):
        ann = [r["ann_accuracy"] for r in records if r["net"] == net]
        for row, ax in enumerate(axes[:, col]):
            for v in VARIANTS:
                pts = sorted(
                    (r["T"], r["accuracy_at_T"]) for r in records if _key(r)[:2] == (net, v)
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), label=v, ms=5, **style[v])
            if ann:
                ax.axhline(ann[0], color="k", ls="--", lw=1, label="ANN")
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(steps), [str(t) for t in steps])
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_ylim(0, 1)
                ax.set_title(f"{net} SmallCNN, Fashion-MNIST")
            else:
                top = ann[0] if ann else 1.0
                ax.set_ylim(top - 0.04, top + 0.005)
                ax.set_title("zoom: within 4 pt of the ANN", fontsize=9)
                ax.set_xlabel("T (calibrated for T, read at t = T)")
        axes[0, col].legend(fontsize=7, loc="lower right")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qcfs-workdir", default="/tmp/fm_L4")
    parser.add_argument("--relu-workdir", default="/tmp/fm_relu")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)))
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated nets")
    parser.add_argument("--out", default="bench/calibration_per_t")
    args = parser.parse_args()
    steps = tuple(int(t) for t in args.steps.split(","))
    variants = [v for v in (args.only.split(",") if args.only else VARIANTS)]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"error: --only: unknown variants {unknown}; known: {sorted(VARIANTS)}")

    from jaxsnn.cli import convert as engine

    path = args.out + ".json"
    records = _read(path)
    # A record counts as done only if it was made with the variant's current options, from the
    # ANN checkpoint now in that workdir (same content hash).
    hashes = {}
    workdirs = {net: getattr(args, NETS[net]["workdir_flag"]) for net in NETS}
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "command": shlex.join(["python", "-m", "bench.calibration_per_t", *sys.argv[1:]]),
        "train_commands": {n: TRAIN_COMMANDS[n].format(workdir=w) for n, w in workdirs.items()},
    }
    for net in args.nets.split(","):
        run = engine.prepare(_load_config(net), workdirs[net])
        hashes[net] = run.source.get("sha256")
        done = {
            _key(r)
            for r in records
            if r["variant"] in VARIANTS
            and r.get("overrides") == VARIANTS[r["variant"]][1]
            and r.get("ann_sha256") == hashes[net]
        }
        for v in variants:
            nets = VARIANTS[v][2]
            if nets is not None and net not in nets:
                continue
            for T in steps:
                if (net, v, T) in done:
                    continue
                rec = {"net": net, "workdir": workdirs[net], "command": meta["command"]} | run_one(
                    run, v, T
                )
                records.append(rec)
                _write(path, records, meta)
                print(
                    f"{net:9s} {v:17s} T={T:<3d} acc {100 * rec['accuracy_at_T']:6.2f}  "
                    f"spikes {rec['spikes_per_image']:9.0f}  "
                    f"calib {rec['calibration_seconds']:5.1f}s  "
                    f"eval {rec['evaluation_seconds']:5.1f}s",
                    flush=True,
                )
    records = _write(path, records, meta)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(records, meta, steps))
    plot(records, args.out + ".png", steps)
    print(f"wrote {path}, {args.out}.md, {args.out}.png ({len(records)} records)")


if __name__ == "__main__":
    main()
