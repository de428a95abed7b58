"""SongUNet: the DDPM++ and NCSN++ networks of Song et al. (2021), in the unified form of EDM.

Structure and parameter layout follow EDM's ``training/networks.py`` (Karras et al. 2022), which
reimplements score_sde's ``ddpm.py``/``ncsnpp.py`` exactly; the shared building blocks here (``Conv2d``
with FIR up/down-sampling, ``Linear``, ``GroupNorm``, ``UNetBlock``, the noise embeddings) also serve
``unet_adm.DhariwalUNet``.

Call: ``net(x, c_noise, labels=None, augment_labels=None, train=False) -> F`` with ``x`` float NHWC,
``c_noise`` [B] (the preconditioner's noise label), ``labels`` int32 [B] or one-hot float [B, label_dim],
``augment_labels`` [B, augment_dim]. Dropout draws from the ``'dropout'`` rng when ``train=True``.

Mixed precision: parameters are float32; ``dtype`` (e.g. ``jnp.bfloat16``) is the compute dtype of
convolutions, dense layers and attention matmuls; GroupNorm statistics, the softmax and the noise
embedding run in float32; the output F is float32.

score_sde correspondence (``configs/*/cifar10_*_continuous.py``): resblock_type 'biggan' = the
``UNetBlock`` with ``resample_proj=True``; progressive_input 'input_skip' / 'residual' =
``encoder_type`` 'skip' / 'residual'; progressive 'output_skip' = ``decoder_type='skip'``;
skip_rescale = ``skip_scale=√½``; the Gaussian Fourier projection (``fourier_scale`` 16) = the 'fourier'
embedding with ``channel_mult_noise=2``. score_sde stores the Fourier frequencies W in ``params`` behind
``stop_gradient``; EDM (and this file) treat them as a fixed buffer drawn from ``fourier_seed``, so they
are not trainable parameters: they live in the non-trainable ``constants`` collection
(``constants/map_noise_freqs``, carried as model state), where a converted checkpoint's trained
frequencies go (``jaxgen.convert.edm``); applied with ``params`` alone, the network redraws them from
``fourier_seed``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from jaxgen.errors import ConfigError
from jaxgen.models import register

Dtype = Any

# ------------------------------------------------------------------------------------------------
# Initialisation (EDM's ``weight_init``, with explicit fans so biases use the weight's fans).


def edm_init(mode: str, fan_in: int, fan_out: int, scale: float = 1.0):
  """Initializer ``f(key, shape, dtype)`` of EDM's ``weight_init(shape, mode, fan_in, fan_out) * scale``.

  xavier_uniform √(6/(fan_in+fan_out))·U(−1,1); xavier_normal √(2/(fan_in+fan_out))·N(0,1);
  kaiming_uniform √(3/fan_in)·U(−1,1); kaiming_normal √(1/fan_in)·N(0,1).
  """
  if mode not in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
    raise ValueError(f"unknown init mode {mode!r}; use xavier_uniform|xavier_normal|kaiming_uniform|kaiming_normal.")

  def init(key, shape, dtype=jnp.float32):
    if scale == 0:
      return jnp.zeros(shape, dtype)
    if mode == "xavier_uniform":
      w = math.sqrt(6 / (fan_in + fan_out)) * jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    elif mode == "xavier_normal":
      w = math.sqrt(2 / (fan_in + fan_out)) * jax.random.normal(key, shape, dtype)
    elif mode == "kaiming_uniform":
      w = math.sqrt(3 / fan_in) * jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    else:
      w = math.sqrt(1 / fan_in) * jax.random.normal(key, shape, dtype)
    return w * scale

  return init


# ------------------------------------------------------------------------------------------------
# Layers.


class Linear(nn.Module):
  """y = x W + b; W [in, out] float32, computed in ``dtype``."""
  features: int
  use_bias: bool = True
  init_mode: str = "kaiming_normal"
  init_weight: float = 1.0
  init_bias: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    fin = x.shape[-1]
    w = self.param("kernel", edm_init(self.init_mode, fin, self.features, self.init_weight), (fin, self.features))
    y = jnp.dot(x.astype(self.dtype), w.astype(self.dtype))
    if self.use_bias:
      b = self.param("bias", edm_init(self.init_mode, fin, self.features, self.init_bias), (self.features,))
      y = y + b.astype(self.dtype)
    return y


def _fir_2d(resample_filter: Sequence[int]) -> np.ndarray:
  f = np.asarray(resample_filter, np.float32)
  return np.outer(f, f) / np.square(f.sum())


def _depthwise(x, kernel2d: np.ndarray, stride: int, padding, lhs_dilation=(1, 1)):
  c = x.shape[-1]
  k = jnp.asarray(np.tile(kernel2d[:, :, None, None], (1, 1, 1, c)), x.dtype)
  return jax.lax.conv_general_dilated(x, k, (stride, stride), padding, lhs_dilation=lhs_dilation,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def fir_downsample(x, resample_filter: Sequence[int] = (1, 1), pad: int | None = None):
  """2× down-sampling by the separable FIR filter f⊗f/(Σf)², stride 2, zero padding (len(f)−1)//2.

  f=[1,1] is the 2×2 box average (computed by a reshape); f=[1,3,3,1] is StyleGAN2's blur.
  """
  f = list(resample_filter)
  p = (len(f) - 1) // 2 if pad is None else pad
  if f == [1, 1] and p == 0:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  return _depthwise(x, _fir_2d(f), 2, [(p, p), (p, p)])


def fir_upsample(x, resample_filter: Sequence[int] = (1, 1), pad: int | None = None):
  """2× up-sampling: transposed depthwise conv (stride 2) with 4·f⊗f/(Σf)², padding (len(f)−1)//2.

  f=[1,1] is nearest-neighbour repetition (computed by a broadcast).
  """
  f = list(resample_filter)
  p = (len(f) - 1) // 2 if pad is None else pad
  if f == [1, 1] and p == 0:
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
    return x.reshape(b, 2 * h, 2 * w, c)
  k = 4 * _fir_2d(f)
  q = len(f) - 1 - p   # transposed conv = dilated-input conv with padding k−1−p (kernel is symmetric)
  return _depthwise(x, k, 1, [(q, q), (q, q)], lhs_dilation=(2, 2))


class Conv2d(nn.Module):
  """EDM's Conv2d: optional FIR up/down-sampling, then a k×k convolution (k=0: resampling only).

  ``fused_resample``: down = conv (padding k//2 + f_pad) then the FIR filter at stride 2; up = the
  FIR up-sampling (padding max(f_pad − k//2, 0)) then conv (padding max(k//2 − f_pad, 0)).
  Weights are HWIO float32; computation in ``dtype``.
  """
  features: int
  kernel: int
  use_bias: bool = True
  up: bool = False
  down: bool = False
  resample_filter: Sequence[int] = (1, 1)
  fused_resample: bool = False
  init_mode: str = "kaiming_normal"
  init_weight: float = 1.0
  init_bias: float = 0.0
  dtype: Dtype = jnp.float32

  def _conv(self, x, w, pad):
    if w.shape[0] == 1 and pad == 0:
      return jnp.einsum("bhwc,cd->bhwd", x, w[0, 0])
    return jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad), (pad, pad)],
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  @nn.compact
  def __call__(self, x):
    assert not (self.up and self.down)
    x = x.astype(self.dtype)
    cin, k = x.shape[-1], self.kernel
    w = b = None
    if k:
      fin, fout = cin * k * k, self.features * k * k
      w = self.param("kernel", edm_init(self.init_mode, fin, fout, self.init_weight), (k, k, cin, self.features))
      w = w.astype(self.dtype)
      if self.use_bias:
        b = self.param("bias", edm_init(self.init_mode, fin, fout, self.init_bias), (self.features,))
    f = list(self.resample_filter)
    w_pad = k // 2
    f_pad = (len(f) - 1) // 2
    if self.fused_resample and self.up and w is not None:
      x = fir_upsample(x, f, pad=max(f_pad - w_pad, 0))
      x = self._conv(x, w, max(w_pad - f_pad, 0))
    elif self.fused_resample and self.down and w is not None:
      x = self._conv(x, w, w_pad + f_pad)
      x = fir_downsample(x, f, pad=0)
    else:
      if self.up:
        x = fir_upsample(x, f)
      if self.down:
        x = fir_downsample(x, f)
      if w is not None:
        x = self._conv(x, w, w_pad)
    if b is not None:
      x = x + b.astype(self.dtype)
    return x


def group_norm(x, scale, bias, num_groups: int, eps: float = 1e-5, act: str | None = None,
               dtype: Dtype = jnp.float32):
  """GroupNorm of NHWC (or [B, ..., C]) ``x`` over (spatial, channels-in-group), statistics and affine in
  float32 (torch's group_norm / flax ``nn.GroupNorm(use_fast_variance=False)``, operation for operation):

      μ = mean(x), σ² = mean((x − μ)²) per (example, group);  y = (x − μ)·(rsqrt(σ² + ε)·γ) + β

  then cast to ``dtype`` and, with ``act='silu'``, y·sigmoid(y) in ``dtype``.

  Memory: the body runs under ``jax.checkpoint`` (unless ``GROUPNORM_REMAT`` is False) saving only the
  [B, G] statistics (named ``groupnorm_stats``), so reverse mode keeps x (in its own dtype, e.g. bfloat16)
  instead of two float32 copies of x − μ and the SiLU's y and sigmoid(y), and recomputes them
  elementwise in the backward pass: for DDPM++ CIFAR-10 in bfloat16 at batch 512 the residuals that
  reverse mode saves shrink from 85.9 to 27.1 GB (``jax.ad_checkpoint`` saved_residuals) and, by
  benchmarks/diffusion_roofline.py's fused-traffic model, the non-matmul HBM traffic of a training step
  from 586 to 306 MB per image. Values and gradients are those of the plain function
  (remat changes what is stored, not the arithmetic; the forward pass is bitwise the same).
  """
  if act not in (None, "silu"):
    raise ValueError(f"act={act!r}: use None or 'silu'.")
  c = x.shape[-1]
  if c % num_groups:
    raise ValueError(f"{c} channels are not divisible into {num_groups} groups.")

  def body(x, scale, bias):
    x = x.astype(jnp.float32)
    gs = c // num_groups
    xg = x.reshape(x.shape[:-1] + (num_groups, gs))
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    mean = checkpoint_name(xg.mean(axes), "groupnorm_stats")
    var = checkpoint_name(jnp.square(xg - jnp.expand_dims(mean, axes)).mean(axes), "groupnorm_stats")
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
    mean = jnp.repeat(mean, gs, axis=-1).reshape(shape)
    var = jnp.repeat(var, gs, axis=-1).reshape(shape)
    y = x - mean
    y = y * (jax.lax.rsqrt(var + eps) * scale.astype(jnp.float32))
    y = (y + bias.astype(jnp.float32)).astype(dtype)
    return nn.silu(y) if act == "silu" else y

  if GROUPNORM_REMAT:
    body = jax.checkpoint(body, policy=_SAVE_STATS)
  return body(x, scale, bias)


# Set False to let reverse mode store the float32 intermediates instead (same values; for A/B timing,
# see benchmarks/diffusion_throughput.py --no-norm-remat and benchmarks/diffusion_roofline.py).
GROUPNORM_REMAT = True
_SAVE_STATS = jax.checkpoint_policies.save_only_these_names("groupnorm_stats")


class _NormAffine(nn.Module):
  """The per-channel scale γ (ones) and bias β (zeros) of a GroupNorm (flax ``nn.GroupNorm``'s names)."""
  channels: int

  @nn.compact
  def __call__(self):
    return (self.param("scale", nn.initializers.ones, (self.channels,)),
            self.param("bias", nn.initializers.zeros, (self.channels,)))


class GroupNorm(nn.Module):
  """GroupNorm with min(32, C // 4) groups (EDM), statistics and affine in float32; ``act='silu'`` fuses
  the SiLU that follows every GroupNorm but norm2 (see ``group_norm``). Parameters ``norm/{scale,bias}``."""
  eps: float = 1e-5
  num_groups: int = 32
  min_channels_per_group: int = 4
  dtype: Dtype = jnp.float32
  act: str | None = None

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    g = min(self.num_groups, c // self.min_channels_per_group)
    # Two-pass variance (torch's group_norm), not E[x²] − E[x]², which cancels when |mean| ≫ std.
    scale, bias = _NormAffine(c, name="norm")()
    return group_norm(x, scale, bias, g, self.eps, self.act, self.dtype)


def positional_embedding(x, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
  """[cos(x·ω_i), sin(x·ω_i)], ω_i = (1/max_positions)^(i/(n/2 − endpoint)), i < n/2 (float32)."""
  half = num_channels // 2
  freqs = jnp.arange(half, dtype=jnp.float32) / (half - (1 if endpoint else 0))
  freqs = (1.0 / max_positions) ** freqs
  x = jnp.outer(x.astype(jnp.float32), freqs)
  return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=1)


def fourier_frequencies(num_channels: int, scale: float = 16.0, seed: int = 0) -> jax.Array:
  """The fixed Gaussian Fourier frequencies N(0, scale²) [num_channels // 2] (a buffer, not a param)."""
  return scale * jax.random.normal(jax.random.key(seed), (num_channels // 2,), jnp.float32)


def fourier_embedding(x, freqs):
  """[cos(2π x f), sin(2π x f)] (float32)."""
  x = jnp.outer(x.astype(jnp.float32), 2 * np.pi * freqs)
  return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=1)


class UNetBlock(nn.Module):
  """EDM's unified U-Net block (DDPM++, NCSN++ and ADM residual blocks, optional self-attention).

  x ← conv0(silu(norm0(x))) [with up/down]; emb → affine; adaptive: silu(shift + norm1(x)(1+scale)),
  else silu(norm1(x + affine)); x ← (conv1(dropout(x)) + skip(orig))·skip_scale; attention (if
  num_heads): x ← (proj(softmax(qᵀk/√d) v) + x)·skip_scale with qkv a 1×1 conv of norm2(x).
  """
  out_channels: int
  up: bool = False
  down: bool = False
  attention: bool = False
  num_heads: int | None = None
  channels_per_head: int = 64
  dropout: float = 0.0
  skip_scale: float = 1.0
  eps: float = 1e-5
  resample_filter: Sequence[int] = (1, 1)
  resample_proj: bool = False
  adaptive_scale: bool = True
  init: dict | None = None
  init_zero: dict | None = None
  init_attn: dict | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, emb, train: bool = False):
    init = dict(self.init or {})
    init_zero = dict(self.init_zero if self.init_zero is not None else {"init_weight": 0.0})
    init_attn = dict(self.init_attn if self.init_attn is not None else init)
    cin, cout, dt = x.shape[-1], self.out_channels, self.dtype
    heads = 0 if not self.attention else (self.num_heads if self.num_heads is not None
                                          else cout // self.channels_per_head)
    orig = x
    x = Conv2d(cout, 3, up=self.up, down=self.down, resample_filter=self.resample_filter, dtype=dt,
               name="conv0", **init)(GroupNorm(self.eps, dtype=dt, act="silu", name="norm0")(x))
    params = Linear(cout * (2 if self.adaptive_scale else 1), dtype=dt, name="affine", **init)(emb)
    params = params[:, None, None, :].astype(dt)
    if self.adaptive_scale:
      scale, shift = jnp.split(params, 2, axis=-1)
      x = nn.silu(shift + GroupNorm(self.eps, dtype=dt, name="norm1")(x) * (scale + 1))
    else:
      x = GroupNorm(self.eps, dtype=dt, act="silu", name="norm1")(x + params)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = Conv2d(cout, 3, dtype=dt, name="conv1", **init_zero)(x)
    if cout != cin or self.up or self.down:
      kernel = 1 if self.resample_proj or cout != cin else 0
      orig = Conv2d(cout, kernel, up=self.up, down=self.down, resample_filter=self.resample_filter, dtype=dt,
                    name="skip", **init)(orig)
    x = (x + orig.astype(dt)) * self.skip_scale

    if heads:
      b, h, w, c = x.shape
      qkv = Conv2d(3 * c, 1, dtype=dt, name="qkv", **init_attn)(GroupNorm(self.eps, dtype=dt, name="norm2")(x))
      # EDM's channel layout: the 3C outputs are (head, channel-in-head, q/k/v).
      qkv = qkv.reshape(b, h * w, heads, c // heads, 3)
      q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
      a = jax.nn.dot_product_attention(q, k, v)   # float32 logits and softmax, output in dtype
      a = a.reshape(b, h, w, c).astype(dt)
      x = (Conv2d(c, 1, dtype=dt, name="proj", **init_zero)(a) + x) * self.skip_scale
    return x


def one_hot_labels(labels, label_dim: int, batch: int):
  """int [B] → one-hot float32 [B, label_dim]; float [B, label_dim] passes; None → zeros (EDM)."""
  if labels is None:
    return jnp.zeros((batch, label_dim), jnp.float32)
  labels = jnp.asarray(labels)
  if labels.ndim == 1:
    return jax.nn.one_hot(labels, label_dim, dtype=jnp.float32)
  if labels.shape[-1] != label_dim:
    raise ValueError(f"labels have {labels.shape[-1]} classes but the network was built with "
                     f"label_dim={label_dim}; set model.overrides.label_dim to match the data.")
  return labels.astype(jnp.float32)


def label_dropout_mask(module: nn.Module, labels, rate: float, train: bool):
  """Zeroes each sample's label vector with probability ``rate`` in training (classifier-free guidance)."""
  if not (train and rate):
    return labels
  keep = jax.random.uniform(module.make_rng("dropout"), (labels.shape[0], 1)) >= rate
  return labels * keep.astype(labels.dtype)


# ------------------------------------------------------------------------------------------------
# SongUNet.


class SongUNet(nn.Module):
  """DDPM++ / NCSN++ (EDM's SongUNet). Attribute names and defaults follow EDM's constructor."""
  img_resolution: int = 32
  in_channels: int = 3
  out_channels: int = 3
  label_dim: int = 0
  augment_dim: int = 0
  model_channels: int = 128
  channel_mult: Sequence[int] = (1, 2, 2, 2)
  channel_mult_emb: int = 4
  num_blocks: int = 4
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.10
  label_dropout: float = 0.0
  embedding_type: str = "positional"   # 'positional' (DDPM++) | 'fourier' (NCSN++)
  channel_mult_noise: int = 1          # 1 for DDPM++, 2 for NCSN++
  encoder_type: str = "standard"       # 'standard' | 'skip' | 'residual'
  decoder_type: str = "standard"       # 'standard' | 'skip'
  resample_filter: Sequence[int] = (1, 1)
  fourier_scale: float = 16.0
  fourier_seed: int = 0
  dtype: Dtype = jnp.float32

  def _check(self):
    if self.embedding_type not in ("positional", "fourier"):
      raise ValueError(f"embedding_type={self.embedding_type!r}: use 'positional' or 'fourier'.")
    if self.encoder_type not in ("standard", "skip", "residual"):
      raise ValueError(f"encoder_type={self.encoder_type!r}: use 'standard', 'skip' or 'residual'.")
    if self.decoder_type not in ("standard", "skip"):
      raise ValueError(f"decoder_type={self.decoder_type!r}: use 'standard' or 'skip'.")

  def _fourier_freqs(self, noise_ch: int):
    """NCSN++'s frequencies: the ``constants/map_noise_freqs`` variable (created by ``init`` from
    ``fourier_seed``; a converted checkpoint's trained values, EDM's ``map_noise.freqs`` or score_sde's
    ``W``, replace it there), recomputed from the seed when applied with ``params`` only."""
    def draw():
      return fourier_frequencies(noise_ch, self.fourier_scale, self.fourier_seed)
    if self.has_variable("constants", "map_noise_freqs") or self.is_mutable_collection("constants"):
      return self.variable("constants", "map_noise_freqs", draw).value
    return draw()

  @nn.compact
  def __call__(self, x, c_noise, labels=None, augment_labels=None, train: bool = False):
    self._check()
    dt = self.dtype
    batch, res_in = x.shape[0], x.shape[1]
    if res_in != self.img_resolution or x.shape[-1] != self.in_channels:
      raise ValueError(f"input {x.shape} does not match img_resolution={self.img_resolution}, "
                       f"in_channels={self.in_channels}; set model.overrides to the data's shape.")
    emb_ch = self.model_channels * self.channel_mult_emb
    noise_ch = self.model_channels * self.channel_mult_noise
    init = dict(init_mode="xavier_uniform")
    init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
    init_attn = dict(init_mode="xavier_uniform", init_weight=float(np.sqrt(0.2)))
    blk = dict(num_heads=1, dropout=self.dropout, skip_scale=float(np.sqrt(0.5)), eps=1e-6,
               resample_filter=tuple(self.resample_filter), resample_proj=True, adaptive_scale=False,
               init=init, init_zero=init_zero, init_attn=init_attn, dtype=dt)

    # Mapping: noise embedding (sin/cos order swapped as in EDM), labels, augmentation, 2-layer MLP.
    c_noise = jnp.broadcast_to(jnp.asarray(c_noise, jnp.float32).reshape(-1), (batch,))
    if self.embedding_type == "positional":
      emb = positional_embedding(c_noise, noise_ch, endpoint=True)
    else:
      emb = fourier_embedding(c_noise, self._fourier_freqs(noise_ch))
    emb = jnp.concatenate([emb[:, noise_ch // 2:], emb[:, :noise_ch // 2]], axis=1)
    if self.label_dim:
      y = label_dropout_mask(self, one_hot_labels(labels, self.label_dim, batch), self.label_dropout, train)
      emb = emb + Linear(noise_ch, name="map_label", dtype=jnp.float32, **init)(y * np.sqrt(self.label_dim))
    if self.augment_dim and augment_labels is not None:
      emb = emb + Linear(noise_ch, use_bias=False, name="map_augment", dtype=jnp.float32, **init)(
          jnp.asarray(augment_labels, jnp.float32))
    elif self.augment_dim and self.is_initializing():
      Linear(noise_ch, use_bias=False, name="map_augment", **init)(jnp.zeros((batch, self.augment_dim)))
    emb = nn.silu(Linear(emb_ch, name="map_layer0", dtype=dt, **init)(emb))
    emb = nn.silu(Linear(emb_ch, name="map_layer1", dtype=dt, **init)(emb))

    # Encoder.
    skips = []
    aux = x = x.astype(dt)
    cout = self.in_channels
    for level, mult in enumerate(self.channel_mult):
      res = self.img_resolution >> level
      if level == 0:
        cout = self.model_channels
        x = Conv2d(cout, 3, dtype=dt, name=f"enc_{res}x{res}_conv", **init)(x)
        skips.append(x)
      else:
        x = UNetBlock(cout, down=True, name=f"enc_{res}x{res}_down", **blk)(x, emb, train)
        skips.append(x)
        if self.encoder_type == "skip":
          aux = Conv2d(aux.shape[-1], 0, down=True, resample_filter=tuple(self.resample_filter), dtype=dt,
                       name=f"enc_{res}x{res}_aux_down")(aux)
          x = skips[-1] = x + Conv2d(cout, 1, dtype=dt, name=f"enc_{res}x{res}_aux_skip", **init)(aux)
        elif self.encoder_type == "residual":
          a = Conv2d(cout, 3, down=True, resample_filter=tuple(self.resample_filter), fused_resample=True,
                     dtype=dt, name=f"enc_{res}x{res}_aux_residual", **init)(aux)
          x = skips[-1] = aux = (x + a) / np.sqrt(2)
      for idx in range(self.num_blocks):
        cout = self.model_channels * mult
        x = UNetBlock(cout, attention=res in self.attn_resolutions, name=f"enc_{res}x{res}_block{idx}",
                      **blk)(x, emb, train)
        skips.append(x)

    # Decoder.
    aux = None
    n_levels = len(self.channel_mult)
    for level, mult in reversed(list(enumerate(self.channel_mult))):
      res = self.img_resolution >> level
      if level == n_levels - 1:
        x = UNetBlock(cout, attention=True, name=f"dec_{res}x{res}_in0", **blk)(x, emb, train)
        x = UNetBlock(cout, name=f"dec_{res}x{res}_in1", **blk)(x, emb, train)
      else:
        x = UNetBlock(cout, up=True, name=f"dec_{res}x{res}_up", **blk)(x, emb, train)
      for idx in range(self.num_blocks + 1):
        x = jnp.concatenate([x, skips.pop().astype(x.dtype)], axis=-1)
        cout = self.model_channels * mult
        attn = idx == self.num_blocks and res in self.attn_resolutions
        x = UNetBlock(cout, attention=attn, name=f"dec_{res}x{res}_block{idx}", **blk)(x, emb, train)
      if self.decoder_type == "skip" or level == 0:
        if self.decoder_type == "skip" and level < n_levels - 1:
          aux = Conv2d(self.out_channels, 0, up=True, resample_filter=tuple(self.resample_filter), dtype=dt,
                       name=f"dec_{res}x{res}_aux_up")(aux)
        t = GroupNorm(1e-6, dtype=dt, act="silu", name=f"dec_{res}x{res}_aux_norm")(x)
        t = Conv2d(self.out_channels, 3, dtype=dt, name=f"dec_{res}x{res}_aux_conv", **init_zero)(t)
        aux = t if aux is None else t + aux
    assert not skips
    return aux.astype(jnp.float32)


# ------------------------------------------------------------------------------------------------
# Registry.


def _unet_inputs(batch: int = 1, img_resolution: int = 32, in_channels: int = 3, label_dim: int = 0,
                 augment_dim: int = 0, num_classes: int = 0, **_: Any) -> tuple:
  """(x, c_noise[, labels, augment_labels]) for ``init``."""
  label_dim = label_dim or num_classes
  x = jnp.zeros((batch, img_resolution, img_resolution, in_channels), jnp.float32)
  c_noise = jnp.zeros((batch,), jnp.float32)
  labels = jnp.zeros((batch,), jnp.int32) if label_dim else None
  aug = jnp.zeros((batch, augment_dim), jnp.float32) if augment_dim else None
  if aug is not None:
    return x, c_noise, labels, aug
  return (x, c_noise, labels) if labels is not None else (x, c_noise)


def _inputs_with(**defaults):
  """An ``inputs`` function for a factory whose defaults differ from ``_unet_inputs``'s."""
  return lambda batch=1, **kw: _unet_inputs(batch, **{**defaults, **kw})


def _dtype(kw: dict) -> dict:
  """Normalises overrides: dtype names, lists → tuples, ``num_classes`` as an alias of ``label_dim``."""
  if "num_classes" in kw:
    n = kw.pop("num_classes")
    if kw.get("label_dim", n) != n:
      raise ConfigError(f"model.overrides num_classes={n} and label_dim={kw['label_dim']} disagree: set only "
                        "one of them.")
    kw["label_dim"] = n
  if isinstance(kw.get("dtype"), str):
    kw["dtype"] = jnp.dtype(kw["dtype"])
  for key in ("channel_mult", "ch_mult", "attn_resolutions", "resample_filter"):
    if key in kw and kw[key] is not None:
      kw[key] = tuple(kw[key])
  return kw


# EDM train.py: --arch=ddpmpp and --arch=ncsnpp at 32² (cres 2,2,2), dropout 0.13 (CIFAR-10 default).
DDPMPP = dict(embedding_type="positional", encoder_type="standard", decoder_type="standard",
              channel_mult_noise=1, resample_filter=(1, 1), model_channels=128)
NCSNPP = dict(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
              channel_mult_noise=2, resample_filter=(1, 3, 3, 1), model_channels=128)


@register("ddpmpp_cifar10", inputs=_unet_inputs)
def ddpmpp_cifar10(**kw) -> SongUNet:
  """EDM DDPM++ CIFAR-10 (55,732,739 params unconditional without augmentation labels)."""
  return SongUNet(**_dtype({**DDPMPP, "img_resolution": 32, "channel_mult": (2, 2, 2), "dropout": 0.13, **kw}))


@register("ncsnpp_cifar10", inputs=_unet_inputs)
def ncsnpp_cifar10(**kw) -> SongUNet:
  """EDM NCSN++ CIFAR-10 (56,395,523 params unconditional without augmentation labels)."""
  return SongUNet(**_dtype({**NCSNPP, "img_resolution": 32, "channel_mult": (2, 2, 2), "dropout": 0.13, **kw}))


@register("ddpmpp_64", inputs=_inputs_with(img_resolution=64))
def ddpmpp_64(**kw) -> SongUNet:
  """EDM DDPM++ at 64² (FFHQ / AFHQv2 recipe: --cres=1,2,2,2; dropout 0.05 FFHQ, 0.25 AFHQv2)."""
  return SongUNet(**_dtype({**DDPMPP, "img_resolution": 64, "channel_mult": (1, 2, 2, 2), "dropout": 0.05, **kw}))


# score_sde continuous CIFAR-10 models (configs/vp|subvp/cifar10_ddpmpp[_deep]_continuous.py,
# configs/ve/cifar10_ncsnpp[_deep]_continuous.py): nf 128, ch_mult (1,2,2,2), dropout 0.1.
@register("ddpmpp_cifar10_scoresde", inputs=_unet_inputs)
def ddpmpp_cifar10_scoresde(**kw) -> SongUNet:
  """score_sde DDPM++ cont. (4 blocks): 61,804,419 params."""
  return SongUNet(**_dtype({**DDPMPP, "channel_mult": (1, 2, 2, 2), "num_blocks": 4, "dropout": 0.1, **kw}))


@register("ddpmpp_deep_cifar10_scoresde", inputs=_unet_inputs)
def ddpmpp_deep_cifar10_scoresde(**kw) -> SongUNet:
  """score_sde DDPM++ cont. deep (8 blocks; the 2.99 bits/dim sub-VP model): 106,632,579 params."""
  return SongUNet(**_dtype({**DDPMPP, "channel_mult": (1, 2, 2, 2), "num_blocks": 8, "dropout": 0.1, **kw}))


@register("ncsnpp_cifar10_scoresde", inputs=_unet_inputs)
def ncsnpp_cifar10_scoresde(**kw) -> SongUNet:
  """score_sde NCSN++ cont. (4 blocks, progressive_input 'residual')."""
  return SongUNet(**_dtype({**NCSNPP, "channel_mult": (1, 2, 2, 2), "num_blocks": 4, "dropout": 0.1, **kw}))


@register("ncsnpp_deep_cifar10_scoresde", inputs=_unet_inputs)
def ncsnpp_deep_cifar10_scoresde(**kw) -> SongUNet:
  """score_sde NCSN++ cont. deep (8 blocks; FID 2.20): 107,586,947 params."""
  return SongUNet(**_dtype({**NCSNPP, "channel_mult": (1, 2, 2, 2), "num_blocks": 8, "dropout": 0.1, **kw}))
