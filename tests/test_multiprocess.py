"""Two JAX processes on this machine train like one process with two devices, and fail cleanly.

The processes are started exactly as README ("Several hosts") documents: ``python train.py``
with ``JAX_COORDINATOR_ADDRESS`` (127.0.0.1), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` in the
environment; each has one CPU device, and the CPU collectives go through gloo (JAX's default).
The reference is the same config trained in this test process, which has two CPU devices
(conftest). Each process builds only its rows of every batch, so the two runs feed the same
global batches; they differ only in how XLA reduces across devices, hence the float tolerance.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from idx_files import make_idx_dir

from jaxsnn.cli import convert as engine
from jaxsnn.train import loop, sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # Config files import `configs.common` from the repo root.
    sys.path.insert(0, str(ROOT))
from configs import tiny  # noqa: E402

ARG = "epochs=4"  # 48 examples, batch 8: 6 steps per epoch, 24 steps, checkpoints every 2.
HEARTBEAT_S = 10  # How long JAX waits for a silent process before stopping the others.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(
    idx, data_dir, workdir, logs: pathlib.Path, script="train.py", extra=()
) -> list[subprocess.Popen]:
    """Starts the two processes of one run; their output goes to ``logs/<process>.log``."""
    port = _free_port()
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            PYTHONPATH=str(ROOT),
            JAX_DISABLE_MOST_OPTIMIZATIONS="1",  # As in this process (conftest): same numerics.
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(index),
        )
        env.pop("XLA_FLAGS", None)
        command = [
            sys.executable,
            str(ROOT / script),
            f"--config={ROOT / 'configs/tiny.py'}:local_dir={idx},{ARG}",
            f"--config.data_dir={data_dir}",
            f"--workdir={workdir}",
            f"--heartbeat_timeout={HEARTBEAT_S}",
            *extra,
        ]
        log = open(logs / f"{index}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()
    return procs


def _wait(procs, logs, timeout: float) -> list[int]:
    deadline = time.time() + timeout
    codes = []
    for index, proc in enumerate(procs):
        try:
            codes.append(proc.wait(timeout=max(deadline - time.time(), 1)))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"process {index} still running after {timeout} s:\n{_tail(logs, index)}")
    return codes


def _tail(logs: pathlib.Path, index: int) -> str:
    return (logs / f"{index}.log").read_text()[-3000:]


def _metrics(workdir) -> tuple[dict[int, float], dict[int, dict]]:
    """Train loss by step (the last value logged for it) and test metrics by step."""
    train, test = {}, {}
    for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "train_loss" in record and "steps" not in record:
            train[record["step"]] = record["train_loss"]
        if "test_accuracy" in record:
            test[record["step"]] = record
    return train, test


def _params(workdir):
    """The latest parameters, restored onto this process's first device whoever saved them."""
    mngr = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / "checkpoints")
    step = mngr.latest_step()
    meta = ocp.StandardCheckpointHandler().metadata(mngr.directory / str(step) / "state")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        getattr(meta, "tree", meta),
    )
    args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
    restored = mngr.restore(step, args=args)
    mngr.close()
    return step, restored["state"]["params"]


