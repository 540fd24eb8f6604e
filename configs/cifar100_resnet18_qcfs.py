r"""CIFAR-100, ResNet-18 (3×3 stem) with QCFS activations.

Run::

    python train.py --config configs/cifar100_resnet18_qcfs.py --workdir /tmp/cifar100_resnet18_qcfs
    python train.py --config configs/cifar100_resnet18_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (the QCFS successor repository, putshua/ANN_SNN_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine
per epoch, 300 epochs, batch 200, L=8, crop+flip+AutoAugment+Cutout(8).

Expected: not yet measured here (no GPU run yet). Independent replication (bjourne/ANN_SNN_QCFS
README, L=8, seed 42): ANN 79.59%; SNN 75.47% at T=8, 79.93% at T=32.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="cifar100",
        model="ResNet18",
        levels=8,
        epochs=300,
        batch=200,
        lr=0.1,
        augment="autoaugment_cutout",
        cutout=8,
    )
