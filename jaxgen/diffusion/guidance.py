"""Classifier-free guidance (Ho & Salimans 2022) as a denoiser wrapper.

D_w(x; σ) = D_u + w·(D_c − D_u), computed as (1 − w)·D_u + w·D_c in float32 so that w = 1 returns
the conditional denoiser exactly and w = 0 the unconditional one. (Ho & Salimans write ε̃ = (1+w')ε_c
− w'ε_u, i.e. w = 1 + w'; the same combination of ε-, score- or D-predictions since they are affine in
one another at fixed x and σ.)
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp


def cfg_denoiser(cond_fn: Callable, uncond_fn: Callable, scale) -> Callable:
  """Returns ``denoise_fn(x, sigma) = (1 − scale)·uncond_fn(x, σ) + scale·cond_fn(x, σ)``.

  ``cond_fn``/``uncond_fn`` are denoisers ``(x, sigma[B]) -> D`` (labels closed over, the null label
  for ``uncond_fn``); ``scale`` may be a Python float or a traced scalar. The output has the dtype of
  ``cond_fn``'s output; the combination is done in float32.
  """

  def denoise_fn(x, sigma):
    c = cond_fn(x, sigma)
    u = uncond_fn(x, sigma)
    w = jnp.asarray(scale, jnp.float32)
    out = (1.0 - w) * u.astype(jnp.float32) + w * c.astype(jnp.float32)
    return out.astype(c.dtype)

  return denoise_fn
