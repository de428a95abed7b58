"""Noise schedules in EDM's common frame (Karras et al. 2022, Table 1 and official code).

A diffusion is described by a noise level σ(t) and a scale s(t): x_t = s(t)·(y + σ(t)·n), y ~ data,
n ~ N(0, I). Its probability-flow ODE (EDM eq. 4) is
    dx/dt = [ṡ/s]·x − s²·σ̇·σ·∇log p(x/s; σ),   ∇log p(x; σ) = (D(x; σ) − x)/σ².

Every schedule here is a frozen dataclass (hashable, so usable as a static jit argument) with
vectorized float32 methods:

  sigma(t), sigma_deriv(t), s(t), s_deriv(t), sigma_inv(sigma)
  sigma_sq_deriv(t)                            d(σ²)/dt = 2σσ̇ (closed form where σ̇ is infinite at σ = 0)
  time_steps(num_steps) -> t[num_steps + 1]    EDM Table 1 discretization, t_N the time of σ=0
  sigma_steps(num_steps) -> σ(t_i), ending in 0
  sample_sigma(key, shape)                     training noise distribution p_train
  loss_weight(sigma)                           λ(σ)
  precond(sigma) -> Precond(c_skip, c_out, c_in, c_noise)
  round_sigma(sigma)                           nearest representable σ (identity except iDDPM/DDPM/NCSN)
  sigma_min, sigma_max                         the σ range of the sampling discretization

Discretizations (EDM Table 1; num_steps = N, i = 0..N−1, t_N = 0):
  VP   t_i = 1 + i/(N−1)·(ε_s − 1)   (sub-VP the same, σ(t) = 2 sinh(½∫β))
  VE   t_i = σ_max²·(σ_min²/σ_max²)^{i/(N−1)}
  iDDPM t_i = u_{⌊j₀ + (M−1−j₀)/(N−1)·i + ½⌋}
  EDM  t_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
  flow matching (rectified-flow convention) t_i = t_max·(1 − i/N), i = 0..N (uniform, N steps)
  DDPM (DDIM-style) σ_{j_i}, j_i = round((T−1)(1 − i/(N−1)))
  DDPM, DDIM's official sub-sequences: ``DDPMSchedule.ddim_steps(S, 'uniform' | 'quadratic')``
Grids are computed in float64 and returned as float32 (as ``jnp`` arrays). Every schedule has σ(0) = 0
and its ``time_steps`` end at t = 0, so the time of σ = 0 is t = 0 (``samplers.sample_ode`` relies on it).

The score SDEs of ``jaxgen.diffusion.sde`` are derived from these schedules (EDM eq. 4 ↔ score_sde):
drift f(t) = ṡ/s and diffusion g(t)² = s²·d(σ²)/dt = 2s²σ̇σ.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import precond as _pc
from jaxgen.errors import ConfigError

f32 = jnp.float32


def _f32(x):
  return jnp.asarray(x, f32)


def _check_steps(num_steps) -> int:
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
    raise ConfigError(f"num_steps must be a positive Python int, got {num_steps!r}.")
  return int(num_steps)


def _step_fraction(num_steps: int) -> np.ndarray:
  """i/(N−1) for i = 0..N−1 (float64); a single step gives [0]."""
  return np.arange(num_steps, dtype=np.float64) / max(num_steps - 1, 1)


def _append_zero(v) -> jnp.ndarray:
  return jnp.concatenate([_f32(v), jnp.zeros((1,), f32)])


def _is_static(*args) -> bool:
  return all(isinstance(a, (int, float, np.integer, np.floating)) for a in args)


# -- σ grids (public helpers) ------------------------------------------------------------------

def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> jnp.ndarray:
  """EDM time steps (Karras et al. 2022, eq. 5): num_steps + 1 float32 values from σ_max, the last 0.

  σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i < N; σ_N = 0.
  """
  n = _check_steps(num_steps)
  if _is_static(sigma_min, sigma_max, rho):
    if not 0 < sigma_min <= sigma_max:
      raise ConfigError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}.")
    frac = _step_fraction(n)
    sig = (sigma_max ** (1 / rho) + frac * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return _append_zero(sig)
  frac = jnp.asarray(_step_fraction(n), f32)
  inv = 1.0 / _f32(rho)
  sig = (_f32(sigma_max) ** inv + frac * (_f32(sigma_min) ** inv - _f32(sigma_max) ** inv)) ** _f32(rho)
  return _append_zero(sig)


def vp_sigmas(num_steps: int, sigma_min: float | None = None, sigma_max: float | None = None, *,
              eps_s: float = 1e-3, beta_d: float = 19.9, beta_min: float = 0.1) -> jnp.ndarray:
  """σ(t_i) of the VP discretization t_i = 1 + i/(N−1)(ε_s − 1), then 0.

  With ``sigma_min``/``sigma_max`` given, β_d and β_min are refitted so that σ(ε_s) = σ_min and
  σ(1) = σ_max, as in EDM's ``ablation_sampler``; by default σ(ε_s) ≈ 0.0105 and σ(1) ≈ 152.2.
  """
  n = _check_steps(num_steps)
  if sigma_min is not None or sigma_max is not None:
    lo = sigma_min if sigma_min is not None else float(_vp_sigma_np(eps_s, beta_d, beta_min))
    hi = sigma_max if sigma_max is not None else float(_vp_sigma_np(1.0, beta_d, beta_min))
    fitted = VPSchedule.fit(lo, hi, eps_s)
    beta_d, beta_min = fitted.beta_d, fitted.beta_min
  t = 1 + _step_fraction(n) * (eps_s - 1)
  return _append_zero(_vp_sigma_np(t, beta_d, beta_min))


def ve_sigmas(num_steps: int, sigma_min: float = 0.02, sigma_max: float = 100.0) -> jnp.ndarray:
  """σ(t_i) = √t_i of the VE discretization t_i = σ_max²(σ_min²/σ_max²)^{i/(N−1)}, then 0."""
  n = _check_steps(num_steps)
  t = sigma_max ** 2 * (sigma_min ** 2 / sigma_max ** 2) ** _step_fraction(n)
  return _append_zero(np.sqrt(t))


@functools.lru_cache(maxsize=16)
def iddpm_u(M: int = 1000, C1: float = 0.001, C2: float = 0.008) -> np.ndarray:
  """The iDDPM σ grid u_0 > u_1 > … > u_M = 0 (EDM Appendix C.3.4), float64, length M + 1.

  u_{j−1} = √((u_j² + 1)/max(ᾱ_{j−1}/ᾱ_j, C₁) − 1),  ᾱ_j = sin²(π/2 · j/(M(C₂ + 1))).
  """
  abar = lambda j: np.sin(0.5 * np.pi * j / M / (C2 + 1)) ** 2
  u = np.zeros(M + 1, np.float64)
  for j in range(M, 0, -1):
    u[j - 1] = np.sqrt((u[j] ** 2 + 1) / max(abar(j - 1) / abar(j), C1) - 1)
  u.setflags(write=False)
  return u


def iddpm_sigmas(num_steps: int, *, M: int = 1000, C1: float = 0.001, C2: float = 0.008,
                 j0: int = 8) -> jnp.ndarray:
  """σ_i = u_{⌊j₀ + (M−1−j₀)/(N−1)·i + ½⌋} (EDM Table 1, iDDPM + DDIM), then 0."""
  n = _check_steps(num_steps)
  u = iddpm_u(M, C1, C2)
  idx = np.floor(j0 + (M - 1 - j0) * _step_fraction(n) + 0.5).astype(np.int64)
  return _append_zero(u[idx])


def _vp_sigma_np(t, beta_d, beta_min):
  t = np.asarray(t, np.float64)
  return np.sqrt(np.expm1(0.5 * beta_d * t ** 2 + beta_min * t))


# -- schedules ---------------------------------------------------------------------------------

class _Schedule:
  """Shared behaviour; subclasses define the Table 1 column."""

  def sigma_steps(self, num_steps: int) -> jnp.ndarray:
    """σ(t_i) for the schedule's time steps; the last entry is exactly 0."""
    ts = self.time_steps(num_steps)
    return _append_zero(self.sigma(ts[:-1]))

  def round_sigma(self, sigma):
    return _f32(sigma)

  def sigma_sq_deriv(self, t):
    """d(σ²)/dt = 2σσ̇ (the SDE's g² = s²·d(σ²)/dt); overridden where σ̇ is infinite at σ = 0."""
    return 2.0 * self.sigma(t) * self.sigma_deriv(t)

  def noise_level(self, key, shape):
    """(σ, c_noise) drawn from p_train: what a loss needs to noise data and condition F."""
    sigma = self.sample_sigma(key, shape)
    return sigma, self.precond(sigma).c_noise


