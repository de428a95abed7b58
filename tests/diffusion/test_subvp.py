"""Sub-VP (Song et al. 2021) as an EDM schedule: agreement with the SDE, score_sde's parameterization and
loss, and the Gaussian probability-flow map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dfn

SCHED = dfn.SubVPSchedule()
TS = np.array([1e-5, 1e-3, 0.05, 0.3, 0.7, 1.0])


def test_marginals_equal_the_sub_vp_sde():
  # score_sde's sub-VP kernel: mean e^{-B/2}·y, std 1 − e^{−B} (β ∈ [0.1, 20], docs/reference.md §2).
  sde = dfn.SubVPSDE()
  mean, std = sde.coefficients(jnp.asarray(TS))
  np.testing.assert_allclose(SCHED.s(TS), mean, rtol=1e-6)
  np.testing.assert_allclose(SCHED.sigma(TS) * SCHED.s(TS), std, rtol=2e-6)
  # Float64 closed form: σ = e^{B/2} − e^{−B/2}.
  big_b = 0.5 * 19.9 * TS ** 2 + 0.1 * TS
  np.testing.assert_allclose(SCHED.sigma(TS), np.exp(big_b / 2) - np.exp(-big_b / 2), rtol=2e-6)


def test_edm_ode_coefficients_are_the_sde_drift_and_diffusion():
  # EDM eq. 4 from (s, σ): f = ṡ/s, g² = 2s²σ̇σ must equal the sub-VP SDE's f(t), g(t)².
  sde = dfn.SubVPSDE()
  t = jnp.asarray(TS[1:])
  x = jnp.ones((t.shape[0], 1))
  drift, g = jax.vmap(lambda xi, ti: sde.sde(xi[None], ti))(x, t)
  f = SCHED.s_deriv(t) / SCHED.s(t)
  np.testing.assert_allclose(f, drift[:, 0, 0], rtol=1e-5)
  g2 = 2 * SCHED.s(t) ** 2 * SCHED.sigma_deriv(t) * SCHED.sigma(t)
  np.testing.assert_allclose(g2, np.asarray(g).reshape(-1) ** 2, rtol=1e-4)
  # σ̇ is the derivative of σ, and σ⁻¹ inverts σ.
  np.testing.assert_allclose(SCHED.sigma_deriv(t), jax.vmap(jax.grad(SCHED.sigma))(t), rtol=1e-5)
  np.testing.assert_allclose(SCHED.sigma_inv(SCHED.sigma(t)), t, rtol=1e-4)


def test_fit_reaches_the_requested_sigma_range():
  fitted = dfn.SubVPSchedule.fit(0.002, 80.0)
  np.testing.assert_allclose([fitted.sigma_min, fitted.sigma_max], [0.002, 80.0], rtol=1e-9)
  np.testing.assert_allclose(fitted.sigma(jnp.asarray([fitted.eps_s, 1.0])), [0.002, 80.0], rtol=1e-5)
  # Defaults: σ(1) = 2 sinh(½(½·19.9 + 0.1)).
  np.testing.assert_allclose(SCHED.sigma_max, 2 * np.sinh(0.5 * 10.05), rtol=1e-12)


def test_denoiser_and_loss_are_score_sdes_parameterization():
  """score_sde (subVP, continuous): score(x_t, t) = −F(x_t, 999t)/std(t), loss ‖std·score + z‖²."""
  key = jax.random.key(0)
  w = jax.random.normal(key, (3, 3)) * 0.3
  net = lambda x_in, c_noise, labels=None: jnp.tanh(x_in @ w) + 1e-3 * c_noise[:, None]
  D = dfn.precondition(net, SCHED)
  t = jnp.asarray([0.01, 0.2, 0.5, 0.9])
  y = jax.random.normal(jax.random.key(1), (4, 3))
  z = jax.random.normal(jax.random.key(2), (4, 3))
  s, sigma = SCHED.s(t), SCHED.sigma(t)
  std = s * sigma
  x_t = s[:, None] * y + std[:, None] * z                     # score_sde's perturbed data
  score_sde_score = -net(x_t, 999.0 * t) / std[:, None]
  x_hat = x_t / s[:, None]                                    # EDM's unscaled input
  score_hat = (D(x_hat, sigma) - x_hat) / sigma[:, None] ** 2  # ∇ log p(x̂; σ)
  np.testing.assert_allclose(score_hat / s[:, None], score_sde_score, rtol=2e-4, atol=1e-5)
  ours = SCHED.loss_weight(sigma) * jnp.sum((D(y + sigma[:, None] * z, sigma) - y) ** 2, -1)
  theirs = jnp.sum((score_sde_score * std[:, None] + z) ** 2, -1)
  np.testing.assert_allclose(ours, theirs, rtol=2e-4)


def test_training_times_are_uniform_on_eps_t_to_one():
  sig = SCHED.sample_sigma(jax.random.key(3), (20000,))
  t = np.asarray(SCHED.sigma_inv(sig))
  assert t.min() >= SCHED.eps_t * 0.99 and t.max() <= 1.0 + 1e-5
  # Kolmogorov–Smirnov against U(ε_t, 1): 1.63/√n is the 1% critical value.
  u = np.sort((t - SCHED.eps_t) / (1 - SCHED.eps_t))
  ks = np.max(np.abs(u - np.arange(1, u.size + 1) / u.size))
  assert ks < 1.63 / np.sqrt(u.size)


@pytest.mark.parametrize("solver,n,tol", [("heun", 64, 4e-4), ("euler", 256, 6e-3)])
def test_probability_flow_of_gaussian_data(solver, n, tol):
  # Data N(μ, c²): D(x; σ) = μ + c²/(c² + σ²)(x − μ), and the PF-ODE maps x̂(σ₀) = σ₀·z to
  # μ + (σ₀z − μ)·c/√(c² + σ₀²) at σ = 0 (docs/reference.md §3), whatever s(t), σ(t).
  mu, c = 0.3, 0.5
  D = lambda x, sigma: mu + c ** 2 / (c ** 2 + sigma[:, None] ** 2) * (x - mu)
  z = jax.random.normal(jax.random.key(4), (64, 2))
  sig = SCHED.sigma_steps(n)
  out = dfn.sample_ode(D, z * sig[0], sig, schedule=SCHED, solver=solver)
  sigma0 = SCHED.sigma(SCHED.time_steps(n)[0])
  want = mu + (sigma0 * z - mu) * c / jnp.sqrt(c ** 2 + sigma0 ** 2)
  np.testing.assert_allclose(out, want, atol=tol)
