"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), VGG16.

    variables = load_lpips("lpips_vgg.npz")                 # from jaxgen.convert.lpips
    d = LPIPS().apply(variables, x, x_rec)                  # [B], images NHWC in [−1, 1]

The metric of the ``lpips`` package (``LPIPS(net='vgg', version='0.1')``), which taming's VQGAN uses as its
perceptual loss:
1. ScalingLayer: x ← (x − shift) / scale, shift (−.030, −.088, −.188), scale (.458, .448, .450) (RGB).
2. VGG16 ``features`` (torchvision layout: 3×3 convs with padding 1 and bias, ReLU, 2×2 max pools between
   blocks of 2, 2, 3, 3, 3 convs of width 64, 128, 256, 512, 512); the five taps relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3 (before each pool).
3. Each tap unit-normalised over channels: f / (‖f‖ + 1e-10). (‖f‖ is computed as sqrt(max(Σf², 1e-30)),
   which gives the same value and keeps the gradient finite where a whole feature vector is zero.)
4. d = Σ_l mean_{h,w} w_l · (f̂_l(x) − f̂_l(y))², with the learned 1×1 "lin" weights w_l ≥ 0 (no bias; the
   package's dropout before them is inactive at evaluation).
Returns ``[B]`` (the package returns [B, 1, 1, 1]).

``widths`` shrinks the VGG for tests (tests/fixtures/lpips is a random tiny network); the real metric is the
default. Parameters: ``vgg/conv{b}_{i}/{kernel,bias}`` (kernels HWIO) and ``lin{l}/kernel`` [1, 1, C, 1].
Weights: ``python -m jaxgen.convert.lpips VGG16_PTH LIN_PTH OUT.npz`` (docs/vqgan.md).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.models import register

__all__ = ["LPIPS", "VGG16Features", "load_lpips", "variable_shapes", "flatten", "unflatten", "VGG16_WIDTHS",
           "BLOCK_DEPTHS", "SHIFT", "SCALE"]

VGG16_WIDTHS = (64, 128, 256, 512, 512)
BLOCK_DEPTHS = (2, 2, 3, 3, 3)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
  """torchvision's VGG16 ``features`` up to relu5_3 → the list of the five block outputs (before pooling)."""
  widths: Sequence[int] = VGG16_WIDTHS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    taps = []
    for b, (width, depth) in enumerate(zip(self.widths, BLOCK_DEPTHS)):
      if b:
        x = nn.max_pool(x, (2, 2), (2, 2))
      for i in range(depth):
        x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=f"conv{b + 1}_{i + 1}")(x)
        x = nn.relu(x)
      taps.append(x)
    return taps


def _unit_normalize(f, eps=1e-10):
  f = f.astype(jnp.float32)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(f * f, axis=-1, keepdims=True), 1e-30))
  return f / (norm + eps)


class LPIPS(nn.Module):
  """LPIPS-VGG distance between two image batches in [−1, 1] (NHWC) → [B]."""
  widths: Sequence[int] = VGG16_WIDTHS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, y, train: bool = False, per_layer: bool = False):
    del train   # the metric is frozen; the package's dropout is only active when training the lin layers
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if x.shape != y.shape:
      raise ValueError(f"LPIPS compares two batches of one shape, got {x.shape} and {y.shape}.")
    shift = jnp.asarray(SHIFT, jnp.float32)
    scale = jnp.asarray(SCALE, jnp.float32)
    both = (jnp.concatenate([x, y], axis=0) - shift) / scale
    taps = VGG16Features(self.widths, self.dtype, name="vgg")(both.astype(self.dtype))
    b = x.shape[0]
    layers = []
    for l, f in enumerate(taps):
      f = _unit_normalize(f)
      diff = jnp.square(f[:b] - f[b:])
      lin = nn.Conv(1, (1, 1), use_bias=False, kernel_init=nn.initializers.uniform(1.0), dtype=jnp.float32,
                    precision=jax.lax.Precision.HIGHEST, name=f"lin{l}")
      layers.append(jnp.mean(lin(diff)[..., 0], axis=(1, 2)))
    total = sum(layers)
    return (total, jnp.stack(layers)) if per_layer else total


def _inputs(batch=1, resolution=64, channels=3, **_):
  img = jnp.zeros((batch, resolution, resolution, channels), jnp.float32)
  return img, img


@register("lpips_vgg", inputs=_inputs)
def lpips_vgg(**kw) -> LPIPS:
  """LPIPS with VGG16 (14,714,688 VGG16 ``features`` params as torchvision's + 1,472 lin weights)."""
  kw.pop("resolution", None)
  kw.pop("channels", None)
  if isinstance(kw.get("dtype"), str):
    kw["dtype"] = jnp.dtype(kw["dtype"])
  return LPIPS(**kw)


# ------------------------------------------------------------------------------------------------- weights


def variable_shapes(widths: Sequence[int] = VGG16_WIDTHS) -> dict:
  """{'params': ...} of ``LPIPS(widths)`` as ShapeDtypeStructs (no memory)."""
  img = jnp.zeros((1, 32, 32, 3), jnp.float32)
  return jax.eval_shape(lambda: LPIPS(tuple(widths)).init(jax.random.key(0), img, img))


def flatten(tree, prefix: str = "") -> dict:
  """Nested dict → {'params/vgg/conv1_1/kernel': leaf, ...}."""
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}" if prefix else k
    if hasattr(v, "items"):
      out.update(flatten(v, key))
    else:
      out[key] = v
  return out


def unflatten(flat: dict, widths: Sequence[int] = VGG16_WIDTHS, source: str = "the LPIPS weights") -> dict:
  """{'params/...': array} → variables, checking names and shapes against ``LPIPS(widths)``."""
  ref = flatten(variable_shapes(widths))
  missing = sorted(set(ref) - set(flat))
  extra = sorted(set(flat) - set(ref))
  if missing or extra:
    raise ConfigError(f"{source} do not match LPIPS-VGG (missing {missing[:2]}, unexpected {extra[:2]}): "
                      "rebuild the file with `python -m jaxgen.convert.lpips VGG16_PTH LIN_PTH OUT.npz`.")
  tree: dict = {}
  for k, v in flat.items():
    if tuple(np.shape(v)) != tuple(ref[k].shape):
      raise ConfigError(f"{source}: {k} has shape {tuple(np.shape(v))}, expected {tuple(ref[k].shape)}; "
                        "rebuild the file with `python -m jaxgen.convert.lpips VGG16_PTH LIN_PTH OUT.npz`.")
    node = tree
    *path, leaf = k.split("/")
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = jnp.asarray(v, jnp.float32)
  return tree


def load_lpips(path: str, widths: Sequence[int] = VGG16_WIDTHS) -> dict:
  """Variables of ``LPIPS(widths)`` from an ``.npz`` written by ``jaxgen.convert.lpips`` (shape-checked)."""
  hint = ("convert torchvision's vgg16 state dict and the lpips package's weights/v0.1/vgg.pth with "
          "`python -m jaxgen.convert.lpips VGG16_PTH LIN_PTH OUT.npz` and point lpips_weights at OUT.npz")
  if not path:
    raise ConfigError(f"no LPIPS weights given: {hint}.")
  if not os.path.exists(path):
    raise ConfigError(f"LPIPS weights {path!r} not found: {hint}.")
  try:
    with np.load(path) as f:
      flat = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ConfigError(f"LPIPS weights {path!r} are not a readable .npz ({e}): {hint}.") from None
  return unflatten(flat, widths, source=f"LPIPS weights {path!r}")
