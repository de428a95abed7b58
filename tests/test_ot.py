"""jaxgen.ot against scipy, closed forms and each other."""

import numpy as np
import pytest
import scipy.stats
from scipy.special import ndtri

import jax
import jax.numpy as jnp

from jaxgen import ot


def test_w1_1d_matches_scipy_unequal_sizes_and_weights():
  r = np.random.default_rng(0)
  for n, m in [(5, 5), (37, 50), (1, 8)]:
    x, y = r.normal(size=n), r.normal(1.0, 2.0, size=m)
    a, b = r.uniform(0.1, 1, size=n), r.uniform(0.1, 1, size=m)
    np.testing.assert_allclose(ot.wasserstein_1d(x, y), scipy.stats.wasserstein_distance(x, y), rtol=1e-5)
    np.testing.assert_allclose(ot.wasserstein_1d(x, y, a, b),
                               scipy.stats.wasserstein_distance(x, y, a, b), rtol=1e-5)


def test_w1_1d_equal_sizes_is_mean_sorted_difference_and_jits():
  r = np.random.default_rng(1)
  x, y = r.normal(size=64), r.exponential(size=64)
  expected = np.mean(np.abs(np.sort(x) - np.sort(y)))  # docs/reference.md §3
  np.testing.assert_allclose(jax.jit(ot.wasserstein_1d)(x, y), expected, rtol=1e-5)


def test_w1_equal_variance_gaussians_is_mean_gap():
  # Quantile-grid samples of N(a, s²) and N(b, s²): the monotone map is a shift, W1 = |a − b|.
  n, s = 2000, 0.7
  q = ndtri((np.arange(n) + 0.5) / n)
  for a, b in [(0.0, 1.5), (2.0, -1.0)]:
    np.testing.assert_allclose(ot.wasserstein_1d(a + s * q, b + s * q), abs(a - b), rtol=1e-5)
  # i.i.d. samples: within sampling error
  r = np.random.default_rng(2)
  w = ot.wasserstein_1d(r.normal(0.0, s, 20000), r.normal(1.5, s, 20000))
  assert abs(float(w) - 1.5) < 0.03


def test_gaussian_w2_commuting_covariances():
  # Σ₁, Σ₂ share eigenvectors: W2² = ‖μ₁−μ₂‖² + ‖Σ₁^½ − Σ₂^½‖²_F.
  r = np.random.default_rng(3)
  q, _ = np.linalg.qr(r.normal(size=(4, 4)))
  l1, l2 = r.uniform(0.2, 3, 4), r.uniform(0.2, 3, 4)
  s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
  m1, m2 = r.normal(size=4), r.normal(size=4)
  expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
  np.testing.assert_allclose(ot.gaussian_w2(m1, s1, m2, s2, squared=True), expected, rtol=1e-4)
  np.testing.assert_allclose(ot.gaussian_w2(m1, s1, m1, s1), 0.0, atol=2e-3)


def test_gaussian_w2_equals_lp_on_samples_mapped_by_the_gaussian_optimal_map():
  # y_i = μ₂ + A(x_i − x̄) with A = S^{-½}(S^{½} Σ₂ S^{½})^{½} S^{-½} symmetric positive definite:
  # x ↦ Ax is the gradient of a convex function, so it is optimal for the empirical measures too
  # (cyclical monotonicity), and for N(x̄, S) → N(μ₂, A S A) with S the (ddof=0) sample covariance.
  # Hence LP(x, y)² = W2²(N(x̄, S), N(ȳ, cov(y))) exactly.
  r = np.random.default_rng(4)
  x = r.normal(size=(60, 2)) @ np.array([[1.0, 0.4], [0.0, 0.6]])
  xbar, s = x.mean(0), np.cov(x.T, ddof=0)
  s2 = np.array([[2.0, -0.5], [-0.5, 0.8]])
  sh = np.asarray(ot.sqrtm_psd(s), np.float64)
  shi = np.linalg.inv(sh)
  a = shi @ np.asarray(ot.sqrtm_psd(sh @ s2 @ sh), np.float64) @ shi
  y = np.array([1.0, -2.0]) + (x - xbar) @ a.T
  lp = ot.emd(x, y, p=2)
  closed = ot.gaussian_w2(xbar, s, y.mean(0), np.cov(y.T, ddof=0))
  np.testing.assert_allclose(closed, lp, rtol=2e-3)
  # the LP with weights (HiGHS path) agrees with the assignment path on uniform weights
  np.testing.assert_allclose(ot.emd(x[:12], y[:12], np.ones(12), np.ones(12), p=2),
                             ot.emd(x[:12], y[:12], p=2), rtol=1e-7)


def test_emd_1d_matches_exact_w1_with_weights():
  r = np.random.default_rng(5)
  x, y = r.normal(size=9), r.normal(0.5, 1.5, size=13)
  a, b = r.uniform(0.1, 1, 9), r.uniform(0.1, 1, 13)
  np.testing.assert_allclose(ot.emd(x, y, a, b, p=1), scipy.stats.wasserstein_distance(x, y, a, b), rtol=1e-6)


def test_sinkhorn_converges_to_lp_as_epsilon_shrinks():
  r = np.random.default_rng(6)
  x, y = r.normal(size=(10, 2)), r.normal(size=(7, 2)) + 1.0
  a, b = r.uniform(0.2, 1, 10), r.uniform(0.2, 1, 7)
  lp = ot.emd(x, y, a, b, p=2) ** 2
  run = jax.jit(lambda e: ot.sinkhorn(x, y, e, a, b, p=2, max_iters=3000))
  errs = []
  for eps in (1.0, 0.1, 0.01):
    res = run(eps)
    errs.append(abs(float(res.cost) - lp))
    assert float(res.marginal_error) < 1e-3
  assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3 * lp, (errs, lp)


def test_sliced_and_kr_dual():
  r = np.random.default_rng(7)
  x = r.normal(size=(500, 2)).astype(np.float32)
  # A pure translation by t: every projection is shifted by θ·t, so SW1 = E|θ·t| = (2/π)‖t‖ in 2-D.
  t = np.array([3.0, 4.0], np.float32)
  sw = ot.sliced_wasserstein(x, x + t, jax.random.key(0), num_projections=4096)
  np.testing.assert_allclose(sw, 2 / np.pi * 5.0, rtol=0.03)
  # KR duality: f(z) = −θ·z with θ = t/‖t‖ is 1-Lipschitz and optimal for a translation: = W1 = ‖t‖.
  f = lambda z: -(z @ (t / 5.0))
  np.testing.assert_allclose(ot.kr_dual_estimate(f, x, x + t), 5.0, rtol=1e-5)
  np.testing.assert_allclose(ot.critic_gradient_norms(f, x), 1.0, rtol=1e-5)