@dataclasses.dataclass(frozen=True)
class VPSchedule(_Schedule):
  """Variance preserving (Song et al. 2021): σ(t) = √(e^{½β_d t² + β_min t} − 1), s(t) = 1/√(σ(t)² + 1)."""
  beta_d: float = 19.9
  beta_min: float = 0.1
  eps_s: float = 1e-3     # last sampling time
  eps_t: float = 1e-5     # smallest training time
  M: int = 1000

  @classmethod
  def fit(cls, sigma_min: float, sigma_max: float, eps_s: float = 1e-3, **kw) -> "VPSchedule":
    """The VP schedule with σ(ε_s) = σ_min and σ(1) = σ_max (β refitted as EDM's ``ablation_sampler``)."""
    b_min, b_max = cls._integral_at_sigma(sigma_min), cls._integral_at_sigma(sigma_max)
    beta_d = 2 * (b_min / eps_s - b_max) / (eps_s - 1)
    beta_min = b_max - 0.5 * beta_d
    return cls(beta_d=beta_d, beta_min=beta_min, eps_s=eps_s, **kw)

  @staticmethod
  def _integral_at_sigma(sigma: float) -> float:
    """B = ∫₀ᵗβ at the time where the schedule reaches σ (VP: σ² = e^B − 1)."""
    return math.log1p(sigma ** 2)

  def sigma(self, t):
    t = _f32(t)
    return jnp.sqrt(jnp.expm1(0.5 * self.beta_d * t ** 2 + self.beta_min * t))

  def sigma_deriv(self, t):
    t = _f32(t)
    g = 0.5 * self.beta_d * t ** 2 + self.beta_min * t
    return 0.5 * (self.beta_min + self.beta_d * t) * jnp.exp(g) / jnp.sqrt(jnp.expm1(g))

  def sigma_sq_deriv(self, t):
    """d(σ²)/dt = β(t)·e^{B(t)}, finite at t = 0 where σ̇ is not."""
    t = _f32(t)
    return (self.beta_min + self.beta_d * t) * jnp.exp(0.5 * self.beta_d * t ** 2 + self.beta_min * t)

  def s(self, t):
    t = _f32(t)
    return jnp.exp(-0.5 * (0.5 * self.beta_d * t ** 2 + self.beta_min * t))

  def s_deriv(self, t):
    t = _f32(t)
    return -0.5 * (self.beta_min + self.beta_d * t) * self.s(t)

  def sigma_inv(self, sigma):
    sigma = _f32(sigma)
    return (jnp.sqrt(self.beta_min ** 2 + 2 * self.beta_d * jnp.log1p(sigma ** 2)) - self.beta_min) / self.beta_d

  def time_steps(self, num_steps: int):
    n = _check_steps(num_steps)
    return _append_zero(1 + _step_fraction(n) * (self.eps_s - 1))

  def sample_sigma(self, key, shape):
    u = jax.random.uniform(key, shape, f32)
    return self.sigma(1 + u * (self.eps_t - 1))

  def loss_weight(self, sigma):
    return 1.0 / _f32(sigma) ** 2

  def precond(self, sigma):
    return _pc.vp_precond(sigma, self.sigma_inv(sigma), self.M)

  @property
  def sigma_min(self):
    return float(_vp_sigma_np(self.eps_s, self.beta_d, self.beta_min))

  @property
  def sigma_max(self):
    return float(_vp_sigma_np(1.0, self.beta_d, self.beta_min))


