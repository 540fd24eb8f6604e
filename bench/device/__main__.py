"""Driver of the device check: runs each section in its own process under its share of the budget.

``python -m bench.device --platform gpu|cpu [--quick] [--budget-s S] [--out DIR]
[--sections a,b]`` (normally through ``bench/device/run.sh``). Writes ``DIR/results_<platform>
[_quick].{json,md,jsonl}``; DIR defaults to ``$OUT`` (the folder the device tool brings back),
else ``bench/``. The files are rewritten after every record, so a run cut short still leaves
everything it measured.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from bench.device import plan as plan_lib
from bench.device import records


def _run_section(name: str, seconds: float, platform: str, quick: bool) -> tuple[str, float]:
    """Runs one section in a new process group; kills the group if it overruns by 5 s."""
    cmd = [sys.executable, "-m", "bench.device.sections", name, "--platform", platform]
    cmd += ["--budget-s", f"{seconds:.1f}"] + (["--quick"] if quick else [])
    start = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        code = proc.wait(timeout=seconds + 5)
        status = "ok" if code == 0 else f"exit {code}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = "killed at its time budget"
    return status, time.monotonic() - start


def _run_in_process(name: str, seconds: float, platform: str, quick: bool) -> tuple[str, float]:
    """Runs one section in this process (no kill at the budget; for the fast CI dry run)."""
    import traceback

    from bench.device import sections

    start = time.monotonic()
    try:
        sections.run(name, seconds, platform, quick)
        status = "ok"
    except Exception as err:
        traceback.print_exc()
        status = f"error: {type(err).__name__}: {err}"[:300]
    return status, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--quick", action="store_true", help="tiny networks (CPU dry run, CI)")
    parser.add_argument("--budget-s", type=float, default=None, help="whole run (default: plan)")
    parser.add_argument("--out", default=None, help="default $OUT, else bench/")
    parser.add_argument("--sections", default=None, help="comma-separated subset")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="sections in this process (imports once; no kill at a section's budget)",
    )
    args = parser.parse_args()
    plan = plan_lib.get(args.quick)
    budget = args.budget_s or plan["budget_s"]
    out = args.out or os.environ.get("OUT") or "bench"
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"results_{args.platform}" + ("_quick" if args.quick else ""))
    jsonl = stem + ".jsonl"
    open(jsonl, "w").close()
    os.environ[records.JSONL_ENV], os.environ[records.STEM_ENV] = jsonl, stem
    wanted = set(args.sections.split(",")) if args.sections else None
    sections = [s for s in plan_lib.SECTIONS if wanted is None or s[0] in wanted]
    start = time.monotonic()
    print(f"device check: platform {args.platform}, budget {budget:.0f} s, -> {stem}.*", flush=True)
    for i, (name, share, minimum) in enumerate(sections):
        left = budget - (time.monotonic() - start)
        if left < minimum:
            records.add({"benchmark": "section", "section": name, "status": "no time left"})
            print(f"== {name}: skipped, {left:.0f} s left", flush=True)
            continue
        seconds = min(left, max(minimum, left * share / sum(s for _, s, _ in sections[i:])))
        print(f"== {name} (budget {seconds:.0f} s of {left:.0f} s left)", flush=True)
        runner = _run_in_process if args.in_process else _run_section
        status, took = runner(name, seconds, args.platform, args.quick)
        records.add(
            {
                "benchmark": "section",
                "section": name,
                "status": status,
                "seconds": round(took, 1),
                "budget_s": round(seconds, 1),
            }
        )
        print(f"== {name}: {status} in {took:.0f} s", flush=True)
    done = records.load(jsonl)
    records.write(done, stem)
    bad = [r for r in done if r.get("benchmark") == "section" and r["status"] != "ok"]
    print(
        f"device check done in {time.monotonic() - start:.0f} s: {len(done)} records, "
        f"{len(bad)} section(s) not ok -> {stem}.json, {stem}.md",
        flush=True,
    )


if __name__ == "__main__":
    main()
