r"""CIFAR-100, VGG-16 with QCFS activations.

Run::

    python train.py --config configs/cifar100_vgg16_qcfs.py --workdir /tmp/cifar100_vgg16_qcfs
    python train.py --config configs/cifar100_vgg16_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (the QCFS successor repository, putshua/ANN_SNN_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine
per epoch, 300 epochs, batch 200, L=8, crop+flip+AutoAugment+Cutout(8). (The original repository,
putshua/SNN_conversion_QCFS, used no AutoAugment and Cutout(16).)

Expected: not yet measured here (no GPU run yet). Independent replication with the authors'
checkpoint (bjourne/ANN_SNN_QCFS README, L=8): ANN 77.41%; SNN 74.79% at T=8, 76.87% at T=32.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="cifar100",
        model="VGG16",
        levels=8,
        epochs=300,
        batch=200,
        lr=0.1,
        augment="autoaugment_cutout",
        cutout=8,
    )
