"""Samplers in EDM's σ-space, one signature for all (k-diffusion / EDM shape):

    sample_*(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe=False,
             return_trajectory=False, **options) -> x0 | (x0, trajectory) | (x0, nfe) | (x0, trajectory, nfe)

``denoise_fn(x, sigma) -> D(x; σ)`` with ``x: [B, ...]``, ``sigma: [B]`` float32; ``x = latents·σ₀``;
``sigmas`` a 1-D decreasing grid, normally ending in 0 (e.g. ``karras_sigmas`` or a schedule's
``sigma_steps(N)``). The ODE they solve is dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3 with σ(t) = t, s(t) = 1),
except ``sample_ode``, which integrates the same flow in a schedule's own time t = σ⁻¹(σ) with s(t).
Every sampler takes the same arguments, so a caller needs no signature inspection:
``fn(denoise_fn, latents * sigmas[0], sigmas, key, indices=indices, **options)``; ``key`` and
``indices`` are accepted and ignored by the deterministic samplers (euler, heun, dpmpp_2m, pf_ode, ode
without churn).

Common rules (tested in tests/diffusion/test_samplers.py):
- One compiled program: a ``lax.scan`` over the σ grid, so compile time does not grow with the number
  of steps; every sampler works under ``jit``, ``vmap``, ``pmap`` and ``shard_map``.
- σ arithmetic and the state x are float32 whatever the denoiser's dtype; the denoiser receives x in
  the dtype the caller passed, σ in float32, and the result is cast back to x's dtype.
- A step to σ = 0 is the exact denoising step x ← D(x; σ) (no division by 0; no noise added), and
  Heun-type samplers skip their correction there (EDM Algorithm 1: NFE 2N − 1).
- Stochastic samplers draw the noise of sample i at draw c from
  ``normal(fold_in(fold_in(key, indices[i]), c))`` (``per_sample_noise``), ``indices`` defaulting to
  ``arange(B)``; pass global indices (e.g. ``start + arange(B)``, or per shard) and a sample never
  depends on the batch it was drawn in.
- ``return_nfe=True`` returns ``(x0, nfe)`` with the number of denoiser evaluations (int32), counted
  inside the compiled program.
- ``return_trajectory=True`` returns ``(x0, trajectory)``: the float32 σ-space state at every grid point,
  ``[N + 1, B, ...]`` for N = len(sigmas) − 1, emitted by the sampler's own scan (one compiled program;
  without the flag the scan stacks nothing). ``trajectory[0]`` is x and ``trajectory[-1]`` the returned
  sample (before the cast to x's dtype); entry i + 1 is the state after step i (for annealed Langevin the
  state after the Langevin updates at level σ_i, for the SDE samplers the chain's state, the last entry
  after the final noise-free step). With both flags: ``(x0, trajectory, nfe)``.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import sde as sde_lib
from jaxgen.diffusion.conversions import bcast
from jaxgen.diffusion.sde import per_sample_noise
from jaxgen.errors import ConfigError

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]


# ----------------------------------------------------------------------------------------------
# Shared plumbing.

def _grid(sigmas, name="sigmas"):
  sigmas = jnp.asarray(sigmas, jnp.float32)
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ConfigError(f"{name} must be a 1-D grid with at least 2 entries (e.g. karras_sigmas(n)), "
                      f"got shape {sigmas.shape}.")
  try:  # Checks that need concrete values; skipped when the grid is traced.
    s = np.asarray(sigmas)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return sigmas
  if np.any(s[:-1] <= 0) or np.any(np.diff(s) > 0):
    raise ConfigError(f"{name} must be decreasing and positive except a final 0 (e.g. "
                      f"karras_sigmas(n)), got {s}.")
  return sigmas


def _indices(indices, batch):
  idx = jnp.arange(batch, dtype=jnp.int32) if indices is None else jnp.asarray(indices)
  if idx.shape != (batch,):
    raise ConfigError(f"indices must have shape ({batch},) (one global sample index per sample), "
                      f"got {idx.shape}.")
  return idx


def _need_key(key, name):
  if key is None:
    raise ConfigError(f"{name} draws noise: pass key=jax.random.key(seed) (or set its noise to 0).")


def _wrap(denoise_fn: Denoiser, x_dtype, batch):
  """D(x, σ) on float32 state and a scalar float32 σ; the model sees x in the caller's dtype."""

  def d(x, sigma):
    s = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (batch,))
    return denoise_fn(x.astype(x_dtype), s).astype(jnp.float32)

  return d


