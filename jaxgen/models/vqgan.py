"""VQGAN (Esser, Rombach & Ommer, CVPR 2021): the first-stage autoencoder and its PatchGAN discriminator.

The networks follow the official code (CompVis/taming-transformers) layer for layer; see docs/vqgan.md.

``Encoder`` / ``Decoder`` (taming/modules/diffusionmodules/model.py): conv_in 3×3; per level
``num_res_blocks`` ResnetBlocks (GroupNorm(32, eps 1e-6) → swish → conv3×3 → GroupNorm → swish → dropout →
conv3×3, a 1×1 ``nin_shortcut`` when the width changes), each followed by an AttnBlock when the level's
*configured* resolution (``resolution`` halved per level, as taming counts it, not the input's size) is in
``attn_resolutions``; Downsample = zero pad (0, 1, 0, 1) then a stride-2 3×3 conv; a middle block
(ResnetBlock, AttnBlock, ResnetBlock); GroupNorm → swish → conv_out 3×3. The decoder mirrors it with
``num_res_blocks + 1`` blocks per level and Upsample = nearest ×2 then conv3×3. AttnBlock: single-head
softmax(q kᵀ/√C) v with 1×1 q, k, v, proj_out and a residual.

``VQModel`` (taming/models/vqgan.py): encoder → quant_conv (1×1, z_channels → embed_dim) → vector quantizer
(codebook ``params['quantize']['embedding']`` [n_embed, embed_dim], initialised U(−1/K, 1/K) as taming's
VectorQuantizer2) → post_quant_conv (1×1) → decoder. Quantisation is ``jaxgen.vq.quantize`` (straight-through,
chunked distances; ``legacy=True`` puts β on the codebook term as taming does).

``PatchGAN`` (taming/modules/discriminator/model.py, ``NLayerDiscriminator`` of pix2pix): 4×4 convs with
padding 1, LeakyReLU(0.2); layer widths ndf·min(2ⁿ, 8); the hidden convs have no bias under BatchNorm and a
bias under ActNorm; returns the [B, H', W', 1] logit map (30×30 for 256² input, n_layers 3). Init as taming's
``weights_init``: conv weights N(0, 0.02), BatchNorm γ N(1, 0.02), β 0.

Parameter names keep taming's module names so ``jaxgen.convert.taming`` is a rename: torch
``encoder.down.1.block.0.norm1.weight`` is ``params['encoder']['down_1']['block_0']['norm1']['scale']``
(``X.N`` → ``X_N``, ``weight`` → ``kernel`` / ``scale``), ``main.3`` of the discriminator is ``main_3``.
Other initialisation: torch's defaults (weights and biases U(±1/√fan_in)).

All modules are NHWC. ``dtype`` is the compute dtype (parameters stay float32; GroupNorm statistics, the
attention softmax and the quantizer's distances are float32; outputs are float32).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import vq
from jaxgen.errors import ConfigError
from jaxgen.models import register
from jaxgen.models.unet_song import _dtype, group_norm

__all__ = ["Conv2d", "ResnetBlock", "AttnBlock", "Encoder", "Decoder", "VectorQuantizer", "VQModel",
           "PatchGAN", "ActNorm", "IMAGENET_F16", "TINY"]

# taming configs/imagenet_vqgan.yaml (also faceshq_vqgan.yaml): the f16 ImageNet / FFHQ / CelebA-HQ models.
IMAGENET_F16 = dict(ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,), z_channels=256,
                    embed_dim=256, resolution=256, in_channels=3, out_ch=3, dropout=0.0)
# A small f4 model for tests and CPU runs: 32² images → 8×8 codes (every key overridable).
TINY = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), z_channels=16, embed_dim=16,
            n_embed=64, resolution=32, in_channels=3, out_ch=3, dropout=0.0)


def _torch_uniform(fan_in: int):
  """torch's default Conv/Linear init for weights and biases: U(−1/√fan_in, 1/√fan_in)."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Conv2d(nn.Module):
  """A torch-style conv: params ``kernel`` [k, k, in, out] and ``bias`` [out]; ``padding`` is an int (both
  sides) or ((top, bottom), (left, right)). ``kernel_init`` None = torch's default."""
  features: int
  kernel: int = 3
  stride: int = 1
  padding: Any = None              # None: kernel // 2
  use_bias: bool = True
  kernel_init: Any = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    cin, k = x.shape[-1], self.kernel
    fan_in = cin * k * k
    w = self.param("kernel", self.kernel_init or _torch_uniform(fan_in), (k, k, cin, self.features))
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    if k == 1 and self.stride == 1 and not self.padding:
      y = jnp.einsum("...c,cd->...d", x, w[0, 0])
    else:
      p = k // 2 if self.padding is None else self.padding
      pad = [(p, p), (p, p)] if isinstance(p, int) else [tuple(q) for q in p]
      y = jax.lax.conv_general_dilated(x, w, (self.stride, self.stride), pad,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", _torch_uniform(fan_in), (self.features,)).astype(self.dtype)
    return y


class Normalize(nn.Module):
  """GroupNorm(32 groups, eps 1e-6) with affine ``scale``/``bias`` (taming ``Normalize``); ``act='silu'``
  fuses the swish that follows it (jaxgen.models.unet_song.group_norm: two-pass float32 statistics)."""
  act: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    return group_norm(x, scale, bias, 32, 1e-6, self.act, self.dtype)


class ResnetBlock(nn.Module):
  out_channels: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    dt = self.dtype
    h = Normalize("silu", dt, name="norm1")(x)
    h = Conv2d(self.out_channels, dtype=dt, name="conv1")(h)
    h = Normalize("silu", dt, name="norm2")(h)
    h = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0)(h)
    h = Conv2d(self.out_channels, dtype=dt, name="conv2")(h)
    if x.shape[-1] != self.out_channels:
      x = Conv2d(self.out_channels, 1, dtype=dt, name="nin_shortcut")(x)
    return x.astype(dt) + h


