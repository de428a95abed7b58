"""Preconditioning: a raw network F becomes the denoiser D(x; σ) of EDM (Karras et al. 2022, eq. 7).

    D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), labels)

x lives in EDM's σ-space (x = y + σ·n, y the data). The coefficients of each parameterization
(EDM Table 1, official ``training/networks.py``):

  | parameterization     | c_skip        | c_out             | c_in            | c_noise                  |
  | VP                   | 1             | −σ                | 1/√(σ²+1)       | (M−1)·σ⁻¹(σ)             |
  | VE                   | 1             | σ                 | 1               | ln(½σ)                   |
  | iDDPM                | 1             | −σ                | 1/√(σ²+1)       | M−1−argmin_j |u_j−σ|     |
  | EDM                  | σ_d²/(σ²+σ_d²)| σσ_d/√(σ²+σ_d²)   | 1/√(σ²+σ_d²)    | ¼·ln σ                   |
  | flow matching (ours) | 1/(1+σ)       | −σ/(1+σ)          | 1/(1+σ)         | t = σ/(1+σ)              |
  | DDPM ε-prediction    | 1             | −σ                | 1/√(σ²+1)       | j = argmin_j |σ_j−σ|     |
  | DDPM v-prediction    | 1/(σ²+1)      | −σ/√(σ²+1)        | 1/√(σ²+1)       | j                        |
  | DDPM x₀-prediction   | 0             | 1                 | 1/√(σ²+1)       | j                        |

Flow matching: the network predicts the velocity v = ε − x₀ of x_t = (1−t)x₀ + tε from (x_t, t); with
s = 1−t = 1/(1+σ) and x_t = s·x, x̂₀ = x_t − t·v̂ gives the row above. DDPM rows: the network sees
x_t = √ᾱ·x = x/√(σ²+1) and the integer step j; ε: x̂₀ = x − σε̂; v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho
2022): x̂₀ = √ᾱ x_t − √(1−ᾱ) v̂.

All coefficients are float32 whatever the network's dtype. No Flax here: pure jax.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

from jaxgen.diffusion.conversions import bcast
from jaxgen.errors import ConfigError

f32 = jnp.float32


class Precond(NamedTuple):
  """The four preconditioning coefficients, each shaped like σ (float32)."""
  c_skip: Any
  c_out: Any
  c_in: Any
  c_noise: Any


def _f32(x):
  return jnp.asarray(x, f32)


def vp_precond(sigma, t, M: int = 1000) -> Precond:
  """VP (Song et al. 2021, as in EDM Table 1): ``t`` is σ⁻¹(σ) of the VP schedule."""
  sigma = _f32(sigma)
  return Precond(jnp.ones_like(sigma), -sigma, 1.0 / jnp.sqrt(sigma ** 2 + 1.0), (M - 1) * _f32(t))


def ve_precond(sigma) -> Precond:
  """VE: c_noise = ln(½σ) (the ½ maps [−1, 1] data to score_sde's [0, 1] noise scale)."""
  sigma = _f32(sigma)
  return Precond(jnp.ones_like(sigma), sigma, jnp.ones_like(sigma), jnp.log(0.5 * sigma))


def nearest_index(sigma, grid) -> jnp.ndarray:
  """argmin_j |grid_j − σ| elementwise (int32); ties go to the lower index like ``torch.argmin``."""
  sigma = _f32(sigma)
  grid = _f32(grid)
  return jnp.argmin(jnp.abs(sigma[..., None] - grid), axis=-1).astype(jnp.int32)


def iddpm_precond(sigma, u, M: int = 1000) -> Precond:
  """iDDPM (Nichol & Dhariwal 2021): ``u`` the grid u_0 > … > u_M = 0 of EDM Appendix C.3."""
  sigma = _f32(sigma)
  j = nearest_index(sigma, u)
  return Precond(jnp.ones_like(sigma), -sigma, 1.0 / jnp.sqrt(sigma ** 2 + 1.0), (M - 1 - j).astype(f32))


def edm_precond(sigma, sigma_data: float = 0.5) -> Precond:
  """EDM: unit-variance network inputs and targets for data of standard deviation σ_d."""
  sigma = _f32(sigma)
  sd2 = sigma_data ** 2
  return Precond(sd2 / (sigma ** 2 + sd2),
                 sigma * sigma_data / jnp.sqrt(sigma ** 2 + sd2),
                 1.0 / jnp.sqrt(sd2 + sigma ** 2),
                 0.25 * jnp.log(sigma))


def flow_precond(sigma) -> Precond:
  """Flow matching with a velocity network F(x_t, t), x_t = (1−t)x₀ + tε (see module docstring)."""
  sigma = _f32(sigma)
  s = 1.0 / (1.0 + sigma)
  return Precond(s, -sigma * s, s, sigma * s)


def ddpm_precond(sigma, ladder, prediction: str = "eps") -> Precond:
  """Discrete DDPM network called with (x_t, j): ``ladder`` the σ_j = √((1−ᾱ_j)/ᾱ_j), j = 0..T−1."""
  sigma = _f32(sigma)
  c_in = 1.0 / jnp.sqrt(sigma ** 2 + 1.0)
  c_noise = nearest_index(sigma, ladder).astype(f32)
  if prediction == "eps":
    return Precond(jnp.ones_like(sigma), -sigma, c_in, c_noise)
  if prediction == "v":
    return Precond(c_in ** 2, -sigma * c_in, c_in, c_noise)
  if prediction == "x0":
    return Precond(jnp.zeros_like(sigma), jnp.ones_like(sigma), c_in, c_noise)
  raise ConfigError(f"unknown prediction {prediction!r}: use 'eps', 'v' or 'x0'.")


# -- the network's target and the wrapper --------------------------------------------------------

def training_target(schedule, y, x, sigma):
  """The effective target of F (EDM eq. 8): F_target = (y − c_skip·x)/c_out, y clean, x = y + σn."""
  c = schedule.precond(_batch_sigma(sigma, x.shape[0]))
  return (_f32(y) - bcast(c.c_skip, x) * _f32(x)) / bcast(c.c_out, x)


def _batch_sigma(sigma, batch: int):
  sigma = _f32(sigma)
  if sigma.ndim == 0:
    return jnp.full((batch,), sigma)
  if sigma.shape != (batch,):
    raise ConfigError(f"sigma has shape {sigma.shape} but the batch has {batch} examples: pass a scalar "
                      f"or one σ per example, shape ({batch},).")
  return sigma


def precondition(net: Callable, schedule, *, labels=None, input_dtype=None) -> Callable:
  """Wrap a raw network ``net(x_in, c_noise, labels, **kw) -> F`` into ``denoise_fn(x, sigma)``.

  Returns ``denoise_fn(x, sigma, labels=None, **kw) -> D(x; σ)`` with ``x: [B, ...]`` and ``sigma``
  a scalar or ``[B]``; ``labels`` given at call time override those closed over here, and extra
  keywords (e.g. ``augment_labels``, ``train``) go to ``net``. σ arithmetic is float32; the network
  input c_in·x is float32 (or ``input_dtype``, e.g. bfloat16), F is cast to float32 and D is
  float32, as in EDM's official ``VPPrecond``/``EDMPrecond`` (which also return float32). A network
  that returns twice the input channels (ADM's learned variance) is sliced to its first half, as the
  official ``iDDPMPrecond`` does.
  """
  closed_labels = labels

  def denoise_fn(x, sigma, labels=None, **kw):
    x32 = _f32(x)
    sigma = _batch_sigma(sigma, x32.shape[0])
    c = schedule.precond(sigma)
    x_in = bcast(c.c_in, x32) * x32
    if input_dtype is not None:
      x_in = x_in.astype(input_dtype)
    lab = closed_labels if labels is None else labels
    F = net(x_in, c.c_noise, lab, **kw)
    if F.shape != x32.shape:
      if F.shape[:-1] == x32.shape[:-1] and F.shape[-1] == 2 * x32.shape[-1]:
        F = F[..., :x32.shape[-1]]
      else:
        raise ConfigError(f"the network returned shape {F.shape} for an input of shape {x32.shape}: it must "
                          "return F with the input's shape (or twice its channels, learned variance).")
    return bcast(c.c_skip, x32) * x32 + bcast(c.c_out, x32) * F.astype(f32)

  return denoise_fn


__all__ = ["Precond", "vp_precond", "ve_precond", "iddpm_precond", "edm_precond", "flow_precond",
           "ddpm_precond", "nearest_index", "training_target", "precondition"]