def _ratio(num, den):
  """num/den, 0 where den == 0 (never evaluated there by the samplers, guards vmapped grids)."""
  return num / jnp.where(den > 0, den, 1.0)


def _emit(x, return_trajectory):
  """What a scan step stacks: the state for a trajectory, else nothing."""
  return x if return_trajectory else None


def _out(x, dtype, nfe, return_nfe, x_start=None, path=None):
  """x0 in x's dtype, then (with ``path``, the scan's stacked states after each step) the trajectory
  [x_start, *path] and (with ``return_nfe``) the NFE."""
  result = (x.astype(dtype),)
  if path is not None:
    result += (jnp.concatenate([x_start[None].astype(jnp.float32), path.astype(jnp.float32)]),)
  if return_nfe:
    result += (jnp.asarray(nfe, jnp.int32),)
  return result if len(result) > 1 else result[0]


def _steps(sigmas):
  n = sigmas.shape[0] - 1
  return jnp.arange(n, dtype=jnp.int32), sigmas[:-1], sigmas[1:]


def score_from_denoiser(denoise_fn: Denoiser, x_dtype=jnp.float32) -> Callable:
  """∇log p(x; σ) = (D(x; σ) − x)/σ² as ``score_fn(x, t)`` with t = σ (EDM Eq. 3)."""

  def score(x, t):
    t = jnp.asarray(t, jnp.float32)
    d = denoise_fn(x.astype(x_dtype), jnp.broadcast_to(t, (x.shape[0],))).astype(jnp.float32)
    return (d - x) / bcast(jnp.square(t), x)

  return score


# ----------------------------------------------------------------------------------------------
# Deterministic and stochastic EDM samplers.