@pytest.mark.slow
def test_two_processes_match_one_process_then_survive_a_kill(tmp_path):
    idx = make_idx_dir(tmp_path / "idx", 48, 20, seed=5)

    # Reference: one process, two CPU devices.
    config = tiny.get_config(f"local_dir={idx},{ARG}")
    config.data_dir = str(tmp_path / "tfds_one")
    assert jax.device_count() == 2
    loop.train_and_evaluate(config, tmp_path / "one")
    ref_train, ref_test = _metrics(tmp_path / "one")
    assert sorted(ref_train) == list(range(1, 25))

    # Two processes, one CPU device each, preparing the IDX data together (a fresh data_dir).
    workdir, data_dir = tmp_path / "two", tmp_path / "tfds_two"
    logs = tmp_path / "logs_first"
    logs.mkdir()
    procs = _launch(idx, data_dir, workdir, logs)
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*")):
            break
        time.sleep(0.05)
    assert all(p.poll() is None for p in procs), _tail(logs, 0) + _tail(logs, 1)

    # Process 1 dies (SIGKILL): process 0 must stop on its own, quickly, with one clear line.
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    code = _wait(procs[:1], logs, timeout=HEARTBEAT_S + 50)[0]
    waited = time.time() - killed_at
    procs[1].wait(timeout=30)
    output = (logs / "0.log").read_text()
    assert code != 0, output[-3000:]
    assert waited < HEARTBEAT_S + 30, f"process 0 took {waited:.0f} s to stop"
    clean = "error: process 0 of 2: another process of this run stopped" in output
    jax_abort = "JAX distributed service detected fatal errors" in output  # Heartbeat path.
    assert clean or jax_abort, output[-3000:]

    # Both restarted with the same command: they resume from the last checkpoint and finish.
    logs = tmp_path / "logs_restart"
    logs.mkdir()
    procs = _launch(idx, data_dir, workdir, logs)
    assert _wait(procs, logs, timeout=240) == [0, 0], _tail(logs, 0) + _tail(logs, 1)
    assert "resumed at step" in (workdir / "jaxsnn.log").read_text()  # The run's log file.

    # Same loss trajectory, test metrics and parameters as one process with two devices. Steps
    # run before the kill and again after the restart are logged twice; both must agree.
    train, test = _metrics(workdir)
    assert sorted(train) == list(range(1, 25))
    np.testing.assert_allclose(
        [train[s] for s in sorted(train)], [ref_train[s] for s in sorted(train)], rtol=1e-5
    )
    assert test.keys() == ref_test.keys()
    for step in test:
        assert test[step]["test_accuracy"] == ref_test[step]["test_accuracy"]
        np.testing.assert_allclose(test[step]["test_loss"], ref_test[step]["test_loss"], rtol=1e-5)
    # The two-process checkpoint is restorable by one process with two devices: train.py's own
    # restore path (nothing left to train, so it only evaluates), and a plain Orbax restore.
    again = loop.train_and_evaluate(config, workdir)
    assert again["steps"] == 24 and again["test_accuracy"] == ref_test[24]["test_accuracy"]
    step, params = _params(workdir)
    ref_step, ref_params = _params(tmp_path / "one")
    assert step == ref_step == 24
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, ref_params
    )

    # convert.py on the two processes (calibration batches and evaluation batches split by
    # process, the SNN replicated) gives the results of this process's two devices.
    conversion = ["--config.convert.method=calib_light", "--config.convert.T=3"]
    conversion += ["--config.convert.calib_batches=1", "--config.convert.calib_batch_size=8"]
    logs = tmp_path / "logs_convert"
    logs.mkdir()
    procs = _launch(idx, data_dir, workdir, logs, "convert.py", conversion)
    assert _wait(procs, logs, timeout=240) == [0, 0], _tail(logs, 0) + _tail(logs, 1)
    two = json.loads(next(workdir.glob("snn_calib_light-*/results.json")).read_text())
    assert two["provenance"]["processes"] == 2
    config.convert.update(
        dict(method="calib_light", T=3, calib_batches=1, calib_batch_size=8, progress=False)
    )
    config.convert.output_dir = "one_process"
    one = engine.convert_and_evaluate(config, workdir)
    for key in ("snn_accuracy", "ann_accuracy", "spikes_per_image", "thresholds"):
        assert two[key] == json.loads(json.dumps(one[key])), key


def test_incomplete_launch_settings_fail_with_one_line(monkeypatch):
    for name in (sharding.ENV_ADDRESS, sharding.ENV_COUNT, sharding.ENV_ID):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(sharding.ENV_COUNT, "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two': expected an integer"):
        sharding.maybe_initialize_distributed()
    monkeypatch.setenv(sharding.ENV_COUNT, "2")
    monkeypatch.setenv(sharding.ENV_ID, "2")
    with pytest.raises(ValueError, match=r"JAX_PROCESS_ID / --process_id=2: must lie in \[0, 2\)"):
        sharding.maybe_initialize_distributed()


def test_lost_peer_errors_are_recognised(monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    for err in (
        ValueError("UNKNOWN: Gloo all-reduce failed: Connection closed by peer [127.0.0.1]:1"),
        TimeoutError("Timed out while waiting for async_write_complete barrier."),
    ):
        message = sharding.lost_peer_message(err)
        assert message.startswith("process 1 of 2: another process of this run stopped")
        assert "restart every process with the same command" in message
    assert sharding.lost_peer_message(ValueError("config.levels: must be positive")) is None
    monkeypatch.setattr(jax, "process_count", lambda: 1)
    assert sharding.lost_peer_message(TimeoutError("barrier")) is None