def _vp_integral_np(t, beta_d, beta_min):
  """B(t) = ∫₀ᵗ β = ½β_d t² + β_min t (float64)."""
  t = np.asarray(t, np.float64)
  return 0.5 * beta_d * t ** 2 + beta_min * t


@dataclasses.dataclass(frozen=True)
class SubVPSchedule(VPSchedule):
  """Sub-VP (Song et al. 2021, eq. 30) in EDM's frame: s(t) = e^{−B/2}, σ(t) = 2·sinh(B/2), B = ∫₀ᵗβ.

  The sub-VP perturbation kernel is x_t = e^{−B/2}·y + (1 − e^{−B})·n (its std is 1 − e^{−B}, no
  square root), so σ(t) = (1 − e^{−B})/e^{−B/2} = e^{B/2} − e^{−B/2}. EDM's ODE with these s, σ is the
  sub-VP probability-flow ODE: ṡ/s = −½β = f(t) and 2s²σ̇σ = β(1 − e^{−2B}) = g(t)². Constants, time
  grid (t_i = 1 + i/(N−1)·(ε_s − 1)), p_train (t ~ U(ε_t, 1)), λ(σ) = 1/σ² and c_noise = (M − 1)·t are
  score_sde's continuous VP/sub-VP ones, shared with ``VPSchedule``. Preconditioning is score_sde's
  (score = −F(x_t, 999t)/std): c_skip = 1, c_out = −σ, c_in = s = 1/(σ/2 + √(1 + σ²/4)), so the network
  sees x_t itself, and λ(σ)‖D − y‖² = ‖std·score + n‖², score_sde's unweighted continuous loss.
  """

  @staticmethod
  def _integral_at_sigma(sigma: float) -> float:
    return 2.0 * math.asinh(0.5 * sigma)

  def sigma(self, t):
    t = _f32(t)
    return 2.0 * jnp.sinh(0.25 * self.beta_d * t ** 2 + 0.5 * self.beta_min * t)

  def sigma_deriv(self, t):
    t = _f32(t)
    return (self.beta_min + self.beta_d * t) * jnp.cosh(0.25 * self.beta_d * t ** 2 + 0.5 * self.beta_min * t)

  def sigma_sq_deriv(self, t):
    """d(σ²)/dt = 2β(t)·sinh(B(t)) (= 2σσ̇)."""
    t = _f32(t)
    return 2.0 * (self.beta_min + self.beta_d * t) * jnp.sinh(0.5 * self.beta_d * t ** 2 + self.beta_min * t)

  def sigma_inv(self, sigma):
    big_b = 2.0 * jnp.arcsinh(0.5 * _f32(sigma))
    return (jnp.sqrt(self.beta_min ** 2 + 2 * self.beta_d * big_b) - self.beta_min) / self.beta_d

  def precond(self, sigma):
    sigma = _f32(sigma)
    c_in = 1.0 / (0.5 * sigma + jnp.sqrt(1.0 + 0.25 * sigma ** 2))
    return _pc.Precond(jnp.ones_like(sigma), -sigma, c_in, (self.M - 1) * self.sigma_inv(sigma))

  @property
  def sigma_min(self):
    return float(2 * np.sinh(0.5 * _vp_integral_np(self.eps_s, self.beta_d, self.beta_min)))

  @property
  def sigma_max(self):
    return float(2 * np.sinh(0.5 * _vp_integral_np(1.0, self.beta_d, self.beta_min)))


