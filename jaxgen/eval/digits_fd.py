"""Fréchet distance on the embedded digits, in the feature space of a small committed classifier.

The FID recipe at digits scale: features are the penultimate activations (``FEATURE_DIM`` = 32 wide)
of a small conv classifier (3×3 conv 32 → 3×3 conv 64 stride 2 → dense 32 → dense 10, ReLU)
trained on the digits train split by ``scripts/train_digits_classifier.py``; its
weights are committed as ``jaxgen/assets/digits_classifier.npz`` so the metric never drifts. Three
numbers, all against the Gaussian statistics (μ, Σ) of the *train-split* features and all from the
same number of images n (by default the size of the test split, so the finite-sample bias of the
three is comparable):

* ``fd``          — model samples;
* ``fd_real``     — held-out real digits (the test split): what real, unseen digits score at n. The
                    test split (the last 297 of scikit-learn's images, in file order) is not drawn
                    from the train split's pool: random 297-image subsets of the train split score
                    about 0.6 where the test split scores 2.7, so a model that matches the train
                    distribution can score below fd_real;
* ``fd_gaussian`` — n draws from a Gaussian N(m, C) fitted to the training pixels (mean and full
                    covariance, no clipping): the score of a model that only learnt second moments.

Images are NHWC float in [−1, 1] with one channel; resolutions other than 8 are brought to 8×8 by
average pooling (integer factors, the inverse of nearest/area resizing) or bilinear resizing
otherwise. The classifier is a plain function of a params dict (no Flax), evaluated in float32.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.eval import frechet

ASSET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                     "digits_classifier.npz")
RESOLUTION = 8
CONV = (32, 64)             # 3×3 conv widths (the second with stride 2: 8×8 → 4×4)
FEATURE_DIM = 32            # the penultimate dense layer: the feature space of the FD
NUM_CLASSES = 10


def _shapes() -> dict[str, tuple[int, ...]]:
  c0, c1 = CONV
  flat = (RESOLUTION // 2) ** 2 * c1
  return {"conv0/kernel": (3, 3, 1, c0), "conv0/bias": (c0,),
          "conv1/kernel": (3, 3, c0, c1), "conv1/bias": (c1,),
          "dense/kernel": (flat, FEATURE_DIM), "dense/bias": (FEATURE_DIM,),
          "logits/kernel": (FEATURE_DIM, NUM_CLASSES), "logits/bias": (NUM_CLASSES,)}


# --- the classifier: a pure function of a params dict ----------------------------------------------
def init_params(key: jax.Array) -> dict[str, jax.Array]:
  """LeCun-normal kernels (fan-in = product of all but the last kernel dim), zero biases."""
  params = {}
  for i, (name, shape) in enumerate(_shapes().items()):
    if name.endswith("bias"):
      params[name] = jnp.zeros(shape, jnp.float32)
    else:
      fan_in = int(np.prod(shape[:-1]))
      params[name] = jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32) / np.sqrt(fan_in)
  return params


def to_classifier_input(images) -> jax.Array:
  """NHWC images in [−1, 1] (any square size, 1 channel) → [N, 8, 8, 1] float32."""
  x = jnp.asarray(images, jnp.float32)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] != 1:
    raise ValueError(f"digits FD takes one-channel NHWC images, got shape {tuple(x.shape)}.")
  n, h, w, _ = x.shape
  if (h, w) != (RESOLUTION, RESOLUTION):
    if h % RESOLUTION == 0 and w % RESOLUTION == 0:
      x = x.reshape(n, RESOLUTION, h // RESOLUTION, RESOLUTION, w // RESOLUTION, 1).mean(axis=(2, 4))
    else:
      x = jax.image.resize(x, (n, RESOLUTION, RESOLUTION, 1), "bilinear")
  return x


def _conv(x, kernel, bias, stride: int):
  y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + bias


def features(params, images) -> jax.Array:
  """Penultimate activations [N, FEATURE_DIM]:
  relu(dense(flatten(relu(conv₂(relu(conv₁(x)), stride 2))))).
  """
  h = jax.nn.relu(_conv(to_classifier_input(images), params["conv0/kernel"], params["conv0/bias"], 1))
  h = jax.nn.relu(_conv(h, params["conv1/kernel"], params["conv1/bias"], 2))
  h = h.reshape(h.shape[0], -1)
  return jax.nn.relu(h @ params["dense/kernel"] + params["dense/bias"])


def logits(params, images) -> jax.Array:
  return features(params, images) @ params["logits/kernel"] + params["logits/bias"]


_features_jit = jax.jit(features)


def batched_features(params, images, batch_size: int = 1024) -> np.ndarray:
  """``features`` over a large host array in chunks, as float64 numpy."""
  images = np.asarray(images, np.float32)
  out = [np.asarray(_features_jit(params, images[i:i + batch_size]), np.float64)
         for i in range(0, images.shape[0], batch_size)]
  return np.concatenate(out, axis=0)


def save_params(params, path: str = ASSET) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, **{k: np.asarray(v, np.float32) for k, v in params.items()})


def load_params(path: str | None = None) -> dict[str, jax.Array]:
  """The committed classifier weights, shape-checked."""
  path = path or ASSET
  if not os.path.exists(path):
    raise FileNotFoundError(f"digits classifier weights not found at {path}: run "
                            "`python scripts/train_digits_classifier.py` to create them.")
  with np.load(path, allow_pickle=False) as f:
    params = {k: jnp.asarray(f[k]) for k in f.files}
  expected = jax.eval_shape(init_params, jax.random.key(0))
  for k, s in expected.items():
    if k not in params or params[k].shape != s.shape:
      raise ValueError(f"{path} does not hold the digits classifier ({k}: expected {s.shape}, got "
                       f"{None if k not in params else params[k].shape}); rerun "
                       "scripts/train_digits_classifier.py.")
  return params


# --- the digits splits, through the data package ----------------------------------------------------
def digits_split(split: str, resolution: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """All images [N, H, W, 1] in [−1, 1] and labels [N] of a digits split (``jaxgen.data.digits``:
  train = the first 1500 of scikit-learn's 1797 images, test = the last 297)."""
  from jaxgen.data import digits  # noqa: PLC0415

  return digits.load(split, int(resolution))


@functools.lru_cache(maxsize=4)
def _reference(path: str | None, resolution: int):
  params = load_params(path)
  train_x, _ = digits_split("train", resolution)
  test_x, _ = digits_split("test", resolution)
  train_f = batched_features(params, train_x)
  test_f = batched_features(params, test_x)
  pix = np.asarray(to_classifier_input(train_x), np.float64).reshape(len(train_x), -1)
  return params, frechet.gaussian_stats(train_f), test_f, (pix.mean(0), np.cov(pix, rowvar=False))


class DigitsFD:
  """Reference statistics of the digits splits at ``resolution`` (0: native 8×8), computed once.

  ``fd(images)``, ``fd_real()``, ``fd_gaussian(n, seed)``; ``num_real`` is the test-split size, the
  default n of the evaluation.
  """

  def __init__(self, resolution: int = 0, path: str | None = None):
    self.params, (self.mu, self.sigma), self.test_features, (self.pix_mean, self.pix_cov) = \
        _reference(path, int(resolution))
    self.num_real = int(self.test_features.shape[0])

  def _fd(self, feats: np.ndarray) -> float:
    return frechet.frechet_distance(*frechet.gaussian_stats(feats), self.mu, self.sigma)

  def fd(self, images) -> float:
    """FD of (model) images against the train-split statistics."""
    return self._fd(batched_features(self.params, images))

  def fd_real(self) -> float:
    """FD of the test split against the train-split statistics."""
    return self._fd(self.test_features)

  def fd_gaussian(self, n: int | None = None, seed: int = 0) -> float:
    """FD of n draws from the Gaussian fitted to the training pixels (unclipped)."""
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(self.pix_mean, self.pix_cov, size=n or self.num_real, method="eigh")
    return self.fd(x.reshape(-1, RESOLUTION, RESOLUTION, 1))

  def accuracy(self, split: str = "test", resolution: int = 0) -> float:
    x, y = digits_split(split, resolution)
    pred = np.concatenate([np.asarray(jnp.argmax(logits(self.params, x[i:i + 1024]), -1))
                           for i in range(0, len(x), 1024)])
    return float(np.mean(pred == y))

  def metrics(self, images, seed: int = 0) -> dict[str, Any]:
    """{'fd', 'fd_real', 'fd_gaussian'} with the Gaussian drawn at the size of ``images``."""
    n = int(np.asarray(images).shape[0])
    return dict(fd=self.fd(images), fd_real=self.fd_real(), fd_gaussian=self.fd_gaussian(n, seed))