def sample_euler(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                 return_trajectory: bool = False, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = float("inf"), s_noise: float = 1.0):
  """Euler on the PF ODE: x ← x + (σ' − σ)(x − D)/σ, written D + (σ'/σ)(x − D) so σ' = 0 gives D.

  First order, NFE = N = len(sigmas) − 1. With the default ``s_churn = 0`` deterministic (``key``,
  ``indices`` unused). ``s_churn > 0``: EDM Algorithm 2 with Euler steps (k-diffusion's ``sample_euler``):
  γ = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0, σ̂ = σ_i(1 + γ),
  x̂ = x + √(σ̂² − σ_i²)·S_noise·z (draw i of ``per_sample_noise``, as ``sample_edm``), then the Euler
  step from σ̂ to σ_{i+1}; needs ``key``.
  """
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not (isinstance(s_churn, (int, float)) and s_churn == 0)
  if stochastic:
    _need_key(key, "sample_euler with s_churn > 0")
    idx = _indices(indices, batch)
    gamma_max = jnp.minimum(jnp.asarray(s_churn, jnp.float32) / (sigmas.shape[0] - 1),
                            math.sqrt(2.0) - 1.0)

  def step(x, inp):
    i, s, s_next = inp
    if stochastic:
      gamma = jnp.where((s_tmin <= s) & (s <= s_tmax), gamma_max, 0.0)
      z = per_sample_noise(key, idx, i, x.shape[1:])
      # √(σ̂² − σ²) = σ√(γ(2 + γ)), exactly 0 when γ = 0 (as in _edm_loop).
      x = x + s * jnp.sqrt(gamma * (2.0 + gamma)) * s_noise * z
      s = s + gamma * s
    den = d(x, s)
    x = den + _ratio(s_next, s) * (x - den)
    return x, _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  x, path = jax.lax.scan(step, x0, _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


def _edm_loop(denoise_fn, x, sigmas, key, *, s_churn, s_tmin, s_tmax, s_noise, indices,
              return_nfe, return_trajectory, name):
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  n = sigmas.shape[0] - 1
  stochastic = not (isinstance(s_churn, (int, float)) and s_churn == 0)
  if stochastic:
    _need_key(key, name)
    idx = _indices(indices, batch)
    gamma_max = jnp.minimum(jnp.asarray(s_churn, jnp.float32) / n, math.sqrt(2.0) - 1.0)

  def step(carry, inp):
    x, nfe = carry
    i, s, s_next = inp
    if stochastic:
      gamma = jnp.where((s_tmin <= s) & (s <= s_tmax), gamma_max, 0.0)
      s_hat = s + gamma * s
      z = per_sample_noise(key, idx, i, x.shape[1:])
      # √(σ̂² − σ²) = σ√(γ(2 + γ)): exactly 0 when γ = 0 (σ̂² − σ² may round below 0 under FMA).
      x_hat = x + s * jnp.sqrt(gamma * (2.0 + gamma)) * s_noise * z
    else:
      s_hat, x_hat = s, x
    den = d(x_hat, s_hat)
    d_cur = (x_hat - den) / s_hat
    x_euler = den + _ratio(s_next, s_hat) * (x_hat - den)

    def heun(_):
      s_safe = jnp.where(s_next > 0, s_next, 1.0)
      d_prime = (x_euler - d(x_euler, s_safe)) / s_safe
      return x_hat + (s_next - s_hat) * (0.5 * d_cur + 0.5 * d_prime)

    x = jax.lax.cond(s_next > 0, heun, lambda _: x_euler, None)
    return (x, nfe + 1 + (s_next > 0).astype(jnp.int32)), _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  (x, nfe), path = jax.lax.scan(step, (x0, jnp.int32(0)), _steps(sigmas))
  return _out(x, dtype, nfe, return_nfe, x0, path)


def sample_heun(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                return_trajectory: bool = False):
  """EDM Algorithm 1 (Heun's 2nd-order method); no correction on the step to σ = 0.

  Second order, NFE = 2N − 1 for a grid ending in 0, deterministic (``key``, ``indices`` unused).
  """
  del key, indices
  return _edm_loop(denoise_fn, x, sigmas, None, s_churn=0, s_tmin=0.0, s_tmax=float("inf"),
                   s_noise=1.0, indices=None, return_nfe=return_nfe,
                   return_trajectory=return_trajectory, name="sample_heun")


def sample_edm(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
               return_trajectory: bool = False, s_churn: float = 0.0, s_tmin: float = 0.0,
               s_tmax: float = float("inf"), s_noise: float = 1.0):
  """EDM Algorithm 2 (official ``edm_sampler``): stochastic Heun with churn.

  For each step i (N = len(sigmas) − 1): γ = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0;
  σ̂ = σ_i(1 + γ); x̂ = x + √(σ̂² − σ_i²)·S_noise·z; Euler step from σ̂ to σ_{i+1} with
  d = (x̂ − D(x̂; σ̂))/σ̂, then the Heun correction at σ_{i+1} unless σ_{i+1} = 0. NFE = 2N − 1.
  With S_churn = 0 this is Algorithm 1 (``sample_heun``). Paper settings: ImageNet-64 S_churn=40,
  S_tmin=0.05, S_tmax=50, S_noise=1.003 (N=256).
  """
  return _edm_loop(denoise_fn, x, sigmas, key, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
                   s_noise=s_noise, indices=indices, return_nfe=return_nfe,
                   return_trajectory=return_trajectory, name="sample_edm")


def sample_ode(denoise_fn: Denoiser, x, sigmas, key=None, *, schedule, solver: str = "heun",
               indices=None, return_nfe: bool = False, return_trajectory: bool = False, alpha: float = 1.0,
               s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0):
  """EDM's general sampler (Algorithm 1/2 with σ(t), s(t); official ``ablation_sampler``).

  Takes the σ grid (e.g. ``schedule.sigma_steps(N)``) and the σ-space start x = latents·σ_0 like every
  sampler, and integrates in the schedule's own time t_i = σ⁻¹(σ_i) the scaled state x_t = s(t)·x of
  the ODE dx_t/dt = (σ̇/σ + ṡ/s)·x_t − σ̇·s/σ·D(x_t/s; σ(t)). Step i: optional churn (γ from σ(t_i),
  t̂ = σ⁻¹(σ(t_i)(1+γ)), x̂ = s(t̂)/s(t_i)·x + √(σ(t̂)² − σ(t_i)²)·s(t̂)·S_noise·z), Euler step
  h = t_{i+1} − t̂, and for ``solver='heun'`` the 2nd-order correction of EDM's general RK rule with
  parameter α (α = 1: Heun; evaluated at t̂ + αh), skipped on a step to σ = 0. Returns the σ-space
  sample x_t/s(t_N) (= x_t where the grid ends at σ = 0, s(0) = 1); the trajectory is x_t/s(t_i).
  ``schedule`` provides vectorized ``sigma, sigma_deriv, s, s_deriv, sigma_inv`` (and ``round_sigma``,
  used for churn). The time grid: σ⁻¹ recovers a schedule's ``time_steps`` from its ``sigma_steps`` to
  float32 rounding (≤ 1e-6 relative for VP, sub-VP, VE, FM; exactly for the σ(t) = t schedules EDM,
  iDDPM, DDPM, NCSN), and σ = 0 maps to t = 0, where every schedule has σ(0) = 0 and its time grid ends
  (σ⁻¹(0) itself may be another root: ``VPSchedule.fit`` can give β_min < 0, and then σ(t) = 0 also at
  t = −2β_min/β_d). NFE: N (euler) or 2N − 1 (heun, grid ending at σ = 0).
  """
  if solver not in ("heun", "euler"):
    raise ConfigError(f"solver must be 'heun' or 'euler', got {solver!r}.")
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  n = sigmas.shape[0] - 1
  stochastic = not (isinstance(s_churn, (int, float)) and s_churn == 0)
  if stochastic:
    _need_key(key, "sample_ode with s_churn > 0")
    idx = _indices(indices, batch)
    gamma_max = jnp.minimum(jnp.asarray(s_churn, jnp.float32) / n, math.sqrt(2.0) - 1.0)
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  sig, sc = lambda t: f32(schedule.sigma(t)), lambda t: f32(schedule.s(t))

  def coef(t):
    """(σ, s, a, b) at t with dx_t/dt = a·x_t − b·D(x_t/s; σ), a = σ̇/σ + ṡ/s, b = σ̇·s/σ."""
    sigma, sigma_d, s, s_d = sig(t), f32(schedule.sigma_deriv(t)), sc(t), f32(schedule.s_deriv(t))
    return sigma, s, sigma_d / sigma + s_d / s, sigma_d * s / sigma

  def deriv(x, c):
    sigma, s, a, b = c
    den = denoise_fn((x / s).astype(dtype), jnp.broadcast_to(sigma, (batch,))).astype(jnp.float32)
    return a * x - b * den

  def step(carry, inp):
    x, nfe = carry
    i, t, t_next, s_next, s_out, c_grid = inp
    if stochastic:
      s_cur = sig(t)
      gamma = jnp.where((s_tmin <= s_cur) & (s_cur <= s_tmax), gamma_max, 0.0)
      s_hat = s_cur + gamma * s_cur
      if hasattr(schedule, "round_sigma"):  # the official sampler rounds σ̂ to the net's grid
        s_hat = f32(schedule.round_sigma(s_hat))
      t_hat = f32(schedule.sigma_inv(s_hat))
      t_hat = jnp.where(gamma > 0, t_hat, t)
      z = per_sample_noise(key, idx, i, x.shape[1:])
      x_hat = (sc(t_hat) / sc(t)) * x + jnp.sqrt(
          jnp.maximum(jnp.square(sig(t_hat)) - jnp.square(s_cur), 0.0)) * sc(t_hat) * s_noise * z
      h = t_next - t_hat
      c_cur, c_prime = coef(t_hat), (coef(t_hat + alpha * h) if solver == "heun" else None)
    else:
      t_hat, x_hat = t, x
      h = t_next - t_hat
      c_cur, c_prime = c_grid
    d_cur = deriv(x_hat, c_cur)
    x_euler = x_hat + h * d_cur
    if solver == "euler":
      return (x_euler, nfe + 1), _emit(x_euler / s_out, return_trajectory)
    last = s_next <= 0

    def heun(_):
      d_prime = deriv(x_hat + alpha * h * d_cur, c_prime)
      return x_hat + h * ((1 - 1 / (2 * alpha)) * d_cur + 1 / (2 * alpha) * d_prime)

    x = jax.lax.cond(last, lambda _: x_euler, heun, None)
    return (x, nfe + 2 - last.astype(jnp.int32)), _emit(x / s_out, return_trajectory)

  # The time grid and (without churn) the schedule's coefficients on it are computed once, outside the
  # scan. For a concrete σ grid they are evaluated here, so they are the same constants under jit, vmap
  # and shard_map: staged, XLA compiles or folds them differently per program, and the ODE amplifies a
  # 1-ulp difference (a = σ̇/σ + ṡ/s cancels, e.g. 1001 − 1000 for flow matching at t = 0.999).
  with jax.ensure_compile_time_eval():
    positive = sigmas > 0
    ts = jnp.where(positive, schedule.sigma_inv(jnp.where(positive, sigmas, 1.0)), 0.0).astype(jnp.float32)
    i, t, t_next = _steps(ts)
    c_grid = None
    if not stochastic:
      c_grid = (coef(t), coef(t + alpha * (t_next - t)) if solver == "heun" else None)
    s_first, s_grid, s_last = sc(ts[0]), sc(t_next), sc(ts[-1])
  x0 = x.astype(jnp.float32)
  (x_t, nfe), path = jax.lax.scan(step, (x0 * s_first, jnp.int32(0)),
                                  (i, t, t_next, sigmas[1:], s_grid, c_grid))
  x_t = x_t / s_last
  if path is not None:  # the last entry is the returned sample itself
    path = jnp.concatenate([path[:-1], x_t[None]])
  return _out(x_t, dtype, nfe, return_nfe, x0, path)


# ----------------------------------------------------------------------------------------------
# DDIM / DDPM ancestral.

def _multistep_loop(denoise_fn, x, sigmas, coeffs, return_nfe, return_trajectory):
  """The loop LMS, iPNDM and DEIS share: x_{i+1} = x_i + Σ_j C[i, j]·d_{i−j} with d = (x − D)/σ (the
  last ``C.shape[1] − 1`` slopes carried in the scan), and x ← D on the step to σ = 0. NFE = N."""
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  x0 = x.astype(jnp.float32)

  def step(carry, inp):
    x, hist = carry                     # hist: d_{i−1}, …, d_{i−q+1}
    (_, s, s_next), c = inp
    den = d(x, s)
    ds = jnp.concatenate([((x - den) / s)[None], hist])
    x = jnp.where(s_next > 0, x + jnp.tensordot(c, ds, axes=1), den)
    return (x, ds[:-1]), _emit(x, return_trajectory)

  hist = jnp.repeat(jnp.zeros_like(x0)[None], coeffs.shape[1] - 1, axis=0)  # keeps shard_map's vma
  (x, _), path = jax.lax.scan(step, (x0, hist), (_steps(sigmas), coeffs))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


def _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe, return_trajectory,
                    name):
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  stochastic = not (isinstance(eta, (int, float)) and eta == 0)
  if stochastic:
    _need_key(key, name)
    idx = _indices(indices, batch)

  def step(x, inp):
    i, s, s_next = inp
    den = d(x, s)
    up, down = ancestral_step(s, s_next, eta)
    x = den + _ratio(down, s) * (x - den)
    if stochastic:
      x = x + (up * s_noise) * per_sample_noise(key, idx, i, x.shape[1:])
    return x, _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  x, path = jax.lax.scan(step, x0, _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


def ancestral_step(sigma_from, sigma_to, eta=1.0):
  """(σ_up, σ_down): σ_up = min(σ_to, η·√(σ_to²(σ_from² − σ_to²)/σ_from²)), σ_down = √(σ_to² − σ_up²).

  With η = 1 the step σ_from → σ_down followed by N(0, σ_up²) noise is DDPM's posterior q(x_{t−1}|x_t, x₀)
  in EDM coordinates; η interpolates to DDIM (η = 0, deterministic).
  """
  sigma_from = jnp.asarray(sigma_from, jnp.float32)
  sigma_to = jnp.asarray(sigma_to, jnp.float32)
  var = jnp.square(sigma_to) * (jnp.square(sigma_from) - jnp.square(sigma_to))
  up = jnp.minimum(sigma_to, eta * jnp.sqrt(jnp.maximum(_ratio(var, jnp.square(sigma_from)), 0.0)))
  down = jnp.sqrt(jnp.maximum(jnp.square(sigma_to) - jnp.square(up), 0.0))
  return up, down


def sample_ddim(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                return_trajectory: bool = False, eta: float = 0.0, s_noise: float = 1.0):
  """DDIM (Song et al. 2021) in EDM coordinates x̃ = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ).

  DDIM's x_{t'} = √ᾱ'·x̂₀ + √(1 − ᾱ' − σ_η²)·ε̂ + σ_η z, with σ_η² = η²(1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ'), divided
  by √ᾱ' is x̃' = D + (σ_down/σ)(x̃ − D) + σ_up z with (σ_up, σ_down) = ``ancestral_step(σ, σ', η)``.
  η = 0: deterministic, identical to ``sample_euler``; η = 1: DDPM ancestral. NFE = N.
  To sample a VP/DDPM model pass its σ_t = √((1−ᾱ_t)/ᾱ_t) grid and x = latents·σ₀ (x̃ scaling).
  """
  return _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                         return_trajectory, "sample_ddim with eta > 0")


