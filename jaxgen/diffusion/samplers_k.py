"""k-diffusion's remaining fixed-grid samplers, in jaxgen's one signature (see ``samplers.py``).

All work in EDM's σ-space on the ODE dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3), take
``sample_*(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe=False, return_trajectory=False,
**options)`` with ``x = latents·σ₀`` and run one ``lax.scan`` over the grid (N = len(sigmas) − 1 steps).
The step to σ = 0 is the exact denoising step x ← D(x; σ_last) (no second evaluation there). Noise of
sample i at draw c is ``per_sample_noise(key, indices, c, ...)`` with c the step index.

- ``sample_euler_ancestral`` (k-diffusion ``sample_euler_ancestral``; Ho et al. 2020 posterior in EDM
  coordinates): Euler step σ → σ_down, then N(0, σ_up²) noise, (σ_up, σ_down) = ``ancestral_step(σ, σ', η)``.
  First order, NFE = N. η = 0 is ``sample_euler``. Same update as ``samplers.sample_ancestral``.
- ``sample_dpm_2`` (k-diffusion ``sample_dpm_2``: DPM-Solver-2, Lu et al. 2022 Alg. 1 with r = ½, as the
  midpoint rule in log σ, with EDM Algorithm 2's churn): σ_mid = √(σ̂σ'), x₂ = x̂ + (σ_mid − σ̂)d(x̂, σ̂),
  x' = x̂ + (σ' − σ̂)d(x₂, σ_mid), d(x, σ) = (x − D(x; σ))/σ. Second order, NFE = 2N − 1 (Euler, i.e. D, on
  the step to 0).
- ``sample_dpm_2_ancestral``: the same midpoint step σ → σ_down, then N(0, σ_up²) noise. NFE = 2N − 1
  (one evaluation on any step with σ_down = 0). η = 0 is ``sample_dpm_2`` without churn.
- ``sample_lms`` (k-diffusion ``sample_lms``): the linear multistep (variable-step Adams–Bashforth) method
  x_{i+1} = x_i + Σ_j c_{ij} d_{i−j}, c_{ij} = ∫_{σ_i}^{σ_{i+1}} ℓ_j(τ) dτ with ℓ_j the Lagrange basis on
  σ_i, …, σ_{i−p+1}, p = min(i + 1, order): the first steps use orders 1, 2, … (the first is Euler).
  Order ``order`` (default 4) where the start-up error is negligible (formally the Euler start makes the
  global error O(h²)), NFE = N. For a concrete grid the coefficients are computed on the host
  (``lms_coefficients``, float64 Gauss–Legendre quadrature, exact for these polynomials) and enter the scan
  as an array; for a traced grid the same formula runs in the program in float32 (no SciPy either way).
  Unlike k-diffusion, the step to σ = 0 is D (the contract's exact last step) rather than the polynomial
  extrapolated to 0.
- ``sample_dpmpp_2s_ancestral`` (k-diffusion ``sample_dpmpp_2s_ancestral``; DPM-Solver++(2S), Lu et al.
  2022b Alg. 1 with r = ½, λ = −ln σ): s_mid = √(σσ_down), x₂ = (s_mid/σ)x + (1 − s_mid/σ)D(x; σ),
  x' = (σ_down/σ)x + (1 − σ_down/σ)D(x₂; s_mid), then N(0, σ_up²) noise. Second order at η = 0,
  NFE = 2N − 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion.samplers import (Denoiser, _ancestral_loop, _emit, _grid, _indices, _multistep_loop,
                                       _need_key, _out, _steps, _wrap, ancestral_step)
from jaxgen.diffusion.sde import per_sample_noise
from jaxgen.errors import ConfigError


def _is_zero(v):
  return isinstance(v, (int, float)) and v == 0


def _check_eta(eta, s_noise, name):
  if isinstance(eta, (int, float)) and eta < 0:
    raise ConfigError(f"{name}: eta must be ≥ 0 (0 deterministic, 1 DDPM ancestral), got {eta}.")
  if isinstance(s_noise, (int, float)) and s_noise < 0:
    raise ConfigError(f"{name}: s_noise must be ≥ 0 (1 is the unscaled noise), got {s_noise}.")


def sample_euler_ancestral(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                           return_nfe: bool = False, return_trajectory: bool = False, eta: float = 1.0,
                           s_noise: float = 1.0):
  """Ancestral sampling with Euler steps: x ← D + (σ_down/σ)(x − D) + S_noise·σ_up·z. First order,
  NFE = N, stochastic unless η = 0 (needs ``key``). The same loop as ``sample_ancestral``, under
  k-diffusion's name."""
  _check_eta(eta, s_noise, "sample_euler_ancestral")
  return _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe, return_trajectory,
                         "sample_euler_ancestral")


