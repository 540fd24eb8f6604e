r"""ImageNet, VGG-16 with QCFS activations.

Run::

    python train.py --config configs/imagenet_vgg16_qcfs.py --workdir /tmp/imagenet_vgg16_qcfs
    python train.py --config configs/imagenet_vgg16_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (QCFS, putshua/SNN_conversion_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine per epoch, L=16,
RandomResizedCrop 224 + flip (ColorJitter not implemented). Epochs (120) and batch (256) are our
assumptions (the released ImageNet training script does not run as published). Needs ImageNet
prepared as TFDS array_record (config.data_dir).

Expected: not yet measured here (no GPU run yet). Paper: ANN 74.29%.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="imagenet2012",
        model="VGG16",
        levels=16,
        epochs=120,
        batch=256,
        lr=0.1,
        augment="crop_flip",
        eval_batch=256,
    )
