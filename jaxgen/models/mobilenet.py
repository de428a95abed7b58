"""MobileNet V1, V2 and V3 (Howard et al. 2017; Sandler et al. 2018; Howard et al. 2019).

* ``mobilenet_v1`` (+ ``mobilenet_v1_075/_050/_025``): 3×3 stride-2 conv then 13 depthwise-separable
  blocks (3×3 depthwise + BN + ReLU6, 1×1 pointwise + BN + ReLU6), channels int(c·α) as in Keras
  ``MobileNet``; global pool, dropout, and a 1×1 conv classifier with bias (a Dense here). The
  resolution multiplier ρ is the input size (224/192/160/128), ``resolution=`` in the registry.
  Keras trainable weights at α=1: 4,231,976.
* ``mobilenet_v2``: inverted residuals (t, c, n, s) of the paper's Table 2, ReLU6, linear
  bottlenecks, width multiplier with ``make_divisible(·, 8)``, last conv 1280·max(1, α);
  torchvision / Keras: 3,504,872.
* ``mobilenet_v3_large`` / ``mobilenet_v3_small``: the paper's Tables 1–2 (torchvision's
  configuration): hard-swish, SE with make_divisible(exp/4, 8) units and a hard-sigmoid gate,
  last 1×1 conv (6× the last block's channels), then a 1×1 "conv" (Dense) to 1280/1024 with hard-swish, dropout, classifier;
  torchvision: 5,483,032 / 2,542,856.

BatchNorm defaults follow the reference each count comes from (Keras V1: momentum 0.99, ε 1e-3;
torchvision V2: PyTorch momentum 0.1 → Flax 0.9, ε 1e-5; torchvision V3: 0.01 → 0.99, ε 1e-3);
all are overridable.

``input_norm`` (V2, V3; also ShuffleNet V2 and GoogLeNet) says what the first conv sees: ``'none'`` the
[−1, 1] images as given (jaxgen's convention), ``'imagenet'`` torchvision's ``Normalize(mean, std)`` of
[0, 1] images, ((x + 1)/2 − mean)/std, so weights converted from torchvision (jaxgen.convert.torchvision,
docs/convert.md) give torchvision's logits on jaxgen's images. With the default networks equal op by op to
torchvision's (checked in tests/convert/test_torchvision.py), that is the only input-side difference.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.models import register
from jaxgen.models.cnn_layers import (ConvBN, SqueezeExcite, activation, classifier_head, image_inputs,
                                      make_divisible, to_dtype, with_depthwise)

#: torchvision's ImageNet ``Normalize`` (the preset transforms of its classification weights)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("none", "imagenet")


def normalize_input(x, mode: str):
  """The network input for jaxgen's [−1, 1] images ``x`` (NHWC RGB): ``'none'`` returns x; ``'imagenet'``
  is torchvision's ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` of the [0, 1] image (x + 1)/2, computed in
  float32 (docs/convert.md "## torchvision backbones")."""
  if mode == "none":
    return x
  if mode != "imagenet":
    raise ValueError(f"input_norm={mode!r} is unknown: use one of {', '.join(INPUT_NORMS)}.")
  mean, std = jnp.asarray(IMAGENET_MEAN, jnp.float32), jnp.asarray(IMAGENET_STD, jnp.float32)
  return ((x.astype(jnp.float32) + 1.0) * 0.5 - mean) / std

# --- MobileNet V1 ---------------------------------------------------------------------------------
# (pointwise output channels, depthwise stride) of the 13 separable blocks (paper Table 1)
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
  alpha: float = 1.0
  num_classes: int = 1000
  dropout: float = 1e-3
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    kw = dict(act="relu6", bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=dtype)
    x = ConvBN(int(32 * self.alpha), 3, 2, name="stem", **kw)(x.astype(dtype), train)
    for i, (c, s) in enumerate(V1_BLOCKS):
      x = ConvBN(x.shape[-1], 3, s, groups=-1, name=f"dw{i + 1}", **kw)(x, train)
      x = ConvBN(int(c * self.alpha), 1, name=f"pw{i + 1}", **kw)(x, train)
    return classifier_head(x, self.num_classes, self.dropout, train, dtype)


def _v1(alpha: float):
  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> MobileNetV1:
    del resolution, channels  # input-shape overrides (used by the registry inputs)
    return MobileNetV1(**{"alpha": alpha, **overrides})

  make.__module__ = __name__
  return make


#: width multipliers of the registered MobileNet V1 variants (paper Table 6)
V1_WIDTHS = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5, "mobilenet_v1_025": 0.25}
for _name, _alpha in V1_WIDTHS.items():
  register(_name, inputs=image_inputs(224))(_v1(_alpha))


# --- MobileNet V2 ---------------------------------------------------------------------------------
# (expansion t, output channels c, repeats n, first stride s) — paper Table 2
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))


class InvertedResidual(nn.Module):
  """1×1 expand (if t≠1) → k×k depthwise → [SE] → 1×1 linear project; identity skip when shapes match."""

  out_features: int
  expanded: int
  kernel: int = 3
  stride: int = 1
  act: str = "relu6"
  se_reduced: int = 0
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=self.dtype)
    h = x
    if self.expanded != x.shape[-1]:
      h = ConvBN(self.expanded, 1, act=self.act, name="expand", **kw)(h, train)
    h = ConvBN(self.expanded, self.kernel, self.stride, groups=-1, act=self.act, name="depthwise", **kw)(h, train)
    if self.se_reduced:
      h = SqueezeExcite(self.se_reduced, act="relu", gate="hard_sigmoid", dtype=self.dtype, name="se")(h)
    h = ConvBN(self.out_features, 1, act=None, name="project", **kw)(h, train)
    if self.stride == 1 and x.shape[-1] == self.out_features:
      h = h + x
    return h


class MobileNetV2(nn.Module):
  width: float = 1.0
  num_classes: int = 1000
  dropout: float = 0.2
  round_nearest: int = 8
  blocks: Sequence[tuple[int, int, int, int]] = V2_BLOCKS
  stem_stride: int = 2
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  input_norm: str = "none"
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    kw = dict(bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=dtype)
    div = lambda c: make_divisible(c * self.width, self.round_nearest)
    x = normalize_input(x, self.input_norm)
    x = ConvBN(div(32), 3, self.stem_stride, act="relu6", name="stem", **kw)(x.astype(dtype), train)
    i = 0
    for t, c, n, s in self.blocks:
      for j in range(n):
        x = InvertedResidual(div(c), x.shape[-1] * t, 3, s if j == 0 else 1, name=f"block{i}", **kw)(x, train)
        i += 1
    last = make_divisible(1280 * max(1.0, self.width), self.round_nearest)
    x = ConvBN(last, 1, act="relu6", name="head", **kw)(x, train)
    return classifier_head(x, self.num_classes, self.dropout, train, dtype)


@register("mobilenet_v2", inputs=image_inputs(224))
def mobilenet_v2(resolution: int | None = None, channels: int | None = None, **overrides) -> MobileNetV2:
  del resolution, channels  # input-shape overrides (used by the registry inputs)
  return MobileNetV2(**overrides)


# --- MobileNet V3 ---------------------------------------------------------------------------------
# (kernel, expanded, out, SE, activation, stride) — paper Tables 1 (Large) and 2 (Small)
V3_LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hard_swish", 2), (3, 200, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1), (3, 184, 80, False, "hard_swish", 1),
    (3, 480, 112, True, "hard_swish", 1), (3, 672, 112, True, "hard_swish", 1),
    (5, 672, 160, True, "hard_swish", 2), (5, 960, 160, True, "hard_swish", 1),
    (5, 960, 160, True, "hard_swish", 1),
)
V3_SMALL = (
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2), (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1), (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1), (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1), (5, 576, 96, True, "hard_swish", 1),
)


class MobileNetV3(nn.Module):
  blocks: Sequence[tuple] = V3_LARGE
  last_conv_expansion: int = 6
  last_channels: int = 1280
  width: float = 1.0
  num_classes: int = 1000
  dropout: float = 0.2
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  input_norm: str = "none"
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    kw = dict(bn_momentum=self.bn_momentum, bn_eps=self.bn_eps, dtype=dtype)
    div = lambda c: make_divisible(c * self.width, 8)
    x = normalize_input(x, self.input_norm)
    x = ConvBN(div(16), 3, 2, act="hard_swish", name="stem", **kw)(x.astype(dtype), train)
    for i, (k, exp, out, se, act, s) in enumerate(self.blocks):
      exp = div(exp)
      x = InvertedResidual(div(out), exp, k, s, act=act, se_reduced=make_divisible(exp // 4, 8) if se else 0,
                           name=f"block{i}", **kw)(x, train)
    x = ConvBN(self.last_conv_expansion * x.shape[-1], 1, act="hard_swish", name="head", **kw)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    x = activation("hard_swish")(nn.Dense(div(self.last_channels), dtype=dtype, name="pre_logits")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=dtype, name="classifier")(x).astype(jnp.float32)


@register("mobilenet_v3_large", inputs=image_inputs(224))
def mobilenet_v3_large(resolution: int | None = None, channels: int | None = None, **overrides) -> MobileNetV3:
  del resolution, channels  # input-shape overrides (used by the registry inputs)
  return MobileNetV3(**{"blocks": V3_LARGE, "last_channels": 1280, **overrides})


@register("mobilenet_v3_small", inputs=image_inputs(224))
def mobilenet_v3_small(resolution: int | None = None, channels: int | None = None, **overrides) -> MobileNetV3:
  del resolution, channels  # input-shape overrides (used by the registry inputs)
  return MobileNetV3(**{"blocks": V3_SMALL, "last_channels": 1024, **overrides})
