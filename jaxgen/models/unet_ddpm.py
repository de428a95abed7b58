"""The DDPM U-Net of Ho et al. (2020), CIFAR-10 configuration.

Structure of the official TF code (``hojonathanho/diffusion``, ``diffusion_tf/models/unet.py`` with
``scripts/run_cifar.py``: ch 128, ch_mult (1,2,2,2), 2 res blocks, attention at 16², dropout 0.1,
conv resampling): sinusoidal timestep embedding [sin, cos] (ch wide) → dense(4ch) → swish → dense(4ch);
residual blocks GroupNorm(32, eps 1e-6) → swish → conv3×3 (+ dense(swish(temb))) → GroupNorm → swish →
dropout → conv3×3, a 1×1 ("NIN") shortcut when channels change; single-head attention with separate
q/k/v/proj 1×1 layers; down-sampling a stride-2 3×3 conv with TF 'SAME' padding (0 before, 1 after);
up-sampling nearest ×2 then conv3×3. Initialisation: variance scaling fan_avg uniform (scale 1, or
1e-10 for the zero-initialised layers), zero biases.

Call: ``net(x, t, labels=None, augment_labels=None, train=False) -> ε̂`` (float32); ``t`` is the DDPM
timestep (0..T−1) as float or int.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import register
from jaxgen.models.unet_song import GroupNorm, _dtype, _unet_inputs


def _init(scale: float = 1.0):
  return nn.initializers.variance_scaling(1e-10 if scale == 0 else scale, "fan_avg", "uniform")


def timestep_embedding(t, dim: int):
  """DDPM's embedding: [sin(t ω_i), cos(t ω_i)], ω_i = exp(−i ln(10⁴)/(dim/2 − 1)) (float32)."""
  half = dim // 2
  freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000) / (half - 1)))
  e = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
  e = jnp.concatenate([jnp.sin(e), jnp.cos(e)], axis=1)
  return jnp.pad(e, ((0, 0), (0, dim % 2)))


class _Conv(nn.Module):
  features: int
  kernel: int = 3
  stride: int = 1
  init_scale: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    return nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="SAME",
                   kernel_init=_init(self.init_scale), dtype=self.dtype, param_dtype=jnp.float32, name="conv")(x)


class ResnetBlock(nn.Module):
  out_ch: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, temb, train: bool = False):
    dt = self.dtype
    h = nn.swish(GroupNorm(1e-6, min_channels_per_group=1, dtype=dt, name="norm1")(x))
    h = _Conv(self.out_ch, dtype=dt, name="conv1")(h)
    h = h + nn.Dense(self.out_ch, kernel_init=_init(), dtype=dt, name="temb_proj")(nn.swish(temb))[:, None, None, :]
    h = nn.swish(GroupNorm(1e-6, min_channels_per_group=1, dtype=dt, name="norm2")(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = _Conv(self.out_ch, init_scale=0.0, dtype=dt, name="conv2")(h)
    if x.shape[-1] != self.out_ch:
      x = nn.Dense(self.out_ch, kernel_init=_init(), dtype=dt, name="nin_shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    dt = self.dtype
    h = GroupNorm(1e-6, min_channels_per_group=1, dtype=dt, name="norm")(x)
    q, k, v = (nn.Dense(c, kernel_init=_init(), dtype=dt, name=n)(h).reshape(b, hh * ww, 1, c) for n in "qkv")
    a = jax.nn.dot_product_attention(q, k, v).reshape(b, hh, ww, c).astype(dt)
    return x + nn.Dense(c, kernel_init=_init(0.0), dtype=dt, name="proj_out")(a)


class DDPMUNet(nn.Module):
  img_resolution: int = 32
  in_channels: int = 3
  out_channels: int = 3
  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  resamp_with_conv: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, t, labels=None, augment_labels=None, train: bool = False):
    if labels is not None or augment_labels is not None:
      raise ValueError("the DDPM U-Net is unconditional (as in Ho et al.); remove labels/augment_labels "
                       "or use ddpmpp_cifar10 with label_dim/augment_dim.")
    dt, ch = self.dtype, self.ch
    b = x.shape[0]
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32).reshape(-1), (b,))
    temb = timestep_embedding(t, ch)
    temb = nn.Dense(4 * ch, kernel_init=_init(), dtype=dt, name="temb_dense0")(temb)
    temb = nn.Dense(4 * ch, kernel_init=_init(), dtype=dt, name="temb_dense1")(nn.swish(temb))

    x = x.astype(dt)
    hs = [_Conv(ch, dtype=dt, name="conv_in")(x)]
    n = len(self.ch_mult)
    for lvl in range(n):
      for i in range(self.num_res_blocks):
        h = ResnetBlock(ch * self.ch_mult[lvl], self.dropout, dt, name=f"down_{lvl}_block_{i}")(hs[-1], temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dt, name=f"down_{lvl}_attn_{i}")(h)
        hs.append(h)
      if lvl != n - 1:
        h = hs[-1]
        if self.resamp_with_conv:
          h = _Conv(h.shape[-1], stride=2, dtype=dt, name=f"down_{lvl}_downsample")(h)
        else:
          h = nn.avg_pool(h, (2, 2), (2, 2), "SAME")
        hs.append(h)

    h = hs[-1]
    h = ResnetBlock(h.shape[-1], self.dropout, dt, name="mid_block_1")(h, temb, train)
    h = AttnBlock(dt, name="mid_attn_1")(h)
    h = ResnetBlock(h.shape[-1], self.dropout, dt, name="mid_block_2")(h, temb, train)

    for lvl in reversed(range(n)):
      for i in range(self.num_res_blocks + 1):
        h = ResnetBlock(ch * self.ch_mult[lvl], self.dropout, dt, name=f"up_{lvl}_block_{i}")(
            jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dt, name=f"up_{lvl}_attn_{i}")(h)
      if lvl != 0:
        bb, hh, ww, cc = h.shape
        h = jnp.broadcast_to(h[:, :, None, :, None, :], (bb, hh, 2, ww, 2, cc)).reshape(bb, 2 * hh, 2 * ww, cc)
        if self.resamp_with_conv:
          h = _Conv(cc, dtype=dt, name=f"up_{lvl}_upsample")(h)
    assert not hs
    h = nn.swish(GroupNorm(1e-6, min_channels_per_group=1, dtype=dt, name="norm_out")(h))
    h = _Conv(self.out_channels, init_scale=0.0, dtype=dt, name="conv_out")(h)
    return h.astype(jnp.float32)


def _ddpm_inputs(batch: int = 1, img_resolution: int = 32, in_channels: int = 3, **_: Any) -> tuple:
  return _unet_inputs(batch, img_resolution=img_resolution, in_channels=in_channels)


@register("ddpm_cifar10", inputs=_ddpm_inputs)
def ddpm_cifar10(**kw) -> DDPMUNet:
  """Ho et al. (2020) CIFAR-10 U-Net: 35,746,307 params ("35.7M", Table/App. B)."""
  return DDPMUNet(**_dtype(kw))
