r"""Converts the ANN in --workdir (or a PyTorch .pth) to an SNN; evaluates it per timestep.

    python convert.py --config configs/fashion_mnist_cnn.py --workdir /tmp/fm_L4
    python convert.py --config configs/fashion_mnist_cnn.py --workdir /tmp/fm_L4 \
        --config.convert.method=srp --config.convert.presim=4 --config.convert.T=8
    python convert.py --help_methods                 # every method and option
    python convert.py --rerun /tmp/fm_L4/snn_qcfs-T32/results.json

Writes results.json, the SNN and plots to <workdir>/snn_<method>-T<T>[-<options>]/ (README).
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxsnn import methods, progress
from jaxsnn.cli import console, launch
from jaxsnn.cli import convert as engine

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path.py:args).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding the ANN checkpoints.")
_RERUN = flags.DEFINE_string("rerun", None, "Repeat the conversion recorded in a results.json.")
_HELP = flags.DEFINE_bool("help_methods", False, "List the methods and their options, then exit.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")

    def run():
        if _HELP.value:
            print(methods.method_table_markdown() + "\n" + methods.option_table_markdown())
            return
        if _RERUN.value:
            engine.rerun(_RERUN.value)
            return
        if _CONFIG.value is None or _WORKDIR.value is None:
            raise ValueError("--config and --workdir are required (or --rerun, --help_methods)")
        config = _CONFIG.value
        progress.set_enabled(config.convert.get("progress", True))
        launch.initialize(config)
        logging.info("JAX %s, backend %s, devices %s", jax.__version__, jax.default_backend(),
                     jax.devices())  # fmt: skip
        engine.convert_and_evaluate(config, _WORKDIR.value)

    console.run(run, workdir=_WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=console.parse_flags)
