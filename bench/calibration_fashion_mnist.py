"""Collects the calibration-family conversions on real Fashion-MNIST (issue 5) into a table.

Reads every ``results.json`` under ``/tmp/fm_L4/*`` (QCFS SmallCNN, L=4) and ``/tmp/fm_relu/*``
(ReLU SmallCNN) whose method is one of the calibration family, and writes
``bench/calibration_fashion_mnist.json`` and ``bench/calibration_fashion_mnist.md``::

    python bench/calibration_fashion_mnist.py [--prefix b5_] [--commands /tmp/b5/commands.log]

Only run directories whose name starts with ``--prefix`` are tabulated (the benchmark's own
runs, whose commands are logged in ``--commands``); other calibration runs found are listed by
name only. Accuracy at t is ``snn_accuracy[t - 1]`` (calibration methods have no presim).
"""

import argparse
import datetime
import glob
import json
import os
import platform

NETS = {"QCFS L=4": "/tmp/fm_L4", "ReLU": "/tmp/fm_relu"}
METHODS = ("calib_max", "calib_mse", "calib_light", "calib_advanced", "burst", "ssc", "icsnn")
STEPS = (1, 2, 4, 8, 16, 32)
HERE = os.path.dirname(os.path.abspath(__file__))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical cores)" if names else cpu
    except OSError:
        pass
    return f"{platform.node()}: {platform.system()} {platform.release()}, {cpu}, JAX CPU backend"


def _commands(path: str) -> dict:
    """``{(net_dir, run_name): command}`` from the queue's log (``TIME NET NAME :: CMD``)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if " :: " not in line:
                continue
            head, cmd = line.rstrip("\n").split(" :: ", 1)
            _, net, name = head.split()[:3]
            out[(NETS["QCFS L=4"] if net == "L4" else NETS["ReLU"], name)] = cmd
    return out


def _failures(path: str) -> list:
    """Runs whose last logged exit status is non-zero, with the error line of their log."""
    status = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if " :: " not in line and len(parts) == 4 and parts[3].startswith("rc="):
                    status[(parts[1], parts[2])] = int(parts[3][3:])
    out = []
    for (net, name), rc in sorted(status.items()):
        if rc == 0:
            continue
        err = ""
        log = os.path.join(os.path.dirname(path), f"{net}_{name}.log")
        if os.path.exists(log):
            with open(log) as f:
                errs = [ln.strip() for ln in f if ln.lower().startswith("error")]
            err = errs[-1] if errs else ""
        out.append({"net": net, "run": name, "rc": rc, "error": err})
    return out


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
    return ", ".join(parts)


def _row(net: str, run_dir: str, res: dict, command: str | None) -> dict:
    acc = res["snn_accuracy"]
    fields = res.get("method_fields") or {}
    iat = res.get("iat")
    return {
        "net": net,
        "run": os.path.basename(run_dir),
        "method": res["method"],
        "ann_accuracy": res["ann_accuracy"],
        "snn_accuracy_at": {t: acc[t - 1] for t in STEPS if t <= len(acc)},
        "spikes_per_image": res["spikes_per_image"],
        "iat_accuracy": iat["accuracy"] if iat else None,
        "iat_mean_timesteps": iat["mean_timesteps"] if iat else None,
        "method_summary": _method_summary(fields),
        "method_fields": {
            k: v
            for k, v in fields.items()
            if not k.endswith(("_sensitivity", "_energy")) and k != "iat_thresholds"
        },
        "num_examples": res["num_examples"],
        "seconds": res.get("seconds"),
        "command": command,
    }


def collect(prefix: str, commands: dict) -> tuple[list, list]:
    rows, others = [], []
    for net, root in NETS.items():
        for path in sorted(glob.glob(os.path.join(root, "*", "results.json"))):
            run_dir = os.path.dirname(path)
            with open(path) as f:
                res = json.load(f)
            if res.get("method") == "qcfs" and os.path.basename(run_dir) == "snn_qcfs":
                rows.append(_row(net, run_dir, res, None) | {"reference": True})
                continue
            if res.get("method") not in METHODS:
                continue
            if not os.path.basename(run_dir).startswith(prefix):
                others.append(run_dir)
                continue
            rows.append(_row(net, run_dir, res, commands.get((root, os.path.basename(run_dir)))))
    order = {m: i for i, m in enumerate(("qcfs",) + METHODS)}
    rows.sort(key=lambda r: (list(NETS).index(r["net"]), order[r["method"]], r["run"]))
    return rows, others


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def markdown(rows: list, others: list, meta: dict) -> str:
    head = ["net", "run", "ANN %"] + [f"t={t}" for t in STEPS]
    head += ["spikes/img", "IAT % / mean T", "method fields"]
    lines = [
        "# Calibration family on real Fashion-MNIST (issue 5)",
        "",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']}  ",
        "Data: full Fashion-MNIST test set (10,000 images, IDX files); T = 32; SNN accuracy (%) "
        "after t counted steps from one T=32 run. Spikes/img = total spikes per image over "
        "the 32 steps (all layers).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        if r.get("reference"):
            r["run"] += " (reference: QCFS conversion, θ=λ, v(0)=θ/2)"
        iat = "—"
        if r["iat_accuracy"] is not None:
            iat = f"{_pct(r['iat_accuracy'])} / {r['iat_mean_timesteps']:.2f}"
        cells = [r["net"], r["run"], _pct(r["ann_accuracy"])]
        cells += [_pct(r["snn_accuracy_at"].get(t)) for t in STEPS]
        cells += [f"{r['spikes_per_image']:.0f}", iat, r["method_summary"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Commands", ""]
    for r in rows:
        default = "(reference run made earlier; default `convert.py` method qcfs)"
        lines.append(f"- `{r['command']}`" if r["command"] else f"- {default}")
    lines += meta.get("train_commands", [])
    if meta.get("failed"):
        lines += ["", "Failed runs (no results.json):", ""]
        lines += [f"- {f['net']} `{f['run']}` (rc={f['rc']}): {f['error']}" for f in meta["failed"]]
    if others:
        lines += ["", "Other calibration runs present but not tabulated (commands unknown): "]
        lines += [f"`{o}`" for o in others]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", default="b5_")
    parser.add_argument("--commands", default="/tmp/b5/commands.log")
    args = parser.parse_args()
    rows, others = collect(args.prefix, _commands(args.commands))
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "failed": _failures(args.commands),
        "train_commands": [
            "",
            "Training (ReLU net; the QCFS L=4 net in /tmp/fm_L4 was trained earlier with "
            "`configs/fashion_mnist_cnn.py:L=4`):",
            "",
            "- `python train.py --config configs/fashion_mnist_cnn.py --workdir /tmp/fm_relu "
            "--config.activation=relu`",
        ],
    }
    with open(os.path.join(HERE, "calibration_fashion_mnist.json"), "w") as f:
        json.dump({**meta, "rows": rows, "untabulated": others}, f, indent=1)
    md = markdown(rows, others, meta)
    with open(os.path.join(HERE, "calibration_fashion_mnist.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
