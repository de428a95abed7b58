"""PF-ODE log-likelihood against the Gaussian closed form (docs/reference.md §3), Hutchinson's variance,
bits/dim."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dif

S2 = np.array([0.04, 0.25, 1.0, 2.25])      # eigenvalues of the data covariance
R = np.linalg.qr(np.random.RandomState(0).randn(4, 4))[0]
SMIN, SMAX = 0.002, 80.0


def D(x, sigma):
  """Ideal denoiser of N(0, R diag(S2) Rᵀ): D = Σ(Σ + σ²I)⁻¹x (a non-diagonal Jacobian)."""
  r, s2 = jnp.asarray(R, jnp.float32), jnp.asarray(S2, jnp.float32)
  return ((x @ r) * (s2 / (s2 + sigma[:, None] ** 2))) @ r.T


def closed_form(x):
  """log π(x_T) + Σ_m ½ln((s_m²+σ_max²)/(s_m²+σ_min²)), x_T the flow image, π = N(0, σ_max² I)."""
  ratio = (S2 + SMAX ** 2) / (S2 + SMIN ** 2)
  z = (np.asarray(x, np.float64) @ R) * np.sqrt(ratio)
  return -0.5 * 4 * np.log(2 * np.pi * SMAX ** 2) - 0.5 * (z ** 2).sum(1) / SMAX ** 2 + 0.5 * np.log(ratio).sum()


def hutchinson_var(estimator):
  """Fixed probe ε for the whole solve: the estimate is log p + εᵀKε − tr K, K = ∫J dlnσ = R diag(k) Rᵀ.
  Var: Rademacher 2Σ_{i≠j}K_ij², Gaussian 2‖K‖_F²."""
  K = R @ np.diag(0.5 * np.log((S2 + SMAX ** 2) / (S2 + SMIN ** 2))) @ R.T
  off = (K ** 2).sum() - (np.diag(K) ** 2).sum()
  return 2 * off if estimator == "rademacher" else 2 * (K ** 2).sum()


X = jnp.asarray(0.7 * np.random.RandomState(1).randn(48, 4), jnp.float32)


@functools.cache
def _ll(estimator, exact):
  return jax.jit(lambda x, key, idx: dif.log_likelihood(D, x, key, sigma_min=SMIN, sigma_max=SMAX, exact_trace=exact,
                                                        estimator=estimator, indices=idx, return_stats=True))


def test_exact_trace_matches_closed_form():
  logp, stats = _ll("rademacher", True)(X, None, jnp.arange(48))
  np.testing.assert_allclose(logp, closed_form(X), rtol=1e-4, atol=2e-3)
  assert bool(jnp.all(stats["success"])) and int(stats["nfe"].max()) < 400


@pytest.mark.parametrize("estimator", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_predicted_variance(estimator):
  logp, _ = _ll(estimator, False)(X, jax.random.key(0), jnp.arange(48))
  err = np.asarray(logp, np.float64) - closed_form(X)
  sd = math.sqrt(hutchinson_var(estimator))
  assert abs(err.mean()) < 5 * sd / math.sqrt(err.size)
  assert 0.5 * sd < err.std() < 1.6 * sd       # sample sd of 48 draws is within ±50% w.p. > 0.999


def test_example_does_not_depend_on_its_batch():
  a, _ = _ll("rademacher", False)(X, jax.random.key(3), jnp.arange(48))
  idx = jnp.arange(48)[::-1]
  b, _ = _ll("rademacher", False)(X[::-1], jax.random.key(3), idx)
  np.testing.assert_allclose(a, b[::-1], rtol=1e-5, atol=1e-4)


def test_fixed_steps_mode():
  logp, stats = dif.log_likelihood(D, X[:4], exact_trace=True, sigma_min=SMIN, sigma_max=SMAX, fixed_steps=48,
                                   return_stats=True)
  np.testing.assert_allclose(logp, closed_form(X[:4]), rtol=1e-3, atol=1e-2)
  np.testing.assert_array_equal(stats["nfe"], 6 * 48 + 1)


def test_bits_per_dim_and_dequantize():
  # Uniform density on [−1, 1]^D: log p = −D ln 2 ⇒ 8 bits/dim, the entropy of a uniform byte.
  np.testing.assert_allclose(dif.bits_per_dim(jnp.array([-10 * math.log(2)]), 10), [8.0], rtol=1e-6)
  np.testing.assert_allclose(dif.bits_per_dim(jnp.array([0.0]), 10, data_range=(0.0, 1.0)), [8.0], rtol=1e-6)
  k = jnp.arange(256, dtype=jnp.uint8).reshape(16, 16)
  x = dif.dequantize(jax.random.key(1), k)
  assert float(x.min()) >= -1 and float(x.max()) < 1
  np.testing.assert_array_equal(np.floor((np.asarray(x) + 1) / 2 * 256), np.asarray(k))
  with pytest.raises(ValueError, match="PRNG key"):
    dif.log_likelihood(D, X, None)
  with pytest.raises(ValueError, match="estimator"):
    dif.log_likelihood(D, X, jax.random.key(0), estimator="sphere")
