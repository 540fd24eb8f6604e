"""Where a result came from: software versions, machine, git commit, command line.

XLA:CPU's arithmetic (blocking, thread partitioning) depends on the CPU model and the number of
cores, so bit-identical reruns need the same machine type as well as the same package versions
(README, "Reproducibility"); both are recorded with every result.
"""

import os
import platform
import shlex
import subprocess
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", _ROOT, *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model and core count, and the JAX backend and version."""
    import jax

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
    }


def record() -> dict:
    """Versions, machine, devices, git commit (when available), the command line and the date."""
    import flax
    import jax

    from jaxsnn.version import __version__

    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {
        "jaxsnn_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "flax_version": flax.__version__,
        "python": platform.python_version(),
        **machine(),
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
