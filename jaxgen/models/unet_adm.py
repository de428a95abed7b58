"""DhariwalUNet: the ADM network of Dhariwal & Nichol (2021) in EDM's reimplementation.

Structure follows EDM's ``training/networks.py`` ``DhariwalUNet`` (equivalent to openai/guided-diffusion):
positional noise embedding (``model_channels`` wide, no endpoint), 2-layer mapping to 4·C, a bias-free
class embedding added before the last SiLU, adaptive scale-shift GroupNorm (eps 1e-5) in every block,
multi-head attention with 64 channels per head at ``attn_resolutions`` (encoder, middle and decoder),
2×2 box down-sampling / nearest up-sampling with parameter-free skips, skip_scale 1.

Call: ``net(x, c_noise, labels=None, augment_labels=None, train=False) -> F`` (float32).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxgen.models import register
from jaxgen.models.unet_song import (Conv2d, GroupNorm, Linear, UNetBlock, _dtype, _inputs_with,
                                     label_dropout_mask, one_hot_labels, positional_embedding)


class DhariwalUNet(nn.Module):
  img_resolution: int = 64
  in_channels: int = 3
  out_channels: int = 3
  label_dim: int = 0
  augment_dim: int = 0
  model_channels: int = 192
  channel_mult: Sequence[int] = (1, 2, 3, 4)
  channel_mult_emb: int = 4
  num_blocks: int = 3
  attn_resolutions: Sequence[int] = (32, 16, 8)
  dropout: float = 0.10
  label_dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, c_noise, labels=None, augment_labels=None, train: bool = False):
    dt = self.dtype
    batch = x.shape[0]
    if x.shape[1] != self.img_resolution or x.shape[-1] != self.in_channels:
      raise ValueError(f"input {x.shape} does not match img_resolution={self.img_resolution}, "
                       f"in_channels={self.in_channels}; set model.overrides to the data's shape.")
    mc = self.model_channels
    emb_ch = mc * self.channel_mult_emb
    init = dict(init_mode="kaiming_uniform", init_weight=float(np.sqrt(1 / 3)), init_bias=float(np.sqrt(1 / 3)))
    init_zero = dict(init_mode="kaiming_uniform", init_weight=0.0, init_bias=0.0)
    blk = dict(channels_per_head=64, dropout=self.dropout, init=init, init_zero=init_zero, dtype=dt)

    # Mapping.
    c_noise = jnp.broadcast_to(jnp.asarray(c_noise, jnp.float32).reshape(-1), (batch,))
    emb = positional_embedding(c_noise, mc)
    if self.augment_dim and (augment_labels is not None or self.is_initializing()):
      a = augment_labels if augment_labels is not None else jnp.zeros((batch, self.augment_dim))
      emb = emb + Linear(mc, use_bias=False, name="map_augment", dtype=jnp.float32, **init_zero)(
          jnp.asarray(a, jnp.float32))
    emb = nn.silu(Linear(emb_ch, name="map_layer0", dtype=dt, **init)(emb))
    emb = Linear(emb_ch, name="map_layer1", dtype=dt, **init)(emb)
    if self.label_dim:
      y = label_dropout_mask(self, one_hot_labels(labels, self.label_dim, batch), self.label_dropout, train)
      emb = emb + Linear(emb_ch, use_bias=False, init_mode="kaiming_normal", init_weight=float(np.sqrt(self.label_dim)),
                         name="map_label", dtype=dt)(y)
    emb = nn.silu(emb)

    # Encoder.
    skips = []
    x = x.astype(dt)
    cout = self.in_channels
    for level, mult in enumerate(self.channel_mult):
      res = self.img_resolution >> level
      if level == 0:
        cout = mc * mult
        x = Conv2d(cout, 3, dtype=dt, name=f"enc_{res}x{res}_conv", **init)(x)
      else:
        x = UNetBlock(cout, down=True, name=f"enc_{res}x{res}_down", **blk)(x, emb, train)
      skips.append(x)
      for idx in range(self.num_blocks):
        cout = mc * mult
        x = UNetBlock(cout, attention=res in self.attn_resolutions, name=f"enc_{res}x{res}_block{idx}",
                      **blk)(x, emb, train)
        skips.append(x)

    # Decoder.
    for level, mult in reversed(list(enumerate(self.channel_mult))):
      res = self.img_resolution >> level
      if level == len(self.channel_mult) - 1:
        x = UNetBlock(cout, attention=True, name=f"dec_{res}x{res}_in0", **blk)(x, emb, train)
        x = UNetBlock(cout, name=f"dec_{res}x{res}_in1", **blk)(x, emb, train)
      else:
        x = UNetBlock(cout, up=True, name=f"dec_{res}x{res}_up", **blk)(x, emb, train)
      for idx in range(self.num_blocks + 1):
        x = jnp.concatenate([x, skips.pop()], axis=-1)
        cout = mc * mult
        x = UNetBlock(cout, attention=res in self.attn_resolutions, name=f"dec_{res}x{res}_block{idx}",
                      **blk)(x, emb, train)
    x = Conv2d(self.out_channels, 3, dtype=dt, name="out_conv", **init_zero)(
        nn.silu(GroupNorm(1e-5, dtype=dt, name="out_norm")(x)))
    return x.astype(jnp.float32)


@register("adm_imagenet64", inputs=_inputs_with(img_resolution=64, label_dim=1000))
def adm_imagenet64(**kw) -> DhariwalUNet:
  """EDM's ADM ImageNet-64 (class-conditional, 1000 classes, dropout 0.10): 295,899,267 params."""
  return DhariwalUNet(**_dtype({"img_resolution": 64, "label_dim": 1000, **kw}))