class AttnBlock(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    dt = self.dtype
    h = Normalize(None, dt, name="norm")(x)
    q, k, v = (Conv2d(c, 1, dtype=dt, name=n)(h).reshape(b, hh * ww, c) for n in "qkv")
    w = jnp.einsum("bic,bjc->bij", q, k, preferred_element_type=jnp.float32) * (c ** -0.5)
    w = jax.nn.softmax(w, axis=-1).astype(dt)
    a = jnp.einsum("bij,bjc->bic", w, v).reshape(b, hh, ww, c)
    return x.astype(dt) + Conv2d(c, 1, dtype=dt, name="proj_out")(a)


class Downsample(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    # taming: F.pad(x, (0, 1, 0, 1)) then a stride-2 3×3 conv without padding.
    return Conv2d(x.shape[-1], 3, 2, ((0, 1), (0, 1)), dtype=self.dtype, name="conv")(x)


class Upsample(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
    return Conv2d(c, dtype=self.dtype, name="conv")(x)


class _Level(nn.Module):
  """One resolution level: ``block_i`` (+ ``attn_i``) and an optional ``downsample``/``upsample``."""
  out_channels: int
  num_blocks: int
  attn: bool
  resample: str | None             # "down", "up" or None
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, train: bool = False):
    for i in range(self.num_blocks):
      h = ResnetBlock(self.out_channels, self.dropout, self.dtype, name=f"block_{i}")(h, train)
      if self.attn:
        h = AttnBlock(self.dtype, name=f"attn_{i}")(h)
    if self.resample == "down":
      h = Downsample(self.dtype, name="downsample")(h)
    elif self.resample == "up":
      h = Upsample(self.dtype, name="upsample")(h)
    return h


class _Mid(nn.Module):
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, train: bool = False):
    c = h.shape[-1]
    h = ResnetBlock(c, self.dropout, self.dtype, name="block_1")(h, train)
    h = AttnBlock(self.dtype, name="attn_1")(h)
    return ResnetBlock(c, self.dropout, self.dtype, name="block_2")(h, train)


class Encoder(nn.Module):
  ch: int = 128
  ch_mult: Sequence[int] = (1, 1, 2, 2, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  resolution: int = 256
  z_channels: int = 256
  double_z: bool = False
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    dt, n = self.dtype, len(self.ch_mult)
    h = Conv2d(self.ch, dtype=dt, name="conv_in")(x)
    res = self.resolution
    for lvl in range(n):
      h = _Level(self.ch * self.ch_mult[lvl], self.num_res_blocks, res in self.attn_resolutions,
                 "down" if lvl != n - 1 else None, self.dropout, dt, name=f"down_{lvl}")(h, train)
      res = res // 2 if lvl != n - 1 else res
    h = _Mid(self.dropout, dt, name="mid")(h, train)
    h = Normalize("silu", dt, name="norm_out")(h)
    return Conv2d(2 * self.z_channels if self.double_z else self.z_channels, dtype=dt, name="conv_out")(h)


class Decoder(nn.Module):
  ch: int = 128
  out_ch: int = 3
  ch_mult: Sequence[int] = (1, 1, 2, 2, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  resolution: int = 256
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    dt, n = self.dtype, len(self.ch_mult)
    res = self.resolution // 2 ** (n - 1)
    h = Conv2d(self.ch * self.ch_mult[-1], dtype=dt, name="conv_in")(z)
    h = _Mid(self.dropout, dt, name="mid")(h, train)
    for lvl in reversed(range(n)):
      h = _Level(self.ch * self.ch_mult[lvl], self.num_res_blocks + 1, res in self.attn_resolutions,
                 "up" if lvl != 0 else None, self.dropout, dt, name=f"up_{lvl}")(h, train)
      res = res * 2 if lvl != 0 else res
    h = Normalize("silu", dt, name="norm_out")(h)
    return Conv2d(self.out_ch, dtype=dt, name="conv_out")(h)


class VectorQuantizer(nn.Module):
  """The codebook ``embedding`` [n_embed, embed_dim] (taming ``quantize.embedding.weight``), its lookups."""
  n_embed: int
  embed_dim: int
  beta: float = 0.25
  legacy: bool = True
  cosine: bool = False

  def setup(self):
    k = self.n_embed
    self.embedding = self.param(
        "embedding", lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1.0 / k, 1.0 / k),
        (self.n_embed, self.embed_dim))

  def __call__(self, z):
    """z [..., embed_dim] → the ``jaxgen.vq.quantize`` result (float32 z_q, int32 indices, losses)."""
    return vq.quantize(z.astype(jnp.float32), self.embedding, beta=self.beta, legacy=self.legacy,
                    cosine=self.cosine)

  def embed(self, indices):
    """indices [...] int → codebook rows [..., embed_dim] (taming ``get_codebook_entry``; unit-normalised
    rows with ``cosine``, as the quantizer returns them)."""
    return vq.lookup(indices, self.embedding, cosine=self.cosine)


class VQModel(nn.Module):
  """The VQGAN autoencoder. ``__call__(x, train) -> (x_rec, qloss, indices)`` on images in [−1, 1]."""
  ch: int = 128
  ch_mult: Sequence[int] = (1, 1, 2, 2, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  resolution: int = 256
  in_channels: int = 3
  out_ch: int = 3
  z_channels: int = 256
  embed_dim: int = 256
  n_embed: int = 1024
  dropout: float = 0.0
  beta: float = 0.25
  legacy: bool = True
  cosine: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    kw = dict(ch=self.ch, ch_mult=tuple(self.ch_mult), num_res_blocks=self.num_res_blocks,
              attn_resolutions=tuple(self.attn_resolutions), resolution=self.resolution, dropout=self.dropout,
              dtype=self.dtype)
    self.encoder = Encoder(z_channels=self.z_channels, **kw)
    self.decoder = Decoder(out_ch=self.out_ch, **kw)
    self.quant_conv = Conv2d(self.embed_dim, 1, dtype=self.dtype)
    self.post_quant_conv = Conv2d(self.z_channels, 1, dtype=self.dtype)
    self.quantize = VectorQuantizer(self.n_embed, self.embed_dim, self.beta, self.legacy, self.cosine)

  @property
  def downsample_factor(self) -> int:
    return 2 ** (len(self.ch_mult) - 1)

  def encode_latent(self, x, train: bool = False):
    """Pre-quantisation latent z [B, h, w, embed_dim] (float32): encoder then quant_conv."""
    if x.shape[-1] != self.in_channels:
      raise ConfigError(f"VQModel got images with {x.shape[-1]} channels but in_channels={self.in_channels}: "
                        "set model.overrides.in_channels.")
    return self.quant_conv(self.encoder(x, train)).astype(jnp.float32)

  def quantize_latent(self, z):
    """The ``jaxgen.vq.Quantized`` result for a latent from ``encode_latent`` (z_q, indices, loss,
    codebook_loss, commitment_loss); EMA-codebook and dead-code updates need z and the indices."""
    return self.quantize(z)

  def encode(self, x, train: bool = False):
    """x [B, H, W, C] → (z_q [B, h, w, embed_dim] straight-through, indices [B, h, w] int32, qloss scalar)."""
    q = self.quantize_latent(self.encode_latent(x, train))
    return q.z_q, q.indices, q.loss

  def decode(self, z_q, train: bool = False):
    """z_q [B, h, w, embed_dim] → images [B, H, W, out_ch] (float32)."""
    return self.decoder(self.post_quant_conv(z_q), train).astype(jnp.float32)

  def decode_code(self, indices):
    """indices [B, h, w] int → images (the codebook rows through post_quant_conv and the decoder)."""
    return self.decode(self.quantize.embed(indices))

  def __call__(self, x, train: bool = False):
    z_q, indices, qloss = self.encode(x, train)
    return self.decode(z_q, train), qloss, indices


class ActNorm(nn.Module):
  """Glow's ActNorm as taming's ``ActNorm``: y = scale·(x + loc), per channel. taming sets loc = −mean and
  scale = 1/(std + 1e-6) (unbiased std over batch and space) on the first training batch; here that
  data-dependent initialisation happens in ``module.init`` — initialise the discriminator on a real batch.
  A channel that is constant in that batch gets scale 1 instead of 1e6."""

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]

    def data_init(fn):
      def init(key, shape):
        flat = x.reshape(-1, c).astype(jnp.float32)
        return fn(flat.mean(0), jnp.std(flat, axis=0, ddof=1))
      return init

    loc = self.param("loc", data_init(lambda m, s: -m), (c,))
    scale = self.param("scale", data_init(lambda m, s: jnp.where(s > 0, 1.0 / (s + 1e-6), 1.0)), (c,))
    return scale.astype(x.dtype) * (x + loc.astype(x.dtype))


class PatchGAN(nn.Module):
  """taming's NLayerDiscriminator: ``__call__(x, train) -> logits [B, H', W', 1]`` (float32).

  Layers keep torch's ``nn.Sequential`` indices: main_0 conv, then (conv, norm) at main_2/3, main_5/6, ...,
  the last conv at main_{3·n_layers+2}. BatchNorm: momentum 0.1 (flax 0.9), eps 1e-5, statistics over the
  batch in training (``axis_name`` = the data-parallel axis for the global batch), running averages at test.
  """
  input_nc: int = 3
  ndf: int = 64
  n_layers: int = 3
  use_actnorm: bool = False
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[-1] != self.input_nc:
      raise ConfigError(f"PatchGAN got {x.shape[-1]} channels but input_nc={self.input_nc}: set the "
                        "discriminator's input_nc override.")
    w_init = nn.initializers.normal(0.02)
    dt = self.dtype
    idx = 0

    def conv(h, feat, stride, bias):
      nonlocal idx
      h = Conv2d(feat, 4, stride, 1, bias, w_init, dt, name=f"main_{idx}")(h)
      idx += 1
      return h

    def norm(h):
      nonlocal idx
      if self.use_actnorm:
        h = ActNorm(name=f"main_{idx}")(h)
      else:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dt,
                         param_dtype=jnp.float32, axis_name=self.axis_name if train else None,
                         scale_init=lambda k, s, d=jnp.float32: 1.0 + 0.02 * jax.random.normal(k, s, d),
                         name=f"main_{idx}")(h)
      idx += 2    # the norm and the LeakyReLU that follows it
      return nn.leaky_relu(h, 0.2)

    h = nn.leaky_relu(conv(x, self.ndf, 2, True), 0.2)
    idx += 1
    for n in range(1, self.n_layers):
      mult = min(2 ** n, 8)
      h = norm(conv(h, self.ndf * mult, 2, self.use_actnorm))
    mult = min(2 ** self.n_layers, 8)
    h = norm(conv(h, self.ndf * mult, 1, self.use_actnorm))
    return conv(h, 1, 1, True).astype(jnp.float32)


def _vq_inputs(batch: int = 1, resolution: int = 256, in_channels: int = 3, **_: Any) -> tuple:
  return (jnp.zeros((batch, resolution, resolution, in_channels), jnp.float32),)


def _make_vq(base: dict):
  def factory(**kw) -> VQModel:
    kw = _dtype(dict(kw))
    cfg = {**base, **kw}
    if any(cfg["ch"] * m % 32 for m in cfg["ch_mult"]):
      raise ConfigError(f"VQGAN widths ch·ch_mult must be multiples of 32 (GroupNorm(32)); got "
                        f"ch={cfg['ch']}, ch_mult={cfg['ch_mult']}: change model.overrides.ch.")
    return VQModel(**cfg)
  return factory


def _inputs_for(res: int):
  return lambda batch=1, resolution=res, in_channels=3, **_: _vq_inputs(batch, resolution, in_channels)


for _k in (1024, 16384):
  register(f"vqgan_imagenet_f16_{_k}", inputs=_inputs_for(256))(_make_vq({**IMAGENET_F16, "n_embed": _k}))
  # taming configs/imagenet_vqgan.yaml (n_embed 1024) and the released ImageNet 16384 model (same ddconfig).
register("vqgan_tiny", inputs=_inputs_for(32))(_make_vq(TINY))


def _d_inputs(batch: int = 1, resolution: int = 256, input_nc: int = 3, **_: Any) -> tuple:
  return (jnp.zeros((batch, resolution, resolution, input_nc), jnp.float32),)


@register("patchgan", inputs=_d_inputs)
def patchgan(resolution: int | None = None, **kw) -> PatchGAN:
  """taming's NLayerDiscriminator (n_layers 3, ndf 64, BatchNorm; ``use_actnorm=True`` for ActNorm).
  ``resolution`` only sizes the example input (the network is fully convolutional)."""
  return PatchGAN(**_dtype(dict(kw)))
