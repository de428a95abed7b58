"""ShuffleNet V1 (Zhang et al., CVPR 2018) and ShuffleNet V2 (Ma et al., ECCV 2018).

Both follow Megvii's official code (github.com/megvii-model/ShuffleNet-Series), which reproduces the
papers' FLOPs:

* V1 unit: 1×1 group conv (ungrouped in the very first unit, whose input has only 24 channels) → BN →
  ReLU → channel shuffle → 3×3 depthwise (stride s) → BN → 1×1 group conv → BN; stride 1: ReLU(x + f(x));
  stride 2: concat(avgpool3×3/2(x), ReLU(f(x))) with f producing out − in channels. Bottleneck =
  out/4. Stage widths: paper Table 1 (g=1: 144/288/576, g=2: 200/400/800, g=3: 240/480/960,
  g=4: 272/544/1088, g=8: 384/768/1536), stem 24; classifier without bias (Megvii).
* V2 unit (stride 1): channel split (Megvii: even/odd channels, i.e. shuffle-then-split) → the right
  half goes through 1×1 → BN → ReLU → k×k depthwise → BN → 1×1 → BN → ReLU; concat.
  Down-sampling unit (``downsample='megvii'``, default): both branches see the whole input; the
  shortcut branch (k×k depthwise s2 → BN → 1×1 → BN → ReLU) *keeps the input channels* and the main
  branch (1×1 in→out/2, depthwise s2, 1×1 → out − in) makes up the rest. ``downsample='torchvision'``
  gives torchvision's unit (both branches out/2; then a biased classifier, 1,366,792 … 7,393,996
  params), the layout torchvision's weights convert to (jaxgen.convert.torchvision, docs/convert.md). Widths 0.5×: 48/96/192, 1×: 116/232/464, 1.5×: 176/352/704 (conv5 1024),
  2×: 244/488/976 (conv5 2048, dropout 0.2).

The V2 unit is configurable in kernel size (ThunderNet's SNet uses 5×5 depthwise convs) and stage
widths/repeats; ``ShuffleNetV2Features`` returns the stage outputs for detection backbones.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.models import register
from jaxgen.models.cnn_layers import (ConvBN, channel_shuffle, classifier_head, image_inputs, to_dtype,
                                      with_depthwise)
from jaxgen.models.mobilenet import normalize_input

# PyTorch BatchNorm2d defaults (momentum 0.1 → Flax 0.9, ε 1e-5), as in Megvii's code
_BN = dict(bn_momentum=0.9, bn_eps=1e-5)


# --- ShuffleNet V1 --------------------------------------------------------------------------------
V1_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
             8: (384, 768, 1536)}


class ShuffleV1Unit(nn.Module):
  out_features: int
  groups: int
  stride: int
  first_group: bool = False     # the very first unit: 1×1 conv ungrouped
  kernel: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    cin = x.shape[-1]
    out = self.out_features - cin if self.stride == 2 else self.out_features
    mid = self.out_features // 4
    kw = dict(dtype=self.dtype, **_BN)
    h = ConvBN(mid, 1, groups=1 if self.first_group else self.groups, name="pw1", **kw)(x, train)
    if self.groups > 1:
      h = channel_shuffle(h, self.groups)
    h = ConvBN(mid, self.kernel, self.stride, groups=-1, act=None, name="dw", **kw)(h, train)
    h = ConvBN(out, 1, groups=self.groups, act=None, name="pw2", **kw)(h, train)
    if self.stride == 1:
      return nn.relu(h + x)
    proj = nn.avg_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)
    return jnp.concatenate([proj, nn.relu(h)], axis=-1)


class ShuffleNetV1(nn.Module):
  groups: int = 3
  scale: float = 1.0
  stage_channels: Sequence[int] | None = None
  stem_channels: int | None = None
  stage_repeats: Sequence[int] = (4, 8, 4)
  num_classes: int = 1000
  classifier_bias: bool = False        # Megvii: none; osmr/imgclsmob's port has one
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    widths = self.stage_channels or tuple(int(c * self.scale) for c in V1_WIDTHS[self.groups])
    # Megvii network.py: stem 12 (g3) / 16 (g8) at 0.5×, 24 at 1× and 1.5×, 48 at 2×
    stem = self.stem_channels or {0.5: 16 if self.groups == 8 else 12, 2.0: 48}.get(self.scale, 24)
    x = ConvBN(stem, 3, 2, dtype=dtype, name="stem", **_BN)(x.astype(dtype), train)
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for si, (c, n) in enumerate(zip(widths, self.stage_repeats)):
      for i in range(n):
        x = ShuffleV1Unit(c, self.groups, 2 if i == 0 else 1, first_group=si == 0 and i == 0, dtype=dtype,
                          name=f"stage{si + 2}_{i}")(x, train)
    return classifier_head(x, self.num_classes, 0.0, train, dtype, use_bias=self.classifier_bias)


def _v1(groups: int):
  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> ShuffleNetV1:
    del resolution, channels  # input-shape overrides (used by the registry inputs)
    return ShuffleNetV1(**{"groups": groups, **overrides})

  make.__module__ = __name__
  return make


for _g in V1_WIDTHS:
  register(f"shufflenet_v1_g{_g}", inputs=image_inputs(224))(_v1(_g))


# --- ShuffleNet V2 --------------------------------------------------------------------------------
V2_CONFIGS = {  # stage output channels, conv5 channels (Megvii network.py / paper Table 5)
    "x0_5": ((48, 96, 192), 1024),
    "x1_0": ((116, 232, 464), 1024),
    "x1_5": ((176, 352, 704), 1024),
    "x2_0": ((244, 488, 976), 2048),
}


class ShuffleV2Unit(nn.Module):
  """One ShuffleNet V2 unit; ``out_features`` is the unit's output width (both branches together)."""

  out_features: int
  stride: int = 1
  kernel: int = 3
  downsample: str = "megvii"     # 'megvii' (official) | 'torchvision'
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype, bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)
    cin = x.shape[-1]
    half = self.out_features // 2
    if self.stride == 1:
      if cin != self.out_features:
        raise ValueError(f"a stride-1 ShuffleNetV2 unit needs in == out channels, got {cin} → {self.out_features}.")
      # Megvii: shuffle-then-split = even channels pass through, odd channels enter the branch
      b, h, w, c = x.shape
      pair = x.reshape(b, h, w, c // 2, 2)
      keep, x = pair[..., 0], pair[..., 1]
      main_in, main_out, mid = c // 2, c - c // 2, half
    else:
      keep = None
      if self.downsample == "megvii":
        main_out, mid = self.out_features - cin, half
        proj_out = cin
      elif self.downsample == "torchvision":
        main_out, mid, proj_out = self.out_features - half, self.out_features - half, half
      else:
        raise ValueError(f"downsample={self.downsample!r} is unknown: use 'megvii' or 'torchvision'.")
    h = ConvBN(mid, 1, name="main_pw1", **kw)(x, train)
    h = ConvBN(mid, self.kernel, self.stride, groups=-1, act=None, name="main_dw", **kw)(h, train)
    h = ConvBN(main_out, 1, name="main_pw2", **kw)(h, train)
    if self.stride == 1:
      return jnp.concatenate([keep, h], axis=-1)
    p = ConvBN(cin, self.kernel, self.stride, groups=-1, act=None, name="proj_dw", **kw)(x, train)
    p = ConvBN(proj_out, 1, name="proj_pw", **kw)(p, train)
    # torchvision shuffles after every unit and then splits halves; taking even/odd channels at the
    # start of the next unit (Megvii) instead routes the channels differently, but the two networks are
    # the same up to a relabelling of each conv's output/input channels, which
    # jaxgen.convert.torchvision.shufflenet_permutations computes (docs/convert.md).
    return jnp.concatenate([p, h], axis=-1)


class ShuffleNetV2Features(nn.Module):
  """Stem (3×3/2 conv, 3×3/2 max pool) → stages → optional 1×1 conv5. Returns a dict of feature maps
  ``{'stem', 'stage2', 'stage3', 'stage4', 'conv5'}`` (strides 4, 8, 16, 32, 32)."""

  stage_channels: Sequence[int] = (116, 232, 464)
  stage_repeats: Sequence[int] = (4, 8, 4)
  conv5_channels: int = 1024       # 0: no conv5
  stem_channels: int = 24
  kernel: int = 3
  downsample: str = "megvii"
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    kw = dict(dtype=dtype, bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)
    feats = {}
    x = ConvBN(self.stem_channels, 3, 2, name="stem", **kw)(x.astype(dtype), train)
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    feats["stem"] = x
    x_unit = lambda c, s, name: ShuffleV2Unit(c, s, self.kernel, self.downsample, name=name, **kw)
    for si, (c, n) in enumerate(zip(self.stage_channels, self.stage_repeats)):
      for i in range(n):
        x = x_unit(c, 2 if i == 0 else 1, f"stage{si + 2}_{i}")(x, train)
      feats[f"stage{si + 2}"] = x
    if self.conv5_channels:
      x = ConvBN(self.conv5_channels, 1, name="conv5", **kw)(x, train)
    feats["conv5"] = x
    return feats


class ShuffleNetV2(nn.Module):
  stage_channels: Sequence[int] = (116, 232, 464)
  stage_repeats: Sequence[int] = (4, 8, 4)
  conv5_channels: int = 1024
  stem_channels: int = 24
  kernel: int = 3
  downsample: str = "megvii"
  classifier_bias: bool | None = None   # None: Megvii has none, torchvision has one
  dropout: float = 0.0
  num_classes: int = 1000
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  input_norm: str = "none"         # 'imagenet': torchvision's Normalize (jaxgen.models.mobilenet.normalize_input)
  dtype: Any = jnp.float32
  depthwise: str = "xla"         # 'xla' | 'shift' | 'auto': depthwise convs (docs/speed.md)

  @with_depthwise
  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    x = normalize_input(x, self.input_norm)
    feats = ShuffleNetV2Features(self.stage_channels, self.stage_repeats, self.conv5_channels, self.stem_channels,
                                 self.kernel, self.downsample, self.bn_momentum, self.bn_eps, dtype,
                                 name="features")(x, train)
    bias = self.downsample == "torchvision" if self.classifier_bias is None else self.classifier_bias
    return classifier_head(feats["conv5"], self.num_classes, self.dropout, train, dtype, use_bias=bias)


def _v2(size: str):
  stages, conv5 = V2_CONFIGS[size]

  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> ShuffleNetV2:
    del resolution, channels  # input-shape overrides (used by the registry inputs)
    return ShuffleNetV2(**{"stage_channels": stages, "conv5_channels": conv5,
                           "dropout": 0.2 if size == "x2_0" else 0.0, **overrides})

  make.__module__ = __name__
  return make


for _s in V2_CONFIGS:
  register(f"shufflenet_v2_{_s}", inputs=image_inputs(224))(_v2(_s))