@dataclasses.dataclass(frozen=True)
class VESchedule(_Schedule):
  """Variance exploding (SMLD/NCSN): σ(t) = √t, s(t) = 1."""
  sigma_min: float = 0.02
  sigma_max: float = 100.0

  def sigma(self, t):
    return jnp.sqrt(_f32(t))

  def sigma_deriv(self, t):
    return 0.5 / jnp.sqrt(_f32(t))

  def sigma_sq_deriv(self, t):
    return jnp.ones_like(_f32(t))

  def s(self, t):
    return jnp.ones_like(_f32(t))

  def s_deriv(self, t):
    return jnp.zeros_like(_f32(t))

  def sigma_inv(self, sigma):
    return _f32(sigma) ** 2

  def time_steps(self, num_steps: int):
    n = _check_steps(num_steps)
    return _append_zero(self.sigma_max ** 2 * (self.sigma_min ** 2 / self.sigma_max ** 2) ** _step_fraction(n))

  def sample_sigma(self, key, shape):
    u = jax.random.uniform(key, shape, f32)
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** u

  def loss_weight(self, sigma):
    return 1.0 / _f32(sigma) ** 2

  def precond(self, sigma):
    return _pc.ve_precond(sigma)


class _DiscreteSigmas:
  """σ restricted to a finite ladder ``sigmas`` (float64 numpy) with ``index(σ)`` its nearest entry:
  σ is rounded to the ladder, and p_train draws the index uniformly (DDPM's j ~ U{0..T−1}, NCSN's
  ``torch.randint(0, len(sigmas))``); ``noise_level`` conditions the network on that index."""

  def _draw_index(self, key, shape):
    return jax.random.randint(key, shape, 0, len(self.sigmas))

  def round_sigma(self, sigma):
    return _f32(self.sigmas)[self.index(sigma)]

  def sample_sigma(self, key, shape):
    return _f32(self.sigmas)[self._draw_index(key, shape)]

  def noise_level(self, key, shape):
    j = self._draw_index(key, shape)
    return _f32(self.sigmas)[j], j.astype(f32)


