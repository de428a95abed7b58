"""Few-step multistep ODE solvers (5–10 NFE) in EDM's σ-space, the contract of ``samplers.py``.

All three solve the PF ODE dx/dσ = (x − D(x; σ))/σ (in λ = −ln σ: dx/dλ = D − x) with one denoiser
call per step (NFE = N = len(sigmas) − 1), keep the previous denoiser outputs in the ``lax.scan`` state
(static-size buffers; unused slots are zeros with zero coefficients), use lower orders on the first
steps, and take the exact step x ← D(x; σ_{N−1}) to a final σ = 0. Deterministic: ``key`` and
``indices`` are accepted and ignored. The per-step coefficients depend only on the grid and are
computed before the scan (float64 numpy for a concrete grid, float32 jnp for a grid traced under jit).

- ``sample_unipc`` — UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for
  Fast Sampling of Diffusion Models", UniP-p / UniC-p with data prediction x₀ = D, B(h) = h ('bh1') or
  e^h − 1 ('bh2'); the authors' ``multistep_uni_pc_bh_update``). UniP-p predictor (order p) + UniC
  corrector (raises the order to p + 1) that reuses the next step's denoiser output, so no extra NFE;
  no corrector after the last step. Order p + 1 for ``order=p`` (p = 1, 2, 3); with
  ``lower_order_final`` (default, as the authors') step i uses order min(p, N − i), so the last step is
  first order: use ``False`` on a grid ending at σ_min > 0 when accuracy there matters.
- ``sample_ipndm`` — improved PNDM (Zhang & Chen 2023, the DEIS paper's iPNDM; the authors'
  ``get_sampler_ipndm``): fixed Adams–Bashforth coefficients times the DDIM step (σ' − σ) on
  ε̂ = d = (x − D)/σ: (1), (3/2, −1/2), (23, −16, 5)/12, (55, −59, 37, −9)/24, lower orders on the first
  steps. Order ``order`` (≤ 4) on a uniform σ grid; on non-uniform grids (Karras ρ = 7) the fixed
  coefficients make it order 2 asymptotically (measured), yet it is among the most accurate at
  5–10 NFE.
- ``sample_deis`` — DEIS multistep (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with
  Exponential Integrator"): ε̂ = (x − D)/σ interpolated by the Lagrange polynomial through the last
  ``order`` steps and integrated exactly over the step, x' = x + Σ_j C_ij ε̂_{i−j}, C_ij = ∫_σ^σ' ℓ_j dσ
  (EDM coordinates x/√ᾱ: the ε-form exponential integrator with unit kernel in σ).
  ``poly='log_sigma'`` (default): polynomial in u = ln σ, C = ∫ e^u ℓ_j(u) du — the exponential
  kernel in log-time (as diffusers' DEIS 'logrho'); ``poly='sigma'``: polynomial in σ = the paper's
  ρAB-DEIS (the authors' ``get_sampler_rho_ab``), i.e. variable-step Adams–Bashforth, of which iPNDM
  is the fixed-coefficient version. C by 8-point Gauss–Legendre (numpy), in float64 on the host for a
  concrete grid (exact in σ; ~1e-12 relative in ln σ). Order ``order`` (1–4; measured 3 and 4 for
  'log_sigma'). The first step is DDIM (= Euler = DPM-Solver-1).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion.samplers import _emit, _grid, _multistep_loop, _out, _steps, _wrap
from jaxgen.errors import ConfigError

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]


def _concrete(sigmas):
  """The grid as float64 numpy if it is concrete, else None (traced under jit)."""
  try:
    return np.asarray(sigmas, np.float64)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return None


def _check_order(order, lo, hi, name):
  if not isinstance(order, (int, np.integer)) or not lo <= order <= hi:
    raise ConfigError(f"{name}: order must be an integer in {lo}..{hi}, got {order!r}.")
  return int(order)


# ----------------------------------------------------------------------------------------------
# UniPC.

def _phi(xp, z, k):
  """φ_k(z) = Σ_{j≥0} z^j/(j + k)! (φ_0 = e^z, φ_{k+1} = (φ_k − 1/k!)/z): a 20-term series for |z| < 1
  (the recursion loses ~k digits to cancellation there, fatal in float32), the recursion elsewhere."""
  small = xp.abs(z) < 1.0
  zs = xp.where(small, z, 0.0)
  series, term = 0.0, 1.0 / math.factorial(k)
  for j in range(20):
    series = series + term
    term = term * zs / (j + k + 1)
  zr = xp.where(small, 1.0, z)
  rec = xp.expm1(zr) / zr
  for m in range(2, k + 1):
    rec = (rec - 1.0 / math.factorial(m - 1)) / zr
  return xp.where(small, series, rec)


def _unipc_coefs(xp, sig, order, variant, lower_order_final):
  """Per-step coefficients on the history h = [D_i, D_{i−1}, …, D_{i−order}] (``order + 1`` slots).

  Step i (σ_i → σ_{i+1}) first corrects the state x_i predicted by step i − 1 with D_i = D(x_i; σ_i):
  x_i ← x_i + Σ_k corr[i, k] h_k, then predicts x_{i+1} = ratio_i·x_i + Σ_k pred[i, k] h_k.
  UniPC's data-prediction update (α = 1, λ = −ln σ, h = λ_{i+1} − λ_i, r_k = (λ_{i−k} − λ_i)/h,
  D1_k = (D_{i−k} − D_i)/r_k): x_{i+1} = (σ'/σ)x + (1 − σ'/σ)D_i − B(h)Σ_k ρ_k D1_k with ρ^p from the
  order conditions R ρ = b (ρ^p = 1/2 for p = 2 and ρ^c = 1/2 for the order-1 corrector, as UniPC).
  """
  f = xp.float64 if xp is np else jnp.float32
  sig = xp.asarray(sig, f)
  n = sig.shape[0] - 1
  i = xp.arange(n)
  s, s_next = sig[:-1], sig[1:]
  last = s_next <= 0
  lam = -xp.log(xp.where(sig > 0, sig, 1.0))
  h = xp.where(last, 1.0, lam[1:] - lam[:-1])
  hh = -h
  h_phi_1 = xp.expm1(hh)
  b_h = hh if variant == "bh1" else h_phi_1
  ratio = xp.where(last, 0.0, s_next / s)
  # Predictor order of each step: warm-up i + 1, UniPC's lower_order_final N − i; 1 on the step to 0.
  p = xp.minimum(order, i + 1)
  if lower_order_final:
    p = xp.minimum(p, n - i)
  p = xp.where(last, 1, p)
  # r_k for k = 1..order−1 (dummy −k where the history does not reach).
  rks = []
  for k in range(1, order):
    valid = i - k >= 0
    lk = lam[xp.maximum(i - k, 0)]
    rks.append(xp.where(valid & ~last, (lk - lam[:-1]) / h, -float(k)))
  # b_m = m!·hh·φ_{m+1}(hh)/B(h), m = 1..order (UniPC's recursion; φ by series where |hh| < 1).
  bs, fact = [], 1.0
  for m in range(1, order + 1):
    bs.append(fact * hh * _phi(xp, hh, m + 1) / b_h)
    fact *= m + 1
  zero = xp.zeros((n,), f)
  rho_p = [zero] * max(order - 1, 0)    # predictor weights on D1_1..D1_{order−1}
  rho_c = [zero] * order                # corrector weights on D1_1..D1_{q−1} (slots), new point last
  rho_c_new = zero
  for q in range(1, order + 1):
    sel = p == q
    if q == 1:
      pq, cq, cnew = [], [], xp.full((n,), 0.5, f)
    else:
      r = xp.stack(rks[:q - 1] + [xp.ones((n,), f)], -1)                  # [n, q]
      big_r = xp.stack([r ** m for m in range(q)], -2)                     # [n, q(rows: power), q]
      b = xp.stack(bs[:q], -1)                                             # [n, q]
      if q == 2:
        pq = [xp.full((n,), 0.5, f)]
      else:
        pq = list(xp.moveaxis(xp.linalg.solve(big_r[:, :-1, :-1], b[:, :-1, None])[..., 0], -1, 0))
      sol = xp.moveaxis(xp.linalg.solve(big_r, b[..., None])[..., 0], -1, 0)
      cq, cnew = list(sol[:-1]), sol[-1]
    for k in range(q - 1):
      rho_p[k] = xp.where(sel, pq[k], rho_p[k])
      rho_c[k] = xp.where(sel, cq[k], rho_c[k])
    rho_c_new = xp.where(sel, cnew, rho_c_new)
  # Predictor on [D_i, D_{i−1}, …]: a_0 = 1 − ratio + B Σ ρ_k/r_k, a_k = −B ρ_k/r_k.
  a = [1.0 - ratio] + [zero] * order
  for k in range(1, order):
    w = b_h * rho_p[k - 1] / rks[k - 1]
    a[0] = a[0] + w
    a[k] = -w
  a = [xp.where(last, 1.0 if k == 0 else 0.0, ak) for k, ak in enumerate(a)]
  pred = xp.stack(a, -1)                                                   # [n, order + 1]
  # Corrector of step j = i − 1 applied at step i on [D_i, D_j, D_{j−1}, …]:
  # x^c − x^p = −B_j[Σ_k (ρc_k − ρp_k)(D_{j−k} − D_j)/r_k + ρc_new (D_i − D_j)].
  c = [-b_h * rho_c_new, b_h * rho_c_new] + [zero] * (order - 1)
  for k in range(1, order):
    w = b_h * (rho_c[k - 1] - rho_p[k - 1]) / rks[k - 1]
    c[1] = c[1] + w
    c[1 + k] = -w
  corr = xp.stack(c, -1)                                                   # [n, order + 1] (for step j)
  corr = xp.concatenate([xp.zeros((1, order + 1), f), corr[:-1]], 0)        # applied at step j + 1
  return (xp.asarray(ratio, f), xp.asarray(pred, f), xp.asarray(corr, f), p)


def unipc_coefficients(sigmas, order=2, variant="bh2", lower_order_final=True):
  """(ratio [N], pred [N, order+1], corr [N, order+1], predictor order [N]) of ``sample_unipc``."""
  order = _check_order(order, 1, 3, "sample_unipc")
  if variant not in ("bh1", "bh2"):
    raise ConfigError(f"sample_unipc: variant must be 'bh1' or 'bh2', got {variant!r}.")
  sigmas = _grid(sigmas)
  host = _concrete(sigmas)
  if host is not None:
    ratio, pred, corr, p = _unipc_coefs(np, host, order, variant, lower_order_final)
    return (jnp.asarray(ratio, jnp.float32), jnp.asarray(pred, jnp.float32),
            jnp.asarray(corr, jnp.float32), jnp.asarray(p, jnp.int32))
  return _unipc_coefs(jnp, sigmas, order, variant, lower_order_final)


def sample_unipc(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                 return_trajectory: bool = False, order: int = 2, variant: str = "bh2",
                 lower_order_final: bool = True):
  """UniPC-``order`` (UniP predictor + UniC corrector, data prediction), NFE = N.

  Step i: D_i = D(x_i; σ_i); UniC corrects x_i (the previous prediction) with D_i and the history;
  UniP predicts x_{i+1} from the corrected x_i with D_i, D_{i−1}, …; the step to σ = 0 returns D_i.
  Order ``order + 1`` (UniPC-1 = DDIM + trapezoidal-like corrector). ``order`` 1–3, ``variant``
  'bh1' | 'bh2' (B(h) = h | e^h − 1), ``lower_order_final`` (UniPC's: order min(order, N − i) on step i).
  The trajectory holds the predicted states (UniPC corrects x_{i+1} only once D_{i+1} is known).
  """
  del key, indices
  sigmas = _grid(sigmas)
  ratio, pred, corr, _ = unipc_coefficients(sigmas, order, variant, lower_order_final)
  dtype, batch = x.dtype, x.shape[0]
  d = _wrap(denoise_fn, dtype, batch)

  def mix(coef, hist):
    return jnp.tensordot(coef, hist, axes=1)

  def step(carry, inp):
    x, buf = carry
    _, s, r, a, c = inp
    den = d(x, s)
    hist = jnp.concatenate([den[None], buf], 0)          # [D_i, D_{i−1}, …, D_{i−order}]
    x = x + mix(c, hist)
    x = r * x + mix(a, hist)
    return (x, hist[:-1]), _emit(x, return_trajectory)

  i, s, _ = _steps(sigmas)
  x0 = x.astype(jnp.float32)
  buf = jnp.stack([jnp.zeros_like(x0)] * order)  # zeros_like: device-varying under shard_map
  (x, _), path = jax.lax.scan(step, (x0, buf), (i, s, ratio, pred, corr))
  return _out(x, dtype, sigmas.shape[0] - 1, return_nfe, x0, path)


# ----------------------------------------------------------------------------------------------
# iPNDM.

_IPNDM = np.array([[1.0, 0.0, 0.0, 0.0],
                   [3 / 2, -1 / 2, 0.0, 0.0],
                   [23 / 12, -16 / 12, 5 / 12, 0.0],
                   [55 / 24, -59 / 24, 37 / 24, -9 / 24]])


def sample_ipndm(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                 return_trajectory: bool = False, order: int = 4):
  """iPNDM: x_{i+1} = x_i + (σ_{i+1} − σ_i)·Σ_j c_j d_{i−j}, d = (x − D)/σ, fixed AB coefficients of
  order q = min(order, i + 1); the step to σ = 0 is x ← D (Euler's exact limit). NFE = N.
  ``order`` 1–4 (1 = Euler)."""
  del key, indices
  order = _check_order(order, 1, 4, "sample_ipndm")
  sigmas = _grid(sigmas)
  n = sigmas.shape[0] - 1
  table = jnp.asarray(_IPNDM[np.minimum(np.arange(n), order - 1), :order], jnp.float32)   # [N, order]
  return _multistep_loop(denoise_fn, x, sigmas, (sigmas[1:] - sigmas[:-1])[:, None] * table, return_nfe,
                         return_trajectory)


# ----------------------------------------------------------------------------------------------
# DEIS.

def _deis_coefs(xp, sig, order, poly):
  f = xp.float64 if xp is np else jnp.float32
  sig = xp.asarray(sig, f)
  n = sig.shape[0] - 1
  i = np.arange(n)
  s, s_next = sig[:-1], sig[1:]
  last = s_next <= 0
  q = np.minimum(order, i + 1)                                     # static: depends on i only
  t_of = (lambda v: xp.log(xp.where(v > 0, v, 1.0))) if poly == "log_sigma" else (lambda v: v)
  nodes = [t_of(sig[np.maximum(i - k, 0)]) for k in range(order)]  # t_{i−k}
  lo, hi = nodes[0], xp.where(last, nodes[0] - 1.0, t_of(s_next))
  gx, gw = np.polynomial.legendre.leggauss(8)
  u = 0.5 * (hi - lo)[:, None] * gx + 0.5 * (hi + lo)[:, None]     # [n, 8]
  w = 0.5 * (hi - lo)[:, None] * gw * (xp.exp(u) if poly == "log_sigma" else 1.0)
  cols = []
  for j in range(order):
    ell = xp.ones_like(u)
    for k in range(order):
      if k != j:
        use = xp.asarray((k < q) & (j < q))[:, None]               # nodes beyond q are not in the basis
        gap = xp.where(use, (nodes[j] - nodes[k])[:, None], 1.0)
        ell = ell * xp.where(use, (u - nodes[k][:, None]) / gap, 1.0)
    cj = xp.where(xp.asarray(j < q), xp.sum(w * ell, -1), 0.0)
    cols.append(xp.where(last, -s if j == 0 else 0.0, cj))
  return xp.stack(cols, -1)


def deis_coefficients(sigmas, order=3, poly="log_sigma"):
  """C [N, order]: x_{i+1} = x_i + Σ_j C[i, j]·ε̂_{i−j} (ε̂ = (x − D)/σ), C[i, j] = ∫_{σ_i}^{σ_{i+1}} ℓ_j,
  ℓ_j the Lagrange basis through the nodes of steps i, i−1, …, i−q+1 (q = min(order, i + 1)) in ln σ
  (``poly='log_sigma'``: ∫ e^u ℓ_j(u) du) or σ (``'sigma'``), by 8-point Gauss–Legendre; float64 numpy
  for a concrete grid, float32 jnp for a traced one. The step to σ = 0 gets C = [−σ_i, 0, …] (x' = D)."""
  order = _check_order(order, 1, 4, "sample_deis")
  if poly not in ("log_sigma", "sigma"):
    raise ConfigError(f"sample_deis: poly must be 'log_sigma' or 'sigma', got {poly!r}.")
  sigmas = _grid(sigmas)
  host = _concrete(sigmas)
  if host is not None:
    return jnp.asarray(_deis_coefs(np, host, order, poly), jnp.float32)
  return _deis_coefs(jnp, sigmas, order, poly)


def sample_deis(denoise_fn: Denoiser, x, sigmas, key=None, *, indices=None, return_nfe: bool = False,
                return_trajectory: bool = False, order: int = 3, poly: str = "log_sigma"):
  """DEIS-``order`` (exponential-integrator multistep on ε̂ = (x − D)/σ), NFE = N; coefficients
  ``deis_coefficients`` of the grid; first step DDIM; the step to σ = 0 is x ← D."""
  del key, indices
  sigmas = _grid(sigmas)
  return _multistep_loop(denoise_fn, x, sigmas, deis_coefficients(sigmas, order, poly), return_nfe,
                         return_trajectory)
