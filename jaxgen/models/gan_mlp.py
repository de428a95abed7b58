"""MLP generator and critic for 2-D toy data (WGAN-GP's ``gan_toy.py`` shapes).

    gan_mlp_g:  G(z[B, latent_dim], train=False) -> x[B, out_dim]     z ~ N(0, I)
    gan_mlp_d:  D(x[B, in_dim], train=False) -> values[B]             (logits or critic values)

Gulrajani et al.'s toy experiments (gan_toy.py): both nets are ``num_layers`` = 3 hidden Dense(512)
layers with ReLU and a linear output; the generator's noise is 2-D. The critic may be spectrally
normalized (``spectral_norm=True``; the power-iteration vectors live in the ``spectral``
collection and advance when ``train=True``) or layer-normalized (``norm='layer'``); with a gradient
penalty use ``norm='none'`` (the default) or layer norm, never batch norm.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.errors import ConfigError
from jaxgen.gan.spectral import SpectralNorm
from jaxgen.models import register


class MLPGenerator(nn.Module):
  out_dim: int = 2
  hidden: int = 512
  num_layers: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    h = z.astype(self.dtype)
    for i in range(self.num_layers):
      h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f"dense{i}")(h))
    return nn.Dense(self.out_dim, dtype=self.dtype, name="out")(h).astype(jnp.float32)


class MLPCritic(nn.Module):
  hidden: int = 512
  num_layers: int = 3
  norm: str = "none"            # none | layer
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.norm not in ("none", "layer"):
      raise ConfigError(f"gan_mlp_d norm={self.norm!r} is unknown: use 'none' or 'layer'.")

    def dense(features, name):
      layer = nn.Dense(features, dtype=self.dtype, name=name if not self.spectral_norm else None)
      if self.spectral_norm:
        return lambda h: SpectralNorm(layer, name=name)(h, update_stats=train)
      return layer

    h = x.astype(self.dtype)
    for i in range(self.num_layers):
      h = dense(self.hidden, f"dense{i}")(h)
      if self.norm == "layer":
        h = nn.LayerNorm(dtype=jnp.float32, name=f"norm{i}")(h)
      h = nn.relu(h)
    return dense(1, "out")(h)[:, 0].astype(jnp.float32)


def _g_inputs(batch: int = 1, latent_dim: int = 2, **_: Any) -> tuple:
  return (jnp.zeros((batch, latent_dim), jnp.float32),)


def _d_inputs(batch: int = 1, in_dim: int = 2, **_: Any) -> tuple:
  return (jnp.zeros((batch, in_dim), jnp.float32),)


@register("gan_mlp_g", inputs=_g_inputs)
def gan_mlp_g(latent_dim: int = 2, out_dim: int = 2, dtype: Any = "float32", **overrides: Any) -> MLPGenerator:
  """``latent_dim`` only shapes the example input (the Dense layers infer it)."""
  del latent_dim
  return MLPGenerator(out_dim=out_dim, dtype=jnp.dtype(dtype), **overrides)


@register("gan_mlp_d", inputs=_d_inputs)
def gan_mlp_d(in_dim: int = 2, dtype: Any = "float32", **overrides: Any) -> MLPCritic:
  del in_dim
  return MLPCritic(dtype=jnp.dtype(dtype), **overrides)
