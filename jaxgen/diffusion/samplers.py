"""Samplers in EDM's σ-space, one signature for all (k-diffusion / EDM shape):

    sample_*(denoise_fn, x, sigmas, key=None, **options) -> x0

``denoise_fn(x, sigma) -> D(x; σ)`` with ``x: [B, ...]``, ``sigma: [B]`` float32; ``x = latents·σ₀``;
``sigmas`` a 1-D decreasing grid, normally ending in 0 (e.g. ``karras_sigmas``). The ODE they solve is
dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3 with σ(t) = t, s(t) = 1).

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
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import sde as sde_lib
from jaxgen.diffusion.sde import per_sample_noise

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]


# ----------------------------------------------------------------------------------------------
# Shared plumbing.

def _grid(sigmas, name="sigmas"):
  sigmas = jnp.asarray(sigmas, jnp.float32)
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ValueError(f"{name} must be a 1-D grid with at least 2 entries (e.g. karras_sigmas(n)), "
                     f"got shape {sigmas.shape}.")
  try:  # Checks that need concrete values; skipped when the grid is traced.
    s = np.asarray(sigmas)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return sigmas
  if np.any(s[:-1] <= 0) or np.any(np.diff(s) > 0):
    raise ValueError(f"{name} must be decreasing and positive except a final 0 (e.g. "
                     f"karras_sigmas(n)), got {s}.")
  return sigmas


def _indices(indices, batch):
  idx = jnp.arange(batch, dtype=jnp.int32) if indices is None else jnp.asarray(indices)
  if idx.shape != (batch,):
    raise ValueError(f"indices must have shape ({batch},) (one global sample index per sample), "
                     f"got {idx.shape}.")
  return idx


def _need_key(key, name):
  if key is None:
    raise ValueError(f"{name} draws noise: pass key=jax.random.key(seed) (or set its noise to 0).")


def _wrap(denoise_fn: Denoiser, x_dtype, batch):
  """D(x, σ) on float32 state and a scalar float32 σ; the model sees x in the caller's dtype."""

  def d(x, sigma):
    s = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (batch,))
    return denoise_fn(x.astype(x_dtype), s).astype(jnp.float32)

  return d


def _ratio(num, den):
  """num/den, 0 where den == 0 (never evaluated there by the samplers, guards vmapped grids)."""
  return num / jnp.where(den > 0, den, 1.0)


def _out(x, dtype, nfe, return_nfe):
  x = x.astype(dtype)
  return (x, jnp.asarray(nfe, jnp.int32)) if return_nfe else x


def _steps(sigmas):
  n = sigmas.shape[0] - 1
  return jnp.arange(n, dtype=jnp.int32), sigmas[:-1], sigmas[1:]


def score_from_denoiser(denoise_fn: Denoiser, x_dtype=jnp.float32) -> Callable:
  """∇log p(x; σ) = (D(x; σ) − x)/σ² as ``score_fn(x, t)`` with t = σ (EDM Eq. 3)."""

  def score(x, t):
    t = jnp.asarray(t, jnp.float32)
    d = denoise_fn(x.astype(x_dtype), jnp.broadcast_to(t, (x.shape[0],))).astype(jnp.float32)
    return (d - x) / sde_lib._bc(jnp.square(t), x)

  return score


# ----------------------------------------------------------------------------------------------
# Deterministic and stochastic EDM samplers.

def sample_euler(denoise_fn: Denoiser, x, sigmas, key=None, *, return_nfe: bool = False):
  """Euler on the PF ODE: x ← x + (σ' − σ)(x − D)/σ, written D + (σ'/σ)(x − D) so σ' = 0 gives D.

  First order, NFE = N = len(sigmas) − 1, deterministic (``key`` unused).
  """
  del key
  sigmas = _grid(sigmas)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)

  def step(x, inp):
    _, s, s_next = inp
    den = d(x, s)
    return den + _ratio(s_next, s) * (x - den), None

  x, _ = jax.lax.scan(step, x.astype(jnp.float32), _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe)


def _edm_loop(denoise_fn, x, sigmas, key, *, s_churn, s_tmin, s_tmax, s_noise, indices,
              return_nfe, name):
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
    return (x, nfe + 1 + (s_next > 0).astype(jnp.int32)), None

  (x, nfe), _ = jax.lax.scan(step, (x.astype(jnp.float32), jnp.int32(0)), _steps(sigmas))
  return _out(x, dtype, nfe, return_nfe)


