r"""CIFAR10-DVS (event camera), VGG-16 on 18-channel stacked event frames: the Adaptive Calibration
(AdaFire, AAAI 2025) neuromorphic set-up.

Run (``local_dir`` holds ``CIFAR10DVS/<class>/*.aedat4``, tonic's layout; README, "Neuromorphic
datasets")::

    python train.py --config configs/cifar10dvs_vgg16.py:local_dir=$HOME/data --workdir runs/c10dvs
    python convert.py --config configs/cifar10dvs_vgg16.py:local_dir=$HOME/data \
        --workdir runs/c10dvs --config.convert.method=burst --config.convert.max_spikes=4

Frames: 9 time bins × 2 polarities = 18 channels, resized from the 128×128 sensor to ``size``
(default 128: no resampling; the released code pads and upsamples to 224, ``size=224``). Split:
per class, the recordings sorted by file name, the first 90 % for training (the dataset has no
official split; the released code's SpikingJelly split). Augmentation: random 4-pixel shifts and
horizontal flips. Recipe (the released code's neuromorphic training, timm): AdamW 1e-3, wd 0.06,
cosine to 1e-5, label smoothing 0.1, mixup α 0.5 with probability 0.5 (off for the last quarter),
batch 16, 300 epochs. The network is VGG-16 (13 convs, 2 hidden FC layers of 4096) with
BatchNorm, folded at conversion, and QCFS L = 8 (``act=relu`` for the released ReLU ANN).

Expected: not measured here (no data, no GPU). Paper (Adaptive Calibration, AAAI 2025) target
accuracy: not available to us (see README).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.events_config`."""
    return common.events_config(
        arg,
        dataset="cifar10_dvs",
        model="VGG16",
        levels=8,
        epochs=300,
        batch=16,
        size=128,
        eval_batch=64,
        T=16,
    )
