"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) with the paper's two variance choices.

    sample_ddpm(denoise_fn, x, sigmas, key, *, indices=None, return_nfe=False, return_trajectory=False,
                variance='beta_tilde' | 'beta', s_noise=1.0, clip_denoised=None)

In EDM's σ-space (x̃ = x/√ᾱ, σ² = (1 − ᾱ)/ᾱ, so ᾱ = 1/(1 + σ²)) a step t → t' of the grid (σ → σ', on the
DDPM ladder t' = t − 1) has, with D = D(x̃; σ) = x̂₀ and the derived

    β = 1 − ᾱ_t/ᾱ_{t'} = (σ² − σ'²)/(1 + σ²),      β̃ = (1 − ᾱ_{t'})/(1 − ᾱ_t)·β,

the posterior mean μ̃ (DDPM eq. 7) divided by √ᾱ_{t'}: x̃' = D + (σ'²/σ²)(x̃ − D), the same for both
choices, and the noise N(0, v/ᾱ_{t'}) of variance v ∈ {β̃, β} (DDPM §3.2), i.e. in σ-space

    variance='beta_tilde'  σ_up² = β̃·(1 + σ'²) = σ'²(σ² − σ'²)/σ²     (= ``sample_ancestral``, η = 1)
    variance='beta'        σ_up² = β·(1 + σ'²) = (σ² − σ'²)(1 + σ'²)/(1 + σ²)

β̃ is the posterior's own variance (optimal for a deterministic x₀), β the one of x₀ ~ N(0, I) (DDPM §3.2:
"both had similar results"; the official TF code samples CIFAR-10 with β, ``model_var_type='fixedlarge'``,
and LSUN/CelebA-HQ with β̃, 'fixedsmall'). The step to σ' = 0 (t = 0 in DDPM) adds no noise and returns D
(DDPM's ``nonzero_mask``). On the full ladder (``DDPMSchedule.sigma_steps(T)``: σ_999, …, σ_0, 0) this is
DDPM's 1000-step sampler; on a sub-sequence β is the skipped span's 1 − ᾱ_t/ᾱ_{t'}.
``clip_denoised=c`` clips x̂₀ = D to [−c, c] before the step (the official code's ``clip_denoised=True``
is c = 1 on [−1, 1] data). First order, NFE = N = len(sigmas) − 1, stochastic (per-sample noise:
``per_sample_noise(key, indices, i, shape)``, so a sample never depends on its batch).
Source: Ho et al. 2020, eqs. 6–7, §3.2 and Algorithm 2; docs/reference.md §2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.diffusion.samplers import _emit, _grid, _indices, _need_key, _out, _ratio, _steps, _wrap
from jaxgen.diffusion.sde import per_sample_noise
from jaxgen.errors import ConfigError

VARIANCES = ("beta_tilde", "beta")


def ddpm_step_coefficients(sigma, sigma_next, variance: str = "beta_tilde"):
  """(c, σ_up) of the DDPM step σ → σ' in σ-space: x̃' = D + c·(x̃ − D) + σ_up·z, c = σ'²/σ² and σ_up² the
  β̃ or β variance (module docstring); σ_up = 0 on a step to σ' = 0. float32."""
  if variance not in VARIANCES:
    raise ConfigError(f"variance={variance!r} is unknown: use 'beta_tilde' (posterior β̃_t) or 'beta' (β_t).")
  s = jnp.asarray(sigma, jnp.float32)
  s_next = jnp.asarray(sigma_next, jnp.float32)
  s2, n2 = jnp.square(s), jnp.square(s_next)
  gap = jnp.maximum(s2 - n2, 0.0)
  if variance == "beta_tilde":
    var = _ratio(n2 * gap, s2)
  else:
    var = gap * (1.0 + n2) / (1.0 + s2)
  var = jnp.where(s_next > 0, var, 0.0)
  return _ratio(n2, s2), jnp.sqrt(var)


def sample_ddpm(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                return_trajectory: bool = False, variance: str = "beta_tilde", s_noise: float = 1.0,
                clip_denoised: float | None = None):
  """DDPM ancestral sampling with σ_t² = β̃_t ('beta_tilde', default) or β_t ('beta'); see the module
  docstring. First order, NFE = N, stochastic."""
  if variance not in VARIANCES:
    raise ConfigError(f"variance={variance!r} is unknown: use 'beta_tilde' (posterior β̃_t) or 'beta' (β_t).")
  _need_key(key, "sample_ddpm")
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  idx = _indices(indices, batch)

  def step(x, inp):
    i, s, s_next = inp
    den = d(x, s)
    if clip_denoised is not None:
      den = jnp.clip(den, -clip_denoised, clip_denoised)
    c, up = ddpm_step_coefficients(s, s_next, variance)
    x = den + c * (x - den) + (up * s_noise) * per_sample_noise(key, idx, i, x.shape[1:])
    return x, _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  x, path = jax.lax.scan(step, x0, _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


__all__ = ["sample_ddpm", "ddpm_step_coefficients", "VARIANCES"]
