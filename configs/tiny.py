r"""Tiny config for tests: `_CNNTiny` (one 4-channel conv, 8 hidden units), QCFS L=4, a few steps.

Run (on a directory of small IDX files, e.g. the ones the tests generate)::

    python train.py --config configs/tiny.py:local_dir=/tmp/idx --workdir /tmp/tiny

Expected: finishes in seconds on CPU; accuracy is meaningless (random data). Not a benchmark.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny test config; ``arg`` keys: L, epochs, batch, dataset, local_dir (old name
    idx_dir), steps."""
    arg = common.parse_arg(
        arg, L=4, epochs=1, batch=8, dataset="idx", local_dir="", idx_dir="", steps=0
    )
    config = ml_collections.ConfigDict()
    common.data_block(config, dataset=arg.dataset, augment="none")
    config.local_dir = arg.local_dir or None
    config.idx_dir = arg.idx_dir or None
    config.data_workers = 0
    common.model_block(config, model="_CNNTiny", levels=arg.L)
    common.sgd_block(config, lr=0.05)
    common.loop_block(config, epochs=arg.epochs, batch=arg.batch, eval_batch=arg.batch)
    config.max_steps = arg.steps or None
    config.checkpoint_every_steps = 2
    config.log_every_steps = 1
    config.progress = False
    common.convert_block(config, T=4)
    return config
