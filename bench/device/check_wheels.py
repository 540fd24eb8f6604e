"""Checks the carried wheel set (.whl/) before a GPU run: complete, consistent, installable.

``python -m bench.device.check_wheels [--dir .whl]``:

1. every package of ``bench/device/wheels.txt`` is there, in exactly its pinned version, and
   no distribution comes twice (two versions stop the device-side install);
2. every ``Requires-Dist`` of every carried wheel (markers evaluated for CPython 3.12 on x86-64
   Linux; extras only where a carried wheel asks for them) is carried or preinstalled on the
   device (``bench/device/preinstalled.txt``);
3. ``pip install --no-deps --target`` of the whole set for CPython 3.12 succeeds here (pip's
   cross-interpreter install: it checks each wheel's tags against 3.12/manylinux x86-64);
4. the total size fits the device tool's 64 MiB working-tree limit.

Exits non-zero with a list of problems; prints what it checked.
"""

import argparse
import email.parser
import glob
import os
import re
import subprocess
import sys
import tempfile
import zipfile

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = os.path.dirname(os.path.abspath(__file__))
# The device's interpreter, for evaluating environment markers.
DEVICE_ENV = dict(
    default_environment(),
    python_version="3.12",
    python_full_version="3.12.3",
    implementation_name="cpython",
    platform_python_implementation="CPython",
    sys_platform="linux",
    platform_system="Linux",
    platform_machine="x86_64",
    os_name="posix",
)
LIMIT_MIB = 64


def _names(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _metadata(wheel: str):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n))
        return email.parser.Parser().parsestr(z.read(name).decode())


def check(folder: str) -> list[str]:
    problems = []
    wheels = sorted(glob.glob(os.path.join(folder, "*.whl")))
    carried = {}
    for w in wheels:
        name, version, _, _ = parse_wheel_filename(os.path.basename(w))
        if name in carried:
            problems.append(f"{name} carried twice: {carried[name][0]} and {version}")
        carried[name] = (str(version), w)
    for spec in _names(os.path.join(HERE, "wheels.txt")):
        req = Requirement(spec)
        got = carried.get(canonicalize_name(req.name))
        if got is None:
            problems.append(f"{spec}: no wheel in {folder}")
        elif not req.specifier.contains(got[0]):
            problems.append(f"{spec}: carried version is {got[0]}")
    pre = {canonicalize_name(n) for n in _names(os.path.join(HERE, "preinstalled.txt"))}
    for name, (version, w) in sorted(carried.items()):
        for line in _metadata(w).get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(dict(DEVICE_ENV, extra="")):
                continue
            dep = canonicalize_name(req.name)
            if dep in carried:
                have = carried[dep][0]
                if not req.specifier.contains(have, prereleases=True):
                    problems.append(f"{name} {version} needs {req}; carried {have}")
            elif dep not in pre:
                problems.append(f"{name} {version} needs {req}: neither carried nor preinstalled")
    size = sum(os.path.getsize(w) for w in wheels) / 2**20
    if size > LIMIT_MIB:
        problems.append(f"wheels take {size:.1f} MiB > {LIMIT_MIB} MiB")
    with tempfile.TemporaryDirectory() as target:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        cmd += ["--no-compile", "--target", target, "--python-version", "3.12"]
        cmd += ["--implementation", "cp", "--abi", "cp312", "--only-binary=:all:"]
        for plat in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"):
            cmd += ["--platform", plat]
        proc = subprocess.run(cmd + wheels, capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"pip install --target for cp312 failed: {proc.stderr.strip()[-500:]}")
        else:
            installed = len(glob.glob(os.path.join(target, "*.dist-info")))
            print(f"pip install --no-deps --target (CPython 3.12, manylinux x86-64): {installed}")
    print(f"{len(wheels)} wheels, {size:.1f} MiB; {len(pre)} packages preinstalled on the device")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=".whl")
    args = parser.parse_args()
    problems = check(args.dir)
    for p in problems:
        print("PROBLEM:", p)
    print("wheel set OK" if not problems else f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
