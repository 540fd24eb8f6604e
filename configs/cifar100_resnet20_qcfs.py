r"""CIFAR-100, ResNet-20 with QCFS activations (the SRP paper's ResNet-20 model).

Run::

  python train.py --config configs/cifar100_resnet20_qcfs.py --workdir /tmp/cifar100_resnet20_qcfs
  python train.py --config configs/cifar100_resnet20_qcfs.py:runlocal --workdir /tmp/smoke
  python train.py --config configs/cifar100_resnet20_qcfs.py:L=4,lr=0.02,batch=128 --workdir /tmp/a

Recipe (the QCFS successor repository, putshua/ANN_SNN_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine
per epoch, 300 epochs, batch 200, L=8, crop+flip+AutoAugment+Cutout(8). SRP's recipe
(hzc1208/ANN2SNN_SRP) is lr 0.02, L=4, batch 128:
``--config configs/cifar100_resnet20_qcfs.py:L=4,lr=0.02,batch=128``.

Expected: not yet measured here (no GPU run yet). SRP README (its recipe): ANN 69.94%.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="cifar100",
        model="ResNet20",
        levels=8,
        epochs=300,
        batch=200,
        lr=0.1,
        augment="autoaugment_cutout",
        cutout=8,
    )