def sample_heun(denoise_fn: Denoiser, x, sigmas, key=None, *, return_nfe: bool = False):
  """EDM Algorithm 1 (Heun's 2nd-order method); no correction on the step to σ = 0.

  Second order, NFE = 2N − 1 for a grid ending in 0, deterministic.
  """
  del key
  return _edm_loop(denoise_fn, x, sigmas, None, s_churn=0, s_tmin=0.0, s_tmax=float("inf"),
                   s_noise=1.0, indices=None, return_nfe=return_nfe, name="sample_heun")


def sample_edm(denoise_fn: Denoiser, x, sigmas, key=None, *, s_churn: float = 0.0,
               s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
               indices=None, return_nfe: bool = False):
  """EDM Algorithm 2 (official ``edm_sampler``): stochastic Heun with churn.

  For each step i (N = len(sigmas) − 1): γ = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0;
  σ̂ = σ_i(1 + γ); x̂ = x + √(σ̂² − σ_i²)·S_noise·z; Euler step from σ̂ to σ_{i+1} with
  d = (x̂ − D(x̂; σ̂))/σ̂, then the Heun correction at σ_{i+1} unless σ_{i+1} = 0. NFE = 2N − 1.
  With S_churn = 0 this is Algorithm 1 (``sample_heun``). Paper settings: ImageNet-64 S_churn=40,
  S_tmin=0.05, S_tmax=50, S_noise=1.003 (N=256).
  """
  return _edm_loop(denoise_fn, x, sigmas, key, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
                   s_noise=s_noise, indices=indices, return_nfe=return_nfe, name="sample_edm")


def sample_ode(denoise_fn: Denoiser, latents, ts, schedule, solver: str = "heun", *,
               alpha: float = 1.0, s_churn: float = 0.0, s_tmin: float = 0.0,
               s_tmax: float = float("inf"), s_noise: float = 1.0, key=None, indices=None,
               return_nfe: bool = False):
  """EDM's general sampler (Algorithm 1/2 with σ(t), s(t); official ``ablation_sampler``).

  ODE: dx/dt = (σ̇/σ + ṡ/s)·x − σ̇·s/σ·D(x/s; σ(t)). ``ts`` is the time grid (t_0 … t_N, e.g.
  ``schedule.time_steps(N)``), x starts at latents·σ(t_0)·s(t_0). Step i: optional churn (γ from σ(t_i),
  t̂ = σ⁻¹(σ(t_i)(1+γ)), x̂ = s(t̂)/s(t_i)·x + √(σ(t̂)² − σ(t_i)²)·s(t̂)·S_noise·z), Euler step
  h = t_{i+1} − t̂, and for ``solver='heun'`` the 2nd-order correction of EDM's general RK rule with
  parameter α (α = 1: Heun; evaluated at t̂ + αh), skipped on a step to σ = 0.
  ``schedule`` provides vectorized ``sigma, sigma_deriv, s, s_deriv`` (and ``sigma_inv`` for churn).
  NFE: N (euler) or 2N − 1 (heun, grid ending at σ = 0).
  """
  if solver not in ("heun", "euler"):
    raise ValueError(f"solver must be 'heun' or 'euler', got {solver!r}.")
  ts = _time_grid(ts)
  dtype, batch = latents.dtype, latents.shape[0]
  n = ts.shape[0] - 1
  stochastic = not (isinstance(s_churn, (int, float)) and s_churn == 0)
  if stochastic:
    _need_key(key, "sample_ode with s_churn > 0")
    idx = _indices(indices, batch)
    gamma_max = jnp.minimum(jnp.asarray(s_churn, jnp.float32) / n, math.sqrt(2.0) - 1.0)
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  sig, sig_d = lambda t: f32(schedule.sigma(t)), lambda t: f32(schedule.sigma_deriv(t))
  sc, sc_d = lambda t: f32(schedule.s(t)), lambda t: f32(schedule.s_deriv(t))

  def model(x, t):
    s = sig(t)
    return denoise_fn((x / sc(t)).astype(dtype),
                      jnp.broadcast_to(s, (batch,))).astype(jnp.float32)

  def deriv(x, t):
    s = sig(t)
    return (sig_d(t) / s + sc_d(t) / sc(t)) * x - sig_d(t) * sc(t) / s * model(x, t)

  def step(carry, inp):
    x, nfe = carry
    i, t, t_next = inp
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
    else:
      t_hat, x_hat = t, x
    h = t_next - t_hat
    d_cur = deriv(x_hat, t_hat)
    x_euler = x_hat + h * d_cur
    if solver == "euler":
      return (x_euler, nfe + 1), None
    last = sig(t_next) <= 0

    def heun(_):
      t_prime = t_hat + alpha * h
      d_prime = deriv(x_hat + alpha * h * d_cur, t_prime)
      return x_hat + h * ((1 - 1 / (2 * alpha)) * d_cur + 1 / (2 * alpha) * d_prime)

    x = jax.lax.cond(last, lambda _: x_euler, heun, None)
    return (x, nfe + 2 - last.astype(jnp.int32)), None

  x = latents.astype(jnp.float32) * (sig(ts[0]) * sc(ts[0]))
  (x, nfe), _ = jax.lax.scan(step, (x, jnp.int32(0)), _steps(ts))
  return _out(x, dtype, nfe, return_nfe)


