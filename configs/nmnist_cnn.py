r"""N-MNIST (event camera), SmallCNN with QCFS activations on 18-channel stacked event frames.

Run (``local_dir`` holds ``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/...``, tonic's
layout: README, "Neuromorphic datasets")::

    python train.py --config configs/nmnist_cnn.py:local_dir=$HOME/data --workdir runs/nmnist
    python convert.py --config configs/nmnist_cnn.py:local_dir=$HOME/data --workdir runs/nmnist \
        --config.convert.method=calib_light
    python convert.py --config configs/nmnist_cnn.py:local_dir=$HOME/data,encoding=time \
        --workdir runs/nmnist                    # the SNN consumes the 9 time bins in time

Frames: 9 time bins × 2 polarities = 18 channels at the sensor's 34×34. Recipe: the Adaptive
Calibration code's event-data recipe (AdamW 1e-3, wd 0.06, cosine to 1e-5, label smoothing 0.1)
without mixup, which a network this small and 5 epochs do not need; batch 64; QCFS L = 4.

Expected accuracy: not measured (the data cannot be downloaded on the development machine).
Time, measured 2026-12 on this 2-core CPU (load 1-2) with generated data of N-MNIST's size: a
training step of 64 takes ~230 ms (280 images/s: ~3.6 min per epoch, ~20 min for 5 epochs);
decoding and binning a recording of 4 500 events ~0.8 ms, so preparing the 70 000 files once
takes 1-2 minutes.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.events_config`."""
    config = common.events_config(
        arg,
        dataset="nmnist",
        model="SmallCNN",
        levels=4,
        epochs=5,
        batch=64,
        size=34,
        eval_batch=512,
        mixup=0.0,
        T=16,
    )
    config.data_workers = 0  # Unaugmented 34×34×18 frames: cheaper inline than in workers.
    config.checkpoint_every_steps = 500
    config.log_every_steps = 100
    return config
