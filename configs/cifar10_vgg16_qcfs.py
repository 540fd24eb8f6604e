r"""CIFAR-10, VGG-16 with QCFS activations (Bu et al., ICLR 2022).

Run::

    python train.py --config configs/cifar10_vgg16_qcfs.py --workdir /tmp/cifar10_vgg16_qcfs
    python train.py --config configs/cifar10_vgg16_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (QCFS code, putshua/ANN_SNN_QCFS): SGD m0.9, lr 0.1, wd 5e-4 on all params, cosine per
epoch, 300 epochs, batch 200, L=8, crop+flip+AutoAugment+Cutout(16), CE, seed 42.

Expected: not yet measured here (no GPU run yet). Paper: ANN 95.52%; SNN 94.95% at T=8, 95.54% at
T=32.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="cifar10",
        model="VGG16",
        levels=8,
        epochs=300,
        batch=200,
        lr=0.1,
        augment="autoaugment_cutout",
        cutout=16,
    )
