"""Optimal-transport distances: exact 1-D, discrete LP, entropic (Sinkhorn), Gaussian closed form.

Conventions: a point cloud is ``x[n, d]`` (a 1-D array is read as ``[n, 1]``) with optional
non-negative weights (normalized to total mass 1; default uniform). The ground cost is the
Euclidean distance, W_p = (min_π Σ π_ij ‖x_i − y_j‖^p)^{1/p} over couplings π with marginals (a, b).

- ``wasserstein_1d``: W1 on the line = ∫ |F_x(t) − F_y(t)| dt between the two empirical CDFs (exact,
  unequal sizes and weights; the formula of ``scipy.stats.wasserstein_distance``). jit/vmap-able.
- ``sliced_wasserstein``: mean over random unit directions θ of W1(θ·x, θ·y).
- ``emd``: the exact discrete W_p by linear programming (host, float64). With equal sizes and uniform
  weights the optimal plan is a permutation (Birkhoff–von Neumann), solved as an assignment;
  otherwise the transport LP is solved by HiGHS. scipy is imported lazily inside ``emd_cost`` only.
- ``sinkhorn``: entropic OT in the log domain (Cuturi 2013; Peyré & Cuturi 2019, §4.4): the plan
  P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε) after alternating soft-min updates of the potentials
  f, g; returns ⟨P, C⟩, which tends to the LP value as ε → 0. ε is in units of the cost.
- ``gaussian_w2``: W2(N(μ₁, Σ₁), N(μ₂, Σ₂))² = ‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₂^{½} Σ₁ Σ₂^{½})^{½})
  (Dowson & Landau 1982; Givens & Shortt 1984), square roots by ``eigh`` in float64 on host. It is
  also the Fréchet distance of FID (``jaxgen.eval.frechet`` calls it; docs/reference.md §3).
- ``kr_dual_estimate``: E_x[f] − E_y[f], a lower bound of W1(x, y) whenever f is 1-Lipschitz
  (Kantorovich–Rubinstein duality: W1 = sup_{‖f‖_L ≤ 1} E_x f − E_y f).

Part of the pure core: only jax and numpy are needed at import (tests/test_packaging.py).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["wasserstein_1d", "sliced_wasserstein", "pairwise_cost", "emd", "emd_cost", "sinkhorn",
           "sinkhorn_cost", "SinkhornResult", "sqrtm_psd", "gaussian_w2", "kr_dual_estimate",
           "critic_gradient_norms"]


def _float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


# ------------------------------------------------------------------------------------------ 1-D
def wasserstein_1d(x, y, x_weights=None, y_weights=None) -> jax.Array:
  """Exact W1 between the 1-D empirical measures Σ a_i δ_{x_i} and Σ b_j δ_{y_j}.

  W1 = ∫ |F_x(t) − F_y(t)| dt, evaluated exactly on the merged sorted support: between consecutive
  support points both CDFs are constant. Sizes may differ; weights need not be normalized.
  """
  x, y = _float(x), _float(y)
  if x.ndim != 1 or y.ndim != 1:
    raise ValueError(f"wasserstein_1d takes 1-D samples, got shapes {x.shape} and {y.shape}; "
                     "project multi-dimensional data first (see sliced_wasserstein).")
  dtype = jnp.result_type(x, y)
  x, y = x.astype(dtype), y.astype(dtype)
  xw = jnp.ones_like(x) if x_weights is None else jnp.asarray(x_weights, dtype)
  yw = jnp.ones_like(y) if y_weights is None else jnp.asarray(y_weights, dtype)
  ix, iy = jnp.argsort(x), jnp.argsort(y)
  xs, ys = x[ix], y[iy]
  cx = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(xw[ix])])
  cy = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(yw[iy])])
  support = jnp.sort(jnp.concatenate([x, y]))
  gaps = jnp.diff(support)
  fx = cx[jnp.searchsorted(xs, support[:-1], side="right")] / cx[-1]
  fy = cy[jnp.searchsorted(ys, support[:-1], side="right")] / cy[-1]
  return jnp.sum(jnp.abs(fx - fy) * gaps)


def sliced_wasserstein(x, y, key, num_projections: int = 128, x_weights=None, y_weights=None):
  """Sliced W1: mean over ``num_projections`` uniform random unit directions θ of W1(θ·x, θ·y)."""
  x, y = jnp.atleast_2d(_float(x)), jnp.atleast_2d(_float(y))
  theta = jax.random.normal(key, (num_projections, x.shape[1]), x.dtype)
  theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
  w = jax.vmap(lambda t: wasserstein_1d(x @ t, y @ t, x_weights, y_weights))(theta)
  return jnp.mean(w)


# ------------------------------------------------------------------------------------ discrete
def _points(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x[:, None] if x.ndim == 1 else x.reshape(x.shape[0], -1)


def _weights(w, n: int, name: str) -> np.ndarray:
  if w is None:
    return np.full(n, 1.0 / n)
  w = np.asarray(w, np.float64).reshape(-1)
  if w.shape[0] != n or (w < 0).any() or not w.sum() > 0:
    raise ValueError(f"{name} must be {n} non-negative weights with a positive sum.")
  return w / w.sum()


def pairwise_cost(x, y, p: float = 1.0):
  """C_ij = ‖x_i − y_j‖^p (Euclidean), float32 in jax (for Sinkhorn)."""
  x, y = _float(x), _float(y)
  x = x[:, None] if x.ndim == 1 else x.reshape(x.shape[0], -1)
  y = y[:, None] if y.ndim == 1 else y.reshape(y.shape[0], -1)
  sq = jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1)
  if p == 2:
    return sq
  pos = sq > 0
  dist = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
  return dist if p == 1 else dist ** p


def emd_cost(cost, a=None, b=None, return_plan: bool = False):
  """min_π ⟨π, C⟩ over couplings of (a, b), exactly (float64 on host).

  Equal sizes with uniform weights: an assignment problem (``linear_sum_assignment``); otherwise
  the transport LP with HiGHS (``scipy.optimize.linprog``). scipy is imported here, lazily.
  """
  import scipy.optimize
  import scipy.sparse

  c = np.asarray(cost, np.float64)
  n, m = c.shape
  uniform = a is None and b is None
  a, b = _weights(a, n, "x_weights"), _weights(b, m, "y_weights")
  if uniform and n == m:
    rows, cols = scipy.optimize.linear_sum_assignment(c)
    value = float(c[rows, cols].mean())
    if not return_plan:
      return value
    plan = np.zeros((n, m))
    plan[rows, cols] = 1.0 / n
    return value, plan
  row = scipy.sparse.kron(scipy.sparse.eye(n), np.ones((1, m)))
  col = scipy.sparse.kron(np.ones((1, n)), scipy.sparse.eye(m))
  a_eq = scipy.sparse.vstack([row, col]).tocsr()
  res = scipy.optimize.linprog(c.reshape(-1), A_eq=a_eq, b_eq=np.concatenate([a, b]),
                               bounds=(0, None), method="highs")
  if res.status != 0:
    raise RuntimeError(f"the transport LP failed ({res.message}); check the cost and weights.")
  value = float(res.fun)
  return (value, res.x.reshape(n, m)) if return_plan else value


def emd(x, y, x_weights=None, y_weights=None, p: float = 1.0, return_plan: bool = False):
  """Exact discrete W_p between point clouds (LP; small sets, up to a few thousand points)."""
  x, y = _points(x), _points(y)
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"point dimensions differ: {x.shape[1]} vs {y.shape[1]}.")
  cost = np.sqrt(np.maximum(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1), 0.0)) ** p
  out = emd_cost(cost, x_weights, y_weights, return_plan)
  if return_plan:
    return out[0] ** (1.0 / p), out[1]
  return out ** (1.0 / p)


class SinkhornResult(NamedTuple):
  cost: jax.Array            # ⟨P, C⟩ (transport cost of the entropic plan; W_p^p estimate)
  plan: jax.Array            # P [n, m]
  f: jax.Array               # dual potentials
  g: jax.Array
  marginal_error: jax.Array  # ‖P·1 − a‖₁ + ‖Pᵀ·1 − b‖₁ at exit
  iterations: jax.Array


def sinkhorn_cost(cost, a=None, b=None, *, epsilon: float, max_iters: int = 10_000,
                  tol: float = 1e-5) -> SinkhornResult:
  """Log-domain Sinkhorn on a cost matrix (jit-able; a ``lax.while_loop``).

  f_i = −ε log Σ_j b_j exp((g_j − C_ij)/ε),  g_j = −ε log Σ_i a_i exp((f_i − C_ij)/ε),
  iterated until the column-marginal error (the rows are exact after each f-update) is below
  ``tol`` (float32 bottoms out near 1e-6) or ``max_iters``. Works for ε far below the cost scale (no
  exp of C/ε is formed).
  """
  c = _float(cost)
  n, m = c.shape

  def weights(w, k):   # normalized to mass 1; uniform by default
    if w is None:
      return jnp.full((k,), 1.0 / k, c.dtype)
    w = jnp.asarray(w, c.dtype)
    return w / jnp.sum(w)

  a, b = weights(a, n), weights(b, m)
  eps = jnp.asarray(epsilon, c.dtype)
  log_a, log_b = jnp.log(a), jnp.log(b)

  def f_update(g):
    return -eps * jax.nn.logsumexp((g[None, :] - c) / eps + log_b[None, :], axis=1)

  def g_update(f):
    return -eps * jax.nn.logsumexp((f[:, None] - c) / eps + log_a[:, None], axis=0)

  def log_plan(f, g):
    return (f[:, None] + g[None, :] - c) / eps + log_a[:, None] + log_b[None, :]

  def col_error(f, g):
    return jnp.sum(jnp.abs(jnp.exp(jax.nn.logsumexp(log_plan(f, g), axis=0)) - b))

  def cond(s):
    _, _, err, it = s
    return (err > tol) & (it < max_iters)

  def body(s):
    f, g, _, it = s
    g = g_update(f)
    f = f_update(g)
    return f, g, col_error(f, g), it + 1

  g0 = jnp.zeros((m,), c.dtype)
  f0 = f_update(g0)
  f, g, _, it = jax.lax.while_loop(cond, body, (f0, g0, jnp.asarray(jnp.inf, c.dtype), jnp.int32(0)))
  plan = jnp.exp(log_plan(f, g))
  err = jnp.sum(jnp.abs(plan.sum(1) - a)) + jnp.sum(jnp.abs(plan.sum(0) - b))
  return SinkhornResult(jnp.sum(plan * c), plan, f, g, err, it)


def sinkhorn(x, y, epsilon: float, x_weights=None, y_weights=None, p: float = 2.0, **kw) -> SinkhornResult:
  """Entropic OT between point clouds with cost ‖x − y‖^p; ``result.cost ** (1/p)`` estimates W_p."""
  return sinkhorn_cost(pairwise_cost(x, y, p), x_weights, y_weights, epsilon=epsilon, **kw)


# ------------------------------------------------------------------------------------ Gaussian
def sqrtm_psd(s) -> np.ndarray:
  """Symmetric PSD square root V·diag(√max(λ, 0))·Vᵀ from ``eigh`` of (S + Sᵀ)/2 (float64, host)."""
  s = np.asarray(s, np.float64)
  lam, v = np.linalg.eigh(0.5 * (s + s.T))
  return (v * np.sqrt(np.maximum(lam, 0.0))) @ v.T


def gaussian_w2(mean1, cov1, mean2, cov2, squared: bool = False) -> float:
  """W2 between N(mean1, cov1) and N(mean2, cov2) in closed form (W2² with ``squared``).

  The one implementation of this formula in jaxgen: the Fréchet distance of FID and the digits FD
  (``jaxgen.eval.frechet``) is W2². Host float64 (FID's 2048-d covariances need float64; jax
  computes in float32 by default), so it is not traced: call it outside ``jit``.

  tr((Σ₂^½ Σ₁ Σ₂^½)^½) = Σᵢ √λᵢ with λᵢ the eigenvalues of the PSD matrix M = Σ₂^½ Σ₁ Σ₂^½ (two
  symmetric ``eigh``; eigenvalues rounded below 0 count as 0). Σ₁Σ₂ = (Σ₁Σ₂^½)·Σ₂^½ and M = Σ₂^½·(Σ₁Σ₂^½)
  have the same eigenvalues, so this equals tr((Σ₁Σ₂)^½), the TTUR / pytorch-fid form computed with
  ``scipy.linalg.sqrtm`` (equal to 1e-9 relative in tests/eval/test_frechet.py); singular
  covariances need no diagonal offset here.
  """
  m1, m2 = np.atleast_1d(np.asarray(mean1, np.float64)), np.atleast_1d(np.asarray(mean2, np.float64))
  s1, s2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
  if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.shape[0],) * 2:
    raise ValueError(f"gaussian_w2 needs means [d] and covariances [d, d] of one d, got "
                     f"{m1.shape}, {s1.shape}, {m2.shape}, {s2.shape}.")
  r2 = sqrtm_psd(s2)
  cross = r2 @ s1 @ r2
  lam = np.linalg.eigvalsh(0.5 * (cross + cross.T))
  tr_cross = np.sum(np.sqrt(np.maximum(lam, 0.0)))
  diff = m1 - m2
  w2sq = max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_cross), 0.0)
  return w2sq if squared else float(np.sqrt(w2sq))


# -------------------------------------------------------------------------------------- duality
def kr_dual_estimate(critic_fn: Callable, x, y, x_weights=None, y_weights=None) -> jax.Array:
  """E_x[f] − E_y[f] (weighted means): ≤ W1(x, y) for any 1-Lipschitz f, = W1 for the optimal f."""
  fx = jnp.asarray(critic_fn(x), jnp.float32).reshape(jnp.shape(x)[0], -1).mean(1)
  fy = jnp.asarray(critic_fn(y), jnp.float32).reshape(jnp.shape(y)[0], -1).mean(1)
  wx = jnp.ones_like(fx) if x_weights is None else jnp.asarray(x_weights, jnp.float32)
  wy = jnp.ones_like(fy) if y_weights is None else jnp.asarray(y_weights, jnp.float32)
  return jnp.sum(wx * fx) / jnp.sum(wx) - jnp.sum(wy * fy) / jnp.sum(wy)


def critic_gradient_norms(critic_fn: Callable, x) -> jax.Array:
  """‖∇f(x_i)‖ per point (a per-sample critic): their max is a lower bound of f's Lipschitz constant."""
  g = jax.grad(lambda v: jnp.sum(jnp.asarray(critic_fn(v), jnp.float32)))(_float(x))
  return jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))
