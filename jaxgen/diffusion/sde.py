"""Score SDEs (Song et al. 2021, "Score-Based Generative Modeling through SDEs") as pure objects.

An SDE object holds only floats; every method is a pure function of arrays, so it composes with
``jit``/``vmap``/``shard_map`` (the objects are hashable and may be closed over or passed as static
arguments). Times ``t`` are scalars or ``[B]`` vectors; ``x`` is ``[B, ...]``.

Forward SDE dx = f(x, t) dt + g(t) dw, here always linear: f = a(t)·x. Its marginal given x(0) is
N(m(t)·x(0), std(t)²·I) (``marginal_prob``), and for t' < t the exact transition is
x(t) = (m(t)/m(t'))·x(t') + √(std(t)² − (m(t)/m(t'))² std(t')²)·z.

Each SDE is *derived* from the EDM schedule of the same process (``SDE.schedule``, ``jaxgen.diffusion
.schedules``), so the two never disagree. With u = ``schedule_time(t)`` the schedule's time at SDE time t
(u = t except VE) and x(t) = s(u)·(y + σ(u)·n) (EDM eq. 4 ↔ score_sde):

    m(t) = s(u),  std(t) = s(u)·σ(u),  a(t) = ṡ(u)/s(u)·u̇,  g(t)² = s(u)²·d(σ²)/du·u̇ = 2s²σ̇σ·u̇.

- ``VPSDE``:    ``VPSchedule(β_d = β_max − β_min, β_min)``: β(t) = β_min + t(β_max − β_min);
                dx = −½β x dt + √β dw; m = exp(−¼t²(β_max−β_min) − ½tβ_min), std = √(1 − m²).
- ``SubVPSDE``: ``SubVPSchedule`` with the same β: same drift, g² = β(t)(1 − exp(−2β_min t −
                (β_max−β_min)t²)); std = 1 − m² (score_sde's sub-VP: the variance's square root is
                *not* taken).
- ``VESDE``:    ``VESchedule`` (σ(u) = √u, s = 1) at u = σ(t)², σ(t) = σ_min(σ_max/σ_min)^t (score_sde's
                geometric time); dx = σ(t)√(2 ln(σ_max/σ_min)) dw; m = 1, std = σ(t).
- ``EDMSDE``:   ``EDMSchedule`` (σ(t) = t, s = 1; Karras et al. 2022, Eq. 6 with β(t) = σ̇/σ):
                dx = √(2t) dw, m = 1, std = t. The σ-space samplers (``sample_euler_maruyama``,
                ``sample_pc``) are the solvers below run on this SDE, so each solver exists once.

``reverse(score_fn, probability_flow)`` gives the reverse-time SDE dx = [f − g²∇log p] dt + g dw̄,
or with ``probability_flow=True`` the ODE dx = [f − ½g²∇log p] dt (diffusion 0).
``sample_reverse_sde`` is the predictor–corrector solver of score_sde (Euler–Maruyama or
reverse-diffusion predictor, Langevin corrector with signal-to-noise ratio r) on an explicit time grid.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from jaxgen.diffusion import schedules as _sched
from jaxgen.diffusion.conversions import bcast
from jaxgen.diffusion.likelihood import gaussian_log_prob
from jaxgen.errors import ConfigError

Array = jax.Array


def _sum_rest(z):
  return jnp.sum(z.reshape(z.shape[0], -1), axis=-1)


def per_sample_noise(key, indices, counter, shape) -> Array:
  """Standard normal noise ``[len(indices), *shape]`` (float32) of draw number ``counter``.

  Sample ``i`` uses ``normal(fold_in(fold_in(key, i), counter))`` with ``i`` its *global* index, so
  its noise never depends on the batch it is drawn in. Every stochastic sampler draws through here.
  """
  counter = jnp.asarray(counter, jnp.int32)

  def one(i):
    k = jax.random.fold_in(jax.random.fold_in(key, i), counter)
    return jax.random.normal(k, shape, jnp.float32)

  return jax.vmap(one)(jnp.asarray(indices))


class SDE(abc.ABC):
  """Base class of the linear forward SDEs: subclasses name their EDM ``schedule`` (and, if their time
  is not the schedule's, ``schedule_time``); marginals, drift and diffusion follow from it."""

  T: float = 1.0
  N: int = 1000

  @property
  @abc.abstractmethod
  def schedule(self):
    """The EDM schedule (s, σ and their derivatives) of this process, in schedule time u."""

  def schedule_time(self, t):
    """(u(t), du/dt): the schedule's time at SDE time t (the identity unless overridden)."""
    t = jnp.asarray(t, jnp.float32)
    return t, jnp.ones_like(t)

  def sde(self, x, t):
    """Drift f(x, t) = (ṡ/s)·u̇·x ``[B, ...]`` and diffusion g(t) = √(s²·d(σ²)/du·u̇) (shape of t)."""
    u, du = self.schedule_time(t)
    sch = self.schedule
    s = sch.s(u)
    return bcast(sch.s_deriv(u) / s * du, x) * x, jnp.sqrt(jnp.square(s) * sch.sigma_sq_deriv(u) * du)

  def coefficients(self, t):
    """(m(t), std(t)) = (s(u), s(u)·σ(u)): the marginal is N(m·x(0), std²·I)."""
    u, _ = self.schedule_time(t)
    s = self.schedule.s(u)
    return s, s * self.schedule.sigma(u)

  def marginal_prob(self, x, t):
    """Mean ``m(t)·x`` and std (shape of t) of p(x(t) | x(0) = x)."""
    m, std = self.coefficients(t)
    return bcast(m, x) * x, std

  def prior_std(self) -> float:
    return float(self.coefficients(jnp.float32(self.T))[1])

  def prior_sampling(self, key, shape):
    """A draw from the prior N(0, std(T)²·I) (score_sde: N(0, I) for VP/sub-VP, N(0, σ_max²) for VE)."""
    return jax.random.normal(key, shape, jnp.float32) * self.prior_std()

  def prior_logp(self, z):
    """log N(z; 0, std(T)² I) per example (summed over all but the batch axis)."""
    return gaussian_log_prob(z, self.prior_std())

  def transition(self, t, t_next):
    """Exact forward transition from ``t_next`` to ``t`` (t_next < t): (a, G) with
    x(t) = a·x(t_next) + G·z, a = m(t)/m(t_next), G² = std(t)² − a²·std(t_next)²."""
    m, s = self.coefficients(t)
    m_n, s_n = self.coefficients(t_next)
    a = m / m_n
    return a, jnp.sqrt(jnp.maximum(jnp.square(s) - jnp.square(a * s_n), 0.0))

  def _grid_discretize(self, x, t):
    """score_sde's default discretization (Euler–Maruyama, dt = T/N): f = f(x,t)·dt, G = g·√dt."""
    dt = self.T / self.N
    drift, diffusion = self.sde(x, t)
    return drift * dt, diffusion * math.sqrt(dt)

  def discretize(self, x, t, t_next=None):
    """x(t) = x(t_prev) + f + G·z, evaluated at the later time ``t``.

    Without ``t_next`` this is score_sde's fixed-grid rule (N uniform steps on [0, T]: DDPM's
    β_i for VP, NCSN's σ ladder for VE, Euler–Maruyama otherwise). With ``t_next`` (< t, any grid)
    it is the exact transition from ``t_next`` to ``t``: f = (a − 1)·x, G as in ``transition``.
    """
    if t_next is None:
      return self._grid_discretize(x, t)
    a, g = self.transition(t, t_next)
    return (bcast(a, x) - 1.0) * x, g

  def langevin_alpha(self, t):
    """α of score_sde's Langevin corrector step ε = 2α(r‖z‖/‖s‖)²: 1 unless overridden."""
    return jnp.ones_like(jnp.asarray(t, jnp.float32))

  def reverse(self, score_fn: Callable, probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE (or, with ``probability_flow``, the probability-flow ODE) of this SDE."""
    return ReverseSDE(self, score_fn, bool(probability_flow))


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """dx = [f − c·g²·∇log p] dt + (1−pf)·g dw̄ with c = ½ for the probability-flow ODE, else 1.

  ``score`` may be passed to ``sde``/``discretize`` when it is already known (saves an evaluation).
  """

  forward: SDE
  score_fn: Callable
  probability_flow: bool = False

  @property
  def T(self):
    return self.forward.T

  @property
  def N(self):
    return self.forward.N

  def _c(self):
    return 0.5 if self.probability_flow else 1.0

  def sde(self, x, t, score=None):
    drift, diffusion = self.forward.sde(x, t)
    score = self.score_fn(x, t) if score is None else score
    drift = drift - bcast(jnp.square(diffusion), x) * score * self._c()
    diffusion = jnp.zeros_like(diffusion) if self.probability_flow else diffusion
    return drift, diffusion

  def discretize(self, x, t, t_next=None, score=None):
    """Reverse-diffusion rule: x(t_next) ≈ x − rev_f + rev_G·z, rev_f = f − c·G²·s."""
    f, g = self.forward.discretize(x, t, t_next)
    score = self.score_fn(x, t) if score is None else score
    rev_f = f - bcast(jnp.square(g), x) * score * self._c()
    rev_g = jnp.zeros_like(g) if self.probability_flow else g
    return rev_f, rev_g


@dataclasses.dataclass(frozen=True)
class VPSDE(SDE):
  """Variance-preserving SDE (DDPM's continuous limit); score_sde defaults β ∈ [0.1, 20], N = 1000."""

  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000
  T: float = 1.0

  @property
  def schedule(self):
    return _sched.VPSchedule(beta_d=self.beta_max - self.beta_min, beta_min=self.beta_min)

  def beta(self, t):
    return self.beta_min + jnp.asarray(t, jnp.float32) * (self.beta_max - self.beta_min)

  def prior_std(self):
    return 1.0

  def discrete_betas(self):
    """DDPM's β_i = linspace(β_min/N, β_max/N, N) (1e-4 … 0.02 for the defaults)."""
    return jnp.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N, dtype=jnp.float32)

  def _timestep(self, t):
    return (jnp.asarray(t, jnp.float32) * (self.N - 1) / self.T).astype(jnp.int32)

  def _grid_discretize(self, x, t):
    """DDPM discretization x_i = √(1−β_i) x_{i−1} + √β_i z (score_sde ``VPSDE.discretize``)."""
    beta = self.discrete_betas()[self._timestep(t)]
    return (bcast(jnp.sqrt(1.0 - beta), x) - 1.0) * x, jnp.sqrt(beta)

  def langevin_alpha(self, t):
    return 1.0 - self.discrete_betas()[self._timestep(t)]


@dataclasses.dataclass(frozen=True)
class SubVPSDE(VPSDE):
  """Sub-VP SDE: g² = β(t)(1 − e^{−2∫₀ᵗβ}); std(t) = 1 − e^{−∫₀ᵗβ} = 1 − m(t)² (no square root).

  Its ``discretize`` without ``t_next`` is Euler–Maruyama (as in score_sde); the Langevin corrector
  uses the VP α_i = 1 − β_i (score_sde's ``subVPSDE`` has no α table of its own).
  """

  @property
  def schedule(self):
    return _sched.SubVPSchedule(beta_d=self.beta_max - self.beta_min, beta_min=self.beta_min)

  def prior_std(self):
    return 1.0

  def _grid_discretize(self, x, t):
    return SDE._grid_discretize(self, x, t)


@dataclasses.dataclass(frozen=True)
class VESDE(SDE):
  """Variance-exploding SDE (SMLD/NCSN's continuous limit); score_sde defaults σ ∈ [0.01, 50]."""

  sigma_min: float = 0.01
  sigma_max: float = 50.0
  N: int = 1000
  T: float = 1.0

  @property
  def schedule(self):
    return _sched.VESchedule(sigma_min=self.sigma_min, sigma_max=self.sigma_max)

  def sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t, jnp.float32)

  def schedule_time(self, t):
    """u = σ(t)² (VESchedule's time), du/dt = 2 ln(σ_max/σ_min)·u."""
    u = jnp.square(self.sigma(t))
    return u, 2.0 * (math.log(self.sigma_max) - math.log(self.sigma_min)) * u

  def prior_std(self):
    return float(self.sigma_max)

  def discrete_sigmas(self):
    return jnp.exp(jnp.linspace(math.log(self.sigma_min), math.log(self.sigma_max), self.N,
                                dtype=jnp.float32))

  def _grid_discretize(self, x, t):
    """NCSN discretization x_i = x_{i−1} + √(σ_i² − σ_{i−1}²) z, σ_{−1} = 0 (score_sde)."""
    ts = (jnp.asarray(t, jnp.float32) * (self.N - 1) / self.T).astype(jnp.int32)
    sig = self.discrete_sigmas()
    adjacent = jnp.where(ts == 0, 0.0, sig[jnp.maximum(ts - 1, 0)])
    return jnp.zeros_like(x), jnp.sqrt(jnp.square(sig[ts]) - jnp.square(adjacent))


@dataclasses.dataclass(frozen=True)
class EDMSDE(SDE):
  """VE SDE in EDM's time t = σ: dx = √(2t) dw, marginal N(x(0), t²I), prior N(0, σ_max²I)."""

  sigma_max: float = 80.0
  N: int = 1000

  @property
  def T(self):
    return self.sigma_max

  @property
  def schedule(self):
    return _sched.EDMSchedule(sigma_max=self.sigma_max)

  def prior_std(self):
    return float(self.sigma_max)


_PREDICTORS = ("euler_maruyama", "reverse_diffusion", "none")
_CORRECTORS = ("langevin", "ald", "none", None)


def langevin_correct(score, x, z, target_snr, alpha, norm="sample"):
  """One Langevin corrector step of score_sde: ε = 2α(r‖z‖/‖s‖)², x ← x + ε s + √(2ε) z.

  ``norm='sample'``: ‖z‖, ‖s‖ of each sample, so a sample never depends on its batch; in high
  dimension they concentrate and this equals score_sde. ``norm='batch'``: score_sde's batch means
  of the norms (exact reproduction; needed in low dimension, where a per-sample ‖s‖ that vanishes
  near a mode makes the step state-dependent and biases the chain). Returns (x, x_mean).
  """
  s_norm = jnp.sqrt(_sum_rest(jnp.square(score)))
  z_norm = jnp.sqrt(_sum_rest(jnp.square(z)))
  if norm == "batch":
    s_norm = jnp.broadcast_to(jnp.mean(s_norm), s_norm.shape)
    z_norm = jnp.broadcast_to(jnp.mean(z_norm), z_norm.shape)
  elif norm != "sample":
    raise ConfigError(f"norm must be 'sample' or 'batch', got {norm!r}.")
  ratio = target_snr * z_norm / jnp.where(s_norm > 0, s_norm, 1.0)
  eps = jnp.where(s_norm > 0, 2.0 * alpha * jnp.square(ratio), 0.0)
  x_mean = x + bcast(eps, x) * score
  return x_mean + bcast(jnp.sqrt(2.0 * eps), x) * z, x_mean


def ald_correct(score, x, z, target_snr, alpha, std):
  """score_sde's ``ald`` corrector (NCSN's annealed Langevin step as a corrector):
  ε = 2α(r·std(t))², x ← x + ε s + √(2ε) z. The step depends only on t, never on the state or the
  batch. Returns (x, x_mean)."""
  eps = 2.0 * alpha * jnp.square(target_snr * std)
  x_mean = x + bcast(eps, x) * score
  return x_mean + bcast(jnp.sqrt(2.0 * eps), x) * z, x_mean


def sample_reverse_sde(sde: SDE, score_fn: Callable, x, ts, key=None, *,
                       predictor: str = "reverse_diffusion", corrector: str | None = None,
                       snr: float = 0.16, n_corrector_steps: int = 1,
                       probability_flow: bool = False, denoise: bool = True, indices=None,
                       corrector_norm: str = "sample", return_nfe: bool = False,
                       return_trajectory: bool = False):
  """Predictor–corrector sampling of ``sde.reverse(score_fn)`` on the time grid ``ts`` (decreasing).

  For each i < N = len(ts) − 1: ``n_corrector_steps`` corrector steps at t_i (``'langevin'``:
  ``langevin_correct`` with ``corrector_norm``; ``'ald'``: ``ald_correct``), then one predictor step
  t_i → t_{i+1}:
  - ``'euler_maruyama'``: x ← x + f̄·Δt + ḡ√|Δt|·z with (f̄, ḡ) the reverse SDE at t_i, Δt = t_{i+1}−t_i;
  - ``'reverse_diffusion'``: x ← x − f + G²s + G z with (f, G) the exact forward transition;
  - ``'none'``: corrector only.
  A step that reaches std(t_{i+1}) = 0 (the data end, e.g. σ = 0) is Tweedie's posterior mean
  x ← m(t_{i+1})·(x + std(t_i)²·s)/m(t_i) and adds no noise, so the last step is exact.
  ``denoise`` returns the last noise-free mean (score_sde's noise removal). The score is evaluated
  once per predictor step: NFE = N·(n_corrector_steps + [predictor != 'none']).
  x is float32 inside; the result has x's dtype. The noise of sample i comes from
  ``fold_in(key, indices[i])`` (``per_sample_noise``), ``indices`` defaulting to arange(B).
  Returns x0, with ``return_trajectory`` also the float32 states at every t_i ``[N + 1, B, ...]`` (the
  first is x, the last the returned sample, i.e. after the noise removal), with ``return_nfe`` also the
  NFE: ``x0``, ``(x0, nfe)``, ``(x0, trajectory)`` or ``(x0, trajectory, nfe)``.
  """
  if predictor not in _PREDICTORS:
    raise ConfigError(f"Unknown predictor {predictor!r}: use one of {_PREDICTORS}.")
  if corrector not in _CORRECTORS:
    raise ConfigError(f"Unknown corrector {corrector!r}: use 'langevin', 'ald' or None.")
  use_corr = corrector in ("langevin", "ald") and n_corrector_steps > 0
  stochastic = use_corr or (predictor != "none" and not probability_flow)
  if stochastic and key is None:
    raise ConfigError("This SDE sampler draws noise: pass key=jax.random.key(seed).")
  ts = jnp.asarray(ts, jnp.float32)
  if ts.ndim != 1 or ts.shape[0] < 2:
    raise ConfigError(f"ts must be a 1-D time grid with at least 2 entries, got shape {ts.shape}.")
  dtype = x.dtype
  x = x.astype(jnp.float32)
  batch = x.shape[0]
  indices = jnp.arange(batch) if indices is None else jnp.asarray(indices)
  if indices.shape != (batch,):
    raise ConfigError(f"indices must have shape ({batch},) (one global index per sample), got "
                      f"{indices.shape}.")
  n_corr = int(n_corrector_steps) if use_corr else 0
  draws = n_corr + 1
  rsde = sde.reverse(score_fn, probability_flow)

  def noise(counter):
    return per_sample_noise(key, indices, counter, x.shape[1:])

  def full(t):
    return jnp.full((batch,), t, jnp.float32)

  def step(carry, inp):
    x, x_mean = carry
    i, t, t_next = inp
    tb, tnb = full(t), full(t_next)
    if n_corr:
      alpha = sde.langevin_alpha(tb)

      def corr(j, xx):
        z = noise(i * draws + j)
        if corrector == "ald":
          return ald_correct(score_fn(xx[0], tb), xx[0], z, snr, alpha, sde.coefficients(tb)[1])
        return langevin_correct(score_fn(xx[0], tb), xx[0], z, snr, alpha, corrector_norm)

      x, x_mean = jax.lax.fori_loop(0, n_corr, corr, (x, x))
    if predictor != "none":
      score = score_fn(x, tb)
      z = noise(i * draws + n_corr) if not probability_flow else None
      if predictor == "euler_maruyama":
        drift, diffusion = rsde.sde(x, tb, score=score)
        dt = t_next - t
        mean = x + drift * dt
        new = mean if z is None else mean + bcast(diffusion * jnp.sqrt(jnp.abs(dt)), x) * z
      else:
        rev_f, rev_g = rsde.discretize(x, tb, tnb, score=score)
        mean = x - rev_f
        new = mean if z is None else mean + bcast(rev_g, x) * z
      m, s = sde.coefficients(t)
      m_n, s_n = sde.coefficients(t_next)
      tweedie = (m_n / m) * (x + jnp.square(s) * score)
      at_data = s_n == 0
      x_mean = jnp.where(at_data, tweedie, mean)
      x = jnp.where(at_data, tweedie, new)
    return (x, x_mean), (x if return_trajectory else None)

  n = ts.shape[0] - 1
  x_start = x
  (x, x_mean), path = jax.lax.scan(step, (x, x), (jnp.arange(n, dtype=jnp.int32), ts[:-1], ts[1:]))
  out = x_mean if denoise else x
  result = (out.astype(dtype),)
  if return_trajectory:
    result += (jnp.concatenate([x_start[None], path[:-1], out[None]]),)
  if return_nfe:
    result += (jnp.int32(n * (n_corr + (predictor != "none"))),)
  return result if len(result) > 1 else result[0]
