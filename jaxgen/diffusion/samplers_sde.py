"""DPM-Solver++ SDE samplers (Lu et al. 2022, arXiv:2211.01095; k-diffusion's names and update forms).

Same signature and rules as ``jaxgen.diffusion.samplers`` (docs/design.md §2.2): ``sample_*(denoise_fn, x,
sigmas, key=None, *, indices=None, return_nfe=False, return_trajectory=False, **options)``, x = latents·σ₀,
one ``lax.scan`` over the grid, float32 σ arithmetic, the step to σ = 0 is the exact x ← D(x; σ).
With λ = −ln σ and h = λ' − λ > 0 on a step σ → σ':

- ``sample_dpmpp_sde`` (DPM-Solver++ "SDE", k-diffusion ``sample_dpmpp_sde``): two stages per step, the
  intermediate σ_s = σ^(1−r)·σ'^r (r = 1/2 by default). Each stage is an ancestral first-order step: with
  (σ_up, σ_down) = ``ancestral_step(σ, σ_target, η)``, x_target = (σ_down/σ)·x + (1 − σ_down/σ)·D̂ +
  s_noise·σ_up·ξ; stage 1 to σ_s with D̂ = D(x; σ), stage 2 to σ' with D̂ = (1 − 1/(2r))·D(x; σ) +
  1/(2r)·D(x_s; σ_s) (DPM-Solver++(2S)'s combination). ξ is the normalized Brownian increment over σ → σ_s
  resp. σ → σ' (the two overlap, so their noises are correlated as on one path). η = 0: the deterministic
  DPM-Solver++(2S) (single-step 2nd order, measured 2.0). NFE = 2N − 1 (one evaluation on the step to σ = 0).
- ``sample_dpmpp_2m_sde`` (SDE-DPM-Solver++(2M): the paper's 2M multistep with the stochastic
  data-prediction update; k-diffusion ``sample_dpmpp_2m_sde``):
  x' = (σ'/σ)e^(−ηh)·x + (1 − e^(−(1+η)h))·D_i + c·(D_i − D_{i−1})/r + s_noise·σ'·√(1 − e^(−2ηh))·ξ,
  r = h_{i−1}/h, c = ½(1 − e^(−(1+η)h)) (``'midpoint'``) or c = 1 − (1 − e^(−(1+η)h))/((1+η)h)
  (``'heun'``); no correction on the first step. η = 0, ``'midpoint'``: DPM-Solver++(2M)
  (``samplers.sample_dpmpp_2m``). 2nd order (η = 0; measured 2.0–2.1), NFE = N.
- ``sample_dpmpp_3m_sde`` (k-diffusion ``sample_dpmpp_3m_sde``): the same exponential-integrator step with
  ĥ = (1+η)h and a 3rd-order multistep correction from D_i, D_{i−1}, D_{i−2}:
  φ₂ = 1 − (1 − e^(−ĥ))/ĥ, φ₃ = φ₂/ĥ − ½, x' += φ₂·d₁ − 2φ₃·d₂ with d₁ ≈ h·D' and d₂ ≈ h²D''/2 the
  divided differences of the three denoised values in λ (the Taylor terms of the exact integral
  ∫₀ʰ(1+η)e^(−(1+η)(h−τ))D(λ+τ)dτ include −h²φ₃(ĥ)·D''; ``match_k_diffusion=True`` uses −φ₃·d₂ as
  k-diffusion and the official DPM-Solver code do, half that term, which is 2nd order, measured 1.9);
  step 2 uses φ₂·(D_i − D_{i−1})/r (the ``'heun'`` 2M step), step 1 none. 3rd order (η = 0; measured
  3.1 on the Gaussian ODE), NFE = N. Like every 3rd-order multistep it extrapolates D: with very few
  steps (≈ 8 on a multimodal target) a mode switch between steps can throw samples far off.

Noise: ξ = (W(σ') − W(σ))/√(σ − σ'), W a ``brownian.BrownianPath`` per sample in time t = σ on
[σ_min, σ_max] (the grid's smallest positive and its first entry, as k-diffusion's
``BrownianTreeNoiseSampler``), keyed by ``fold_in(fold_in(key, indices[i]), node)``. So a sample never
depends on its batch, and two grids with the same σ_min, σ_max and key step along the same Brownian
path: the noise is consistent across step counts. ``brownian_depth`` sets the tree's depth (leaf width
(σ_max − σ_min)/2^depth). η = 0 needs no key. The state x is carried in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.diffusion.brownian import BrownianPath
from jaxgen.diffusion.samplers import (Denoiser, _emit, _grid, _indices, _need_key, _out, _ratio, _steps,
                                       _wrap, ancestral_step)
from jaxgen.errors import ConfigError


def _is_zero(v):
  return isinstance(v, (int, float)) and v == 0


def _path(key, x, sigmas, indices, depth, name):
  """The per-sample Brownian path in t = σ over [σ_min, σ_max] of the grid."""
  _need_key(key, name)
  idx = _indices(indices, x.shape[0])
  sigma_min = jnp.min(jnp.where(sigmas > 0, sigmas, jnp.inf))
  return BrownianPath(key, idx, x.shape[1:], sigma_min, sigmas[0], depth=depth)


def _noise_fn(path):
  """ξ(σ_from, σ_to, W(σ_from)) -> ((W(σ_to) − W(σ_from))/√|σ_to − σ_from|, W(σ_to))."""

  def noise(s_from, s_to, w_from):
    w_to = path.value(s_to)
    dt = jnp.abs(s_from - s_to)
    return (w_to - w_from) / jnp.sqrt(jnp.where(dt > 0, dt, 1.0)), w_to

  return noise


def _check_eta(eta, s_noise):
  for name, v in (("eta", eta), ("s_noise", s_noise)):
    if isinstance(v, (int, float)) and v < 0:
      raise ConfigError(f"{name} must be >= 0, got {v}.")


def sample_dpmpp_sde(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                     return_trajectory: bool = False, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5,
                     brownian_depth: int = 20):
  """DPM-Solver++ SDE (two stages per step, intermediate λ + r·h); NFE = 2N − 1. See the module docstring.

  η = 0: deterministic DPM-Solver++(2S) (``key`` unused). Trajectory entry i + 1: the state after step i.
  """
  _check_eta(eta, s_noise)
  if isinstance(r, (int, float)) and not 0 < r <= 1:
    raise ConfigError(f"r must be in (0, 1], got {r}.")
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not _is_zero(eta)
  path = None
  if stochastic:
    path = _path(key, x, sigmas, indices, brownian_depth, "sample_dpmpp_sde with eta > 0")
  fac = 1.0 / (2.0 * r)

  def step(carry, inp):
    x, w, nfe = carry
    _, s, s_next = inp
    last = s_next <= 0
    sn = jnp.where(last, s, s_next)          # a safe σ' on the final step (its result is discarded)
    den = d(x, s)
    s_mid = jnp.exp((1.0 - r) * jnp.log(s) + r * jnp.log(sn))

    def stage(x_from, s_to, den_hat, w_to_noise):
      up, down = ancestral_step(s, s_to, eta)
      ratio = _ratio(down, s)
      out = ratio * x_from + (1.0 - ratio) * den_hat
      if stochastic:
        out = out + (s_noise * up) * w_to_noise
      return out

    if stochastic:   # W at σ_s and σ' through one (vmapped) evaluation: one random-number site
      w_mid, w_next = jax.vmap(path.value)(jnp.stack([s_mid, sn]))
      xi_mid = (w_mid - w) / jnp.sqrt(jnp.where(s > s_mid, s - s_mid, 1.0))
      xi_next = (w_next - w) / jnp.sqrt(jnp.where(s > sn, s - sn, 1.0))
    else:
      xi_mid = xi_next = w_next = None
    x_mid = stage(x, s_mid, den, xi_mid)

    def second(_):
      den_mid = d(x_mid, s_mid)
      return stage(x, sn, (1.0 - fac) * den + fac * den_mid, xi_next)

    x_new = jax.lax.cond(last, lambda _: den, second, None)
    if stochastic:
      w_next = jnp.where(last, w, w_next)
    return (x_new, w_next, nfe + 2 - last.astype(jnp.int32)), _emit(x_new, return_trajectory)

  x0 = x.astype(jnp.float32)
  w0 = path.value(sigmas[0]) if stochastic else None
  (x, _, nfe), traj = jax.lax.scan(step, (x0, w0, jnp.int32(0)), _steps(sigmas))
  return _out(x, dtype, nfe, return_nfe, x0, traj)


def _multistep_sde(denoise_fn, x, sigmas, key, *, order, solver_type, eta, s_noise, indices, brownian_depth,
                   return_nfe, return_trajectory, name, d2_coef=2.0):
  _check_eta(eta, s_noise)
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not _is_zero(eta)
  path = _path(key, x, sigmas, indices, brownian_depth, f"{name} with eta > 0") if stochastic else None
  eta = jnp.asarray(eta, jnp.float32)

  def step(carry, inp):
    x, w, den_1, den_2, h_1, h_2 = carry
    i, s, s_next = inp
    last = s_next <= 0
    sn = jnp.where(last, s, s_next)
    den = d(x, s)
    h = jnp.where(last, 1.0, jnp.log(s / sn))      # λ' − λ (a dummy 1 on the final step)
    h_eta = h * (1.0 + eta)
    em = -jnp.expm1(-h_eta)                         # 1 − e^(−(1+η)h)
    phi_2 = 1.0 - em / h_eta
    x_new = (sn / s) * jnp.exp(-eta * h) * x + em * den
    r0 = h_1 / h
    if order == 2:
      coef = 0.5 * em if solver_type == "midpoint" else phi_2
      x_new = x_new + jnp.where(i >= 1, coef / jnp.where(i >= 1, r0, 1.0), 0.0) * (den - den_1)
    else:
      r1 = h_2 / h
      safe = lambda v, ok: jnp.where(ok, v, 1.0)
      d1_0 = (den - den_1) / safe(r0, i >= 1)
      d1_1 = (den_1 - den_2) / safe(r1, i >= 2)
      rs = safe(r0 + r1, i >= 2)
      d1 = d1_0 + (d1_0 - d1_1) * (r0 / rs)
      d2 = (d1_0 - d1_1) / rs
      phi_3 = phi_2 / h_eta - 0.5
      third = phi_2 * d1 - d2_coef * phi_3 * d2
      x_new = x_new + jnp.where(i >= 2, third, jnp.where(i >= 1, phi_2 * d1_0, 0.0))
    if stochastic:
      xi, w_next = _noise_fn(path)(s, sn, w)
      x_new = x_new + (s_noise * sn * jnp.sqrt(-jnp.expm1(-2.0 * eta * h))) * xi
      w_next = jnp.where(last, w, w_next)
    else:
      w_next = w
    x_new = jnp.where(last, den, x_new)
    return (x_new, w_next, den, den_1, h, h_1), _emit(x_new, return_trajectory)

  x0 = x.astype(jnp.float32)
  w0 = path.value(sigmas[0]) if stochastic else None
  zeros, one = jnp.zeros_like(x0), jnp.float32(1.0)
  (x, *_), traj = jax.lax.scan(step, (x0, w0, zeros, zeros, one, one), _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, traj)


def sample_dpmpp_2m_sde(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                        return_trajectory: bool = False, eta: float = 1.0, s_noise: float = 1.0,
                        solver_type: str = "midpoint", brownian_depth: int = 20):
  """SDE-DPM-Solver++(2M) (``solver_type`` ``'midpoint'`` or ``'heun'``); NFE = N. See the module docstring.

  η = 0 with ``'midpoint'`` is DPM-Solver++(2M) (``key`` unused).
  """
  if solver_type not in ("midpoint", "heun"):
    raise ConfigError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}.")
  return _multistep_sde(denoise_fn, x, sigmas, key, order=2, solver_type=solver_type, eta=eta,
                        s_noise=s_noise, indices=indices, brownian_depth=brownian_depth,
                        return_nfe=return_nfe, return_trajectory=return_trajectory,
                        name="sample_dpmpp_2m_sde")


def sample_dpmpp_3m_sde(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                        return_trajectory: bool = False, eta: float = 1.0, s_noise: float = 1.0,
                        brownian_depth: int = 20, match_k_diffusion: bool = False):
  """DPM-Solver++(3M) SDE; NFE = N. See the module docstring. η = 0: deterministic 3rd-order multistep.

  ``match_k_diffusion=True``: the second-difference term as k-diffusion's ``sample_dpmpp_3m_sde`` and the
  official DPM-Solver++ code (``multistep_dpm_solver_third_update``) write it, −φ₃·D₂ with
  D₂ = (d₁,₀ − d₁,₁)/(r₀ + r₁) ≈ h²D''/2: half the Taylor term −h²φ₃·D'', so the η = 0 method is 2nd order
  (measured 1.9 on the Gaussian ODE). The default uses −2φ₃·D₂ (3rd order, measured 3.1).
  """
  return _multistep_sde(denoise_fn, x, sigmas, key, order=3, solver_type="heun", eta=eta,
                        s_noise=s_noise, indices=indices, brownian_depth=brownian_depth,
                        return_nfe=return_nfe, return_trajectory=return_trajectory,
                        name="sample_dpmpp_3m_sde", d2_coef=1.0 if match_k_diffusion else 2.0)
