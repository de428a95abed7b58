"""An MLP denoiser network for low-dimensional data (the 2-D toys).

    F = toy_mlp(x[B, D], c_noise[B], class_labels=None, train=False) -> [B, D]

h₀ = Dense(x) + Dense(emb(c_noise)) (+ a class embedding), then ``num_layers`` residual blocks
h ← h + Dense(SiLU(Dense(SiLU(LayerNorm(h)) + emb_proj))), SiLU, and a zero-initialized output Dense,
so the untrained network outputs 0. The noise embedding is the sinusoidal positional embedding of
``jaxgen.models.small_unet.timestep_embedding`` (or Fourier features), followed by Dense → SiLU.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import register
from jaxgen.models.small_unet import timestep_embedding


class ToyMLP(nn.Module):
  out_dim: int = 2
  hidden: int = 128
  num_layers: int = 3
  emb_dim: int = 64
  num_classes: int = 0
  embedding: str = "positional"
  max_positions: float = 10000.0
  fourier_scale: float = 16.0
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, c_noise, class_labels=None, train: bool = False):
    if x.ndim != 2:
      raise ValueError(f"toy_mlp expects [B, D] inputs, got shape {x.shape}.")
    e = timestep_embedding(c_noise, self.emb_dim, self.max_positions, self.embedding, self.fourier_scale)
    e = nn.silu(nn.Dense(self.hidden, dtype=self.dtype, name="emb_in")(e))
    if self.num_classes:
      if class_labels is None:
        raise ValueError("this network is class-conditional (num_classes > 0): pass class_labels.")
      y = jax.nn.one_hot(class_labels, self.num_classes) if class_labels.ndim == 1 else class_labels
      e = e + nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name="class")(y.astype(jnp.float32))
    h = nn.Dense(self.hidden, dtype=self.dtype, name="in")(x.astype(self.dtype))
    for i in range(self.num_layers):
      r = nn.silu(nn.LayerNorm(dtype=jnp.float32, name=f"norm{i}")(h))
      r = nn.Dense(self.hidden, dtype=self.dtype, name=f"dense{i}_0")(r)
      r = r + nn.Dense(self.hidden, dtype=self.dtype, name=f"emb{i}")(e)
      r = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(r))
      h = h + nn.Dense(self.hidden, dtype=self.dtype, name=f"dense{i}_1")(r)
    h = nn.silu(h)
    out = nn.Dense(self.out_dim, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="out")(h)
    return out.astype(jnp.float32)


def _inputs(batch: int = 1, dim: int = 2, num_classes: int = 0, **_: Any) -> tuple:
  args = (jnp.zeros((batch, dim), jnp.float32), jnp.zeros((batch,), jnp.float32))
  if num_classes:
    args += (jnp.zeros((batch,), jnp.int32),)
  return args


@register("toy_mlp", inputs=_inputs)
def toy_mlp(dim: int = 2, dtype: Any = "float32", **overrides: Any) -> ToyMLP:
  """``dim``: data dimension (input and output width)."""
  return ToyMLP(out_dim=dim, dtype=jnp.dtype(dtype), **overrides)
