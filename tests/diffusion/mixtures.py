"""Ideal denoisers and exact samplers for analytic diffusion tests (docs/reference.md §3).

- Gaussian N(μ, s²I):  D(x; σ) = μ + s²/(s² + σ²)·(x − μ).
- Mixture Σπ_k N(μ_k, Σ_k): D(x; σ) = Σ_k w_k(x)[μ_k + Σ_k(Σ_k + σ²I)⁻¹(x − μ_k)],
  w_k ∝ π_k N(x; μ_k, Σ_k + σ²I).
- Finite set {y_i}: D(x; σ) = softmax_i(−‖x − y_i‖²/2σ²)·y.
- MMD² (unbiased, Gaussian kernel) with a threshold calibrated on exact-vs-exact draws.
All denoisers take x ``[B, d]`` and σ ``[B]`` and work in float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def gaussian_denoiser(mu=0.0, s=1.0):
  def d(x, sigma):
    sigma = jnp.asarray(sigma, jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    xf = x.astype(jnp.float32)
    return (mu + s * s / (s * s + sigma * sigma) * (xf - mu)).astype(x.dtype)

  return d


@dataclasses.dataclass(frozen=True)
class Mixture:
  """Σ_k π_k N(μ_k, Σ_k) in d dimensions (numpy float64 parameters)."""

  weights: np.ndarray   # [K]
  means: np.ndarray     # [K, d]
  covs: np.ndarray      # [K, d, d]

  @property
  def dim(self):
    return self.means.shape[1]

  def denoiser(self):
    w = jnp.asarray(self.weights, jnp.float32)
    mu = jnp.asarray(self.means, jnp.float32)
    cov = jnp.asarray(self.covs, jnp.float32)
    eye = jnp.eye(self.dim, dtype=jnp.float32)

    def d(x, sigma):
      xf = x.astype(jnp.float32)
      s2 = jnp.square(jnp.asarray(sigma, jnp.float32))[:, None, None, None]   # [B,1,1,1]
      c = cov[None] + s2 * eye                                                # [B,K,d,d]
      r = xf[:, None, :] - mu[None]                                           # [B,K,d]
      chol = jnp.linalg.cholesky(c)
      sol = jax.scipy.linalg.cho_solve((chol, True), r[..., None])[..., 0]    # C⁻¹(x−μ)
      logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
      logp = jnp.log(w)[None] - 0.5 * jnp.sum(r * sol, -1) - 0.5 * logdet     # [B,K]
      post = jax.nn.softmax(logp, axis=-1)
      comp = mu[None] + jnp.einsum("kij,bkj->bki", cov, sol)                  # μ + Σ C⁻¹(x−μ)
      return jnp.einsum("bk,bki->bi", post, comp).astype(x.dtype)

    return d

  def sample(self, key, n):
    """Exact draws and their component labels."""
    k1, k2 = jax.random.split(key)
    labels = jax.random.choice(k1, len(self.weights), (n,), p=jnp.asarray(self.weights))
    chol = jnp.linalg.cholesky(jnp.asarray(self.covs, jnp.float32))
    z = jax.random.normal(k2, (n, self.dim))
    x = jnp.asarray(self.means, jnp.float32)[labels] + jnp.einsum("nij,nj->ni", chol[labels], z)
    return x, labels

  def assign(self, x):
    """Most likely component of each point (at σ = 0)."""
    x = np.asarray(x, np.float64)
    logp = []
    for w, m, c in zip(self.weights, self.means, self.covs):
      r = x - m
      sol = np.linalg.solve(c, r.T).T
      logp.append(np.log(w) - 0.5 * np.sum(r * sol, -1) - 0.5 * np.linalg.slogdet(c)[1])
    return np.argmax(np.stack(logp, -1), -1)


def separated_mixture_2d() -> Mixture:
  """Three well-separated 2-D components with full covariances (misassignment probability < 1e-9)."""
  means = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
  covs = np.array([[[0.09, 0.05], [0.05, 0.09]],
                   [[0.16, -0.06], [-0.06, 0.06]],
                   [[0.05, 0.0], [0.0, 0.12]]])
  return Mixture(np.array([0.5, 0.3, 0.2]), means, covs)


def point_set_denoiser(points):
  """Ideal denoiser of the empirical distribution of ``points`` [M, d]."""
  y = jnp.asarray(points, jnp.float32)

  def d(x, sigma):
    xf = x.astype(jnp.float32)
    s2 = jnp.square(jnp.asarray(sigma, jnp.float32))[:, None]
    d2 = jnp.sum(jnp.square(xf[:, None, :] - y[None]), -1)
    return (jax.nn.softmax(-d2 / (2 * s2), axis=-1) @ y).astype(x.dtype)

  return d


def mmd2(x, y, bandwidth):
  """Unbiased MMD² with the Gaussian kernel exp(−‖a−b‖²/(2h²)), equal sample sizes."""
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  n = x.shape[0]

  def k(a, b):
    d2 = jnp.sum(jnp.square(a[:, None] - b[None]), -1)
    return jnp.exp(-d2 / (2 * bandwidth ** 2))

  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  off = 1.0 - jnp.eye(n)
  return (jnp.sum(kxx * off) + jnp.sum(kyy * off)) / (n * (n - 1)) - 2 * jnp.mean(kxy)


_mmd2 = jax.jit(mmd2, static_argnums=2)


def mmd_threshold(sampler, n, bandwidth, key, reps=30, z=5.0):
  """Null calibration: mean + z·std of MMD² between pairs of independent exact draws of size n.

  ``sampler(key, n) -> [n, d]``. Under the null, unbiased MMD² has mean 0 and std ~ 1/n; a sampler
  whose MMD² to exact draws is below this threshold is indistinguishable at this sample size.
  """
  vals = []
  for r in range(reps):
    ka, kb = jax.random.split(jax.random.fold_in(key, r))
    vals.append(float(_mmd2(sampler(ka, n), sampler(kb, n), bandwidth)))
  vals = np.array(vals)
  return float(vals.mean() + z * vals.std()), vals