def sample_ancestral(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                     return_nfe: bool = False, return_trajectory: bool = False, eta: float = 1.0,
                     s_noise: float = 1.0):
  """DDPM ancestral sampling (k-diffusion ``euler_ancestral``): σ → σ_down by Euler, then add
  N(0, σ_up²), σ_up² = σ'²(σ² − σ'²)/σ², σ_down² = σ'² − σ_up². The step to σ = 0 returns D.
  First order, NFE = N, stochastic."""
  return _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                         return_trajectory, "sample_ancestral")


# ----------------------------------------------------------------------------------------------
# Reverse SDE solvers (the code path of sde.sample_reverse_sde on the σ-space SDE).

def sample_euler_maruyama(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                          return_nfe: bool = False, return_trajectory: bool = False):
  """Euler–Maruyama on the reverse SDE in EDM's time t = σ: dx = −2σ∇log p dσ + √(2σ) dw̄, i.e.
  x ← x + 2(σ−σ')/σ·(D − x) + √(2σ(σ−σ'))·z; the step to σ = 0 is D. First order (weak), NFE = N."""
  _need_key(key, "sample_euler_maruyama")
  return _sde_sampler(denoise_fn, x, sigmas, key, predictor="euler_maruyama", corrector=None,
                      snr=0.0, n_corrector_steps=0, indices=indices, return_nfe=return_nfe,
                      return_trajectory=return_trajectory)


def sample_pc(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
              return_trajectory: bool = False, predictor: str = "reverse_diffusion",
              corrector: str = "langevin", snr: float = 0.16, n_corrector_steps: int = 1,
              corrector_norm: str = "sample"):
  """Predictor–corrector (score_sde) in σ-space: at each σ_i, ``n_corrector_steps`` Langevin steps
  x ← x + ε s + √(2ε) z with ε = 2(r‖z‖/‖s‖)² (α = 1, VE; per-sample norms), then the predictor
  (``'reverse_diffusion'``: x ← x + (σ² − σ'²)s + √(σ² − σ'²)z, or ``'euler_maruyama'``).
  score_sde's CIFAR-10 VE setting: snr = 0.16, one corrector step. NFE = N(n_corrector_steps + 1).
  ``corrector_norm``: ``'sample'`` (default, batch-independent; ‖z‖, ‖s‖ concentrate in image
  dimensions) or ``'batch'`` (score_sde's batch means; use it for low-dimensional data, where a
  per-sample ‖s‖ → 0 near a mode makes the step state-dependent and biases the samples).
  ``corrector='ald'``: score_sde's annealed-Langevin corrector ε = 2(r·σ)², state- and
  batch-independent."""
  _need_key(key, "sample_pc")
  return _sde_sampler(denoise_fn, x, sigmas, key, predictor=predictor, corrector=corrector,
                      snr=snr, n_corrector_steps=n_corrector_steps, indices=indices,
                      corrector_norm=corrector_norm, return_nfe=return_nfe,
                      return_trajectory=return_trajectory)


def _sde_sampler(denoise_fn, x, sigmas, key, **kw):
  sigmas = _grid(sigmas)
  sde = sde_lib.EDMSDE()
  return sde_lib.sample_reverse_sde(sde, score_from_denoiser(denoise_fn, x.dtype), x, sigmas, key,
                                    denoise=True, **kw)


# ----------------------------------------------------------------------------------------------
# Annealed Langevin dynamics (NCSN).

def sample_annealed_langevin(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                             return_nfe: bool = False, return_trajectory: bool = False,
                             n_steps_each: int = 100, step_lr: float = 2e-5, denoise: bool = True):
  """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

  Noise levels σ_1 > … > σ_L are ``sigmas[:-1]`` (the grid ends in 0). At level i, α_i = ε·σ_i²/σ_L²
  and T = ``n_steps_each`` updates x ← x + (α_i/2)·s(x; σ_i) + √α_i·z (NCSN's convention; its
  stationary variance on N(0, v) is v/(1 − α/(4v))). ``denoise``: a final step x ← D(x; σ_L)
  = x + σ_L² s (NCSNv2's denoising). NCSN CIFAR-10: L = 10 (σ 1 → 0.01), T = 100, ε = 2e-5.
  NFE = L·T (+1 with ``denoise``). Trajectory entry l + 1: the state after level l (the last entry
  after the denoising step with ``denoise``).
  """
  _need_key(key, "sample_annealed_langevin")
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  idx = _indices(indices, batch)
  levels = sigmas[:-1]
  sigma_last = levels[-1]
  n_levels, t_steps = levels.shape[0], int(n_steps_each)

  def level(x, inp):
    l, s = inp
    alpha = step_lr * jnp.square(s / sigma_last)

    def one(t, x):
      score = (d(x, s) - x) / jnp.square(s)
      z = per_sample_noise(key, idx, l * t_steps + t, x.shape[1:])
      return x + 0.5 * alpha * score + jnp.sqrt(alpha) * z

    x = jax.lax.fori_loop(0, t_steps, one, x)
    return x, _emit(x, return_trajectory)

  x0 = x.astype(jnp.float32)
  x, path = jax.lax.scan(level, x0, (jnp.arange(n_levels, dtype=jnp.int32), levels))
  if denoise:
    x = d(x, sigma_last)
    if path is not None:
      path = jnp.concatenate([path[:-1], x[None]])
  return _out(x, dtype, n_levels * t_steps + int(denoise), return_nfe, x0, path)


