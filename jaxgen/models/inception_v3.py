"""Inception-v3 as in the TF FID graph (``pt_inception-2015-12-05``, the network of TTUR/pytorch-fid/EDM).

Structure: torchvision's ``inception_v3`` without auxiliary logits, 1008 output classes, with
pytorch-fid's FID-specific blocks: the average pools of Mixed_5b–5d, 6b–6e and 7b exclude padding
(``count_include_pad=False``) and Mixed_7c's pool branch is a 3×3 *max* pool. Every convolution is
bias-free, followed by BatchNorm (ε = 1e-3) and ReLU. Trainable parameters: 23,850,960 (conv kernels, BN
γ/β and the 2048→1008 classifier); BN running statistics live in ``batch_stats``.

``InceptionV3(x)`` takes float NHWC images in [−1, 1] (any size ≥ 75; FID uses 299) and returns
``{'pool3': [B, 2048], 'logits': [B, 1008]}``. ``preprocess`` maps images to the network's input as the
TF graph does (bilinear resize to 299 of 0..255 pixels, then (x − 128)/128).
Weights come from a local ``.npz`` written by ``jaxgen.convert.inception`` (``load_variables``).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models import register


class BasicConv2d(nn.Module):
  features: int
  kernel: Sequence[int] = (1, 1)
  strides: Sequence[int] = (1, 1)
  padding: Any = "VALID"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    pad = self.padding if isinstance(self.padding, str) else [(p, p) for p in self.padding]
    x = nn.Conv(self.features, tuple(self.kernel), tuple(self.strides), pad, use_bias=False, dtype=self.dtype,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, dtype=jnp.float32, name="bn")(x)
    return nn.relu(x).astype(self.dtype)


def avg_pool_exclude_pad(x, window=3, pad=1):
  """3×3 / stride 1 average pool over valid taps only (torch ``count_include_pad=False``)."""
  dims, strides = (1, window, window, 1), (1, 1, 1, 1)
  padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
  s = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, padding)
  n = jax.lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype)[None, :, :, None], 0.0, jax.lax.add, dims, strides, padding)
  return s / n


def max_pool_same(x, window=3, pad=1):
  return nn.max_pool(x, (window, window), (1, 1), ((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
  pool_features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    C = lambda f, k=(1, 1), p=(0, 0), name=None: BasicConv2d(f, k, (1, 1), p, self.dtype, name=name)
    b1 = C(64, name="branch1x1")(x)
    b5 = C(64, (5, 5), (2, 2), name="branch5x5_2")(C(48, name="branch5x5_1")(x))
    b3 = C(64, name="branch3x3dbl_1")(x)
    b3 = C(96, (3, 3), (1, 1), name="branch3x3dbl_2")(b3)
    b3 = C(96, (3, 3), (1, 1), name="branch3x3dbl_3")(b3)
    bp = C(self.pool_features, name="branch_pool")(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), (2, 2), dtype=self.dtype, name="branch3x3")(x)
    d = BasicConv2d(64, dtype=self.dtype, name="branch3x3dbl_1")(x)
    d = BasicConv2d(96, (3, 3), (1, 1), (1, 1), self.dtype, name="branch3x3dbl_2")(d)
    d = BasicConv2d(96, (3, 3), (2, 2), dtype=self.dtype, name="branch3x3dbl_3")(d)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, d, bp.astype(self.dtype)], -1)


class InceptionC(nn.Module):
  channels_7x7: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    C = lambda f, k=(1, 1), p=(0, 0), name=None: BasicConv2d(f, k, (1, 1), p, self.dtype, name=name)
    b1 = C(192, name="branch1x1")(x)
    b7 = C(c7, name="branch7x7_1")(x)
    b7 = C(c7, (1, 7), (0, 3), name="branch7x7_2")(b7)
    b7 = C(192, (7, 1), (3, 0), name="branch7x7_3")(b7)
    d = C(c7, name="branch7x7dbl_1")(x)
    d = C(c7, (7, 1), (3, 0), name="branch7x7dbl_2")(d)
    d = C(c7, (1, 7), (0, 3), name="branch7x7dbl_3")(d)
    d = C(c7, (7, 1), (3, 0), name="branch7x7dbl_4")(d)
    d = C(192, (1, 7), (0, 3), name="branch7x7dbl_5")(d)
    bp = C(192, name="branch_pool")(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b7, d, bp], -1)


class InceptionD(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    C = lambda f, k=(1, 1), s=(1, 1), p=(0, 0), name=None: BasicConv2d(f, k, s, p, self.dtype, name=name)
    b3 = C(320, (3, 3), (2, 2), name="branch3x3_2")(C(192, name="branch3x3_1")(x))
    b7 = C(192, name="branch7x7x3_1")(x)
    b7 = C(192, (1, 7), p=(0, 3), name="branch7x7x3_2")(b7)
    b7 = C(192, (7, 1), p=(3, 0), name="branch7x7x3_3")(b7)
    b7 = C(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, b7, bp.astype(self.dtype)], -1)


class InceptionE(nn.Module):
  pool: str = "avg"   # 'avg' (Mixed_7b, padding excluded) | 'max' (Mixed_7c in the FID graph)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    C = lambda f, k=(1, 1), p=(0, 0), name=None: BasicConv2d(f, k, (1, 1), p, self.dtype, name=name)
    b1 = C(320, name="branch1x1")(x)
    b3 = C(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([C(384, (1, 3), (0, 1), name="branch3x3_2a")(b3),
                          C(384, (3, 1), (1, 0), name="branch3x3_2b")(b3)], -1)
    d = C(448, name="branch3x3dbl_1")(x)
    d = C(384, (3, 3), (1, 1), name="branch3x3dbl_2")(d)
    d = jnp.concatenate([C(384, (1, 3), (0, 1), name="branch3x3dbl_3a")(d),
                         C(384, (3, 1), (1, 0), name="branch3x3dbl_3b")(d)], -1)
    pooled = avg_pool_exclude_pad(x) if self.pool == "avg" else max_pool_same(x)
    bp = C(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, d, bp], -1)


class InceptionV3(nn.Module):
  """The FID Inception-v3: ``x`` in [−1, 1], NHWC → {'pool3': [B, 2048], 'logits': [B, num_classes]}."""
  num_classes: int = 1008
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[1] < 75 or x.shape[2] < 75:
      raise ValueError(f"Inception-v3 needs inputs of at least 75×75, got {x.shape[1:3]}; resize with "
                       "jaxgen.models.inception_v3.preprocess first.")
    dt = self.dtype
    x = x.astype(dt)
    x = BasicConv2d(32, (3, 3), (2, 2), dtype=dt, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), dtype=dt, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), dtype=dt, name="Conv2d_2b_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = BasicConv2d(80, dtype=dt, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), dtype=dt, name="Conv2d_4a_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = InceptionA(32, dt, name="Mixed_5b")(x)
    x = InceptionA(64, dt, name="Mixed_5c")(x)
    x = InceptionA(64, dt, name="Mixed_5d")(x)
    x = InceptionB(dt, name="Mixed_6a")(x)
    x = InceptionC(128, dt, name="Mixed_6b")(x)
    x = InceptionC(160, dt, name="Mixed_6c")(x)
    x = InceptionC(160, dt, name="Mixed_6d")(x)
    x = InceptionC(192, dt, name="Mixed_6e")(x)
    x = InceptionD(dt, name="Mixed_7a")(x)
    x = InceptionE("avg", dt, name="Mixed_7b")(x)
    x = InceptionE("max", dt, name="Mixed_7c")(x)
    pool3 = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=jnp.float32, name="fc")(pool3)
    return {"pool3": pool3, "logits": logits}


def _tf1_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """Interpolation matrix [n_out, n_in] of TF1 ``resize_bilinear`` (align_corners=False,
  half_pixel_centers=False): source coordinate = i · n_in / n_out, clamped at the last pixel."""
  src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = src - lo
  m = np.zeros((n_out, n_in), np.float64)
  m[np.arange(n_out), lo] += 1 - frac
  m[np.arange(n_out), hi] += frac
  return m.astype(np.float32)


def preprocess(images, size: int = 299, mode: str = "tf1"):
  """Images (float in [−1, 1], or uint8 0..255) [B, H, W, 3] → the network input [B, size, size, 3].

  ``mode='tf1'`` reproduces the TF FID graph (bilinear, no half-pixel centres); ``'half_pixel'``
  is pytorch-fid's ``F.interpolate(..., align_corners=False)``. Grayscale inputs are tiled to RGB.
  """
  x = jnp.asarray(images)
  if x.dtype == jnp.uint8:
    x = x.astype(jnp.float32) / 127.5 - 1.0
  x = x.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.tile(x, (1, 1, 1, 3))
  if x.shape[-1] != 3:
    raise ValueError(f"Inception features need RGB or grayscale images, got {x.shape[-1]} channels.")
  # Pixels p = 127.5(x + 1); the graph feeds (resize(p) − 128)/128 = (127.5 resize(x) − 0.5)/128.
  if x.shape[1:3] != (size, size):
    if mode == "tf1":
      mh, mw = _tf1_bilinear_matrix(x.shape[1], size), _tf1_bilinear_matrix(x.shape[2], size)
      x = jnp.einsum("ih,bhwc,jw->bijc", mh, x, mw, precision=jax.lax.Precision.HIGHEST)
    elif mode == "half_pixel":
      x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear", antialias=False)
    else:
      raise ValueError(f"resize mode {mode!r}: use 'tf1' or 'half_pixel'.")
  return (127.5 * x - 0.5) / 128.0


@register("inception_v3_fid", inputs=lambda batch=1, resolution=299, **_: (jnp.zeros((batch, resolution, resolution, 3)),))
def inception_v3_fid(**kw) -> InceptionV3:
  """The FID Inception-v3 (23,850,960 trainable params: torchvision's 27,161,264 − aux 3,326,696 + 8·2049)."""
  if isinstance(kw.get("dtype"), str):
    kw["dtype"] = jnp.dtype(kw["dtype"])
  kw.pop("resolution", None)
  return InceptionV3(**kw)


def load_variables(path: str) -> dict:
  """Variables {'params', 'batch_stats'} from an ``.npz`` written by ``jaxgen.convert.inception``.

  Keys are '/'-joined flax paths (e.g. ``params/Mixed_5b/branch1x1/conv/kernel``); shapes are checked
  against the network's.
  """
  import os

  if not path:
    raise FileNotFoundError("no Inception weights configured: set fid.inception_weights (or pass weights=) to an "
                            ".npz made by `python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth out.npz`.")
  if not os.path.exists(path):
    raise FileNotFoundError(f"Inception weights {path!r} not found: convert pytorch-fid's pt_inception-2015-12-05 "
                            "state dict with `python -m jaxgen.convert.inception IN.pth OUT.npz` and point "
                            "fid.inception_weights at OUT.npz.")
  with np.load(path) as f:
    flat = {k: f[k] for k in f.files}
  return unflatten_variables(flat)


def variable_shapes() -> dict:
  """{'params': ..., 'batch_stats': ...} as ShapeDtypeStructs (no memory)."""
  net = InceptionV3()
  return jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3))))


def flatten_variables(tree, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}" if prefix else k
    if isinstance(v, dict) or hasattr(v, "items"):
      out.update(flatten_variables(v, key))
    else:
      out[key] = v
  return out


def unflatten_variables(flat: dict) -> dict:
  ref = flatten_variables(variable_shapes())
  missing = sorted(set(ref) - set(flat))
  extra = sorted(set(flat) - set(ref))
  if missing or extra:
    raise ValueError(f"Inception weights do not match the network: missing {missing[:3]}..., unexpected "
                     f"{extra[:3]}... ; regenerate the file with jaxgen.convert.inception.")
  tree: dict = {}
  for k, v in flat.items():
    if tuple(v.shape) != tuple(ref[k].shape):
      raise ValueError(f"Inception weight {k} has shape {v.shape}, expected {ref[k].shape}; regenerate the file "
                       "with jaxgen.convert.inception.")
    node = tree
    parts = k.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = jnp.asarray(v, jnp.float32)
  return tree
