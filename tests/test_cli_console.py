"""The command line's console contract: one ``error:`` line, exit 2, no traceback, quiet logs.

The mapping from failures to exit codes and lines is checked for every error class in-process;
the scripts are then run as users run them for the failures that come from outside our code
(flag parsing, a config file that does not load, Orbax's background threads after a failed
restore).
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from absl import flags

from jaxsnn import progress
from jaxsnn.cli import console

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "err,code",
    [
        (ValueError("config.convert.T: must be an integer >= 1, got 0"), 2),
        (FileNotFoundError("no ANN checkpoint in /x"), 2),
        (FileExistsError("/x holds another conversion"), 2),
        (OSError("Configuration is not available\n  Attempted: configs/nope.py"), 2),
        (FloatingPointError("non-finite loss at step 3"), 2),
        (ImportError("reading PyTorch checkpoints needs torch"), 2),
        (KeyError("convert"), 2),
        (flags.IllegalFlagValueError("flag --x: bad"), 2),
        (KeyboardInterrupt(), 130),
        (RuntimeError("something broke\nsecond line"), 1),
    ],
)
def test_every_failure_is_one_line(err, code):
    got_code, line = console.report(err)
    assert got_code == code
    assert line.startswith("error: ") and "\n" not in line and len(line) > len("error: ")


def test_progress_lines_are_bounded(capsys):
    """Without a terminal: a line per 10 % of the work (plus the last), rate and time left."""
    clock = iter(range(1000))
    reporter = progress.LineReporter("eval", 40, "batch", clock=lambda: next(clock))
    for _ in range(40):
        reporter.update()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("eval: 40/40 (100%)")
    assert "batch/s" in lines[0] and "left" in lines[0]


def _run(args, cwd=ROOT):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _assert_one_error(done, fragment):
    output = done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, output[-3000:]
    assert len(errors) == 1 and fragment in errors[0], output[-3000:]
    assert "Traceback" not in output and "Event loop is closed" not in output, output[-3000:]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["convert.py", "--config=configs/nope.py", "--workdir=/tmp/x"], "configs/nope.py"),
        (["train.py", "--config=configs/tiny.py", "--workdir=/tmp/x", "--nope=1"], "nope"),
        (["convert.py", "--config=configs/tiny.py", "--config.convert.T=abc"], "T"),
        (["convert.py", "--workdir=/tmp/x"], "--config"),
    ],
    ids=["missing_config_file", "unknown_flag", "bad_override", "missing_flag"],
)
def test_scripts_fail_with_one_line(args, fragment):
    _assert_one_error(_run(args), fragment)


def test_unreadable_checkpoints_end_in_one_line(trained, tmp_path):
    """Every checkpoint corrupted: one error line, and nothing from Orbax's threads after it."""
    config, source = trained
    workdir = tmp_path / "run"
    shutil.copytree(source / "checkpoints", workdir / "checkpoints")
    for f in (workdir / "checkpoints").rglob("*"):
        if f.is_file() and f.parent.name != "checkpoints":
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    done = _run(
        [
            "convert.py",
            f"--config=configs/tiny.py:idx_dir={config.idx_dir}",
            f"--config.data_dir={config.data_dir}",
            f"--workdir={workdir}",
        ]
    )
    _assert_one_error(done, "unreadable")
    assert not [p for p in workdir.iterdir() if p.name.startswith(("snn_", ".snn_"))]