def _midpoint(d, x, den, s, s_to):
  """DPM-Solver-2's step from (x, D(x; s)) at s to s_to > 0 through σ_mid = √(s·s_to): one evaluation."""
  s_mid = jnp.sqrt(s * s_to)
  x_2 = den + (s_mid / s) * (x - den)
  d_2 = (x_2 - d(x_2, s_mid)) / s_mid
  return x + (s_to - s) * d_2


def sample_dpm_2(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                 return_trajectory: bool = False, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = float("inf"), s_noise: float = 1.0):
  """DPM-Solver-2 (midpoint in log σ) with EDM churn; Euler (= D) on the step to σ = 0.

  Churn as ``sample_edm``: γ = min(S_churn/N, √2 − 1) on S_tmin ≤ σ_i ≤ S_tmax, σ̂ = σ_i(1 + γ),
  x̂ = x + √(σ̂² − σ_i²)·S_noise·z (needs ``key`` when S_churn > 0). Second order, NFE = 2N − 1.
  """
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not _is_zero(s_churn)
  if stochastic:
    _need_key(key, "sample_dpm_2 with s_churn > 0")
    idx = _indices(indices, batch)
    gamma_max = jnp.minimum(jnp.asarray(s_churn, jnp.float32) / (sigmas.shape[0] - 1),
                            math.sqrt(2.0) - 1.0)

  def step(carry, inp):
    x, nfe = carry
    i, s, s_next = inp
    if stochastic:
      gamma = jnp.where((s_tmin <= s) & (s <= s_tmax), gamma_max, 0.0)
      z = per_sample_noise(key, idx, i, x.shape[1:])
      x = x + s * jnp.sqrt(gamma * (2.0 + gamma)) * s_noise * z   # √(σ̂² − σ²), exactly 0 at γ = 0
      s = s + gamma * s
    den = d(x, s)
    go = s_next > 0
    x = jax.lax.cond(go, lambda _: _midpoint(d, x, den, s, jnp.where(go, s_next, s)), lambda _: den, None)
    return (x, nfe + 1 + go.astype(jnp.int32)), _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  (x, nfe), path = jax.lax.scan(step, (x0, jnp.int32(0)), _steps(sigmas))
  return _out(x, dtype, nfe, return_nfe, x0, path)


def _ancestral_two_stage(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe, return_trajectory,
                         name, second):
  """Shared scan of the two-evaluation ancestral samplers: ``second(d, x, den, σ, σ_down)`` steps to
  σ_down > 0 (σ_down = 0: x ← D), then S_noise·σ_up·z is added."""
  _check_eta(eta, s_noise, name)
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not _is_zero(eta)
  if stochastic:
    _need_key(key, name)
    idx = _indices(indices, batch)

  def step(carry, inp):
    x, nfe = carry
    i, s, s_next = inp
    den = d(x, s)
    up, down = ancestral_step(s, s_next, eta)
    go = down > 0
    x = jax.lax.cond(go, lambda _: second(d, x, den, s, jnp.where(go, down, s)), lambda _: den, None)
    if stochastic:
      x = x + (up * s_noise) * per_sample_noise(key, idx, i, x.shape[1:])
    return (x, nfe + 1 + go.astype(jnp.int32)), _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  (x, nfe), path = jax.lax.scan(step, (x0, jnp.int32(0)), _steps(sigmas))
  return _out(x, dtype, nfe, return_nfe, x0, path)


def sample_dpm_2_ancestral(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                           return_nfe: bool = False, return_trajectory: bool = False, eta: float = 1.0,
                           s_noise: float = 1.0):
  """Ancestral sampling with DPM-Solver-2 steps σ → σ_down, then S_noise·σ_up·z. NFE = 2N − 1 (one
  evaluation where σ_down = 0); η = 0 is ``sample_dpm_2``."""
  return _ancestral_two_stage(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                              return_trajectory, "sample_dpm_2_ancestral", _midpoint)


