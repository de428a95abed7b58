"""The WGAN-GP ResNet generator and critic for CIFAR-10 (Gulrajani et al. 2017, App. F / ``gan_cifar_resnet.py``).

    wgan_resnet_g:  G(z[B, 128], train=False) -> x[B, 32, 32, 3] in [−1, 1]
    wgan_resnet_d:  D(x[B, 32, 32, 3], train=False) -> critic values[B]

Unconditional configuration of the reference code (DIM_G = DIM_D = 128, NORMALIZATION_G = True,
NORMALIZATION_D = False), all convolutions with biases, 'SAME' padding:
  G: Linear(128 → 4·4·128) → 3 × ResBlock(up) [4→8→16→32] → BN → ReLU → Conv3×3(→3) → tanh.
     ResBlock(up): shortcut UpsampleConv1×1; main BN → ReLU → UpsampleConv3×3 → BN → ReLU → Conv3×3.
  D: OptimizedBlock [Conv3×3 → ReLU → ConvMeanPool3×3; shortcut MeanPoolConv1×1] (32→16)
     → ResBlock(down) (16→8) → 2 × ResBlock(none) (8) → ReLU → global mean → Linear(128 → 1).
     ResBlock(down): main [norm] → ReLU → Conv3×3 → [norm] → ReLU → ConvMeanPool3×3; shortcut
     ConvMeanPool1×1. ResBlock(none) with equal widths: identity shortcut.
UpsampleConv = nearest-neighbour ×2 then conv; ConvMeanPool = conv then 2×2 mean pool; MeanPoolConv =
pool then conv. The critic has no normalization by default (``norm='layer'`` gives the reference's
layer norm over C, H, W with per-channel scale and offset). Trainable parameters (counted from the
reference code's layers): generator 1,204,483, critic 1,053,825.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.errors import ConfigError
from jaxgen.models import register

_HE = nn.initializers.variance_scaling(2.0, "fan_in", "uniform")
_GLOROT = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def _mean_pool(x):
  return nn.avg_pool(x, (2, 2), (2, 2))


def _upsample(x):
  b, h, w, c = x.shape
  return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)


class _Block(nn.Module):
  features: int
  resample: str | None = None     # 'up' | 'down' | None
  norm: str = "none"              # batch | layer | none
  dtype: Any = jnp.float32

  def _norm(self, h, train, name):
    if self.norm == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=jnp.float32,
                          name=name)(h)
    if self.norm == "layer":
      return nn.LayerNorm(reduction_axes=(1, 2, 3), epsilon=1e-5, dtype=jnp.float32, name=name)(h)
    return h

  @nn.compact
  def __call__(self, x, train: bool = False):
    cin, f, dt = x.shape[-1], self.features, self.dtype
    conv = lambda feat, k, name, init=_HE: nn.Conv(feat, (k, k), padding="SAME", kernel_init=init, dtype=dt, name=name)
    if self.resample == "up":
      shortcut = conv(f, 1, "shortcut", _GLOROT)(_upsample(x))
    elif self.resample == "down":
      shortcut = _mean_pool(conv(f, 1, "shortcut", _GLOROT)(x))
    elif cin == f:
      shortcut = x
    else:
      shortcut = conv(f, 1, "shortcut", _GLOROT)(x)
    h = nn.relu(self._norm(x, train, "norm1")).astype(dt)
    if self.resample == "up":
      h = conv(f, 3, "conv1")(_upsample(h))
    elif self.resample == "down":
      h = conv(cin, 3, "conv1")(h)
    else:
      h = conv(f, 3, "conv1")(h)
    h = nn.relu(self._norm(h, train, "norm2")).astype(dt)
    h = conv(f, 3, "conv2")(h)
    if self.resample == "down":
      h = _mean_pool(h)
    return shortcut + h


class WGANResNetGenerator(nn.Module):
  dim: int = 128
  channels: int = 3
  num_blocks: int = 3
  norm: str = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    h = nn.Dense(4 * 4 * self.dim, kernel_init=_GLOROT, dtype=self.dtype, name="input")(z.astype(self.dtype))
    h = h.reshape(z.shape[0], 4, 4, self.dim)
    for i in range(self.num_blocks):
      h = _Block(self.dim, "up", self.norm, self.dtype, name=f"block{i + 1}")(h, train)
    h = self._out_norm(h, train)
    h = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=_GLOROT, dtype=self.dtype,
                name="output")(nn.relu(h).astype(self.dtype))
    return jnp.tanh(h.astype(jnp.float32))

  def _out_norm(self, h, train):
    if self.norm == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=jnp.float32,
                          name="out_norm")(h)
    return h


class WGANResNetCritic(nn.Module):
  dim: int = 128
  norm: str = "none"        # none | layer  (no batch norm with a gradient penalty)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.norm not in ("none", "layer"):
      raise ConfigError(f"wgan_resnet_d norm={self.norm!r} is unknown: use 'none' or 'layer' (a "
                        "gradient-penalty critic must not use batch norm).")
    dt = self.dtype
    x = x.astype(dt)
    # optimized first block: no pre-activation on the input image
    shortcut = nn.Conv(self.dim, (1, 1), kernel_init=_GLOROT, dtype=dt, name="block1_shortcut")(_mean_pool(x))
    h = nn.relu(nn.Conv(self.dim, (3, 3), padding="SAME", kernel_init=_HE, dtype=dt, name="block1_conv1")(x))
    h = _mean_pool(nn.Conv(self.dim, (3, 3), padding="SAME", kernel_init=_HE, dtype=dt, name="block1_conv2")(h))
    h = shortcut + h
    h = _Block(self.dim, "down", self.norm, dt, name="block2")(h, train)
    h = _Block(self.dim, None, self.norm, dt, name="block3")(h, train)
    h = _Block(self.dim, None, self.norm, dt, name="block4")(h, train)
    h = jnp.mean(nn.relu(h).astype(jnp.float32), axis=(1, 2))
    return nn.Dense(1, kernel_init=_GLOROT, name="output")(h)[:, 0]


def _g_inputs(batch: int = 1, latent_dim: int = 128, **_: Any) -> tuple:
  return (jnp.zeros((batch, latent_dim), jnp.float32),)


def _d_inputs(batch: int = 1, resolution: int = 32, channels: int = 3, **_: Any) -> tuple:
  return (jnp.zeros((batch, resolution, resolution, channels), jnp.float32),)


@register("wgan_resnet_g", inputs=_g_inputs)
def wgan_resnet_g(latent_dim: int = 128, dtype: Any = "float32", **overrides: Any) -> WGANResNetGenerator:
  """``latent_dim`` only shapes the example input (128 in the paper)."""
  del latent_dim
  return WGANResNetGenerator(dtype=jnp.dtype(dtype), **overrides)


@register("wgan_resnet_d", inputs=_d_inputs)
def wgan_resnet_d(resolution: int = 32, channels: int = 3, dtype: Any = "float32", **overrides: Any) -> WGANResNetCritic:
  """32×32 inputs (the spatial size only sets the pooling depth; any multiple of 4 works)."""
  del resolution, channels
  return WGANResNetCritic(dtype=jnp.dtype(dtype), **overrides)