class _SigmaIsTime:
  """σ(t) = t, s(t) = 1."""

  def sigma(self, t):
    return _f32(t)

  def sigma_deriv(self, t):
    return jnp.ones_like(_f32(t))

  def sigma_sq_deriv(self, t):
    return 2.0 * _f32(t)

  def s(self, t):
    return jnp.ones_like(_f32(t))

  def s_deriv(self, t):
    return jnp.zeros_like(_f32(t))

  def sigma_inv(self, sigma):
    return _f32(sigma)


@dataclasses.dataclass(frozen=True)
class IDDPMSchedule(_SigmaIsTime, _Schedule):
  """Improved DDPM (Nichol & Dhariwal 2021) in EDM's form: σ(t) = t on the u_j grid (cosine ᾱ)."""
  C1: float = 0.001
  C2: float = 0.008
  M: int = 1000
  j0: int = 8

  @property
  def u(self) -> np.ndarray:
    """u_0 > … > u_M = 0 (float64 numpy, M + 1 entries)."""
    return iddpm_u(self.M, self.C1, self.C2)

  @property
  def sigma_min(self):
    return float(self.u[self.M - 1])

  @property
  def sigma_max(self):
    return float(self.u[0])

  def time_steps(self, num_steps: int):
    return iddpm_sigmas(num_steps, M=self.M, C1=self.C1, C2=self.C2, j0=self.j0)

  def sample_sigma(self, key, shape):
    j = jax.random.randint(key, shape, 0, self.M)
    return _f32(self.u[:-1])[j]

  def loss_weight(self, sigma):
    return 1.0 / _f32(sigma) ** 2

  def round_sigma(self, sigma):
    u = _f32(self.u)
    return u[_pc.nearest_index(sigma, u)]

  def precond(self, sigma):
    return _pc.iddpm_precond(sigma, self.u, self.M)