def _time_grid(ts):
  ts = jnp.asarray(ts, jnp.float32)
  if ts.ndim != 1 or ts.shape[0] < 2:
    raise ValueError(f"ts must be a 1-D time grid with at least 2 entries (e.g. "
                     f"schedule.time_steps(n)), got shape {ts.shape}.")
  return ts


# ----------------------------------------------------------------------------------------------
# DDIM / DDPM ancestral.

def _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe, name):
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
    return x, None

  x, _ = jax.lax.scan(step, x.astype(jnp.float32), _steps(sigmas))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe)


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


def sample_ddim(denoise_fn: Denoiser, x, sigmas, key=None, *, eta: float = 0.0,
                s_noise: float = 1.0, indices=None, return_nfe: bool = False):
  """DDIM (Song et al. 2021) in EDM coordinates x̃ = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ).

  DDIM's x_{t'} = √ᾱ'·x̂₀ + √(1 − ᾱ' − σ_η²)·ε̂ + σ_η z, with σ_η² = η²(1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ'), divided
  by √ᾱ' is x̃' = D + (σ_down/σ)(x̃ − D) + σ_up z with (σ_up, σ_down) = ``ancestral_step(σ, σ', η)``.
  η = 0: deterministic, identical to ``sample_euler``; η = 1: DDPM ancestral. NFE = N.
  To sample a VP/DDPM model pass its σ_t = √((1−ᾱ_t)/ᾱ_t) grid and x = latents·σ₀ (x̃ scaling).
  """
  return _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                         "sample_ddim with eta > 0")


def sample_ancestral(denoise_fn: Denoiser, x, sigmas, key=None, *, eta: float = 1.0,
                     s_noise: float = 1.0, indices=None, return_nfe: bool = False):
  """DDPM ancestral sampling (k-diffusion ``euler_ancestral``): σ → σ_down by Euler, then add
  N(0, σ_up²), σ_up² = σ'²(σ² − σ'²)/σ², σ_down² = σ'² − σ_up². The step to σ = 0 returns D.
  First order, NFE = N, stochastic."""
  return _ancestral_loop(denoise_fn, x, sigmas, key, eta, s_noise, indices, return_nfe,
                         "sample_ancestral")


# ----------------------------------------------------------------------------------------------
# Reverse SDE solvers (the code path of sde.sample_reverse_sde on the σ-space SDE).

def sample_euler_maruyama(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None,
                          return_nfe: bool = False):
  """Euler–Maruyama on the reverse SDE in EDM's time t = σ: dx = −2σ∇log p dσ + √(2σ) dw̄, i.e.
  x ← x + 2(σ−σ')/σ·(D − x) + √(2σ(σ−σ'))·z; the step to σ = 0 is D. First order (weak), NFE = N."""
  _need_key(key, "sample_euler_maruyama")
  return _sde_sampler(denoise_fn, x, sigmas, key, predictor="euler_maruyama", corrector=None,
                      snr=0.0, n_corrector_steps=0, indices=indices, return_nfe=return_nfe)


def sample_pc(denoise_fn: Denoiser, x, sigmas, key=None, *, predictor: str = "reverse_diffusion",
              corrector: str = "langevin", snr: float = 0.16, n_corrector_steps: int = 1,
              corrector_norm: str = "sample", indices=None, return_nfe: bool = False):
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
                      corrector_norm=corrector_norm, return_nfe=return_nfe)


def _sde_sampler(denoise_fn, x, sigmas, key, **kw):
  sigmas = _grid(sigmas)
  sde = sde_lib.EDMSDE()
  return sde_lib.sample_reverse_sde(sde, score_from_denoiser(denoise_fn, x.dtype), x, sigmas, key,
                                    denoise=True, **kw)


# ----------------------------------------------------------------------------------------------
# Annealed Langevin dynamics (NCSN).