# ----------------------------------------------------------------------------------------------
# DPM-Solver++(2M).

def sample_dpmpp_2m(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                    return_nfe: bool = False, return_trajectory: bool = False):
  """DPM-Solver++(2M) (Lu et al. 2022; k-diffusion's ``sample_dpmpp_2m``), multistep 2nd order.

  With λ = −ln σ, h = λ' − λ: x' = (σ'/σ)·x + (1 − σ'/σ)·D̂ where D̂ = D on the first step and on the
  step to σ = 0, else D̂ = (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1}, r = h_{i−1}/h_i. NFE = N, deterministic
  (``key``, ``indices`` unused).
  """
  del key, indices
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  prev = jnp.concatenate([sigmas[:1], sigmas[:-2]])

  def step(carry, inp):
    x, old = carry
    i, s_prev, s, s_next = inp
    den = d(x, s)
    two = (i > 0) & (s_next > 0)
    h = jnp.where(two, jnp.log(s / jnp.where(two, s_next, 1.0)), 1.0)
    h_last = jnp.where(two, jnp.log(s_prev / s), 1.0)
    r = h_last / h
    den_d = jnp.where(two, (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old, den)
    ratio = _ratio(s_next, s)
    x = ratio * x + (1 - ratio) * den_d
    return (x, den), _emit(x, return_trajectory)

  i, s, s_next = _steps(sigmas)
  x0 = x.astype(jnp.float32)
  (x, _), path = jax.lax.scan(step, (x0, jnp.zeros_like(x0)), (i, prev, s, s_next))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


# ----------------------------------------------------------------------------------------------
# Probability-flow ODE with adaptive Dormand–Prince RK45.

def sample_pf_ode(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                  return_trajectory: bool = False, rtol: float = 1e-5, atol: float = 1e-5,
                  fixed_steps: int | None = None, max_steps: int = 4096):
  """The probability-flow ODE solved by adaptive Dormand–Prince 5(4) (``ode.odeint_rk45``).

  Integrates dx/du = x − D(x; e^u) in u = ln σ (the EDM ODE dx/dσ = (x − D)/σ after σ = e^u, which
  keeps the step sizes even across 80 → 0.002) from σ_max = ``sigmas[0]`` to the last positive entry
  of ``sigmas`` (intermediate entries are unused); if ``sigmas`` ends in 0 the final step to σ = 0 is
  the exact x ← D(x; σ_min). Each sample is solved with its own step sizes (the solver is vmapped
  over the batch; error norm RMS over the sample with ``rtol``/``atol``), so a sample never depends
  on its batch; the compiled program runs until the slowest sample is done. ``fixed_steps=n``: n
  equal Dormand–Prince steps instead (NFE 6n + 1 + final step, identical on every device: use it
  for multi-device runs where lock-step matters). ``return_nfe`` gives the per-sample NFE ``[B]``.
  With ``return_trajectory`` the solve restarts at every grid point (a scan over the intervals, each
  solved adaptively, or with ``fixed_steps`` steps each), so the intermediate entries are used and the
  result agrees with the single solve only to the tolerance. Deterministic (``key``, ``indices``
  unused). score_sde's ODE sampler used rtol = atol = 1e-5.
  """
  del key, indices
  from jaxgen.diffusion import ode  # core's integrators

  sigmas = _grid(sigmas)
  dtype = x.dtype

  def f(y, u):
    sig = jnp.exp(u)
    den = denoise_fn(y[None].astype(dtype), sig[None]).astype(jnp.float32)[0]
    return y - den

  def solve(y, s_from, s_to):
    sol = ode.odeint_rk45(f, y, jnp.log(s_from), jnp.log(s_to), rtol=rtol, atol=atol,
                          max_steps=max_steps, fixed_steps=fixed_steps)
    return sol.y, sol.nfe

  x0 = x.astype(jnp.float32)
  if return_trajectory:
    def one_path(x1):
      def interval(carry, inp):
        y, nfe = carry
        s, s_next = inp

        def final(y):  # the exact step to σ = 0
          den = denoise_fn(y[None].astype(dtype), s[None]).astype(jnp.float32)[0]
          return den, ode._vary_like(jnp.int32(1), y)  # pylint: disable=protected-access

        y, k = jax.lax.cond(s_next > 0, lambda y: solve(y, s, jnp.where(s_next > 0, s_next, s)), final, y)
        return (y, nfe + k), y

      init = (x1, ode._vary_like(jnp.int32(0), x1))  # pylint: disable=protected-access
      (y, nfe), path = jax.lax.scan(interval, init, (sigmas[:-1], sigmas[1:]))
      return y, nfe, path

    y, nfe, path = jax.vmap(one_path)(x0)
    return _out(y, dtype, nfe, return_nfe, x0, jnp.moveaxis(path, 0, 1))

  ends_at_zero = sigmas[-1] <= 0
  sigma_end = jnp.where(ends_at_zero, sigmas[-2], sigmas[-1])
  y, nfe = jax.vmap(lambda x1: solve(x1, sigmas[0], sigma_end))(x0)
  d = _wrap(denoise_fn, dtype, x.shape[0])
  y = jax.lax.cond(ends_at_zero, lambda y: d(y, sigma_end), lambda y: y, y)
  return _out(y, dtype, nfe + ends_at_zero.astype(jnp.int32), return_nfe)