def _dpmpp_2s(d, x, den, s, s_to):
  """DPM-Solver++(2S), r = ½, from s to s_to > 0 in data-prediction form (one evaluation)."""
  s_mid = jnp.sqrt(s * s_to)
  a = s_mid / s
  x_2 = a * x + (1.0 - a) * den
  b = s_to / s
  return b * x + (1.0 - b) * d(x_2, s_mid)


def sample_dpmpp_2s_ancestral(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                              return_nfe: bool = False, return_trajectory: bool = False, eta: float = 1.0,
                              s_noise: float = 1.0):
  """Ancestral sampling with DPM-Solver++(2S) steps σ → σ_down, then S_noise·σ_up·z. Second order at
  η = 0, NFE = 2N − 1 (one evaluation where σ_down = 0)."""
  return _ancestral_two_stage(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                              return_trajectory, "sample_dpmpp_2s_ancestral", _dpmpp_2s)


# ----------------------------------------------------------------------------------------------
# Linear multistep.

def _lms_table(t, order, xp):
  """c[i, j] of ``lms_coefficients`` for the grid ``t`` (numpy float64 or a traced jnp float32 array)."""
  n = t.shape[0] - 1
  i = np.arange(n)
  nodes, weights = np.polynomial.legendre.leggauss(order)
  a, b = t[:-1], t[1:]
  half = 0.5 * (b - a)
  tau = half[:, None] * nodes[None] + (0.5 * (a + b))[:, None]           # [N, order] quadrature points
  node = [t[np.maximum(i - k, 0)] for k in range(order)]                  # σ_{i−k} (clipped where k > i)
  cols = []
  for j in range(order):
    basis = xp.ones_like(tau)
    for k in range(order):
      if k == j:
        continue
      active = (k <= i) & (j <= i)
      den = xp.where(active, node[j] - node[k], 1.0)
      basis = basis * xp.where(active[:, None], (tau - node[k][:, None]) / den[:, None], 1.0)
    cols.append(xp.where(j <= i, half * (basis @ weights), 0.0))
  return xp.stack(cols, axis=1)


def _check_order(order):
  if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
    raise ConfigError(f"order must be an integer ≥ 1 (4 is k-diffusion's default), got {order!r}.")


def lms_coefficients(sigmas, order: int = 4) -> np.ndarray:
  """Host (numpy float64) coefficients ``c[i, j]`` of k-diffusion's linear multistep method, ``[N, order]``.

  Step i (σ_i → σ_{i+1}) is x_{i+1} = x_i + Σ_j c[i, j]·d_{i−j} with p = min(i + 1, order),
  c[i, j] = ∫_{σ_i}^{σ_{i+1}} Π_{k≠j, k<p} (τ − σ_{i−k})/(σ_{i−j} − σ_{i−k}) dτ for j < p and 0 beyond
  (Gauss–Legendre with ``order`` nodes: exact for the degree p − 1 integrand). On a uniform grid with
  h = σ_{i+1} − σ_i these are Adams–Bashforth's h·(1), h·(3, −1)/2, h·(23, −16, 5)/12, h·(55, −59, 37, −9)/24.
  Every row is given, including a step to σ = 0 (which ``sample_lms`` replaces by x ← D).
  """
  _check_order(order)
  t = np.asarray(sigmas, np.float64)
  if t.ndim != 1 or t.shape[0] < 2:
    raise ConfigError(f"sigmas must be a 1-D grid with at least 2 entries, got shape {t.shape}.")
  return _lms_table(t, order, np)


def sample_lms(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
               return_trajectory: bool = False, order: int = 4):
  """Linear multistep (Adams–Bashforth on the σ grid) of order ``order``; the first step is Euler, the
  step to σ = 0 is D. NFE = N, deterministic (``key``, ``indices`` unused)."""
  del key, indices
  _check_order(order)
  sigmas = _grid(sigmas)
  try:  # a concrete grid: float64 coefficients on the host
    coeffs = jnp.asarray(lms_coefficients(np.asarray(sigmas), order), jnp.float32)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    coeffs = _lms_table(sigmas, order, jnp)   # a traced grid: the same formula in float32, in the program
  return _multistep_loop(denoise_fn, x, sigmas, coeffs, return_nfe, return_trajectory)
