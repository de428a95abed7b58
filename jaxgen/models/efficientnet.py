"""EfficientNet B0–B7 (Tan & Le, ICML 2019), built from the B0 block table and compound scaling.

Every variant is derived from the B0 table below and its (width, depth, resolution, dropout)
coefficients, as in the reference TF implementation (``efficientnet_builder.py``):

  round_filters(c) = make_divisible(c·width, 8)       (never more than 10% below c·width)
  round_repeats(n) = ceil(depth·n)

MBConv block: [1×1 expand conv, BN, swish] (skipped for expand ratio 1) → k×k depthwise conv, BN,
swish → squeeze-excitation with int(0.25 · block *input* channels) units (swish, sigmoid) → 1×1
project conv, BN → stochastic depth + identity skip when stride 1 and in == out. The drop rate of
block i (0-based, over all N blocks) is drop_connect_rate · i / N.

Two faithful variants (docs/convert.md "EfficientNet and Xception"); the layers, parameters and MACs
are the same, only padding and the BatchNorm ε differ:

  * TF / Keras (the default, what the paper's TPU code and ``keras.applications.EfficientNetB*``
    run): ``padding='same'`` — TF "SAME", for a stride-2 conv on an even input the extra row and
    column go at the end (Keras pads explicitly with ``correct_pad``, the same thing) — and
    ``bn_eps=1e-3`` (BN momentum 0.99).
  * torchvision (``torchvision.models.efficientnet_b*``, weights ported from timm):
    ``padding='symmetric'`` ((k−1)/2 on every side) and ``bn_eps=1e-5`` for B0–B4 but ``1e-3`` for
    B5–B7 (torchvision builds B5–B7 with ``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``);
    ``torchvision_overrides(variant)`` returns these ``model.overrides``, with ``input_norm='imagenet'``:
    torchvision's weights expect ``Normalize(mean, std)`` of [0, 1] images, which the network then
    computes from jaxgen's [−1, 1] images (``jaxgen.models.mobilenet.normalize_input``).

With the other variant's padding a converted network's logits move by far more than float error
(the stride-2 windows shift by one pixel), so a converter writes its variant into ``model.overrides``.

Parameters (``params`` collection) equal torchvision/timm/Keras: B0 5,288,548 … B7 66,347,960.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.models import register
from jaxgen.models.cnn_layers import (ConvBN, SqueezeExcite, classifier_head, drop_path, image_inputs,
                                      make_divisible, to_dtype, with_depthwise)
from jaxgen.models.mobilenet import normalize_input

# B0 stages: (expand ratio, kernel, stride, input channels, output channels, repeats)
B0_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

# (width, depth, resolution, dropout) — paper §3.3 / TF efficientnet_params()
COEFFICIENTS: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


#: ``model.overrides`` of the two faithful variants (module docstring); ``torchvision_overrides`` adds
#: torchvision's per-model ε.
TF_OVERRIDES = {"padding": "same", "bn_eps": 1e-3, "bn_momentum": 0.99}


def torchvision_overrides(variant: str) -> dict:
  """``model.overrides`` reproducing ``torchvision.models.efficientnet_<variant>`` (``'b0'`` … ``'b7'``):
  symmetric padding, BatchNorm ε 1e-5 and PyTorch momentum 0.1 (Flax 0.9) for B0–B4, ε 1e-3 and
  momentum 0.01 (Flax 0.99) for B5–B7, ImageNet input normalization."""
  if variant not in COEFFICIENTS:
    raise ValueError(f"EfficientNet variant {variant!r} is unknown: use one of {', '.join(COEFFICIENTS)}.")
  late = variant in ("b5", "b6", "b7")
  return {"padding": "symmetric", "bn_eps": 1e-3 if late else 1e-5, "bn_momentum": 0.99 if late else 0.9,
          "input_norm": "imagenet"}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
  return make_divisible(channels * width, divisor)


def round_repeats(repeats: int, depth: float) -> int:
  return int(math.ceil(depth * repeats))


def block_args(width: float, depth: float, divisor: int = 8):
  """The scaled per-block list: (expand, kernel, stride, in, out) for every MBConv block."""
  out = []
  for e, k, s, cin, cout, n in B0_BLOCKS:
    cin, cout = round_filters(cin, width, divisor), round_filters(cout, width, divisor)
    for i in range(round_repeats(n, depth)):
      out.append((e, k, s if i == 0 else 1, cin if i == 0 else cout, cout))
  return out


class MBConv(nn.Module):
  """Mobile inverted bottleneck with squeeze-excitation (MnasNet / EfficientNet)."""

  in_features: int
  out_features: int
  expand: int
  kernel: int
  stride: int
  se_ratio: float = 0.25
  drop_rate: float = 0.0
  act: str = "swish"
  padding: str = "symmetric"
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(padding=self.padding, bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=self.dtype)
    h = x
    mid = self.in_features * self.expand
    if self.expand != 1:
      h = ConvBN(mid, 1, act=self.act, name="expand", **kw)(h, train)
    h = ConvBN(mid, self.kernel, self.stride, groups=-1, act=self.act, name="depthwise", **kw)(h, train)
    if self.se_ratio:
      h = SqueezeExcite(max(1, int(self.in_features * self.se_ratio)), act=self.act, dtype=self.dtype,
                        name="se")(h)
    h = ConvBN(self.out_features, 1, act=None, name="project", **kw)(h, train)
    if self.stride == 1 and self.in_features == self.out_features:
      h = drop_path(h, self.drop_rate, train, self) + x
    return h


class EfficientNet(nn.Module):
  width: float = 1.0
  depth: float = 1.0
  dropout: float = 0.2
  drop_connect_rate: float = 0.2
  num_classes: int = 1000
  stem_channels: int = 32
  head_channels: int = 1280
  se_ratio: float = 0.25
  padding: str = "same"            # 'same' (TF/Keras) or 'symmetric' (torchvision/timm)
  input_norm: str = "none"         # 'imagenet': torchvision's Normalize of the [−1, 1] input (normalize_input)
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    if self.padding not in ("same", "symmetric"):
      raise ValueError(f"EfficientNet padding={self.padding!r} is unknown: use 'same' (TF/Keras) or "
                       "'symmetric' (torchvision).")
    kw = dict(padding=self.padding, bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=dtype)
    x = normalize_input(x, self.input_norm).astype(dtype)
    x = ConvBN(round_filters(self.stem_channels, self.width), 3, 2, act="swish", name="stem", **kw)(x, train)
    blocks = block_args(self.width, self.depth)
    for i, (e, k, s, cin, cout) in enumerate(blocks):
      x = MBConv(cin, cout, e, k, s, se_ratio=self.se_ratio,
                 drop_rate=self.drop_connect_rate * i / len(blocks), name=f"block{i}", **kw)(x, train)
    x = ConvBN(round_filters(self.head_channels, self.width), 1, act="swish", name="head", **kw)(x, train)
    return classifier_head(x, self.num_classes, self.dropout, train, dtype)


def _factory(variant: str):
  width, depth, res, dropout = COEFFICIENTS[variant]

  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> EfficientNet:
    del resolution, channels  # input-shape overrides: the paper resolution is the registered default
    return EfficientNet(**{"width": width, "depth": depth, "dropout": dropout, **overrides})

  make.__name__ = f"efficientnet_{variant}"
  make.__module__ = __name__
  return make, res


for _v in COEFFICIENTS:
  _make, _res = _factory(_v)
  register(f"efficientnet_{_v}", inputs=image_inputs(_res))(_make)

#: the paper's input resolution of every registered variant
RESOLUTIONS = {f"efficientnet_{v}": c[2] for v, c in COEFFICIENTS.items()}
