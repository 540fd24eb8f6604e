"""Command line: ``python -m bench [--quick | --target] [--only P1,P2,P3,sweep,memory]``.

``--out F.json`` (default ``bench/results.json``) chooses where the records go.

``--out bench/results.json`` (default) also writes ``bench/results.md`` and ``bench/p1.png``;
another name ``X.json`` writes ``X.md`` and ``X.png``.
"""

import argparse
import json
import os
import time

from bench import memory, p1, p2, p3, report, sweep

# P1 variants timed on VGG-16 (each call is slow; the unroll-only ones add nothing there).
VGG_VARIANTS = ("plain", "unroll2_region_copy", "unroll4_region_copy", "bf16")
QUICK = {
    "p1": [
        {
            "networks": {"SmallCNN": 32},
            "steps": (4, 8),
            "reps": 3,
            "variants_at": (8,),
            "variants": ("plain", "unroll2_region_copy", "bf16"),
        },
        {
            "networks": {"ResNet20": 32},
            "steps": (4, 8),
            "reps": 3,
            "variants_at": (8,),
            "variants": (
                "plain",
                "unroll2",
                "unroll4",
                "region_copy",
                "unroll2_region_copy",
                "unroll4_region_copy",
                "bf16",
            ),
        },
        {
            "networks": {"VGG16": 8},
            "steps": (8,),
            "reps": 3,
            "variants_at": (8,),
            "variants": ("plain", "unroll2_region_copy", "unroll4_region_copy"),
        },
    ],
    "p1_flags": [
        {
            "networks": {"ResNet20": 32},
            "steps": (8,),
            "reps": 3,
            "flag_set": "no_thunk_runtime",
            "variants": ("plain", "unroll2"),
        },
    ],
    "p2": [
        {
            "networks": {"SmallCNN": (16, 64), "ResNet20": (16, 64), "VGG16": (16,)},
            "steps": (4,),
            "reps": 9,
        }
    ],
    "sweep": [
        {"networks": {"SmallCNN": 32, "ResNet20": 16}, "ks": (4, 16), "T": 8, "reps": 3},
        {"networks": {"VGG16": 4}, "ks": (4,), "T": 8, "reps": 3},
    ],
    "p3": {"networks": {"SmallCNN": 64}, "reps": 3, "flag_sets": ("default", "no_thunk_runtime")},
    "memory": {"name": "VGG16", "batch": 4, "steps": (8, 64)},
}
# The issue-6 criterion: P1 at T >= 8 for ResNet-20 and VGG-16, plain vs the production variant.
TARGET = {
    "p1": [
        {
            "networks": {"ResNet20": 32, "VGG16": 8},
            "steps": (8, 16, 32),
            "reps": 9,  # single rounds vary by ±10 % even on a quiet VM; 3 did not settle it
            "variants_at": (8, 16, 32),
            "variants": ("plain", "public", "unroll2_region_copy"),
        },
    ],
    "p1_flags": [],
}
FULL = {
    "p1": [
        {
            "networks": {"SmallCNN": 64, "ResNet20": 64},
            "steps": (4, 8, 16, 32),
            "reps": 5,
            "variants_at": (8, 16),
        },
        {"networks": {"ResNet20": 32}, "steps": (8, 16), "reps": 5, "variants_at": (8, 16)},
        {
            "networks": {"VGG16": 16},
            "steps": (4, 8, 32),
            "reps": 3,
            "variants_at": (8,),
            "variants": VGG_VARIANTS,
        },
        {
            "networks": {"VGG16": 8},
            "steps": (8,),
            "reps": 3,
            "variants_at": (8,),
            "variants": VGG_VARIANTS,
        },
    ],
    "p1_flags": [
        {
            "networks": {"ResNet20": 32, "VGG16": 8},
            "steps": (8,),
            "reps": 5,
            "flag_set": flag_set,
            "variants": ("plain", "unroll2", "unroll2_region_copy"),
        }
        for flag_set in p3.FLAG_SETS
        if flag_set != "default"
    ],
    "p2": [
        {
            "networks": {"SmallCNN": (16, 64), "ResNet20": (16, 64), "VGG16": (16,)},
            "steps": (4,),
            "reps": 15,
            "threads": (None, 1),
        },
        {"networks": {"ResNet20": (16,)}, "steps": (16,), "reps": 15, "threads": (None, 1)},
    ],
    "sweep": [
        {"networks": {"SmallCNN": 32, "ResNet20": 16, "VGG16": 4}, "ks": (4, 16), "T": 8},
    ],
    "p3": {
        "networks": {"SmallCNN": 64, "ResNet20": 64},
        "reps": 5,
        "flag_sets": tuple(p3.FLAG_SETS),
        "dtypes": ("f32", "bf16"),
    },
    "memory": {"name": "VGG16", "batch": 16, "steps": (8, 64)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer T, reps, smaller batches")
    parser.add_argument(
        "--target",
        action="store_true",
        help="P1 only: ResNet-20 and VGG-16 at T = 8, 16, 32, plain vs production variant",
    )
    parser.add_argument("--only", default="P1,P2,P3,sweep,memory", help="comma-separated subset")
    parser.add_argument(
        "--out", default=None, help="default bench/results.json (--target: bench/p1_target.json)"
    )
    args = parser.parse_args()
    mode = "target" if args.target else "quick" if args.quick else "full"
    args.out = args.out or ("bench/p1_target.json" if args.target else "bench/results.json")
    cfg = {"target": TARGET, "quick": QUICK, "full": FULL}[mode]
    only = {"P1"} if args.target else set(args.only.split(","))
    start, records = time.time(), []
    if "P1" in only:
        records += p1.record_equality()
        for kwargs in cfg["p1"]:
            records += p1.run(**kwargs)
        for kwargs in cfg["p1_flags"]:
            records += p1.run_with_flags(**kwargs)
    if "P2" in only:
        for kwargs in cfg["p2"]:
            records += p2.run(**kwargs)
    if "sweep" in only:
        for kwargs in cfg["sweep"]:
            records += sweep.run(**kwargs)
    if "P3" in only:
        records += p3.run(**cfg["p3"])
    if "memory" in only:
        records += memory.run(**cfg["memory"])
    for r in records:
        r["mode"] = mode
    out_dir = os.path.dirname(args.out) or "."
    os.makedirs(out_dir, exist_ok=True)
    # bench/results.json -> results.md, p1.png; any other name -> <stem>.md, <stem>.png.
    stem = os.path.splitext(args.out)[0]
    default = os.path.basename(stem) == "results"
    with open(args.out, "w") as f:
        json.dump(records, f, indent=1)
    text = report.markdown(records)
    if default:  # removed variants keep their measured rows (bench/results_archive.json)
        text += report.archive_markdown(os.path.join(out_dir, "results_archive.json"))
    with open(stem + ".md", "w") as f:
        f.write(text)
    if any(r["benchmark"] == "P1" for r in records):
        png = os.path.join(out_dir, "p1.png") if default else stem + ".png"
        report.plot_p1(records, png, ("plain", p1.RECOMMENDED))
    print(f"wrote {len(records)} records to {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
