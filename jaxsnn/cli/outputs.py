"""What ``convert.py`` writes, and reading it back.

One folder per conversion, named from the method and every option that changes the result
(:func:`run_name`), written atomically: everything is staged in a temporary sibling folder and
moved into place only when complete, with normal permissions. It holds

- ``results.json``: accuracies per timestep and everything needed to reproduce them (the complete
  resolved configuration, the method's options with defaults, the source checkpoint and its
  content hash, dataset split and size, versions, the command line);
- ``snn_checkpoint/`` (Orbax: the SNN params), ``snn_metadata.json`` (what :func:`load_snn`
  needs to rebuild the SNN: model, layer options, start protocol, initial membrane, IAT,
  compensation) and ``membrane_init.npz`` for data-driven initial potentials;
- ``accuracy.png``, ``firing_rate.png``, ``activation_error.png`` (+ ``sweep.png``).
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxsnn import models
from jaxsnn.methods import Converted, get, result_options
from jaxsnn.methods.common import build_snn
from jaxsnn.simulate import protocols

SNN_METADATA = "snn_metadata.json"
MEMBRANE_FILE = "membrane_init.npz"


def _plain(value):
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def run_name(method: str, options: Mapping, checkpoint) -> str:
    """``snn_<method>-T<T>[-<option>=<value>...][-ckpt=<which>]`` for non-default options.

    The name holds every option whose value differs from the method's default, so two
    conversions that can give different results never share a folder.
    """
    defaults = get(method).defaults()
    options = result_options(method, options)
    parts = [f"snn_{method}", f"T{options['T']}"]
    for key in sorted(options):
        if key == "T" or options[key] == defaults[key]:
            continue
        value = options[key]
        text = ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value}"
        parts.append(f"{key}={text}")
    if checkpoint != "best":
        parts.append(f"ckpt={checkpoint}")
    name = "-".join(parts)
    return "".join(c if c.isalnum() or c in "._=,+-" else "_" for c in name)


def model_spec(config, num_classes: int, source: Mapping) -> dict:
    """What rebuilds the ANN definition: the fields :func:`jaxsnn.models.build_model` reads."""
    if source.get("kind") == "pytorch":
        from jaxsnn.convert.torch_import import ARCHITECTURES

        arch = config.convert.torch_architecture
        kwargs = {"classifier": "qcfs"} if arch == "vgg16" else {"stem": "cifar"}
        return {
            "model": ARCHITECTURES[arch],
            "model_kwargs": kwargs,
            "activation": "qcfs",
            "levels": config.levels,
            "num_classes": num_classes,
        }
    return {
        "model": config.model,
        "model_kwargs": _plain(config.get("model_kwargs") or {}),
        "activation": config.get("activation", "qcfs"),
        "levels": config.get("levels"),
        "init_threshold": config.get("init_threshold"),
        "num_classes": num_classes,
    }


def snn_metadata(conv: Converted, results: Mapping, spec: Mapping) -> dict:
    """The ``snn_metadata.json`` content: everything :func:`load_snn` needs, and the source."""
    init = conv.membrane_init
    return {
        "method": results["method"],
        "options": results["method_options"],
        "T": results["T"],
        "model": spec,
        "input_shape": results["input_shape"],
        "snn_kwargs": dict(conv.snn_kwargs),
        "protocol": protocols.to_json(conv.protocol),
        "encoding": results.get("encoding", "direct"),
        "membrane_init": init if isinstance(init, str) else MEMBRANE_FILE,
        "compensation_layer": conv.compensation_layer,
        "iat": None if conv.iat is None else dict(conv.iat),
        "thresholds": results["thresholds"],
        "source_checkpoint": results["source_checkpoint"],
        "dataset": results["dataset"],
    }


def _local_checkpointer() -> ocp.StandardCheckpointer:
    """A checkpointer for this process alone (no barrier with the other processes of a run)."""
    me = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    return ocp.StandardCheckpointer(multiprocessing_options=options)


def save_snn(out_dir: epath.Path, conv: Converted, metadata: Mapping) -> None:
    """Writes ``snn_checkpoint/``, ``snn_metadata.json`` and (if any) ``membrane_init.npz``.

    Called by one process (the first) of a multi-process run: the params are fetched to the
    host and written without synchronising with the others.
    """
    ckptr = _local_checkpointer()
    try:
        params = jax.tree.map(np.asarray, jax.device_get(conv.params))
        ckptr.save((out_dir / "snn_checkpoint").absolute(), params)
        ckptr.wait_until_finished()
    finally:
        ckptr.close()
    if isinstance(conv.membrane_init, Mapping):
        arrays = {k: np.asarray(v) for k, v in conv.membrane_init.items()}
        # Layer paths contain '/', which npz member names keep as written.
        np.savez(out_dir / MEMBRANE_FILE, **arrays)
    (out_dir / SNN_METADATA).write_text(json.dumps(metadata, indent=1))


def load_snn(out_dir) -> tuple[Converted, dict]:
    """Reloads a converted SNN written by ``convert.py``, of any method (no re-conversion).

    Returns:
      ``(converted, metadata)``: simulate ``converted`` exactly as the conversion did (its start
      protocol, initial membrane, IAT thresholds and compensation layer are restored) for
      ``metadata['T']`` steps, e.g. with :func:`jaxsnn.methods.common.run_converted`.
    """
    out_dir = epath.Path(out_dir)
    meta_path = out_dir / SNN_METADATA
    if not meta_path.exists():
        raise FileNotFoundError(f"no converted SNN in {out_dir} (missing {SNN_METADATA})")
    metadata = json.loads(meta_path.read_text())
    spec = metadata["model"]
    ann = models.build_model(spec, spec["num_classes"])
    ckptr = _local_checkpointer()
    try:
        params = ckptr.restore((out_dir / "snn_checkpoint").absolute())
    finally:
        ckptr.close()
    init = metadata["membrane_init"]
    if init == MEMBRANE_FILE:
        with np.load(out_dir / MEMBRANE_FILE) as f:
            init = {k: f[k] for k in f.files}
    conv = Converted(
        model=build_snn(ann, metadata["snn_kwargs"]),
        params=params,
        membrane_init=init,
        protocol=protocols.from_json(metadata["protocol"]),
        snn_kwargs=metadata["snn_kwargs"],
        fields={"method": metadata["method"]},
        compensation_layer=metadata.get("compensation_layer"),
        iat=metadata.get("iat"),
    )
    return conv, metadata


@contextlib.contextmanager
def staged(final: epath.Path, *, overwrite: bool):
    """Yields a temporary sibling folder; on success it replaces ``final`` atomically.

    The folder gets the permissions a plain ``mkdir`` would (``tempfile.mkdtemp`` makes it 0700).
    Nothing is left behind on failure.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = epath.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} appeared while converting; not replacing it")
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_plots(out_dir: epath.Path, results: Mapping) -> None:
    """The accuracy curve, per-layer firing rates and activation errors, and the sweep map."""
    from jaxsnn.metrics import plots

    label = f"{results['method']}, T={results['T']}"
    plots.plot_accuracy(
        out_dir / "accuracy.png",
        results["latency_steps"],
        results["snn_accuracy"],
        results["ann_accuracy"],
        label,
    )
    plots.plot_layer_bars(
        out_dir / "firing_rate.png",
        results["layers"],
        "firing_rate",
        "firing rate (spikes / neuron / step)",
    )
    plots.plot_layer_bars(
        out_dir / "activation_error.png",
        results["layers"],
        "mean_abs_activation_error",
        "mean |ANN act - SNN rate|",
    )
    if "sweep" in results:
        s = results["sweep"]
        plots.plot_sweep_heatmap(
            out_dir / "sweep.png",
            s["values"],
            s["accuracy"],
            "threshold scale" if s["kind"] == "threshold" else "v(0)/θ",
        )
