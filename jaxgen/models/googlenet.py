"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015), with optional auxiliary classifiers.

Two variants share the module:

* ``variant='torchvision'`` (default): torchvision's ``googlenet`` — every conv is conv (no bias) →
  BatchNorm(ε 1e-3) → ReLU, max pools in ceil mode, and (as in torchvision and its weights) the
  "5×5" branch of each Inception module uses a 3×3 kernel. 6,624,904 parameters without the
  auxiliary heads (torchvision's ``num_params``).
* ``variant='paper'``: the paper's Table 1 / Figure 3 network — biased convs without BatchNorm, true
  5×5 branches, local response normalization (size 5, α 1e-4, β 0.75, as in Caffe's bvlc_googlenet)
  after the first pool and after conv3, dropout 0.4, auxiliary heads with 5×5/3 average pooling.

Inception(in, #1×1, #3×3reduce, #3×3, #5×5reduce, #5×5, pool proj) = concat of four branches.
``aux_logits=True`` adds the two auxiliary classifiers (on 4a and 4d); in train mode the module then
returns ``(logits, aux1, aux2)`` and the paper weights their losses by 0.3.

Input: torchvision's released GoogLeNet weights (ported from TensorFlow) run with ``transform_input=True``,
which turns the ImageNet-normalized input back into (x₀₁ − 0.5)/0.5, i.e. jaxgen's [−1, 1] images: that is
``input_norm='none'`` (the default). ``input_norm='imagenet'`` is torchvision's ``transform_input=False``
(conv1 sees Normalize(mean, std) of the [0, 1] image; jaxgen.models.mobilenet.normalize_input).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.models import register
from jaxgen.models.cnn_layers import batch_norm, image_inputs, max_pool_ceil, to_dtype
from jaxgen.models.mobilenet import normalize_input

# (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj) — paper Table 1
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
  """Caffe/AlexNet across-channel LRN: x / (k + α/n · Σ_{window} x²)^β."""
  sq = jnp.square(x)
  pad = size // 2
  sq = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(pad, size - 1 - pad)])
  window = sum(sq[..., i:i + x.shape[-1]] for i in range(size))
  return x / jnp.power(k + alpha / size * window, beta)


def adaptive_avg_pool(x, size: int):
  """PyTorch ``adaptive_avg_pool2d(x, size)`` on NHWC: output cell i averages rows ⌊i·H/size⌋ … ⌈(i+1)·H/size⌉ − 1
  (and likewise columns), so on 14×14 maps the 4×4 cells are 4 wide starting at 0, 3, 7, 10 (not the paper's
  5×5/3 windows)."""
  def cells(n):
    return [(i * n // size, -(-(i + 1) * n // size)) for i in range(size)]
  rows = [x[:, a:b].mean(axis=1) for a, b in cells(x.shape[1])]                # size × [B, W, C]
  return jnp.stack([jnp.stack([r[:, a:b].mean(axis=1) for a, b in cells(x.shape[2])], axis=1) for r in rows],
                   axis=1)


class BasicConv(nn.Module):
  features: int
  kernel: int = 1
  stride: int = 1
  use_bn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    p = (self.kernel - 1) // 2
    x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding=((p, p), (p, p)),
                use_bias=not self.use_bn, dtype=self.dtype, name="conv")(x)
    if self.use_bn:
      x = batch_norm(train, 0.9, 1e-3, name="bn")(x)
    return nn.relu(x)


class Inception(nn.Module):
  spec: tuple[int, int, int, int, int, int]
  five: int = 3            # kernel of the "5×5" branch: 3 in torchvision, 5 in the paper
  use_bn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c1, r3, c3, r5, c5, pp = self.spec
    conv = lambda f, k, name: BasicConv(f, k, use_bn=self.use_bn, dtype=self.dtype, name=name)
    b1 = conv(c1, 1, "b1")(x, train)
    b2 = conv(c3, 3, "b2_conv")(conv(r3, 1, "b2_reduce")(x, train), train)
    b3 = conv(c5, self.five, "b3_conv")(conv(r5, 1, "b3_reduce")(x, train), train)
    b4 = conv(pp, 1, "b4_proj")(max_pool_ceil(x, 3, 1, 1), train)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class AuxHead(nn.Module):
  num_classes: int
  paper: bool = False
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.paper:   # 5×5 average pool, stride 3 (4×4 output on 14×14 maps)
      x = nn.avg_pool(x, (5, 5), (3, 3))
    else:            # torchvision: F.adaptive_avg_pool2d(x, (4, 4))
      x = adaptive_avg_pool(x, 4)
    x = BasicConv(max(1, int(128 * self.width)), 1, use_bn=not self.paper, dtype=self.dtype, name="conv")(x, train)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(max(1, int(1024 * self.width)), dtype=self.dtype, name="fc1")(x))
    x = nn.Dropout(0.7, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc2")(x).astype(jnp.float32)


class GoogLeNet(nn.Module):
  variant: str = "torchvision"     # 'torchvision' | 'paper'
  aux_logits: bool = False
  num_classes: int = 1000
  dropout: float | None = None     # default 0.2 (torchvision) / 0.4 (paper)
  width: float = 1.0               # channel multiplier (tiny test/smoke networks only)
  # The Inception modules built, in order (None: all nine of Table 1). Tiny smoke networks keep a subset
  # such as ('3a', '4a', '4d', '5a') — max pools before the first module of stages 4 and 5, auxiliary
  # heads after 4a and 4d when present — to compile in less time; the default network is unchanged.
  blocks: tuple[str, ...] | None = None
  input_norm: str = "none"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.variant not in ("torchvision", "paper"):
      raise ValueError(f"GoogLeNet variant={self.variant!r} is unknown: use 'torchvision' or 'paper'.")
    paper = self.variant == "paper"
    dtype = to_dtype(self.dtype)
    bn = not paper
    w = lambda c: max(1, int(c * self.width))
    x = normalize_input(x, self.input_norm)
    x = BasicConv(w(64), 7, 2, use_bn=bn, dtype=dtype, name="conv1")(x.astype(dtype), train)
    x = max_pool_ceil(x, 3, 2)
    if paper:
      x = local_response_norm(x)
    x = BasicConv(w(64), 1, use_bn=bn, dtype=dtype, name="conv2")(x, train)
    x = BasicConv(w(192), 3, use_bn=bn, dtype=dtype, name="conv3")(x, train)
    if paper:
      x = local_response_norm(x)
    x = max_pool_ceil(x, 3, 2)
    aux = []
    blocks = tuple(INCEPTION) if self.blocks is None else tuple(self.blocks)
    unknown = [b for b in blocks if b not in INCEPTION]
    if unknown or list(blocks) != sorted(blocks, key=list(INCEPTION).index) or len(set(blocks)) < len(blocks):
      raise ValueError(f"GoogLeNet blocks={blocks!r} must be distinct Inception modules of "
                       f"{', '.join(INCEPTION)} in that order: pass a subsequence (or None for all).")
    stage = 3
    for name in blocks:
      while int(name[0]) > stage:   # the max pools before stage 4 (3×3/2) and stage 5 (2×2/2), Table 1
        stage += 1
        x = max_pool_ceil(x, 3 if stage == 4 else 2, 2)
      x = Inception(tuple(w(c) for c in INCEPTION[name]), five=5 if paper else 3, use_bn=bn, dtype=dtype, name=f"inception{name}")(x, train)
      if self.aux_logits and name in ("4a", "4d") and (train or self.is_initializing()):
        aux.append(AuxHead(self.num_classes, paper, self.width, dtype, name=f"aux{len(aux) + 1}")(x, train))
    x = jnp.mean(x, axis=(1, 2))
    drop = (0.4 if paper else 0.2) if self.dropout is None else self.dropout
    x = nn.Dropout(drop, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=dtype, name="fc")(x).astype(jnp.float32)
    if self.aux_logits and train:
      return (logits, *aux)
    return logits


@register("googlenet", inputs=image_inputs(224))
def googlenet(resolution: int | None = None, channels: int | None = None, **overrides) -> GoogLeNet:
  del resolution, channels  # input-shape overrides (used by the registry inputs)
  return GoogLeNet(**overrides)