@dataclasses.dataclass(frozen=True)
class EDMSchedule(_SigmaIsTime, _Schedule):
  """EDM (Karras et al. 2022): σ(t) = t, s = 1, ρ-spaced steps, lognormal p_train, σ_d preconditioning."""
  sigma_min: float = 0.002
  sigma_max: float = 80.0
  sigma_data: float = 0.5
  rho: float = 7.0
  P_mean: float = -1.2
  P_std: float = 1.2

  def time_steps(self, num_steps: int):
    return karras_sigmas(num_steps, self.sigma_min, self.sigma_max, self.rho)

  def sample_sigma(self, key, shape):
    return jnp.exp(jax.random.normal(key, shape, f32) * self.P_std + self.P_mean)

  def loss_weight(self, sigma):
    sigma = _f32(sigma)
    return (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2

  def precond(self, sigma):
    return _pc.edm_precond(sigma, self.sigma_data)


@dataclasses.dataclass(frozen=True)
class FlowMatchingSchedule(_Schedule):
  """Flow matching / rectified flow x_t = (1−t)·x₀ + t·ε  ⇔  s(t) = 1 − t, σ(t) = t/(1 − t).

  ``t_max``: first sampling time (t = 1 is σ = ∞); the default 0.999 starts at σ = 999.
  ``p_train``: ``'uniform'`` t ~ U(t_eps, 1) or ``'logit_normal'`` t = sigmoid(N(logit_mean,
  logit_std²)) (Esser et al. 2024). λ(σ) = (1+σ)²/σ² makes λ‖D − y‖² the velocity MSE ‖v̂ − v‖².
  """
  t_max: float = 0.999
  t_eps: float = 1e-5
  p_train: str = "uniform"
  logit_mean: float = 0.0
  logit_std: float = 1.0

  def __post_init__(self):
    if self.p_train not in ("uniform", "logit_normal"):
      raise ConfigError(f"unknown p_train {self.p_train!r}: use 'uniform' or 'logit_normal'.")
    if not 0 < self.t_max < 1:
      raise ConfigError(f"t_max must lie in (0, 1) (t = 1 is σ = ∞), got {self.t_max}.")

  def sigma(self, t):
    t = _f32(t)
    return t / (1.0 - t)

  def sigma_deriv(self, t):
    return 1.0 / (1.0 - _f32(t)) ** 2

  def s(self, t):
    return 1.0 - _f32(t)

  def s_deriv(self, t):
    return -jnp.ones_like(_f32(t))

  def sigma_inv(self, sigma):
    sigma = _f32(sigma)
    return sigma / (1.0 + sigma)

  def time_steps(self, num_steps: int):
    n = _check_steps(num_steps)
    return _f32(self.t_max * (1.0 - np.arange(n + 1, dtype=np.float64) / n))

  def sample_time(self, key, shape):
    if self.p_train == "uniform":
      u = jax.random.uniform(key, shape, f32)
      return self.t_eps + (1.0 - self.t_eps) * u
    t = jax.nn.sigmoid(self.logit_mean + self.logit_std * jax.random.normal(key, shape, f32))
    return jnp.clip(t, self.t_eps, 1.0 - self.t_eps)

  def sample_sigma(self, key, shape):
    return self.sigma(self.sample_time(key, shape))

  def loss_weight(self, sigma):
    sigma = _f32(sigma)
    return ((1.0 + sigma) / sigma) ** 2

  def precond(self, sigma):
    return _pc.flow_precond(sigma)

  @property
  def sigma_min(self):
    return self.t_eps / (1.0 - self.t_eps)

  @property
  def sigma_max(self):
    return self.t_max / (1.0 - self.t_max)


@dataclasses.dataclass(frozen=True)
class DDPMSchedule(_DiscreteSigmas, _SigmaIsTime, _Schedule):
  """Discrete DDPM (Ho et al. 2020) β schedules in EDM's frame: σ(t) = t, s = 1, σ_j = √((1−ᾱ_j)/ᾱ_j).

  ``kind='linear'``: β_j = linspace(β_start, β_end, T) (Ho et al.); ``'cosine'``: ᾱ(t) ∝
  cos²((t/T + s)/(1 + s)·π/2), β_j = min(1 − ᾱ((j+1)/T)/ᾱ(j/T), 0.999) (Nichol & Dhariwal 2021).
  The network is called as F(x_t, j) with x_t = √ᾱ_j·x = x/√(1+σ²) and the integer step j;
  ``prediction`` ('eps', 'v', 'x0') selects its preconditioning. λ(σ) = 1/σ² (ε-MSE = ‖D−y‖²/σ²).
  """
  kind: str = "linear"
  T: int = 1000
  beta_start: float = 1e-4
  beta_end: float = 0.02
  cosine_s: float = 0.008
  prediction: str = "eps"

  def __post_init__(self):
    if self.kind not in ("linear", "cosine"):
      raise ConfigError(f"unknown DDPM schedule kind {self.kind!r}: use 'linear' or 'cosine'.")
    if self.prediction not in ("eps", "v", "x0"):
      raise ConfigError(f"unknown prediction {self.prediction!r}: use 'eps', 'v' or 'x0'.")

  @property
  def betas(self) -> np.ndarray:
    return _ddpm_betas(self.kind, self.T, self.beta_start, self.beta_end, self.cosine_s)

  @property
  def alphas_cumprod(self) -> np.ndarray:
    """ᾱ_j = Π_{i≤j}(1 − β_i), j = 0..T−1 (float64)."""
    return np.cumprod(1.0 - self.betas)

  @property
  def sigmas(self) -> np.ndarray:
    """The ladder σ_j = √((1−ᾱ_j)/ᾱ_j), increasing in j (float64)."""
    a = self.alphas_cumprod
    return np.sqrt((1.0 - a) / a)

  @property
  def sigma_min(self):
    return float(self.sigmas[0])

  @property
  def sigma_max(self):
    return float(self.sigmas[-1])

  def index(self, sigma):
    """The step j whose σ_j is nearest to σ (int32)."""
    return _pc.nearest_index(sigma, self.sigmas)

  def time_steps(self, num_steps: int):
    n = _check_steps(num_steps)
    if n > self.T:
      raise ConfigError(f"num_steps={n} exceeds the T={self.T} DDPM steps: use at most {self.T} (the network "
                        "is trained on the ladder only).")
    j = np.round((self.T - 1) * (1.0 - _step_fraction(n))).astype(np.int64)
    return _append_zero(self.sigmas[j])

  def ddim_timesteps(self, num_steps: int, skip_type: str = "uniform") -> np.ndarray:
    """DDIM's sub-sequence τ of the T steps, increasing, as the official code builds it (Song, Meng & Ermon
    2021; ermongroup/ddim ``runners/diffusion.py``, ``sample_image``):

      'uniform'    τ = range(0, T, T // S)                     (S = 10, T = 1000: 0, 100, …, 900)
      'quadratic'  τ = ⌊linspace(0, √(0.8·T), S)²⌋             (the official 'quad'; ends at ⌊0.8·T⌋)

    Kept exactly: 'uniform' has ⌈T/⌊T/S⌋⌉ entries, which is S only when S divides T (S = 3 gives 0, 333,
    666, 999), and 'quadratic' may repeat a step for large S (e.g. S = T), a step that leaves x unchanged
    (as in the official sampler, where ᾱ_t = ᾱ_{t'}). Integer numpy array.
    """
    n = _check_steps(num_steps)
    if n > self.T:
      raise ConfigError(f"num_steps={n} exceeds the T={self.T} DDPM steps: use at most {self.T}.")
    if skip_type == "uniform":
      return np.arange(0, self.T, self.T // n, dtype=np.int64)
    if skip_type in ("quadratic", "quad"):
      return (np.linspace(0, np.sqrt(self.T * 0.8), n) ** 2).astype(np.int64)
    raise ConfigError(f"unknown DDIM skip_type {skip_type!r}: use 'uniform' or 'quadratic'.")

  def ddim_steps(self, num_steps: int, skip_type: str = "uniform") -> jnp.ndarray:
    """The σ grid of DDIM's sub-sequence τ (``ddim_timesteps``): σ_{τ_i} = √((1 − ᾱ_{τ_i})/ᾱ_{τ_i}) for τ
    in decreasing order, then 0 (the official code's last step goes to ᾱ = 1, i.e. σ = 0, returning x̂₀).
    Linear β, T = 1000, S = 10 'uniform' starts at σ_900 ≈ 60.82 and its last positive entry is
    σ_0 = √(β_0/(1 − β_0)) ≈ 0.0100.
    """
    t = self.ddim_timesteps(num_steps, skip_type)[::-1]
    return _append_zero(self.sigmas[t])

  def loss_weight(self, sigma):
    return 1.0 / _f32(sigma) ** 2

  def precond(self, sigma):
    return _pc.ddpm_precond(sigma, self.sigmas, self.prediction)


@functools.lru_cache(maxsize=16)
def _ddpm_betas(kind, T, beta_start, beta_end, s) -> np.ndarray:
  if kind == "linear":
    b = np.linspace(beta_start, beta_end, T, dtype=np.float64)
  else:
    f = lambda t: np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    j = np.arange(T, dtype=np.float64)
    b = np.minimum(1.0 - f((j + 1) / T) / f(j / T), 0.999)
  b.setflags(write=False)
  return b


@dataclasses.dataclass(frozen=True)
class NCSNSchedule(_DiscreteSigmas, _SigmaIsTime, _Schedule):
  """NCSN (Song & Ermon 2019): a score network s(x, i) over a geometric ladder of L noise levels.

  Ladder σ_i = σ_max·(σ_min/σ_max)^{i/(L−1)}, i = 0..L−1 (official ``np.exp(np.linspace(log σ_1,
  log σ_L, L))``; σ 1 → 0.01 on [0, 1] data is 2 → 0.02 on jaxgen's [−1, 1], the default). σ(t) = t,
  s = 1 (VE). The network outputs the score itself, so D(x; σ) = x + σ²·s(x, i):
  c_skip = 1, c_out = σ², c_in = 1, c_noise = i, the level nearest to σ in log σ (float32).
  p_train: σ uniform over the L levels; λ(σ) = 1/(2σ²), so λ‖D − y‖² = ½σ²‖s + n/σ‖² (D − y = σ²(s + n/σ)),
  NCSN's loss with anneal_power 2. ``time_steps(N)``: N ≤ L levels j_i = round(i(L−1)/(N−1)) (N = L: the
  whole ladder, annealed Langevin's), then 0.
  """
  sigma_max: float = 2.0
  sigma_min: float = 0.02
  num_levels: int = 10

  def __post_init__(self):
    if not isinstance(self.num_levels, (int, np.integer)) or self.num_levels < 1:
      raise ConfigError(f"num_levels must be a positive int, got {self.num_levels!r}.")
    if not 0 < self.sigma_min <= self.sigma_max:
      raise ConfigError(f"need 0 < sigma_min <= sigma_max, got sigma_min={self.sigma_min}, "
                        f"sigma_max={self.sigma_max}.")

  @property
  def sigmas(self) -> np.ndarray:
    """The ladder σ_0 = σ_max > … > σ_{L−1} = σ_min (float64 numpy)."""
    return np.exp(np.linspace(np.log(self.sigma_max), np.log(self.sigma_min), self.num_levels))

  def index(self, sigma):
    """The level i whose σ_i is nearest to σ in log σ (int32; σ = 0 maps to the last level)."""
    log_s = jnp.log(jnp.maximum(_f32(sigma), jnp.finfo(f32).tiny))
    return jnp.argmin(jnp.abs(log_s[..., None] - _f32(np.log(self.sigmas))), axis=-1).astype(jnp.int32)

  def time_steps(self, num_steps: int):
    n = _check_steps(num_steps)
    if n > self.num_levels:
      raise ConfigError(f"num_steps={n} exceeds the {self.num_levels} NCSN noise levels: use at most "
                        f"{self.num_levels} (the network is trained on the ladder only).")
    j = np.round((self.num_levels - 1) * _step_fraction(n)).astype(np.int64)
    return _append_zero(self.sigmas[j])

  def loss_weight(self, sigma):
    return 0.5 / _f32(sigma) ** 2

  def precond(self, sigma):
    sigma = _f32(sigma)
    return _pc.Precond(jnp.ones_like(sigma), sigma ** 2, jnp.ones_like(sigma), self.index(sigma).astype(f32))


__all__ = ["VPSchedule", "SubVPSchedule", "VESchedule", "IDDPMSchedule", "EDMSchedule", "FlowMatchingSchedule",
           "DDPMSchedule", "karras_sigmas", "vp_sigmas", "ve_sigmas", "iddpm_sigmas",
           "iddpm_u", "NCSNSchedule"]
