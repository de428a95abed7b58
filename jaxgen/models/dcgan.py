"""DCGAN generator and discriminator (Radford et al. 2016) for square images of size 4·2^k.

    dcgan{32,64}_g:  G(z[B, latent_dim], train=False) -> x[B, r, r, channels] in [−1, 1]
    dcgan{32,64}_d:  D(x[B, r, r, channels], train=False) -> values[B]

Layout of the reference PyTorch example (pytorch/examples dcgan, nz=100, ngf=ndf=64, no conv biases),
generalized to r = 4·2^k with k = log2(r/4) up-/down-sampling stages:
  G: z → project to 4×4×(ngf·2^(k−1)) (the 4×4 stride-1 transposed conv on a 1×1 input, i.e. a Dense
     without bias) → BN → ReLU → [ConvT 4×4 s2 p1 halving channels → BN → ReLU] × (k−1)
     → ConvT 4×4 s2 p1 to ``channels`` → tanh.          (64²: 512→256→128→64→3, 3,576,704 params)
  D: Conv 4×4 s2 p1 → LeakyReLU(0.2) (no norm on the first layer) → [Conv 4×4 s2 p1 doubling
     channels → norm → LeakyReLU(0.2)] × (k−1) → Conv 4×4 valid to one logit at 1×1.
                                                           (64²: 3→64→128→256→512→1, 2,765,568 params)
BatchNorm as PyTorch's (momentum 0.1 → Flax 0.9, ε = 1e-5). The discriminator's ``norm`` may be
'batch' (DCGAN), 'layer' (per-sample, over H, W, C, as WGAN-GP's critics use with a gradient
penalty) or 'none'; ``spectral_norm=True`` wraps every conv (Miyato et al. 2018).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.errors import ConfigError
from jaxgen.gan.spectral import SpectralNorm
from jaxgen.models import register

_PAD = ((2, 2), (2, 2))   # lax.conv_transpose padding k − 1 − p for PyTorch's (k=4, s=2, p=1): out = 2·in
_INIT = nn.initializers.normal(0.02)   # DCGAN: weights ~ N(0, 0.02)


def _stages(resolution: int) -> int:
  k = math.log2(resolution / 4) if resolution >= 8 else -1
  if k < 1 or k != int(k):
    raise ConfigError(f"DCGAN resolution must be 4·2^k with k ≥ 1 (8, 16, 32, 64, ...), got {resolution}.")
  return int(k)


def _bn(train, name):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=lambda k, s, d=jnp.float32: 1.0 + 0.02 * nn.initializers.normal(1.0)(k, s, d),
                      dtype=jnp.float32, name=name)


class DCGANGenerator(nn.Module):
  resolution: int = 64
  channels: int = 3
  base: int = 64            # ngf
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    k = _stages(self.resolution)
    ch = self.base * 2 ** (k - 1)
    h = nn.Dense(4 * 4 * ch, use_bias=False, kernel_init=_INIT, dtype=self.dtype, name="project")(z.astype(self.dtype))
    h = h.reshape(z.shape[0], 4, 4, ch)
    h = nn.relu(_bn(train, "bn0")(h)).astype(self.dtype)
    for i in range(1, k):
      ch //= 2
      h = nn.ConvTranspose(ch, (4, 4), (2, 2), padding=_PAD, use_bias=False, kernel_init=_INIT,
                           dtype=self.dtype, name=f"up{i}")(h)
      h = nn.relu(_bn(train, f"bn{i}")(h)).astype(self.dtype)
    h = nn.ConvTranspose(self.channels, (4, 4), (2, 2), padding=_PAD, use_bias=False, kernel_init=_INIT,
                         dtype=self.dtype, name="out")(h)
    return jnp.tanh(h.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  resolution: int = 64
  channels: int = 3
  base: int = 64            # ndf
  norm: str = "batch"       # batch | layer | none
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.norm not in ("batch", "layer", "none"):
      raise ConfigError(f"DCGAN discriminator norm={self.norm!r} is unknown: use 'batch', 'layer' or 'none'.")
    k = _stages(self.resolution)
    if x.shape[1:] != (self.resolution, self.resolution, self.channels):
      raise ConfigError(f"DCGAN discriminator built for {self.resolution}²×{self.channels} images got "
                        f"shape {x.shape}; set model overrides resolution/channels to match the data.")

    def conv(features, name, strides=(2, 2), padding=((1, 1), (1, 1))):
      layer = nn.Conv(features, (4, 4), strides, padding=padding, use_bias=False, kernel_init=_INIT,
                      dtype=self.dtype, name=None if self.spectral_norm else name)
      if self.spectral_norm:
        return lambda h: SpectralNorm(layer, name=name)(h, update_stats=train)
      return layer

    h = nn.leaky_relu(conv(self.base, "conv0")(x.astype(self.dtype)), 0.2)
    ch = self.base
    for i in range(1, k):
      ch *= 2
      h = conv(ch, f"conv{i}")(h)
      if self.norm == "batch":
        h = _bn(train, f"bn{i}")(h)
      elif self.norm == "layer":
        h = nn.LayerNorm(reduction_axes=(1, 2, 3), dtype=jnp.float32, name=f"ln{i}")(h)
      h = nn.leaky_relu(h, 0.2).astype(self.dtype)
    h = conv(1, "out", strides=(1, 1), padding="VALID")(h)
    return h.reshape(x.shape[0]).astype(jnp.float32)


def _g_inputs(batch: int = 1, latent_dim: int = 100, **_: Any) -> tuple:
  return (jnp.zeros((batch, latent_dim), jnp.float32),)


def _d_inputs_for(res: int):
  def inputs(batch: int = 1, resolution: int = res, channels: int = 3, **_: Any) -> tuple:
    return (jnp.zeros((batch, resolution, resolution, channels), jnp.float32),)
  return inputs


def _make_g(res):
  def factory(latent_dim: int = 100, resolution: int = res, dtype: Any = "float32", **overrides: Any):
    del latent_dim
    return DCGANGenerator(resolution=resolution, dtype=jnp.dtype(dtype), **overrides)
  return factory


def _make_d(res):
  def factory(resolution: int = res, dtype: Any = "float32", **overrides: Any):
    return DCGANDiscriminator(resolution=resolution, dtype=jnp.dtype(dtype), **overrides)
  return factory


for _res in (32, 64):
  register(f"dcgan{_res}_g", inputs=_g_inputs)(_make_g(_res))
  register(f"dcgan{_res}_d", inputs=_d_inputs_for(_res))(_make_d(_res))
