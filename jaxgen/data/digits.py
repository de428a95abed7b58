"""scikit-learn's handwritten digits (UCI optdigits test part: 1797 images, 8×8, grey levels 0..16).

Embedded in scikit-learn, so no download. Conventions:

* values v ∈ {0, …, 16} map to v/8 − 1 ∈ [−1, 1] (0 → −1 background, 16 → +1 ink); 1 channel, NHWC.
* fixed split in scikit-learn's order: ``'train'`` = the first 1500 images, ``'test'`` = the last
  297 (no shuffling, so it is identical on every machine); ``'all'`` = all 1797.
* ``resolution > 0`` and ≠ 8: bilinear resize of the [−1, 1] images (``jax.image.resize``,
  half-pixel centres, antialiased when shrinking), done once per (split, resolution) and cached.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxgen.errors import ConfigError

NUM_TRAIN = 1500
NUM_TEST = 297
SPLITS = ("train", "test", "all")
NATIVE_RESOLUTION = 8


@functools.cache
def _raw():
  from sklearn.datasets import load_digits  # noqa: PLC0415 (scikit-learn only when digits are used)
  d = load_digits()
  images = d.images.astype(np.float32) / 8.0 - 1.0
  return images[..., None], d.target.astype(np.int32)


@functools.cache
def load(split: str, resolution: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(images float32 [N, r, r, 1] in [−1, 1], labels int32 [N]) of ``split``; read-only arrays."""
  if split not in SPLITS:
    raise ConfigError(f"Unknown digits split {split!r}; use one of {', '.join(SPLITS)} "
                     f"(train = first {NUM_TRAIN}, test = last {NUM_TEST}).")
  images, labels = _raw()
  sl = {"train": slice(0, NUM_TRAIN), "test": slice(NUM_TRAIN, None), "all": slice(None)}[split]
  images, labels = images[sl], labels[sl]
  r = resolution or NATIVE_RESOLUTION
  if r != NATIVE_RESOLUTION:
    import jax  # noqa: PLC0415
    images = np.asarray(jax.image.resize(images, (len(images), r, r, 1), "bilinear"), np.float32)
    images = np.clip(images, -1.0, 1.0)
  images, labels = np.ascontiguousarray(images), np.ascontiguousarray(labels)
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels
