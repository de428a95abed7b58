"""RandAugment (Cubuk et al. 2020) and AutoAugment's ImageNet policy (Cubuk et al. 2019) as per-example
numpy/PIL operations on uint8 HWC images, following the TPU EfficientNet implementation
(``autoaugment.py``: ``distort_image_with_randaugment`` / ``policy_v0``).

``randaugment(image, rng, num_layers=2, magnitude=9)``: ``num_layers`` times, pick one of the 16 ops
uniformly and apply it at ``magnitude``. ``autoaugment(image, rng)``: pick one of the 25 sub-policies
uniformly; apply each of its two ops with its probability at its level. ``rng`` is a
``numpy.random.Generator`` (the data pipeline's per-example stream), so results are deterministic.

Level → argument (TF's ``level_to_arg`` with _MAX_LEVEL = 10; levels above 10 extrapolate, as in the
TF code EfficientNet-B7's RandAugment magnitude 28 relies on):
  Rotate ±30°·l/10; ShearX/Y ±0.3·l/10; TranslateX/Y ±T·l/10 px (T = 100 for RandAugment, 250 for
  AutoAugment); Color/Contrast/Brightness/Sharpness factor 1.8·l/10 + 0.1; Posterize keeps
  int(4·l/10) bits; Solarize threshold int(256·l/10); SolarizeAdd adds int(110·l/10) below 128;
  Cutout a gray square of half-side int(C·l/10) (C = 40 / 100). Pixels uncovered by a geometric op
  are filled with gray 128. Signs of the symmetric ops are drawn with probability 1/2.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from jaxgen.errors import ConfigError

_MAX_LEVEL = 10.0
FILL = 128

RANDAUGMENT_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
                   "Cutout", "SolarizeAdd")

# AutoAugment ImageNet policy ("policy_v0" of the TPU EfficientNet code): (op, probability, level)
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)), (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)), (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)), (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)), (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)), (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)), (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)), (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)), (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)), (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)), (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)), (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)), (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


# --- pixel ops on uint8 arrays -------------------------------------------------------------------
def _pil(image: np.ndarray) -> Image.Image:
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _np(img: Image.Image, channels: int) -> np.ndarray:
  a = np.asarray(img, np.uint8)
  return a[..., None] if channels == 1 and a.ndim == 2 else a


def _fill(image: np.ndarray):
  return FILL if image.shape[-1] == 1 else (FILL,) * image.shape[-1]


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
  shift = 8 - int(np.clip(bits, 0, 8))
  return ((image >> shift) << shift).astype(np.uint8)


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
  return np.where(image < threshold, image, 255 - image).astype(np.uint8)


def solarize_add(image: np.ndarray, addition: int, threshold: int = 128) -> np.ndarray:
  added = np.clip(image.astype(np.int32) + addition, 0, 255).astype(np.uint8)
  return np.where(image < threshold, added, image)


def cutout(image: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
  h, w = image.shape[:2]
  cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
  out = image.copy()
  out[max(0, cy - pad):min(h, cy + pad), max(0, cx - pad):min(w, cx + pad)] = FILL
  return out


def _affine(image: np.ndarray, coeffs) -> np.ndarray:
  img = _pil(image).transform(_pil(image).size, Image.AFFINE, coeffs, resample=Image.NEAREST,
                              fillcolor=_fill(image))
  return _np(img, image.shape[-1])


def _enhance(image: np.ndarray, cls, factor: float) -> np.ndarray:
  return _np(cls(_pil(image)).enhance(factor), image.shape[-1])


def apply_op(image: np.ndarray, name: str, level: float, rng: np.random.Generator, *,
             translate_const: float = 100.0, cutout_const: float = 40.0) -> np.ndarray:
  """One named op at ``level`` (0..10 nominal) on a uint8 HWC image."""
  f = level / _MAX_LEVEL
  sign = -1.0 if rng.random() < 0.5 else 1.0
  c = image.shape[-1]
  if name == "AutoContrast":
    return _np(ImageOps.autocontrast(_pil(image)), c)
  if name == "Equalize":
    return _np(ImageOps.equalize(_pil(image)), c)
  if name == "Invert":
    return (255 - image).astype(np.uint8)
  if name == "Rotate":
    return _np(_pil(image).rotate(sign * 30.0 * f, resample=Image.NEAREST, fillcolor=_fill(image)), c)
  if name == "Posterize":
    return posterize(image, int(f * 4))
  if name == "Solarize":
    return solarize(image, int(f * 256))
  if name == "SolarizeAdd":
    return solarize_add(image, int(f * 110))
  if name in ("Color", "Contrast", "Brightness", "Sharpness"):
    cls = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast,
           "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}[name]
    if name == "Color" and c == 1:
      return image
    return _enhance(image, cls, f * 1.8 + 0.1)
  if name == "ShearX":
    return _affine(image, (1.0, sign * 0.3 * f, 0.0, 0.0, 1.0, 0.0))
  if name == "ShearY":
    return _affine(image, (1.0, 0.0, 0.0, sign * 0.3 * f, 1.0, 0.0))
  if name == "TranslateX":   # PIL's affine maps output → input, so −t moves the content by +t
    return _affine(image, (1.0, 0.0, -sign * translate_const * f, 0.0, 1.0, 0.0))
  if name == "TranslateY":
    return _affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, -sign * translate_const * f))
  if name == "Cutout":
    return cutout(image, int(f * cutout_const), rng)
  raise ConfigError(f"unknown augmentation op {name!r}: use one of {', '.join(RANDAUGMENT_OPS)}.")


def _check(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"augmentations take uint8 HWC images with 1 or 3 channels, got {image.dtype} "
                     f"{image.shape}; apply them before the conversion to float.")
  return image


def randaugment(image: np.ndarray, rng: np.random.Generator, num_layers: int = 2,
                magnitude: float = 9) -> np.ndarray:
  """RandAugment: ``num_layers`` uniformly chosen ops, each at ``magnitude`` (TF: always applied)."""
  image = _check(image)
  for _ in range(int(num_layers)):
    name = RANDAUGMENT_OPS[int(rng.integers(len(RANDAUGMENT_OPS)))]
    image = apply_op(image, name, float(magnitude), rng, translate_const=100.0, cutout_const=40.0)
  return image


def autoaugment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """AutoAugment ImageNet policy: one uniformly chosen sub-policy, each op with its probability."""
  image = _check(image)
  for name, prob, level in POLICY_V0[int(rng.integers(len(POLICY_V0)))]:
    if rng.random() < prob:
      image = apply_op(image, name, float(level), rng, translate_const=250.0, cutout_const=100.0)
  return image
