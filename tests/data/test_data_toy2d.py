"""2-D toys: exact samplers agree with their exact densities; the densities integrate to 1."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.data import toy2d

N_SAMPLES = 100_000

# Midpoint grids: (x range, y range, spacing ≈ noise std / 2, which makes the midpoint rule on a
# Gaussian exact to ~1e-30) covering all but < 1e-6 of the mass.
GRIDS = {
    "8gaussians": ((-2.2, 2.2), (-2.2, 2.2), 0.01),
    "25gaussians": ((-4.4, 4.4), (-4.4, 4.4), 0.025),
    "swiss_roll": ((-1.6, 2.0), (-1.8, 2.2), 0.016),
    "checkerboard": ((-4.0, 4.0), (-4.0, 4.0), 0.05),
    "two_moons": ((-4.2, 4.2), (-2.4, 3.0), 0.08),
    "rings": ((-3.6, 3.6), (-3.6, 3.6), 0.04),
}


def _axis(lo, hi, h):
  n = int(round((hi - lo) / h))
  return lo + h * (np.arange(n) + 0.5), h


@functools.cache
def _grid(name):
  (x0, x1), (y0, y1), h = GRIDS[name]
  xs, _ = _axis(x0, x1, h)
  ys, _ = _axis(y0, y1, h)
  pts = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1)
  p = np.exp(np.asarray(jax.jit(toy2d.log_prob, static_argnums=0)(name, jnp.asarray(pts)), np.float64))
  return pts.astype(np.float64), p * h * h   # probability mass of each grid cell


@functools.cache
def _samples(name):
  f = jax.jit(toy2d.sample, static_argnums=(0, 2))
  return np.asarray(f(name, jax.random.key(7), N_SAMPLES), np.float64)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_density_integrates_to_one(name):
  _, mass = _grid(name)
  assert abs(mass.sum() - 1.0) < 2e-3, mass.sum()


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_samples_match_density(name):
  """Sample moments and coarse-bin frequencies equal those of the density (within 5 standard errors)."""
  pts, mass = _grid(name)
  x = _samples(name)
  assert x.shape == (N_SAMPLES, 2) and np.isfinite(x).all()
  # first and second moments
  feats = lambda z: np.stack([z[..., 0], z[..., 1], z[..., 0] ** 2, z[..., 1] ** 2, z[..., 0] * z[..., 1]], -1)
  exact = (feats(pts) * mass[..., None]).sum((0, 1)) / mass.sum()
  f = feats(x)
  se = f.std(0) / np.sqrt(N_SAMPLES)
  np.testing.assert_array_less(np.abs(f.mean(0) - exact), 5 * se + 1e-3)
  # 8×8 coarse bins over the grid box, their edges on grid-cell boundaries
  (x0, x1), (y0, y1), h = GRIDS[name]
  ex = x0 + h * np.round(np.linspace(0, pts.shape[0], 9))
  ey = y0 + h * np.round(np.linspace(0, pts.shape[1], 9))
  p_bins = np.histogram2d(pts[..., 0].ravel(), pts[..., 1].ravel(), [ex, ey], weights=mass.ravel())[0]
  p_bins /= mass.sum()
  f_bins = np.histogram2d(x[:, 0], x[:, 1], [ex, ey])[0] / N_SAMPLES
  tol = 5 * np.sqrt(p_bins * (1 - p_bins) / N_SAMPLES) + 5e-4
  np.testing.assert_array_less(np.abs(f_bins - p_bins), tol)


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_parameters(name):
  m = toy2d.mixture(name)
  k = {"8gaussians": 8, "25gaussians": 25}[name]
  assert m.means.shape == (k, 2) and m.weights.shape == (k,)
  np.testing.assert_allclose(m.weights.sum(), 1.0, rtol=1e-6)
  if name == "8gaussians":   # WGAN-GP toy before its /1.414: radius 2, std 0.02
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), 2.0, rtol=1e-6)
    assert m.std == 0.02
  else:                      # grid {-2..2}·2, std 0.05
    assert sorted(set(m.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0] and m.std == 0.05
  # sample covariance = Σ w μμᵀ − m̄m̄ᵀ + s² I
  mean = (m.weights[:, None] * m.means).sum(0)
  cov = (m.weights[:, None, None] * m.means[:, :, None] * m.means[:, None, :]).sum(0) - np.outer(mean, mean)
  cov += m.std ** 2 * np.eye(2)
  x = _samples(name)
  np.testing.assert_allclose(x.mean(0), mean, atol=0.02)
  np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05 * np.abs(cov).max())
  with pytest.raises(ValueError, match="not a Gaussian mixture"):
    toy2d.mixture("rings")


def test_ring_closed_form_matches_angle_quadrature():
  """Rice density of one ring = ∫ N(x; R(cos a, sin a), s²I) da/2π, checked by brute quadrature."""
  x = jnp.array([[0.1, 0.2], [2.9, 0.3], [-1.2, 1.0], [0.0, 0.76], [2.0, -2.0]])
  a = 2 * np.pi * (np.arange(20000) + 0.5) / 20000
  s = toy2d.RING_STD
  ref = 0.0
  for r in toy2d.RING_RADII:
    mu = r * np.stack([np.cos(a), np.sin(a)], -1)
    d2 = ((np.asarray(x, np.float64)[:, None] - mu) ** 2).sum(-1)
    ref = ref + np.exp(-d2 / (2 * s * s)).mean(1) / (2 * np.pi * s * s) / len(toy2d.RING_RADII)
  got = np.exp(np.asarray(toy2d.log_prob("rings", x), np.float64))
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-30)


def test_checkerboard_support_and_value():
  lp = toy2d.log_prob("checkerboard", jnp.array([[0.5, 0.5], [0.5, -0.5], [-3.0, -3.0], [4.5, 0.5]]))
  np.testing.assert_allclose(np.asarray(lp[0]), -np.log(32.0), rtol=1e-6)
  assert np.isneginf(np.asarray(lp[1:2])).all() and np.isfinite(lp[2]) and np.isneginf(lp[3])


def test_indexed_samples_depend_only_on_seed_and_index():
  a = toy2d.sample_indexed("two_moons", 3, np.arange(10))
  b = toy2d.sample_indexed("two_moons", 3, np.array([7, 2]))
  np.testing.assert_array_equal(a[[7, 2]], b)
  c = toy2d.sample_indexed("two_moons", 4, np.arange(10))
  assert not np.allclose(a, c)
  big = toy2d.sample_indexed("two_moons", 3, np.array([2 ** 32 + 7]))   # the high word matters
  assert not np.allclose(big[0], a[7])


def test_unknown_toy_name():
  with pytest.raises(ValueError, match="8gaussians, 25gaussians, swiss_roll, checkerboard, two_moons, rings"):
    toy2d.sample("moons", jax.random.key(0), 4)


def test_log_prob_is_differentiable():
  g = jax.grad(lambda x: toy2d.log_prob("swiss_roll", x).sum())(jnp.array([[0.5, 0.3]]))
  assert np.isfinite(np.asarray(g)).all()
