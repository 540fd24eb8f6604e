"""Test configuration: CPU only, two fake devices, strict dtype rules."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# Tests are compile-bound on 2 cores: skip most XLA optimisation passes (results are unchanged).
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``(config, workdir)``: a tiny QCFS CNN trained 4 steps on generated 8×8 IDX data.

    Checkpoints at steps 2 and 4 (4 has test metrics, so it is the best). Shared by the conversion
    tests: copy the config before changing it, and write nothing but ``snn_*`` outputs there.
    """
    import importlib
    import pathlib
    import sys

    from idx_files import make_idx_dir

    from jaxsnn.train import loop

    root = str(pathlib.Path(__file__).resolve().parents[1])
    if root not in sys.path:  # Config files import `configs.common` from the repo root.
        sys.path.insert(0, root)
    tiny = importlib.import_module("configs.tiny")
    idx = make_idx_dir(tmp_path_factory.mktemp("idx"), 48, 20, seed=1)
    config = tiny.get_config(f"idx_dir={idx},steps=4")
    config.data_dir = str(tmp_path_factory.mktemp("tfds"))
    workdir = tmp_path_factory.mktemp("run")
    loop.train_and_evaluate(config, workdir)
    return config, workdir