def sample_annealed_langevin(denoise_fn: Denoiser, x, sigmas, key=None, *,
                             n_steps_each: int = 100, step_lr: float = 2e-5,
                             denoise: bool = True, indices=None, return_nfe: bool = False):
  """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

  Noise levels σ_1 > … > σ_L are ``sigmas[:-1]`` (the grid ends in 0). At level i, α_i = ε·σ_i²/σ_L²
  and T = ``n_steps_each`` updates x ← x + (α_i/2)·s(x; σ_i) + √α_i·z (NCSN's convention; its
  stationary variance on N(0, v) is v/(1 − α/(4v))). ``denoise``: a final step x ← D(x; σ_L)
  = x + σ_L² s (NCSNv2's denoising). NCSN CIFAR-10: L = 10 (σ 1 → 0.01), T = 100, ε = 2e-5.
  NFE = L·T (+1 with ``denoise``).
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

    return jax.lax.fori_loop(0, t_steps, one, x), None

  x, _ = jax.lax.scan(level, x.astype(jnp.float32),
                      (jnp.arange(n_levels, dtype=jnp.int32), levels))
  if denoise:
    x = d(x, sigma_last)
  return _out(x, dtype, n_levels * t_steps + int(denoise), return_nfe)


# ----------------------------------------------------------------------------------------------
# DPM-Solver++(2M).

def sample_dpmpp_2m(denoise_fn: Denoiser, x, sigmas, key=None, *, return_nfe: bool = False):
  """DPM-Solver++(2M) (Lu et al. 2022; k-diffusion's ``sample_dpmpp_2m``), multistep 2nd order.

  With λ = −ln σ, h = λ' − λ: x' = (σ'/σ)·x + (1 − σ'/σ)·D̂ where D̂ = D on the first step and on the
  step to σ = 0, else D̂ = (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1}, r = h_{i−1}/h_i. NFE = N, deterministic.
  """
  del key
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
    return (ratio * x + (1 - ratio) * den_d, den), None

  i, s, s_next = _steps(sigmas)
  x = x.astype(jnp.float32)
  (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), (i, prev, s, s_next))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe)


# ----------------------------------------------------------------------------------------------
# Probability-flow ODE with adaptive Dormand–Prince RK45.

def sample_pf_ode(denoise_fn: Denoiser, x, sigmas, key=None, *, rtol: float = 1e-5,
                  atol: float = 1e-5, fixed_steps: int | None = None, max_steps: int = 4096,
                  return_nfe: bool = False):
  """The probability-flow ODE solved by adaptive Dormand–Prince 5(4) (``ode.odeint_rk45``).

  Integrates dx/du = x − D(x; e^u) in u = ln σ (the EDM ODE dx/dσ = (x − D)/σ after σ = e^u, which
  keeps the step sizes even across 80 → 0.002) from σ_max = ``sigmas[0]`` to the last positive entry
  of ``sigmas`` (intermediate entries are unused); if ``sigmas`` ends in 0 the final step to σ = 0 is
  the exact x ← D(x; σ_min). Each sample is solved with its own step sizes (the solver is vmapped
  over the batch; error norm RMS over the sample with ``rtol``/``atol``), so a sample never depends
  on its batch; the compiled program runs until the slowest sample is done. ``fixed_steps=n``: n
  equal Dormand–Prince steps instead (NFE 6n + 1 + final step, identical on every device: use it
  for multi-device runs where lock-step matters). ``return_nfe`` gives the per-sample NFE ``[B]``.
  Deterministic (``key`` unused). score_sde's ODE sampler used rtol = atol = 1e-5.
  """
  del key
  from jaxgen.diffusion import ode  # core's integrators

  sigmas = _grid(sigmas)
  dtype = x.dtype
  ends_at_zero = sigmas[-1] <= 0
  sigma_end = jnp.where(ends_at_zero, sigmas[-2], sigmas[-1])
  u0, u1 = jnp.log(sigmas[0]), jnp.log(sigma_end)

  def one(x1):
    def f(y, u):
      sig = jnp.exp(u)
      den = denoise_fn(y[None].astype(dtype), sig[None]).astype(jnp.float32)[0]
      return y - den

    sol = ode.odeint_rk45(f, x1, u0, u1, rtol=rtol, atol=atol, max_steps=max_steps,
                          fixed_steps=fixed_steps)
    return sol.y, sol.nfe

  y, nfe = jax.vmap(one)(x.astype(jnp.float32))
  d = _wrap(denoise_fn, dtype, x.shape[0])
  y = jax.lax.cond(ends_at_zero, lambda y: d(y, sigma_end), lambda y: y, y)
  return _out(y, dtype, nfe + ends_at_zero.astype(jnp.int32), return_nfe)
