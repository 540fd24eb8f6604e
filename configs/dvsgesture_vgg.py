r"""DVS128 Gesture (event camera, 11 classes), VGG-16 on 18-channel stacked event frames: the
Adaptive Calibration (AdaFire, AAAI 2025) neuromorphic set-up.

Run (``local_dir`` holds ``DVSGesture/ibmGestureTrain/user*/<label>.npy`` and
``DVSGesture/ibmGestureTest/...``, tonic's preprocessed layout; README, "Neuromorphic
datasets")::

    python train.py --config configs/dvsgesture_vgg.py:local_dir=$HOME/data --workdir runs/gesture
    python convert.py --config configs/dvsgesture_vgg.py:local_dir=$HOME/data \
        --workdir runs/gesture --config.convert.method=calib_light --config.convert.T=16

Frames: 9 time bins × 2 polarities = 18 channels from the 128×128 sensor (``size`` resizes).
Split: the dataset's own (users 1-23 train, 24-29 test). Augmentation: random 4-pixel shifts, no
flip (mirroring turns a left-hand wave into a right-hand wave). Recipe as
``configs/cifar10dvs_vgg16.py`` (AdamW, cosine, label smoothing, mixup; batch 16, 300 epochs).

Expected: not measured here (no data, no GPU). Paper (Adaptive Calibration, AAAI 2025) target
accuracy: not available to us (see README).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.events_config`."""
    return common.events_config(
        arg,
        dataset="dvs_gesture",
        model="VGG16",
        levels=8,
        epochs=300,
        batch=16,
        size=128,
        eval_batch=64,
        T=16,
    )
