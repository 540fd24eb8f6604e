"""Markdown report of the device check: one table per benchmark, then what was skipped or failed."""

LEGEND = {
    "P1": "SNN time ÷ (T × ANN forward time), medians; spread = min–max of per-round ratios",
    "P2": "PyTorch time ÷ jaxsnn time (> 1: jaxsnn faster), same weights, T, batch, device, "
    "float32 with TF32 off on both sides; max |Δ| and argmax compare the final-T logits",
    "precision": "jaxsnn time ÷ its time at matmul precision 'highest'; max |Δ| of the cumulative "
    "logits over all t and final-T argmax agreement against 'highest'",
    "layout": "time ÷ jaxsnn's step-wise scan; the pure-JAX step-wise and time-folded layouts of "
    "bench/device/layouts.py; temp = XLA temporary buffers",
    "memory": "peak device memory of one evaluation (fresh process per T)",
    "train": "QCFS ANN training throughput on synthetic data, library default precision",
    "sweep": "K sequential simulate calls ÷ one sweep call (> 1: the sweep is faster); vmap = the "
    "library's sweep, map_c = lax.map in groups of c (proposal)",
}


def _f(v, fmt=".3g") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def _ms(r: dict, key: str) -> str:
    v = (r.get("median_s") or {}).get(key) if isinstance(r.get("median_s"), dict) else None
    return _f(v * 1e3, ".3g") if v is not None else "—"


def _spread(r: dict) -> str:
    if r.get("ratio_min") is None:
        return "—"
    return f"{r['ratio_min']:.2f}–{r['ratio_max']:.2f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += [
        "| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |"
        for row in rows
    ]
    return out + [""]


def markdown(records: list[dict]) -> str:
    """The report for ``records`` (any subset: a partial run gives a partial report)."""
    measured = [r for r in records if not r.get("skipped") and not r.get("error")]
    by = {}
    for r in measured:
        by.setdefault(r.get("benchmark"), []).append(r)
    lines = ["# jaxsnn device check", ""]
    env = (by.get("env") or [None])[0]
    if env:
        v = env.get("versions", {})
        smi = env.get("nvidia_smi") or "no nvidia-smi"
        lines += [
            f"{env.get('date')}: {env.get('device_kind')} ({smi}), host {env.get('nproc')} CPUs "
            f"({env.get('cpu_model')}), python {env.get('python')}, jax {v.get('jax')}, flax "
            f"{v.get('flax')}, torch {v.get('torch')}, backend {env.get('backend')}.",
            "",
            f"- pyproject dependency ranges missed by installed versions: "
            f"{env.get('range_mismatches') or 'none'}",
            f"- modules that failed to import: {env.get('import_failures') or 'none'}",
            "",
        ]
    sections = [r for r in records if r.get("benchmark") == "section"]
    if sections:
        lines += _table(
            ["section", "status", "seconds", "budget s"],
            [[r["section"], r["status"], r.get("seconds"), r.get("budget_s")] for r in sections],
        )
    for r in by.get("smoke", []):
        lines += [
            f"**Smoke tests** (`pytest {' '.join(r.get('pytest_args', []))}`): exit "
            f"{r.get('exit_code')}, {r.get('passed', 0)} passed, {r.get('failed', 0)} failed, "
            f"{r.get('skipped', 0)} skipped, {r.get('error', 0)} errors in "
            f"{r.get('seconds', 0):.0f} s.",
            "",
        ]
    for name, header, row in (
        (
            "P1",
            ["network", "batch", "T", "variant", "ratio", "spread", "reps", "SNN ms", "ANN ms"],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r["variant"],
                r["ratio"],
                _spread(r),
                r.get("reps"),
                _ms(r, "snn" if "unroll=2" in r["variant"] else "snn_unroll1"),
                _ms(r, "ann"),
            ],
        ),
        (
            "P2",
            [
                "network",
                "batch",
                "T",
                "PyTorch variant",
                "torch ÷ jaxsnn",
                "spread",
                "reps",
                "max abs diff",
                "argmax agree",
            ],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r["variant"],
                r["ratio"],
                _spread(r),
                r.get("reps"),
                r.get("max_abs_diff"),
                r.get("argmax_agreement"),
            ],
        ),
        (
            "precision",
            [
                "network",
                "batch",
                "T",
                "variant",
                "time ÷ highest",
                "spread",
                "max abs diff",
                "max abs ref",
                "argmax agree",
            ],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r["variant"],
                r["ratio"],
                _spread(r),
                r.get("max_abs_diff"),
                r.get("max_abs_ref"),
                r.get("argmax_agreement"),
            ],
        ),
        (
            "layout",
            [
                "network",
                "batch",
                "T",
                "layout",
                "time ÷ jaxsnn",
                "spread",
                "temp MiB",
                "max abs diff",
                "argmax agree",
            ],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r["variant"],
                r["ratio"],
                _spread(r),
                r.get("xla_temp_mib"),
                r.get("max_abs_diff"),
                r.get("argmax_agreement"),
            ],
        ),
        (
            "memory",
            ["network", "batch", "T", "what", "peak MiB", "XLA temp MiB", "ratio", "source"],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r.get("variant"),
                r.get("peak_mib"),
                r.get("xla_temp_mib"),
                r.get("ratio"),
                r.get("source"),
            ],
        ),
        (
            "sweep",
            ["network", "batch", "T", "sweep", "loop ÷ sweep", "spread", "reps", "exact"],
            lambda r: [
                r["network"],
                r["batch"],
                r["T"],
                r["variant"],
                r["ratio"],
                _spread(r),
                r.get("reps"),
                r.get("exact_equal"),
            ],
        ),
        (
            "train",
            ["network", "batch", "framework", "images/s", "step ms", "first call s"],
            lambda r: [
                r["network"],
                r["batch"],
                r["variant"],
                r.get("images_per_s"),
                r["step_median_s"] * 1e3,
                r.get("first_call_s"),
            ],
        ),
    ):
        rows = by.get(name)
        if rows:
            lines += [f"## {name}", "", LEGEND[name], ""] + _table(header, [row(r) for r in rows])
    problems = [r for r in records if r.get("skipped") or r.get("error")]
    if problems:
        lines += ["## skipped or failed", ""]
        for r in problems:
            what = " ".join(
                f"{k}={r[k]}" for k in ("benchmark", "network", "batch", "T", "variant") if k in r
            )
            lines.append(f"- {what}: {r.get('skipped') or r.get('error')}")
        lines.append("")
    return "\n".join(lines)
