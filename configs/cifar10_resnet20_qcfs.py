r"""CIFAR-10, ResNet-20 (He topology, option-B shortcuts) with QCFS activations.

Run::

    python train.py --config configs/cifar10_resnet20_qcfs.py --workdir /tmp/cifar10_resnet20_qcfs
    python train.py --config configs/cifar10_resnet20_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (QCFS code, putshua/ANN_SNN_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine per epoch, 300 epochs,
batch 200, L=8, crop+flip+AutoAugment+Cutout(16).

Expected: not yet measured here (no GPU run yet). Paper: ANN 91.77%; SNN 89.55% at T=8, 92.24% at
T=32.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="cifar10",
        model="ResNet20",
        levels=8,
        epochs=300,
        batch=200,
        lr=0.1,
        augment="autoaugment_cutout",
        cutout=16,
    )
