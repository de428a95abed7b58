"""Per-example image transforms on uint8 HWC numpy arrays (crop, resize, flip), then → [−1, 1].

Crops (``data.crop``):

* ``none``: the whole image, resized to ``resolution`` × ``resolution`` when ``resolution`` > 0.
* ``center``: the central square of side ``crop_size`` (or ⌊min(H, W)·crop_fraction⌋), top-left
  corner ((H − s)//2, (W − s)//2) as in score_sde's ``central_crop``; then resized.
* ``random``: the same square at a uniformly random position of the image zero-padded by
  ``crop_padding`` on every side (He et al. 2016's CIFAR augmentation: pad 4, random 32×32 crop);
  evaluation uses ``center``.
* ``inception``: random-resized crop (Szegedy et al. 2015, "Going deeper with convolutions"; the
  torchvision ``RandomResizedCrop`` procedure): up to 10 tries of area fraction ~ U(0.08, 1) and
  aspect ratio log-uniform in (3/4, 4/3), the box uniformly placed; if all fail, the central crop of
  the whole image with its aspect ratio clamped to the range. Then resized. Evaluation uses the
  standard ``center`` crop of fraction 0.875 (= 224/256) resized to ``resolution``.

Resizing uses PIL (antialiased when shrinking) with ``data.resize_method``; images stay uint8 until
the last step, ``x / 127.5 − 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from jaxgen.errors import ConfigError

CROPS = ("none", "center", "random", "inception")
RESIZE_METHODS = ("bicubic", "bilinear", "lanczos", "box", "nearest")
INCEPTION_SCALE = (0.08, 1.0)
INCEPTION_RATIO = (3 / 4, 4 / 3)
INCEPTION_EVAL_FRACTION = 0.875


@dataclass(frozen=True)
class ImageSpec:
  """How one data set's images become model inputs."""
  crop: str = "none"                  # one of CROPS
  crop_size: int = 0                  # square side in pixels (0: crop_fraction · min(H, W))
  crop_fraction: float = 1.0
  crop_padding: int = 0
  resolution: int = 0                 # output side (0: keep the crop's size)
  resize_method: str = "bicubic"
  flip: bool = False                  # random horizontal flip (training only)
  channels: int = 3                   # 1: grey, 3: RGB
  label_key: Optional[str] = None     # record key holding the int label (None: unlabelled)
  augment: Optional[Callable] = None  # uint8 HWC image, rng -> uint8 HWC image (training only)

  def validate(self) -> None:
    if self.crop not in CROPS:
      raise ConfigError(f"Unknown data.crop={self.crop!r}; use one of {', '.join(CROPS)} or '' for the data "
                        "set default.")
    if self.resize_method not in RESIZE_METHODS:
      raise ConfigError(f"Unknown data.resize_method={self.resize_method!r}; use one of "
                        f"{', '.join(RESIZE_METHODS)}.")
    if self.resolution < 0 or self.crop_size < 0 or self.crop_padding < 0 or not 0 < self.crop_fraction <= 1:
      raise ConfigError("data.resolution, data.crop_size and data.crop_padding must be ≥ 0 and "
                        f"data.crop_fraction in (0, 1]; got {self.resolution}, {self.crop_size}, "
                        f"{self.crop_padding}, {self.crop_fraction}.")
    if self.crop == "inception" and not self.resolution:
      raise ConfigError("data.crop='inception' needs an output size; set data.resolution (e.g. 224).")

  def eval_spec(self) -> "ImageSpec":
    """The deterministic evaluation counterpart: no flip/augment, random crops become central."""
    crop, fraction = self.crop, self.crop_fraction
    if crop == "random":
      crop = "center"
    elif crop == "inception":
      crop, fraction = "center", INCEPTION_EVAL_FRACTION
    return ImageSpec(crop, self.crop_size, fraction, 0, self.resolution, self.resize_method, False,
                     self.channels, self.label_key, None)

  def output_side(self, height: int, width: int) -> tuple[int, int]:
    if self.resolution:
      return self.resolution, self.resolution
    if self.crop == "none":
      return height, width
    s = square_side(height, width, self.crop_size, self.crop_fraction)
    return s, s


