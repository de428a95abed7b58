"""Score SDEs (score_sde, docs/reference.md §2) against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import ode
from jaxgen.diffusion import schedules as sch
from jaxgen.diffusion.sde import EDMSDE, SubVPSDE, VESDE, VPSDE, sample_reverse_sde

SDES = {"vp": (VPSDE(), (0.1, 0.4, 0.9)), "subvp": (SubVPSDE(), (0.1, 0.4, 0.9)),
        "ve": (VESDE(), (0.1, 0.4, 0.9)), "edm": (EDMSDE(), (0.5, 2.0, 10.0))}


@pytest.mark.parametrize("name", sorted(SDES))
def test_marginals_solve_the_moment_equations(name):
  # For the linear SDE dx = a(t)x dt + g(t) dw the marginal coefficients satisfy m' = a·m and
  # (std²)' = 2a·std² + g² (Särkkä & Solin, Eq. 5.51). a and g come from ``sde``, m and std from
  # ``marginal_prob``; derivatives by forward-mode autodiff. This pins sub-VP's std = 1 − e^{−∫β}
  # (its square root would violate the second equation).
  sde, ts = SDES[name]
  one = jnp.ones((1, 1))
  for t in ts:
    t = jnp.float32(t)
    a = sde.sde(one, t)[0][0, 0]
    g = sde.sde(one, t)[1]
    m, dm = jax.jvp(lambda t: sde.coefficients(t)[0], (t,), (jnp.float32(1),))
    v, dv = jax.jvp(lambda t: jnp.square(sde.coefficients(t)[1]), (t,), (jnp.float32(1),))
    np.testing.assert_allclose(float(dm), float(a * m), rtol=2e-3, atol=1e-7)
    np.testing.assert_allclose(float(dv), float(2 * a * v + g * g), rtol=2e-3, atol=1e-6)
    mean, std = sde.marginal_prob(2.0 * one, t)
    np.testing.assert_allclose(float(mean[0, 0]), 2 * float(m), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(SDES))
def test_sdes_are_the_schedules_processes(name):
  # Each SDE is its EDM schedule in the SDE's time (x(t) = s(u)·(y + σ(u)·n), u = u(t)): the marginal
  # is (s, s·σ) at u, and by EDM eq. 4 the drift is d ln s/dt and g² = s²·d(σ²)/dt. Checked against
  # forward-mode autodiff of the schedule's σ and s through u(t), and the schedule of each SDE has the
  # SDE's constants (VP β_d = β_max − β_min; VE σ(t) = √u with u = σ_min²(σ_max/σ_min)^{2t}).
  sde, ts = SDES[name]
  expected = {"vp": sch.VPSchedule(beta_d=19.9, beta_min=0.1),
              "subvp": sch.SubVPSchedule(beta_d=19.9, beta_min=0.1),
              "ve": sch.VESchedule(sigma_min=0.01, sigma_max=50.0), "edm": sch.EDMSchedule()}[name]
  assert sde.schedule == expected
  one = jnp.ones((1, 1))
  for t in ts:
    t = jnp.float32(t)
    u = lambda t: sde.schedule_time(t)[0]
    s, ds = jax.jvp(lambda t: sde.schedule.s(u(t)), (t,), (jnp.float32(1),))
    v, dv = jax.jvp(lambda t: jnp.square(sde.schedule.sigma(u(t))), (t,), (jnp.float32(1),))
    m, std = sde.coefficients(t)
    np.testing.assert_allclose([float(m), float(std)], [float(s), float(s) * math.sqrt(float(v))], rtol=1e-5)
    f, g = sde.sde(one, t)
    np.testing.assert_allclose(float(f[0, 0]), float(ds / s), rtol=1e-4)
    np.testing.assert_allclose(float(g) ** 2, float(s) ** 2 * float(dv), rtol=1e-4)
  if name == "ve":
    np.testing.assert_allclose(float(sde.coefficients(0.3)[1]), 0.01 * 5000 ** 0.3, rtol=1e-5)


def test_vp_diffusion_is_finite_at_time_zero():
  # σ̇ = ∞ at σ = 0 for VP, but g(0)² = s²·d(σ²)/dt = β_min (the schedule's closed-form sigma_sq_deriv);
  # sub-VP's g(0) = 0.
  _, g = VPSDE().sde(jnp.ones((1, 1)), jnp.float32(0.0))
  np.testing.assert_allclose(float(g), math.sqrt(0.1), rtol=1e-6)
  _, g = SubVPSDE().sde(jnp.ones((1, 1)), jnp.float32(0.0))
  assert float(g) == 0.0


def test_closed_form_values():
  # ∫₀ᵗβ = β_min t + ½(β_max − β_min)t²; VP std = √(1 − e^{−∫β}), sub-VP std = 1 − e^{−∫β}
  # (docs/reference.md §2); VE σ(t) = σ_min(σ_max/σ_min)^t, g = σ(t)√(2 ln(σ_max/σ_min)).
  t = 0.3
  ib = 0.1 * t + 0.5 * 19.9 * t * t
  _, std_vp = VPSDE().marginal_prob(jnp.ones((1, 1)), t)
  _, std_sub = SubVPSDE().marginal_prob(jnp.ones((1, 1)), t)
  np.testing.assert_allclose(float(std_vp), math.sqrt(1 - math.exp(-ib)), rtol=1e-5)
  np.testing.assert_allclose(float(std_sub), 1 - math.exp(-ib), rtol=1e-5)
  _, g = VESDE().sde(jnp.ones((1, 1)), t)
  sig = 0.01 * 5000 ** t
  np.testing.assert_allclose(float(g), sig * math.sqrt(2 * math.log(5000)), rtol=1e-5)
  # Priors: N(0, I) for VP/sub-VP, N(0, σ_max² I) for VE; log-densities per example.
  z = jax.random.normal(jax.random.key(0), (3, 2, 2))
  lp = np.asarray(VESDE().prior_logp(z * 50.0))
  ref = np.sum(-0.5 * np.log(2 * np.pi * 2500) - np.asarray(z * 50.0) ** 2 / 5000, axis=(1, 2))
  np.testing.assert_allclose(lp, ref, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(VPSDE().prior_logp(z)),
                             np.sum(-0.5 * np.log(2 * np.pi) - np.asarray(z) ** 2 / 2, (1, 2)),
                             rtol=1e-5)
  draws = VESDE().prior_sampling(jax.random.key(1), (20000, 1))
  assert abs(float(jnp.std(draws)) / 50 - 1) < 4 * math.sqrt(1 / (2 * 20000))


def test_score_sde_grid_discretizations():
  # score_sde: VP uses DDPM's β_i = linspace(β_min/N, β_max/N, N) (1e-4 … 0.02 for N = 1000),
  # f = (√(1−β_i) − 1)x, G = √β_i; VE uses NCSN's ladder with σ_{−1} = 0.
  x = jnp.ones((1, 1))
  for t, beta in ((0.0, 1e-4), (1.0, 0.02)):
    f, g = VPSDE().discretize(x, jnp.array([t]))
    np.testing.assert_allclose(float(g[0]), math.sqrt(beta), rtol=1e-5)
    np.testing.assert_allclose(float(f[0, 0]), math.sqrt(1 - beta) - 1, rtol=1e-3)
  _, g0 = VESDE().discretize(x, jnp.array([0.0]))
  np.testing.assert_allclose(float(g0[0]), 0.01, rtol=1e-5)
  # The exact transition between any two times reproduces the marginals.
  for sde in (VPSDE(), SubVPSDE(), VESDE()):
    a, g = sde.transition(jnp.float32(0.7), jnp.float32(0.3))
    m, s = sde.coefficients(0.7)
    m_n, s_n = sde.coefficients(0.3)
    np.testing.assert_allclose(float(a * m_n), float(m), rtol=1e-5)
    np.testing.assert_allclose(float(a * a * s_n ** 2 + g * g), float(s ** 2), rtol=1e-5)


def _gaussian_score(sde, mu, s):
  def score(x, t):
    m, std = sde.coefficients(t)
    m = jnp.reshape(m, (-1, 1))
    var = m ** 2 * s ** 2 + jnp.reshape(std, (-1, 1)) ** 2
    return -(x - m * mu) / var
  return score


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_probability_flow_transports_gaussian_exactly(name):
  # Data N(μ, s²I), μ = 0.3, s = 0.5; the exact score of p_t = N(mμ, m²s² + std²) in
  # sde.reverse(score, probability_flow=True). Integrating its drift from T = 1 to t = 0.05 (RK45,
  # tol 1e-6) maps x_T to mμ + (x_T − m_Tμ)·√(V_t/V_T), V = m²s² + std² (the affine flow map).
  sde, _ = SDES[name]
  mu, s = 0.3, 0.5
  rsde = sde.reverse(_gaussian_score(sde, mu, s), probability_flow=True)
  x_T = jax.random.normal(jax.random.key(2), (4, 3)) * sde.prior_std()
  f = lambda y, t: rsde.sde(y, jnp.full((y.shape[0],), t))[0]
  sol = jax.jit(lambda y: ode.odeint_rk45(f, y, 1.0, 0.05, rtol=1e-6, atol=1e-6))(x_T)

  def var(t):
    m, std = sde.coefficients(jnp.float32(t))
    return float(m) ** 2 * s ** 2 + float(std) ** 2, float(m)

  v_T, m_T = var(1.0)
  v_t, m_t = var(0.05)
  exact = m_t * mu + (np.asarray(x_T) - m_T * mu) * math.sqrt(v_t / v_T)
  np.testing.assert_allclose(np.asarray(sol.y), exact, rtol=1e-3, atol=1e-4)
  # The reverse SDE (not the flow): drift f − g²∇log p and diffusion g.
  r = sde.reverse(_gaussian_score(sde, mu, s))
  t = jnp.full((4,), 0.5)
  drift, diff = r.sde(x_T, t)
  f0, g0 = sde.sde(x_T, t)
  np.testing.assert_allclose(np.asarray(drift), np.asarray(
      f0 - g0[:, None] ** 2 * _gaussian_score(sde, mu, s)(x_T, t)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(diff), np.asarray(g0))


@pytest.mark.parametrize("predictor", ["reverse_diffusion", "euler_maruyama"])
def test_reverse_sde_sampler_on_vp_gaussian(predictor):
  # Setup: VP SDE, data N(μ = 0.3, s² = 0.25) in 4 dims, exact score, 4000 samples from the prior,
  # grid linspace(1, 1e-3, 201), one Langevin corrector step (snr 0.16, batch norms) per level,
  # score_sde's noise removal. Mean and variance of all 16000 coordinates match the data within
  # 4 standard errors plus a 2% discretization allowance.
  sde = VPSDE()
  mu, s, n = 0.3, 0.5, 4000
  x = sde.prior_sampling(jax.random.key(3), (n, 4))
  ts = jnp.linspace(1.0, 1e-3, 201)
  out, nfe = jax.jit(lambda x: sample_reverse_sde(
      sde, _gaussian_score(sde, mu, s), x, ts, jax.random.key(4), predictor=predictor,
      corrector="langevin", corrector_norm="batch", return_nfe=True))(x)
  out = np.asarray(out).ravel()
  assert int(nfe) == 400
  assert abs(out.mean() - mu) < 4 * s / math.sqrt(out.size) + 0.02 * s
  assert abs(out.var() / s ** 2 - 1) < 4 * math.sqrt(2 / out.size) + 0.02
