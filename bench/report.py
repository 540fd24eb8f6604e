"""Writes bench/results.md (a Markdown table) and bench/p1.png from the result records."""

import json
import os

COLUMNS = (
    "benchmark",
    "network",
    "T",
    "batch",
    "variant",
    "ratio",
    "spread",
    "cpu",
    "exact",
    "temp_MiB",
    "a_s",
    "b_s",
    "reps",
    "load",
)
MEANING = {
    "P1": "SNN time ÷ (T × ANN time) from the medians; spread = min–max of the per-round "
    "(interleaved) ratios; cpu = the same ratio in process CPU time (median over rounds); "
    "exact = output equals plain `simulate` bit for bit (bf16: max |Δ| of the cumulative "
    "logits / final-T argmax agreement); temp_MiB = XLA temporary buffers of the compiled "
    "simulation; a = SNN median s, b = ANN median s",
    "P2": "speedup jaxsnn/eager torch (same weights, T, batch, threads); spread = min–max of the "
    "per-round ratios; cpu = the same in process CPU time; exact = max |Δ| of the final logits "
    "/ argmax agreement; a = jax median s, b = torch median s",
    "sweep": "K sequential simulate calls ÷ one vmapped sweep (> 1: the sweep is faster); "
    "exact = sweep equals the loop bit for bit (else max |Δ| / argmax agreement); a = sweep "
    "median s, b = loop median s",
    "P3": "train images/s jax ÷ torch; a = jax step median s, b = torch step median s",
    "memory": "peak RSS at the larger T ÷ at the smaller T; a, b = peak RSS MiB",
}


def _times(r: dict) -> tuple:
    if r["benchmark"] == "P1":
        return r.get("snn_median_s"), r.get("ann_median_s")
    if r["benchmark"] == "sweep":
        return r.get("sweep_median_s"), r.get("loop_median_s")
    if r["benchmark"] == "memory":
        peaks = list((r.get("peak_rss_mib") or {}).values())
        return (peaks[-1], peaks[0]) if peaks else (None, None)
    return r.get("jax_median_s"), r.get("torch_median_s")


def _spread(r: dict) -> str | None:
    if r.get("ratio_min") is None:
        return None
    return f"{r['ratio_min']:.3f}–{r['ratio_max']:.3f}"


def _exact(r: dict) -> str | None:
    if r.get("exact_equal") is True:
        return "yes"
    if "max_abs_diff" in r:
        dev = f"{r['max_abs_diff']:.3g} / {r['argmax_agreement']:.3f}"
        return f"no ({dev})" if "exact_equal" in r else dev
    if "exact_equal" not in r:
        return None
    return "yes" if r["exact_equal"] else "NO"


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def archive_markdown(path: str) -> str:
    """The rows of removed variants (``path``, a JSON list of records), as a Markdown section."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        rows = json.load(f)
    body = markdown(rows).split("\n")
    table = [line for line in body if line.startswith("|")]
    return "\n".join(
        [
            "",
            "## Variants tried and removed from the code",
            "",
            "Measured rows kept from the runs that measured them (each row's own date: see "
            "`bench/results_archive.json`, field `archived_from`), next to the plain run of the "
            "same round where there was one.",
            "",
            *table,
            "",
        ]
    )


def markdown(records: list[dict]) -> str:
    """A Markdown document: machine line, legend and one table row per record."""
    lines = ["# jaxsnn benchmark results", ""]
    if records:
        r0 = records[0]
        lines += [
            f"Machine: {r0['nproc']} CPUs, {r0['cpu_model']}; jax {r0['jax_version']}, "
            f"backend {r0['backend']}; {r0['date']}.",
            "",
        ]
    lines += [f"- **{k}**: {v}" for k, v in MEANING.items()] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in records:
        a, b = _times(r)
        row = [
            r.get("benchmark"),
            r.get("network"),
            r.get("T"),
            r.get("batch"),
            r.get("variant", ""),
            r.get("ratio"),
            _spread(r),
            r.get("cpu_ratio"),
            _exact(r),
            r.get("xla_temp_mib"),
            a,
            b,
            r.get("reps"),
            r.get("load_before", r.get("load_avg")),
        ]
        if r.get("skipped"):
            row[4] = f"skipped: {r['skipped'][:60]}"
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def plot_p1(records: list[dict], path: str, variants=("plain", "unroll2_region_copy")) -> None:
    """Plots P1's ratio vs T per network and batch for ``variants`` (default flags only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    p1 = [r for r in records if r["benchmark"] == "P1" and r.get("ratio") is not None]
    styles = ("-o", "--s", ":^", "-.v")
    for net, batch in sorted({(r["network"], r["batch"]) for r in p1}):
        for variant, style in zip(variants, styles, strict=False):
            pts = sorted(
                (r["T"], r["ratio"])
                for r in p1
                if (r["network"], r["batch"]) == (net, batch) and r.get("variant") == variant
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=f"{net} B={batch} ({variant})")
    ax.axhline(1.15, color="grey", lw=0.8, ls=":", label="target 1.15")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("T (timesteps)")
    ax.set_ylabel("SNN time / (T × ANN time)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
