"""``train_and_evaluate``: the ANN (QCFS) training loop with exact resume.

Resume is exact: the data pipeline makes batch ``k`` of epoch ``e`` a function of
``(config.seed, e, k)`` only (whichever process builds which rows: each process feeds its own rows
of every global batch, see :mod:`jaxsnn.data`), the per-step key is ``fold_in(loop_key, step)``,
and the whole train state (optimiser and schedule count included) is checkpointed. A run
interrupted after any checkpoint and restarted with the same command therefore ends with
bit-identical parameters.

Metrics go to the log (absl), to stdout once per epoch, and to ``<workdir>/metrics.jsonl`` (one
JSON object per line) and TensorBoard event files in ``<workdir>/tensorboard`` (via tensorboardX:
``clu.metric_writers`` cannot be imported without TensorFlow).
"""

import contextlib
import json
import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from etils import epath

from jaxsnn import data, models, progress
from jaxsnn.train import checkpoint, sharding
from jaxsnn.train.state import create_optimizer, create_schedule, make_init_fn
from jaxsnn.train.steps import SoftTargets


class MetricWriter:
    """Writes scalars to the log and, on process 0, to ``metrics.jsonl`` and TensorBoard events.

    TensorBoard event files go to ``<workdir>/tensorboard`` through ``tensorboardX`` (clu's writer
    needs TensorFlow, which this project does not require).
    """

    def __init__(self, workdir: epath.Path):
        self.path = workdir / "metrics.jsonl" if jax.process_index() == 0 else None
        self.tb = None
        if self.path is not None:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(workdir / "tensorboard"), flush_secs=30)

    def write(self, step: int, scalars: dict) -> None:
        """Logs ``scalars`` (already on the host) for ``step``."""
        scalars = {k: float(v) for k, v in scalars.items()}
        logging.info("step %d: %s", step, ", ".join(f"{k}={v:.6g}" for k, v in scalars.items()))
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": int(step), **scalars}) + "\n")
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, int(step))
            self.tb.flush()


def validate_config(config: ml_collections.ConfigDict, mesh) -> None:
    """Checks the fields the loop relies on; raises a one-line ``ValueError`` naming the field."""
    if config.activation not in models.ACTIVATIONS:
        raise ValueError(
            f"config.activation: unknown {config.activation!r}; use one of {models.ACTIVATIONS}"
        )
    levels = config.levels
    if not isinstance(levels, int) or isinstance(levels, bool) or levels <= 0:
        raise ValueError(f"config.levels: L must be a positive integer, got {levels!r}")
    for field in ("num_epochs", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        value = config[field]
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"config.{field}: must be a positive integer, got {value!r}")
    if config.get("max_steps") is not None and config.max_steps < 0:
        raise ValueError(f"config.max_steps: must be >= 0 or None, got {config.max_steps!r}")
    if not (math.isfinite(config.init_threshold) and config.init_threshold > 0):
        raise ValueError(
            f"config.init_threshold: must be finite and > 0, got {config.init_threshold!r}"
        )
    for field in (
        "learning_rate",
        "weight_decay",
        "momentum",
        "min_learning_rate",
        "warmup_learning_rate",
    ):
        value = config.get(field, 0.0)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"config.{field}: must be a finite number >= 0, got {value!r}")
    for field, high in (("label_smoothing", 1.0), ("mixup_prob", 1.0), ("mixup_alpha", None)):
        value = config.get(field, None)
        if value is None:  # Unset: off (the step without soft targets).
            continue
        ok = isinstance(value, int | float) and math.isfinite(value) and value >= 0
        if ok and high is not None:
            ok = value <= high if field == "mixup_prob" else value < high
        if not ok:
            limit = "in [0, 1]" if field == "mixup_prob" else "in [0, 1)" if high else ">= 0"
            raise ValueError(f"config.{field}: must be a number {limit}, got {value!r}")
    sharding.check_batch_size(config.batch_size, mesh, "config.batch_size")
    sharding.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")


