"""A compact convolutional UNet denoiser for small images (8×8 – 32×32 digits, MNIST, CIFAR thumbnails).

    F = small_unet(x, c_noise, class_labels=None, augment_labels=None, train=False)

``x`` is NHWC (the preconditioned network input c_in·x), ``c_noise`` a [B] vector (the
parameterization's noise conditioning: ¼ ln σ for EDM, (M−1)·t for VP, ln(½σ) for VE, ...); the
output has the shape of ``x``. The layout follows the DDPM/EDM UNets at a small scale:

* noise embedding: sinusoidal positional embedding of c_noise (frequencies (1/max_positions)^(i/half),
  the DDPM++ convention) or random Fourier features (NCSN++), then Dense → SiLU → Dense; class labels
  (one-hot, [B] int or [B, num_classes] float) and augmentation labels add a linear embedding;
* one resolution level per entry of ``channel_mult``, ``num_blocks`` residual blocks each
  (GroupNorm → SiLU → 3×3 conv, + Dense(emb) as a per-channel shift, GroupNorm → SiLU → dropout →
  3×3 conv; 1×1 skip conv where the width changes; the sum scaled by 1/√2 as in DDPM++),
  optional self-attention at the resolutions in ``attn_resolutions``;
* 2×2 average-pool downsampling / nearest upsampling + 3×3 conv between levels, skip connections from
  every encoder block to the decoder (concatenated);
* the output conv and the last conv of every residual block are zero-initialized, so the untrained
  network outputs 0 (D = c_skip·x at start, the usual EDM initialization behaviour).

Params are float32; ``dtype`` is the compute dtype of convs/denses (GroupNorm, softmax and the
embedding run in float32).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import register


def timestep_embedding(c_noise: jax.Array, dim: int, max_positions: float = 10000.0,
                       kind: str = "positional", fourier_scale: float = 16.0) -> jax.Array:
  """[B] → [B, dim] embedding of the noise label, in float32.

  positional: [cos(c·f_i), sin(c·f_i)], f_i = (1/max_positions)^(i/half), i = 0..half−1.
  fourier: [cos(2π c·w_i), sin(2π c·w_i)] with fixed w_i ~ N(0, fourier_scale²) drawn from a fixed
  seed (NCSN++'s Gaussian Fourier projection; the frequencies are constants, not parameters).
  """
  if dim % 2:
    raise ValueError(f"embedding dim must be even, got {dim}.")
  half = dim // 2
  c = jnp.asarray(c_noise, jnp.float32).reshape(-1)
  if kind == "positional":
    freqs = (1.0 / max_positions) ** (jnp.arange(half, dtype=jnp.float32) / half)
    args = c[:, None] * freqs[None]
  elif kind == "fourier":
    w = jax.random.normal(jax.random.key(0), (half,), jnp.float32) * fourier_scale
    args = 2.0 * math.pi * c[:, None] * w[None]
  else:
    raise ValueError(f"embedding={kind!r} is unknown: use 'positional' or 'fourier'.")
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def _groups(channels: int, groups: int) -> int:
  return math.gcd(channels, groups)


class NoiseEmbedding(nn.Module):
  """c_noise (+ class / augmentation labels) → conditioning vector [B, emb_dim] (float32 output)."""

  emb_dim: int
  base_dim: int
  num_classes: int = 0
  augment_dim: int = 0
  embedding: str = "positional"
  max_positions: float = 10000.0
  fourier_scale: float = 16.0
  label_dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, c_noise, class_labels=None, augment_labels=None, train: bool = False):
    e = timestep_embedding(c_noise, self.base_dim, self.max_positions, self.embedding, self.fourier_scale)
    if self.augment_dim:
      if augment_labels is None:
        augment_labels = jnp.zeros((e.shape[0], self.augment_dim), jnp.float32)
      e = e + nn.Dense(self.base_dim, use_bias=False, name="augment")(augment_labels.astype(jnp.float32))
    e = nn.silu(nn.Dense(self.emb_dim, dtype=self.dtype, name="dense0")(e))
    e = nn.Dense(self.emb_dim, dtype=self.dtype, name="dense1")(e).astype(jnp.float32)
    if self.num_classes:
      if class_labels is None:
        raise ValueError("this network is class-conditional (num_classes > 0): pass class_labels.")
      y = class_labels
      if y.ndim == 1:
        y = jax.nn.one_hot(y, self.num_classes, dtype=jnp.float32)
      y = y.astype(jnp.float32)
      if train and self.label_dropout > 0:
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.label_dropout, (y.shape[0], 1))
        y = y * keep
      e = e + nn.Dense(self.emb_dim, use_bias=False, name="class")(y)
    return nn.silu(e)


class ResBlock(nn.Module):
  out_channels: int
  dropout: float = 0.0
  groups: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb, train: bool = False):
    c_in = x.shape[-1]
    h = nn.GroupNorm(_groups(c_in, self.groups), dtype=jnp.float32, name="norm0")(x)
    h = nn.Conv(self.out_channels, (3, 3), dtype=self.dtype, name="conv0")(nn.silu(h))
    h = h + nn.Dense(self.out_channels, dtype=self.dtype, name="emb")(emb)[:, None, None, :]
    h = nn.GroupNorm(_groups(self.out_channels, self.groups), dtype=jnp.float32, name="norm1")(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
    h = nn.Conv(self.out_channels, (3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros,
                name="conv1")(h)
    if c_in != self.out_channels:
      x = nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, name="skip")(x)
    return (x + h) * (1.0 / math.sqrt(2.0))


class SelfAttention(nn.Module):
  num_heads: int = 1
  groups: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hgt, wid, c = x.shape
    h = nn.GroupNorm(_groups(c, self.groups), dtype=jnp.float32, name="norm")(x).reshape(b, hgt * wid, c)
    h = nn.MultiHeadDotProductAttention(self.num_heads, dtype=self.dtype, out_kernel_init=nn.initializers.zeros,
                                        name="attn")(h)
    return (x + h.reshape(b, hgt, wid, c)) * (1.0 / math.sqrt(2.0))


class SmallUNet(nn.Module):
  """See the module docstring. ``channels`` is the width at full resolution."""

  out_channels: int = 1
  channels: int = 32
  channel_mult: Sequence[int] = (1, 2)
  num_blocks: int = 2
  attn_resolutions: Sequence[int] = ()
  dropout: float = 0.1
  groups: int = 8
  num_classes: int = 0
  augment_dim: int = 0
  embedding: str = "positional"
  max_positions: float = 10000.0
  fourier_scale: float = 16.0
  label_dropout: float = 0.0
  emb_mult: int = 4
  num_heads: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, c_noise, class_labels=None, augment_labels=None, train: bool = False):
    if x.ndim != 4:
      raise ValueError(f"small_unet expects NHWC images, got shape {x.shape}.")
    levels = len(self.channel_mult)
    if x.shape[1] % (2 ** (levels - 1)) or x.shape[2] % (2 ** (levels - 1)):
      raise ValueError(f"image size {x.shape[1:3]} is not divisible by 2^{levels - 1}: use fewer "
                       f"channel_mult entries or resize the data (data.resolution).")
    emb = NoiseEmbedding(self.channels * self.emb_mult, self.channels, self.num_classes, self.augment_dim,
                         self.embedding, self.max_positions, self.fourier_scale, self.label_dropout,
                         self.dtype, name="embed")(c_noise, class_labels, augment_labels, train)
    emb = emb.astype(self.dtype)
    h = nn.Conv(self.channels, (3, 3), dtype=self.dtype, name="conv_in")(x.astype(self.dtype))
    skips = [h]
    for level, mult in enumerate(self.channel_mult):
      for i in range(self.num_blocks):
        h = ResBlock(self.channels * mult, self.dropout, self.groups, self.dtype, name=f"enc{level}_{i}")(h, emb, train)
        if h.shape[1] in self.attn_resolutions:
          h = SelfAttention(self.num_heads, self.groups, self.dtype, name=f"enc{level}_{i}_attn")(h)
        skips.append(h)
      if level < levels - 1:
        b, hh, ww, c = h.shape
        h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
        skips.append(h)
    h = ResBlock(h.shape[-1], self.dropout, self.groups, self.dtype, name="mid0")(h, emb, train)
    if self.attn_resolutions:  # attention in the middle whenever the network uses attention at all
      h = SelfAttention(self.num_heads, self.groups, self.dtype, name="mid_attn")(h)
    h = ResBlock(h.shape[-1], self.dropout, self.groups, self.dtype, name="mid1")(h, emb, train)
    for level in reversed(range(levels)):
      mult = self.channel_mult[level]
      for i in range(self.num_blocks + 1):
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = ResBlock(self.channels * mult, self.dropout, self.groups, self.dtype, name=f"dec{level}_{i}")(h, emb, train)
        if h.shape[1] in self.attn_resolutions:
          h = SelfAttention(self.num_heads, self.groups, self.dtype, name=f"dec{level}_{i}_attn")(h)
      if level > 0:
        b, hh, ww, c = h.shape
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = nn.Conv(c, (3, 3), dtype=self.dtype, name=f"up{level}")(h)
    h = nn.GroupNorm(_groups(h.shape[-1], self.groups), dtype=jnp.float32, name="norm_out")(h)
    h = nn.Conv(self.out_channels, (3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros,
                name="conv_out")(nn.silu(h))
    return h.astype(jnp.float32)


def _inputs(batch: int = 1, resolution: int = 8, in_channels: int = 1, num_classes: int = 0,
            augment_dim: int = 0, **_: Any) -> tuple:
  x = jnp.zeros((batch, resolution, resolution, in_channels), jnp.float32)
  c = jnp.zeros((batch,), jnp.float32)
  args = (x, c)
  if num_classes or augment_dim:
    args += (jnp.zeros((batch,), jnp.int32),)   # ignored when num_classes == 0
  if augment_dim:
    args += (jnp.zeros((batch, augment_dim), jnp.float32),)
  return args


@register("small_unet", inputs=_inputs)
def small_unet(resolution: int = 8, in_channels: int = 1, out_channels: int | None = None,
               dtype: Any = "float32", **overrides: Any) -> SmallUNet:
  """``resolution``/``in_channels`` describe the example inputs; ``out_channels`` defaults to in_channels."""
  del resolution
  return SmallUNet(out_channels=in_channels if out_channels is None else out_channels,
                   dtype=jnp.dtype(dtype), **overrides)
