"""The AutoAugment CIFAR-10 policy (Cubuk et al., CVPR 2019), on host with numpy and PIL.

The policy has 25 sub-policies of two operations, each with a probability and a
magnitude level in 0..9. Per image one sub-policy is drawn uniformly; each of its two
operations is applied with its probability. Magnitudes follow the reference grids
(the widely used PyTorch port by DeepVoltaire, also used by QCFS): shear up to 0.3,
translation up to 150/331 of the image side, rotation up to 30 degrees, enhancement
factors 1 +- up to 0.9, posterize 8..4 bits, solarize threshold 256..0. Shear,
translation, rotation and the enhancement operations pick a random sign; for rotation
this follows the TensorFlow reference and torchvision, whereas the PyTorch port always
rotates counter-clockwise. Areas uncovered by a geometric transform are filled with
grey (128); rotation resamples with nearest neighbour, shear/translation bicubically.
The histogram and lookup-table operations (posterize, solarize, autocontrast,
equalize, invert) run in numpy, bit-exact with PIL's `ImageOps` but faster.

All random draws for a batch come from one `numpy.random.Generator` up front, so the
result depends only on the generator state.
"""

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# (operation, probability, magnitude level) pairs of the 25 CIFAR-10 sub-policies.
CIFAR10_POLICY = (
    (("invert", 0.1, 7), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.5, 8), ("equalize", 0.9, 2)),
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, 5), ("equalize", 0.5, 1)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, 7), ("autocontrast", 0.4, 8)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, 3)),
    (("equalize", 0.2, 0), ("autocontrast", 0.6, 0)),
    (("equalize", 0.2, 8), ("equalize", 0.6, 4)),
    (("color", 0.9, 9), ("equalize", 0.6, 6)),
    (("autocontrast", 0.8, 4), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, 3)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.9, 2), ("solarize", 0.8, 3)),
    (("equalize", 0.8, 8), ("invert", 0.1, 3)),
    (("translate_y", 0.7, 9), ("autocontrast", 0.9, 1)),
)

# Magnitude grids, indexed by level 0..9.
_LEVELS = {
    "shear_x": np.linspace(0.0, 0.3, 10),
    "shear_y": np.linspace(0.0, 0.3, 10),
    "translate_x": np.linspace(0.0, 150 / 331, 10),
    "translate_y": np.linspace(0.0, 150 / 331, 10),
    "rotate": np.linspace(0.0, 30.0, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10)).astype(int),
    "solarize": np.linspace(256, 0, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
}
_FILL = 128
# Operations implemented with numpy lookup tables (bit-exact with PIL's ImageOps,
# several times faster on small images); the others go through PIL.
_NUMPY_OPS = ("posterize", "solarize", "autocontrast", "equalize", "invert")
_RAMP = np.arange(256)