def soft_targets(config: ml_collections.ConfigDict, num_classes: int, steps_per_epoch: int):
    """Label smoothing and mixup from ``config`` (None when both are off: the plain step).

    Reads ``label_smoothing``, ``mixup_alpha``, ``mixup_prob`` (default 1) and
    ``mixup_off_epoch`` (mixup stops from that epoch on; 0 or None: never).
    """
    smoothing = float(config.get("label_smoothing", 0.0) or 0.0)
    alpha = float(config.get("mixup_alpha", 0.0) or 0.0)
    if smoothing == 0.0 and alpha == 0.0:
        return None
    off = config.get("mixup_off_epoch", None)
    prob = config.get("mixup_prob", None)
    return SoftTargets(
        num_classes=num_classes,
        label_smoothing=smoothing,
        mixup_alpha=alpha,
        mixup_prob=1.0 if prob is None else float(prob),
        mixup_stop_step=int(off) * steps_per_epoch if off else None,
    )


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _check_finite(history: list[tuple[int, dict]]) -> None:
    """Raises ``FloatingPointError`` at the first step whose loss or grad norm is not finite."""
    for step, m in history:
        if not m["finite"]:
            raise FloatingPointError(
                f"non-finite loss at step {step} (loss={float(m['loss'])}, grad_norm="
                f"{float(m['grad_norm'])}); stopping without writing a checkpoint; lower "
                "config.learning_rate or check the data"
            )


def _summarise(history: list[tuple[int, dict]]) -> dict:
    """Mean of the logged training scalars over ``history`` (host values)."""
    keys = [k for k in history[0][1] if k != "finite"]
    return {f"train_{k}": float(np.mean([m[k] for _, m in history])) for k in keys}