def square_side(height: int, width: int, crop_size: int, crop_fraction: float) -> int:
  s = crop_size if crop_size > 0 else int(min(height, width) * crop_fraction)
  if not 0 < s <= min(height, width):
    raise ConfigError(f"Crop side {s} does not fit a {height}×{width} image; lower data.crop_size.")
  return s


def center_box(height: int, width: int, side: int) -> tuple[int, int, int, int]:
  return (height - side) // 2, (width - side) // 2, side, side


def random_box(height: int, width: int, side: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
  return int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side, side


def inception_box(height: int, width: int, rng: np.random.Generator, scale=INCEPTION_SCALE,
                  ratio=INCEPTION_RATIO, attempts: int = 10) -> tuple[int, int, int, int]:
  """(top, left, h, w) of a random-resized crop (torchvision ``RandomResizedCrop.get_params``)."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


_PIL_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "lanczos": "LANCZOS", "box": "BOX",
                "nearest": "NEAREST"}


def resize(image: np.ndarray, height: int, width: int, method: str = "bicubic") -> np.ndarray:
  """uint8 HWC → uint8 [height, width, C] with PIL's (antialiased) filter ``method``."""
  if image.shape[:2] == (height, width):
    return image
  from PIL import Image  # noqa: PLC0415
  filt = getattr(Image.Resampling, _PIL_FILTERS[method])
  grey = image.shape[-1] == 1
  out = np.asarray(Image.fromarray(image[..., 0] if grey else image).resize((width, height), filt))
  return out[..., None] if grey else out


def to_float(image: np.ndarray) -> np.ndarray:
  """uint8 → float32 in [−1, 1]: x / 127.5 − 1."""
  return image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def as_hwc(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 HW / HWC with 1, 3 or 4 channels → uint8 HWC with ``channels`` (grey ↔ RGB, alpha dropped)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"Expected uint8 images, got {image.dtype}.")
  if image.ndim == 2:
    image = image[..., None]
  c = image.shape[-1]
  if c == 4:
    image, c = image[..., :3], 3
  if c == channels:
    return image
  if channels == 3 and c == 1:
    return np.repeat(image, 3, -1)
  if channels == 1 and c == 3:   # ITU-R 601-2 luma, as PIL's convert('L')
    y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]
  raise ValueError(f"Cannot turn a {c}-channel image into {channels} channels.")


def process(image: np.ndarray, spec: ImageSpec, rng: Optional[np.random.Generator]) -> np.ndarray:
  """Crop, resize, flip and augment one uint8 image; returns float32 HWC in [−1, 1].

  ``rng`` None means evaluation: deterministic crops (call with ``spec.eval_spec()``).
  """
  image = as_hwc(image, spec.channels)
  h, w = image.shape[:2]
  if spec.crop == "none":
    box = (0, 0, h, w)
  elif spec.crop == "center" or rng is None:
    box = center_box(h, w, square_side(h, w, spec.crop_size, spec.crop_fraction))
  elif spec.crop == "random":
    p = spec.crop_padding
    if p:
      image = np.pad(image, ((p, p), (p, p), (0, 0)))
    side = square_side(h, w, spec.crop_size, spec.crop_fraction)
    box = random_box(h + 2 * p, w + 2 * p, side, rng)
  else:
    box = inception_box(h, w, rng)
  top, left, ch, cw = box
  image = image[top:top + ch, left:left + cw]
  if spec.resolution:
    image = resize(image, spec.resolution, spec.resolution, spec.resize_method)
  if rng is not None and spec.flip and rng.random() < 0.5:
    image = image[:, ::-1]
  if rng is not None and spec.augment is not None:
    image = np.asarray(spec.augment(np.ascontiguousarray(image), rng), np.uint8)
  return to_float(image)


def make_transforms(spec: ImageSpec) -> tuple[Callable, Callable]:
  """(train ``(record, rng) -> example``, eval ``record -> example``) for records {'image', label}."""
  spec.validate()
  eval_spec = spec.eval_spec()

  def example(record, s, rng):
    out = {"image": process(record["image"], s, rng)}
    if s.label_key is not None:
      out["label"] = np.int32(record[s.label_key])
    return out

  return (lambda record, rng: example(record, spec, rng)), (lambda record: example(record, eval_spec, None))