def _apply_luts(image: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Maps each channel c of a uint8 [H, W, C] image through ``luts[c]`` (shape [C, 256])."""
    return luts[np.arange(image.shape[-1]), image].astype(np.uint8)


def _autocontrast_luts(image: np.ndarray) -> np.ndarray:
    """Per-channel LUTs [C, 256] stretching [min, max] to [0, 255] (``ImageOps.autocontrast``)."""
    pixels = image.reshape(-1, image.shape[-1])
    lo, hi = pixels.min(0).astype(np.int64), pixels.max(0).astype(np.int64)
    flat = hi <= lo
    scale = 255.0 / np.where(flat, 1, hi - lo)
    stretched = (_RAMP * scale[:, None] + (-lo * scale)[:, None]).astype(np.int64)
    return np.where(flat[:, None], _RAMP, np.clip(stretched, 0, 255))


def _equalize_luts(image: np.ndarray) -> np.ndarray:
    """Per-channel histogram-equalisation LUTs [C, 256] (``ImageOps.equalize``)."""
    channels = image.shape[-1]
    codes = image.reshape(-1, channels) + 256 * np.arange(channels)
    hists = np.bincount(codes.ravel(), minlength=256 * channels).reshape(channels, 256)
    luts = []
    for hist in hists:
        nonzero = hist[hist > 0]
        step = (int(nonzero.sum()) - int(nonzero[-1])) // 255 if len(nonzero) > 1 else 0
        below = np.concatenate([[0], np.cumsum(hist)[:-1]])
        luts.append(np.clip((step // 2 + below) // step, 0, 255) if step else _RAMP)
    return np.stack(luts)


def apply_numpy_op(image: np.ndarray, op: str, level: int) -> np.ndarray:
    """Applies one of the histogram/LUT operations to a uint8 [H, W, C] image.

    Args:
      image: uint8 [H, W, C].
      op: one of 'posterize', 'solarize', 'autocontrast', 'equalize', 'invert'.
      level: magnitude level in 0..9 (ignored by the last three).

    Returns:
      uint8 [H, W, C], equal to what PIL's `ImageOps` function returns.
    """
    match op:
        case "posterize":
            lut = _RAMP & ~(2 ** (8 - int(_LEVELS[op][level])) - 1)
        case "solarize":
            lut = np.where(_RAMP < _LEVELS[op][level], _RAMP, 255 - _RAMP)
        case "invert":
            lut = 255 - _RAMP
        case "autocontrast":
            return _apply_luts(image, _autocontrast_luts(image))
        case "equalize":
            return _apply_luts(image, _equalize_luts(image))
        case _:
            raise ValueError(f"unknown numpy AutoAugment operation {op!r}")
    return lut.astype(np.uint8)[image]


def _fill(img: Image.Image):
    return _FILL if img.mode == "L" else (_FILL,) * len(img.getbands())


def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return img.transform(
        img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC, fillcolor=_fill(img)
    )


def apply_pil_op(img: Image.Image, op: str, level: int, sign: int) -> Image.Image:
    """Applies one AutoAugment operation to a PIL image, as the reference does.

    Args:
      img: a PIL image (mode 'L' or 'RGB').
      op: operation name, one of the names in `CIFAR10_POLICY`.
      level: magnitude level in 0..9.
      sign: +1 or -1, used by the signed operations.

    Returns:
      The transformed PIL image.
    """
    v = _LEVELS[op][level] if op in _LEVELS else None
    match op:
        case "shear_x":
            return _affine(img, (1, v * sign, 0, 0, 1, 0))
        case "shear_y":
            return _affine(img, (1, 0, 0, v * sign, 1, 0))
        case "translate_x":
            return _affine(img, (1, 0, v * img.size[0] * sign, 0, 1, 0))
        case "translate_y":
            return _affine(img, (1, 0, 0, 0, 1, v * img.size[1] * sign))
        case "rotate":
            return img.rotate(v * sign, fillcolor=_fill(img))
        case "color":
            return ImageEnhance.Color(img).enhance(1 + v * sign)
        case "contrast":
            return ImageEnhance.Contrast(img).enhance(1 + v * sign)
        case "sharpness":
            return ImageEnhance.Sharpness(img).enhance(1 + v * sign)
        case "brightness":
            return ImageEnhance.Brightness(img).enhance(1 + v * sign)
        case "posterize":
            return ImageOps.posterize(img, int(v))
        case "solarize":
            return ImageOps.solarize(img, v)
        case "autocontrast":
            return ImageOps.autocontrast(img)
        case "equalize":
            return ImageOps.equalize(img)
        case "invert":
            return ImageOps.invert(img)
    raise ValueError(f"unknown AutoAugment operation {op!r}")


def apply_op(image: np.ndarray, op: str, level: int, sign: int) -> np.ndarray:
    """Applies one AutoAugment operation to a uint8 [H, W, C] image (C in {1, 3})."""
    if op in _NUMPY_OPS:
        return apply_numpy_op(image, op, level)
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return np.asarray(apply_pil_op(pil, op, level, sign)).reshape(image.shape)


def cifar10_policy(images: np.ndarray, rng: np.random.Generator, *, rows=None) -> np.ndarray:
    """Applies the AutoAugment CIFAR-10 policy to each image of a uint8 batch.

    Args:
      images: uint8 [B, H, W, C] with C in {1, 3}.
      rng: source of all random choices (sub-policy, coin flips, signs).
      rows: a `jaxsnn.data.augment.Rows` placing ``images`` in a larger global batch:
        the choices are drawn for all ``rows.total`` images and these rows' are used
        (None: ``images`` is the whole batch).

    Returns:
      uint8 [B, H, W, C].
    """
    batch = images.shape[0]
    size, first = (batch, 0) if rows is None else (rows.total, rows.start)
    local = slice(first, first + batch)
    choice = rng.integers(0, len(CIFAR10_POLICY), size=size)[local]
    coins = rng.random((size, 2))[local]
    signs = rng.choice(np.array([-1, 1]), size=(size, 2))[local]
    out = images.copy()
    for i in range(batch):
        for j, (op, prob, level) in enumerate(CIFAR10_POLICY[choice[i]]):
            if coins[i, j] < prob:
                out[i] = apply_op(out[i], op, level, int(signs[i, j]))
    return out