def evaluate(eval_fn, state, config: ml_collections.ConfigDict, mesh) -> dict:
    """Exact masked accuracy and mean loss over the whole test split."""
    totals = None
    for batch in data.eval_batches(config, split="test", batch_size=config.eval_batch_size):
        sums = eval_fn(state, sharding.shard_batch(batch, mesh))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    nseen = max(int(totals["nseen"]), 1)
    return {
        "test_accuracy": int(totals["ncorrect"]) / nseen,
        "test_loss": float(totals["loss_sum"]) / nseen,
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains the ANN described by ``config`` in ``workdir``, resuming from its checkpoints.

    Args:
      config: a training config (see ``configs/``).
      workdir: run directory: checkpoints, ``metrics.jsonl`` and ``config.json`` go there.

    Returns:
      Final metrics: ``test_accuracy``, ``test_loss``, ``epochs``, ``steps``, ``wall_time_s``,
      ``train_time_s`` and ``images_per_s`` (training throughput of this invocation, the first,
      compiling step excluded).

    Raises:
      ValueError / FileNotFoundError: bad config or missing data (one line naming the field).
      FloatingPointError: a non-finite loss or gradient norm.
    """
    wall_start = time.perf_counter()
    config = ml_collections.ConfigDict(config.to_dict())  # Private copy; never edit the caller's.
    workdir = epath.Path(workdir)
    mesh = sharding.make_mesh()
    validate_config(config, mesh)

    # Data, model, optimiser.
    info = data.get_dataset_info(config)
    num_classes = config.get("num_classes") or info.num_classes
    model = models.build_model(config, num_classes)
    steps_per_epoch = data.steps_per_epoch(config, batch_size=config.batch_size)
    total_steps = steps_per_epoch * config.num_epochs
    if config.get("max_steps") is not None:
        total_steps = min(total_steps, config.max_steps)
    tx = create_optimizer(config, steps_per_epoch)

    # Keys (one named split per use) and state. Setup may copy small host values (the seed, init
    # constants, restored arrays) to the device; the transfer guard that train.py sets is
    # meant for the training loop below. The host data pipeline seeds its numpy streams from
    # (config.seed, epoch, step) itself, so no data key is derived here.
    workdir.mkdir(parents=True, exist_ok=True)
    mngr = checkpoint.make_manager(workdir, keep=config.keep_checkpoints)
    with jax.transfer_guard("allow"):
        root = jax.random.key(config.seed)
        init_key, loop_key = jax.random.split(root)
        del root
        loop_key = sharding.replicate(loop_key, mesh)
        init_fn = make_init_fn(model, tx, (1, *info.image_shape), key=init_key)
        state, restored = checkpoint.restore_or_init(mngr, init_fn, sharding.replicated(mesh))
    if jax.process_index() == 0:  # After the restore: a refused resume leaves config.json alone.
        (workdir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    step = int(jax.device_get(state.step))
    logging.info(
        "%s at step %d of %d (%d steps/epoch, %d devices)",
        "resumed" if restored is not None else "starting",
        step,
        total_steps,
        steps_per_epoch,
        mesh.devices.size,
    )

    train_fn = sharding.jit_train_step(
        mesh,
        model=model,
        tx=tx,
        schedule=create_schedule(config, steps_per_epoch),
        threshold_min=config.get("threshold_min", 1e-3),
        targets=soft_targets(config, num_classes, steps_per_epoch),
    )
    eval_fn = sharding.jit_eval_step(mesh, model=model)
    writer = MetricWriter(workdir)
    history: list[tuple[int, dict]] = []  # (step, device metrics) since the last host check.
    last_train: dict = {}

    def flush() -> None:
        nonlocal history, last_train
        if history:
            host = jax.device_get(history)
            history = []
            _check_finite(host)
            last_train = _summarise(host)
            writer.write(host[-1][0], last_train)

    def save(metrics=None) -> None:
        flush()
        if not bool(jax.device_get(_all_finite(state))):
            raise FloatingPointError(f"non-finite parameters at step {step}; not checkpointing")
        with jax.transfer_guard("allow"):  # Orbax copies the state to the host.
            checkpoint.save(mngr, step, state, config, metrics)

    # Training.
    eval_metrics: dict = {}
    timed_steps, train_time, first = 0, 0.0, True
    try:
        while step < total_steps:
            epoch, start = divmod(step, steps_per_epoch)
            end = min(steps_per_epoch, start + total_steps - step)
            batches = data.train_batches(
                config, epoch=epoch, start_step=start, batch_size=config.batch_size
            )
            tick = time.perf_counter()
            desc = f"epoch {epoch + 1}/{config.num_epochs}"
            bar = progress.Bar(
                total=end, initial=start, desc=desc, enabled=config.get("progress", True)
            )
            with contextlib.closing(batches), bar:
                for batch in batches:
                    state, metrics = train_fn(state, sharding.shard_batch(batch, mesh), loop_key)
                    step += 1
                    history.append((step, metrics))
                    bar.update()
                    if first:  # Throughput excludes the first (compiling) step.
                        jax.block_until_ready(metrics)
                        tick, first = time.perf_counter(), False
                    else:
                        timed_steps += 1
                    if step % config.log_every_steps == 0:
                        flush()
                    if step % steps_per_epoch == 0 or step == total_steps:
                        break
                    if step % config.checkpoint_every_steps == 0:
                        save()
            flush()
            jax.block_until_ready(state)
            train_time += time.perf_counter() - tick

            # Epoch end (or max_steps): exact evaluation on the whole test split, checkpoint.
            eval_metrics = evaluate(eval_fn, state, config, mesh)
            writer.write(step, eval_metrics)
            save(eval_metrics)
            if jax.process_index() == 0:
                print(
                    f"epoch {step / steps_per_epoch:.2f} step {step}: "
                    f"test_accuracy={eval_metrics['test_accuracy']:.4f} "
                    f"test_loss={eval_metrics['test_loss']:.4f} "
                    f"train_loss={last_train.get('train_loss', float('nan')):.4f}",
                    flush=True,
                )
        if not eval_metrics:  # Nothing left to train (resumed at the end): just evaluate.
            eval_metrics = evaluate(eval_fn, state, config, mesh)
    finally:
        data.close_streams()  # Worker processes kept for a next epoch that will not come.
        checkpoint.wait_until_finished(mngr)
        mngr.close()

    images_per_s = timed_steps * config.batch_size / train_time if train_time > 0 else 0.0
    final = {
        **eval_metrics,
        **last_train,
        "epochs": step / steps_per_epoch,
        "steps": step,
        "wall_time_s": time.perf_counter() - wall_start,
        "train_time_s": train_time,
        "images_per_s": images_per_s,
    }
    writer.write(step, {k: v for k, v in final.items() if k not in eval_metrics})
    return final
