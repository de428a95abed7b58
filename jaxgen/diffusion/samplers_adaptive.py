"""DPM-Solver (Lu et al. 2022) in EDM's σ-space: the fast step schedule and the adaptive step size method.

Both integrate the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3) in λ = −ln σ, where the
noise prediction is ε(x, λ) = (x − D(x; σ))/σ and the exact solution is
x_t = x_s − σ_t ∫_s^t e^{λ} ε(x_λ, λ) dλ (DPM-Solver Eq. 3.4 with α = 1, σ-space as k-diffusion's
``DPMSolver``). With h = t − s (in λ) and φ(h) = e^h − 1, the single-step solvers are
(DPM-Solver Algorithms 1–2, the ``DPM-Solver-k`` of §3.3):

- order 1: x_t = x_s − σ_t φ(h) ε_s (1 NFE; DDIM);
- order 2: u = x_s − σ_{s1} φ(r₁h) ε_s with s1 = s + r₁h,
  x_t = x_s − σ_t φ(h) ε_s − σ_t/(2r₁) φ(h)(ε_{s1} − ε_s) (2 NFE; r₁ = 1/2);
- order 3 (r₁ = 1/3, r₂ = 2/3): u₁ as above, u₂ = x_s − σ_{s2} φ(r₂h) ε_s − σ_{s2} (r₂/r₁)(φ(r₂h)/(r₂h) − 1)
  (ε_{s1} − ε_s), x_t = x_s − σ_t φ(h) ε_s − σ_t/r₂ (φ(h)/h − 1)(ε_{s2} − ε_s) (3 NFE).

Samplers (the shared signature of ``jaxgen.diffusion.samplers``, docs/design.md §2.2):

- ``sample_dpm_fast``: DPM-Solver-fast (DPM-Solver §3.4, "fast" step schedule): with
  m = ⌊nfe/3⌋ + 1 steps uniform in λ from σ_max = ``sigmas[0]`` to σ_min = the last positive entry of
  ``sigmas``, orders [3]·(m − 2) + [2, 1] if 3 | nfe, else [3]·(m − 1) + [nfe mod 3], so the solver
  uses exactly ``nfe`` denoiser calls. Global order 3 (DPM-Solver-3); the order-1/2 tail steps lie
  at the smallest σ, where ε is small, and on the Gaussian ODE (80 → 0.002) the measured order is
  3.2–3.4 for every nfe mod 3 (m = 8 → 16 → 32). The interior entries of ``sigmas`` are ignored: only its ends matter. If
  ``sigmas`` ends in 0 the exact final step x ← D(x; σ_min) follows (NFE nfe + 1). One ``lax.scan``
  over the order-3 steps plus the static tail, so compile time does not grow with nfe.
- ``sample_dpm_adaptive``: DPM-Solver-12 / -23 with adaptive step size (DPM-Solver §3.4 and
  Appendix C): each step computes an order-``order`` solution and the embedded order-(order − 1)
  solution (order 3: DPM-Solver-2 with r₁ = 1/3 sharing ε_{s1}; order 2: DPM-Solver-1) from the same
  ``order`` denoiser calls; the error is the RMS over the sample of (x_low − x_high)/δ with
  δ = max(atol, rtol·max(|x_low|, |x_prev|)), and a PID controller (k-diffusion's
  ``PIDStepSizeController``; defaults = the integral controller h ← h·(1/err)^{1/order}, limited by
  1 + atan(f − 1)) accepts the step when the factor ≥ ``accept_safety``. Every sample has its own
  step sizes (all carried as ``[B]`` in one ``lax.while_loop``, the denoiser called on the whole batch
  with per-sample σ), so a sample never depends on its batch; the loop runs until the slowest sample
  is done. NFE = ``order`` per attempted step (+1 for the final step to 0), returned per sample ``[B]``.

Stochastic variants (``eta > 0``): each step goes to σ_down of ``ancestral_step(σ_s, σ_t, η)`` (clipped
to σ_min) and adds √(σ_t² − σ_down²)·s_noise·z, z from ``per_sample_noise`` (draw number = step index).
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

from jaxgen.diffusion import ode
from jaxgen.diffusion.conversions import bcast
from jaxgen.diffusion.samplers import _grid, _indices, _need_key, _out, _wrap, ancestral_step
from jaxgen.diffusion.sde import per_sample_noise
from jaxgen.errors import ConfigError

Array = jax.Array


# ----------------------------------------------------------------------------------------------
# DPM-Solver-1/2/3 single steps in λ = −ln σ (scalar or per-sample [B] λ).

def _sigma(lam):
  return jnp.exp(-lam)


def _phi1(h):
  """φ(h)/h − 1 = (e^h − 1)/h − 1, 0 at h = 0 (no 0/0)."""
  safe = jnp.where(h != 0, h, 1.0)
  return jnp.where(h != 0, jnp.expm1(safe) / safe - 1.0, 0.0)


class _Eps:
  """ε(x, λ) = (x − D(x; σ))/σ with σ = e^{−λ}, λ a scalar or [B]."""

  def __init__(self, d):
    self.d = d

  def __call__(self, x, lam):
    s = _sigma(lam)
    return (x - self.d(x, s)) / bcast(s, x)


def _dpm_steps(eps_fn, x, s, t, eps_s, order, low_too=False):
  """The order-``order`` DPM-Solver step s → t from ε_s = ε(x, s); with ``low_too`` also the embedded
  lower-order solution (order 2: DPM-Solver-1, order 3: DPM-Solver-2 with r₁ = 1/3)."""
  b = lambda v: bcast(v, x)  # noqa: E731
  h = t - s
  sig_t = _sigma(t)
  base = x - b(sig_t * jnp.expm1(h)) * eps_s
  if order == 1:
    return base
  if order == 2:
    r1 = 0.5
    s1 = s + r1 * h
    u1 = x - b(_sigma(s1) * jnp.expm1(r1 * h)) * eps_s
    e1 = eps_fn(u1, s1)
    high = base - b(sig_t / (2 * r1) * jnp.expm1(h)) * (e1 - eps_s)
    return (base, high) if low_too else high
  r1, r2 = 1.0 / 3.0, 2.0 / 3.0
  s1, s2 = s + r1 * h, s + r2 * h
  u1 = x - b(_sigma(s1) * jnp.expm1(r1 * h)) * eps_s
  e1 = eps_fn(u1, s1)
  u2 = (x - b(_sigma(s2) * jnp.expm1(r2 * h)) * eps_s
        - b(_sigma(s2) * (r2 / r1) * _phi1(r2 * h)) * (e1 - eps_s))
  e2 = eps_fn(u2, s2)
  high = base - b(sig_t / r2 * _phi1(h)) * (e2 - eps_s)
  if not low_too:
    return high
  low = base - b(sig_t / (2 * r1) * jnp.expm1(h)) * (e1 - eps_s)
  return low, high


def _ancestral_target(s, t, t_end, eta):
  """(λ of σ_down clipped to t_end, σ_up) for the stochastic variants (k-diffusion's DPMSolver)."""
  _, down = ancestral_step(_sigma(s), _sigma(t), eta)
  t_ = jnp.minimum(t_end, -jnp.log(jnp.maximum(down, 1e-30)))
  up = jnp.sqrt(jnp.maximum(jnp.square(_sigma(t)) - jnp.square(_sigma(t_)), 0.0))
  return t_, up


def _ends(sigmas):
  """(σ_max, σ_min = last positive entry, whether the grid ends in 0)."""
  ends_at_zero = sigmas[-1] <= 0
  return sigmas[0], jnp.where(ends_at_zero, sigmas[-2], sigmas[-1]), ends_at_zero


def _is_zero(v):
  return isinstance(v, (int, float)) and v == 0


def fast_plan(nfe: int):
  """DPM-Solver-fast's plan for ``nfe`` solver evaluations: (m steps uniform in λ, their orders)."""
  try:
    nfe = operator.index(nfe)
  except TypeError:
    nfe = 0
  if nfe < 1:
    raise ConfigError(f"sample_dpm_fast: nfe must be an int ≥ 1 (the solver's denoiser calls), got {nfe!r}.")
  m = nfe // 3 + 1
  orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
  return len(orders), orders


# ----------------------------------------------------------------------------------------------
# DPM-Solver-fast.

def sample_dpm_fast(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                    return_trajectory: bool = False, nfe: int | None = None, eta: float = 0.0,
                    s_noise: float = 1.0):
  """DPM-Solver-fast (Lu et al. 2022 §3.4; k-diffusion ``sample_dpm_fast``) from ``sigmas[0]`` to the
  last positive σ of ``sigmas`` (interior entries ignored), then x ← D(x; σ_min) if ``sigmas`` ends in 0.

  ``nfe``: the solver's denoiser calls between σ_max and σ_min (default len(sigmas) − 2 when the grid
  ends in 0, else len(sigmas) − 1, so the total NFE equals the grid's number of steps); the total NFE
  returned is nfe + 1 with the final step to 0. Order 3 (nfe mod 3 = 2) on the smooth part.
  ``eta > 0`` adds ancestral noise (needs ``key``). ``return_trajectory``: the state at the plan's λ
  points, ``[M + 2, B, ...]`` for the plan's M steps: x, the state after each step, and the returned
  sample (equal to the previous entry when ``sigmas`` does not end in 0).
  """
  sigmas = _grid(sigmas)
  if nfe is None:
    n = sigmas.shape[0] - 1
    try:
      ends0 = bool(sigmas[-1] <= 0)
    except jax.errors.ConcretizationTypeError:
      ends0 = True  # traced grid: assume the usual final 0
    nfe = max(1, n - 1 if ends0 else n)
  m, orders = fast_plan(nfe)
  n3 = sum(1 for o in orders if o == 3)
  tail = orders[n3:]
  stochastic = not _is_zero(eta)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  eps_fn = _Eps(d)
  if stochastic:
    _need_key(key, "sample_dpm_fast")
    idx = _indices(indices, batch)
  sigma_max, sigma_min, ends_at_zero = _ends(sigmas)
  t_start, t_end = -jnp.log(sigma_max), -jnp.log(sigma_min)
  frac = jnp.arange(m + 1, dtype=jnp.float32) / m
  lam = jnp.where(jnp.arange(m + 1) == m, t_end, t_start + (t_end - t_start) * frac)

  def one(x, i, s, t, order):
    if stochastic:
      t_, up = _ancestral_target(s, t, t_end, eta)
    else:
      t_ = t
    x = _dpm_steps(eps_fn, x, s, t_, eps_fn(x, s), order)
    if stochastic:
      x = x + (up * s_noise) * per_sample_noise(key, idx, i, x.shape[1:])
    return x

  def step(x, inp):
    i, s, t = inp
    x = one(x, i, s, t, 3)
    return x, (x if return_trajectory else None)

  x0 = x.astype(jnp.float32)
  steps = jnp.arange(m, dtype=jnp.int32)
  x, path = jax.lax.scan(step, x0, (steps[:n3], lam[:n3], lam[1:n3 + 1]))
  states = [path] if return_trajectory else []
  for j, order in enumerate(tail):
    k = n3 + j
    x = one(x, steps[k], lam[k], lam[k + 1], order)
    states.append(x[None])
  x = jax.lax.cond(ends_at_zero, lambda y: d(y, sigma_min), lambda y: y, x)
  total = sum(orders) + ends_at_zero.astype(jnp.int32)
  if return_trajectory:
    path = jnp.concatenate(states + [x[None]])
    return _out(x, dtype, total, return_nfe, x0, path)
  return _out(x, dtype, total, return_nfe)


# ----------------------------------------------------------------------------------------------
# DPM-Solver with adaptive step size.

def sample_dpm_adaptive(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                        return_trajectory: bool = False, order: int = 3, rtol: float = 0.05,
                        atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0,
                        icoeff: float = 1.0, dcoeff: float = 0.0, accept_safety: float = 0.81,
                        eta: float = 0.0, s_noise: float = 1.0, max_steps: int = 500):
  """DPM-Solver-23 (``order=3``) or -12 (``order=2``) with adaptive step size (Lu et al. 2022 §3.4,
  Appendix C; k-diffusion ``sample_dpm_adaptive`` with its defaults) from ``sigmas[0]`` to the last
  positive σ of ``sigmas`` (interior entries ignored), then x ← D(x; σ_min) if ``sigmas`` ends in 0.

  Per-sample step sizes in one ``lax.while_loop`` (a sample never depends on its batch); ``h_init`` is
  the first step in λ = −ln σ; at most ``max_steps`` attempted steps per sample (a sample that runs out
  stops where it is and, if the grid ends in 0, is denoised there). ``return_nfe`` gives the per-sample
  NFE ``[B]`` (``order`` per attempted step, accepted or not, + 1 for the final step to 0).
  ``return_trajectory`` is unsupported (the number of steps is dynamic).
  """
  if return_trajectory:
    raise ConfigError("sample_dpm_adaptive: return_trajectory is unsupported (dynamic step count); "
                      "use sample_dpm_fast or sample_pf_ode for a trajectory.")
  if order not in (2, 3):
    raise ConfigError(f"sample_dpm_adaptive: order must be 2 or 3, got {order!r}.")
  if not (rtol > 0 and atol >= 0 and h_init > 0 and max_steps >= 1 and 0 < accept_safety <= 1):
    raise ConfigError("sample_dpm_adaptive: need rtol > 0, atol ≥ 0, h_init > 0, max_steps ≥ 1 and "
                      f"0 < accept_safety ≤ 1, got {rtol}, {atol}, {h_init}, {max_steps}, {accept_safety}.")
  sigmas = _grid(sigmas)
  stochastic = not _is_zero(eta)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)
  eps_fn = _Eps(d)
  if stochastic:
    _need_key(key, "sample_dpm_adaptive")
    idx = _indices(indices, batch)
  sigma_max, sigma_min, ends_at_zero = _ends(sigmas)
  t_start, t_end = -jnp.log(sigma_max), -jnp.log(sigma_min)
  ctrl_order = 1.5 if stochastic else float(order)
  b1 = (pcoeff + icoeff + dcoeff) / ctrl_order
  b2 = -(pcoeff + 2 * dcoeff) / ctrl_order
  b3 = dcoeff / ctrl_order
  axes = tuple(range(1, x.ndim))

  def running(s):
    return s < t_end - 1e-5

  def cond(c):
    return jnp.any(running(c["s"])) & (c["it"] < max_steps)

  def body(c):
    x, s, h = c["x"], c["s"], c["h"]
    active = running(s)
    t = jnp.where(active, jnp.minimum(t_end, s + h), s + 1.0)  # finished samples: a harmless dummy step
    if stochastic:
      t_, up = _ancestral_target(s, t, jnp.where(active, t_end, t), eta)
    else:
      t_ = t
    low, high = _dpm_steps(eps_fn, x, s, t_, eps_fn(x, s), order, low_too=True)
    delta = jnp.maximum(atol, rtol * jnp.maximum(jnp.abs(low), jnp.abs(c["x_prev"])))
    err = jnp.sqrt(jnp.mean(jnp.square((low - high) / delta), axis=axes))
    inv = 1.0 / (err + 1e-8)
    errs = jnp.where(c["first"][:, None], inv[:, None], c["errs"]).at[:, 0].set(inv)
    factor = errs[:, 0] ** b1 * errs[:, 1] ** b2 * errs[:, 2] ** b3
    factor = 1.0 + jnp.arctan(factor - 1.0)
    accept = (factor >= accept_safety) & active
    if stochastic:
      high = high + bcast(up * s_noise, x) * jax.vmap(
          lambda i: per_sample_noise(key, i[None], c["it"], x.shape[1:])[0])(idx)
    acc = bcast(accept, x)
    shifted = jnp.stack([errs[:, 0], errs[:, 0], errs[:, 1]], axis=1)
    return dict(
        x=jnp.where(acc, high, x), x_prev=jnp.where(acc, low, c["x_prev"]),
        s=jnp.where(accept, t, s), h=jnp.where(active, h * factor, h),
        errs=jnp.where(accept[:, None], shifted, jnp.where(active[:, None], errs, c["errs"])),
        first=c["first"] & ~active, nfe=c["nfe"] + order * active.astype(jnp.int32), it=c["it"] + 1)

  x0 = x.astype(jnp.float32)
  init = dict(x=x0, x_prev=x0, s=jnp.full((batch,), t_start, jnp.float32),
              h=jnp.full((batch,), abs(h_init), jnp.float32), errs=jnp.ones((batch, 3), jnp.float32),
              first=jnp.ones((batch,), bool), nfe=jnp.zeros((batch,), jnp.int32), it=jnp.int32(0))
  # Under shard_map the per-sample step sizes and times vary by shard like x: mark the carry so.
  init = ode._vary_like(init, x0)  # pylint: disable=protected-access
  c = jax.lax.while_loop(cond, body, init)
  x, s = c["x"], c["s"]
  sigma_last = jnp.where(running(s), _sigma(s), sigma_min)
  x = jax.lax.cond(ends_at_zero, lambda y: d(y, sigma_last), lambda y: y, x)
  return _out(x, dtype, c["nfe"] + ends_at_zero.astype(jnp.int32), return_nfe)
