"""Xception (Chollet, CVPR 2017), as in Keras ``applications.Xception`` (input 299×299).

Entry flow: 3×3/2 conv 32 (valid) → 3×3 conv 64 (valid) → three blocks of [ReLU] → separable 3×3
→ BN → ReLU → separable 3×3 → BN → 3×3/2 max pool, plus a 1×1/2 conv + BN shortcut (128, 256, 728
channels; the first block starts without ReLU). Middle flow: 8 × (3 × [ReLU → separable 728 → BN]) with
identity shortcuts. Exit flow: [ReLU → sep 728 → BN → ReLU → sep 1024 → BN → max pool] + 1×1/2 conv
shortcut, then sep 1536 → BN → ReLU → sep 2048 → BN → ReLU, global pool, logistic/softmax layer.
A separable conv is a 3×3 depthwise conv followed by a 1×1 pointwise conv, neither with bias.
Keras BatchNorm: momentum 0.99, ε 1e-3. Trainable parameters: 22,855,952 (Keras; also the paper's
Table 3).

Two faithful variants (docs/convert.md "EfficientNet and Xception"), same parameters:

  * Keras (the default): the 3×3/2 max pools pad TF "SAME" (``pool_padding='same'``: on an even input
    the extra row/column goes at the end), BatchNorm ε 1e-3.
  * timm ``legacy_xception`` (Cadene's port, formerly timm's ``xception``): ``nn.MaxPool2d(3, 2, 1)``
    pads one pixel on every side (``pool_padding='symmetric'``) and ``nn.BatchNorm2d`` has ε 1e-5
    (``bn_eps=1e-5``, PyTorch momentum 0.1 = Flax 0.9). At 299² only entry block 2's pool sees an even
    input (74²), where the two differ. ``TIMM_OVERRIDES`` holds these ``model.overrides``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.models import register
from jaxgen.models.cnn_layers import batch_norm, image_inputs, to_dtype

#: ``model.overrides`` of timm's ``legacy_xception`` (module docstring)
TIMM_OVERRIDES = {"pool_padding": "symmetric", "bn_eps": 1e-5, "bn_momentum": 0.9}


class SeparableConv(nn.Module):
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(x.shape[-1], (3, 3), padding="SAME", feature_group_count=x.shape[-1], use_bias=False,
                dtype=self.dtype, name="depthwise")(x)
    return nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype, name="pointwise")(x)


class Xception(nn.Module):
  num_classes: int = 1000
  middle_blocks: int = 8
  width: float = 1.0               # channel multiplier (tiny test/smoke networks only)
  dropout: float = 0.0             # the paper trains with 0.5 before the classifier (Keras has none)
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  pool_padding: str = "same"       # 'same' (Keras) or 'symmetric' (timm legacy_xception)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = to_dtype(self.dtype)
    if self.pool_padding not in ("same", "symmetric"):
      raise ValueError(f"Xception pool_padding={self.pool_padding!r} is unknown: use 'same' (Keras) or "
                       "'symmetric' (timm).")
    pool_pad = "SAME" if self.pool_padding == "same" else ((1, 1), (1, 1))
    bn = lambda name: batch_norm(train, self.bn_momentum, self.bn_eps, name=name)
    w = lambda c: max(1, int(c * self.width))
    sep = lambda f, name: SeparableConv(w(f), dtype, name=name)
    x = x.astype(dtype)
    x = nn.relu(bn("stem1_bn")(nn.Conv(w(32), (3, 3), (2, 2), padding="VALID", use_bias=False, dtype=dtype,
                                       name="stem1")(x)))
    x = nn.relu(bn("stem2_bn")(nn.Conv(w(64), (3, 3), padding="VALID", use_bias=False, dtype=dtype, name="stem2")(x)))

    def down_block(x, f1, f2, name, relu_first=True):
      r = nn.Conv(w(f2), (1, 1), (2, 2), padding="SAME", use_bias=False, dtype=dtype, name=f"{name}_shortcut")(x)
      r = bn(f"{name}_shortcut_bn")(r)
      h = nn.relu(x) if relu_first else x
      h = bn(f"{name}_bn1")(sep(f1, f"{name}_sep1")(h))
      h = bn(f"{name}_bn2")(sep(f2, f"{name}_sep2")(nn.relu(h)))
      h = nn.max_pool(h, (3, 3), (2, 2), padding=pool_pad)
      return h + r

    x = down_block(x, 128, 128, "entry1", relu_first=False)
    x = down_block(x, 256, 256, "entry2")
    x = down_block(x, 728, 728, "entry3")
    for i in range(self.middle_blocks):
      h = x
      for j in range(3):
        h = bn(f"middle{i}_bn{j}")(sep(728, f"middle{i}_sep{j}")(nn.relu(h)))
      x = x + h
    x = down_block(x, 728, 1024, "exit1")
    x = nn.relu(bn("exit2_bn1")(sep(1536, "exit2_sep1")(x)))
    x = nn.relu(bn("exit2_bn2")(sep(2048, "exit2_sep2")(x)))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=dtype, name="classifier")(x).astype(jnp.float32)


@register("xception", inputs=image_inputs(299))
def xception(resolution: int | None = None, channels: int | None = None, **overrides) -> Xception:
  del resolution, channels  # input-shape overrides (used by the registry inputs)
  return Xception(**overrides)
