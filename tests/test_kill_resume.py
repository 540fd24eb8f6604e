"""Reliability: training killed with SIGKILL at a random moment resumes bit-identically."""

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from idx_files import make_idx_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _command(idx, data_dir, workdir):
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"--config={ROOT / 'configs/tiny.py'}:idx_dir={idx},epochs=4",
        f"--config.data_dir={data_dir}",
        f"--workdir={workdir}",
    ]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    return env


def _train(command):
    done = subprocess.run(
        command, env=_env(), capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _params(workdir):
    mngr = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / "checkpoints")
    step = mngr.latest_step()
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return step, restored["state"]["params"]


@pytest.mark.slow
def test_sigkill_at_random_step_then_resume_is_bit_identical(tmp_path):
    idx = make_idx_dir(tmp_path / "idx", 48, 16, seed=3)
    data_dir = tmp_path / "tfds"
    _train(_command(idx, data_dir, tmp_path / "straight"))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(idx, data_dir, killed),
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        steps = [p for p in (killed / "checkpoints").glob("*") if p.name.isdigit()]
        if steps:
            break
        time.sleep(0.05)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.0))  # land anywhere in the run
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _train(_command(idx, data_dir, killed))

    step, expected = _params(tmp_path / "straight")
    got_step, got = _params(killed)
    assert got_step == step == 24
    jax.tree.map(np.testing.assert_array_equal, got, expected)
