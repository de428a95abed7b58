"""ODE integrators: linear ODEs against exp, convergence orders, and the PF-ODE flow map of Gaussian data
(docs/reference.md §3) under the VP, VE, EDM and flow-matching schedules (the general Algorithm-1 ODE)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dif
from jaxgen.diffusion import ode

A = np.array([[-0.5, 2.0], [-2.0, -0.5]])


def linear(y, t):
  return {"z": y["z"] @ jnp.asarray(A, jnp.float32).T, "w": -0.3 * y["w"]}


def exact(t, z0=np.array([1.0, 0.0]), w0=1.0):
  # exp(tA) for A = −½I + 2J, J = [[0, 1], [−1, 0]]
  e = np.exp(-0.5 * t)
  rot = np.array([[np.cos(2 * t), np.sin(2 * t)], [-np.sin(2 * t), np.cos(2 * t)]])
  return e * rot @ z0, w0 * np.exp(-0.3 * t)


@functools.cache
def _rk45():
  return jax.jit(lambda y0, t0, t1: ode.odeint_rk45(linear, y0, t0, t1, rtol=1e-6, atol=1e-8))


def test_rk45_linear_matches_exp_both_directions():
  y0 = {"z": jnp.array([1.0, 0.0]), "w": jnp.ones((3,))}
  sol = _rk45()(y0, 0.0, 4.0)
  z, w = exact(4.0)
  assert bool(sol.success) and float(sol.t) == 4.0
  np.testing.assert_allclose(sol.y["z"], z, atol=2e-5)
  np.testing.assert_allclose(sol.y["w"], np.full(3, w), rtol=2e-5)
  # NFE counted in the program: 2 to start (f0 + Hairer's probe), 6 per attempted step (FSAL)
  assert int(sol.nfe) == 2 + 6 * int(sol.num_steps + sol.num_rejected)
  back = _rk45()(sol.y, 4.0, 0.0)
  np.testing.assert_allclose(back.y["z"], [1.0, 0.0], atol=5e-5)
  # fixed-NFE mode: n equal Dormand–Prince steps, 6n + 1 evaluations
  fx = ode.odeint_rk45(linear, y0, 0.0, 4.0, fixed_steps=40)
  assert int(fx.nfe) == 241
  np.testing.assert_allclose(fx.y["z"], z, atol=1e-5)


def test_rk45_tolerance_and_per_example_steps_under_vmap():
  f = lambda y, t: -y * y                       # y(t) = 1/(1/y0 + t)
  y0 = jnp.array([0.1, 1.0, 10.0])
  sols = jax.jit(jax.vmap(lambda y: ode.odeint_rk45(f, y, 0.0, 10.0, rtol=1e-6, atol=1e-7)))(y0)
  np.testing.assert_allclose(sols.y, 1 / (1 / np.asarray(y0) + 10.0), rtol=2e-5)
  assert len(set(np.asarray(sols.nfe).tolist())) > 1   # each example took its own steps


def test_fixed_step_orders():
  """Global error on y' = −y over [0, 1]: slopes 1 (Euler), 2 (Heun), 4 (RK4)."""
  run = jax.jit(lambda ts, m: ode.odeint_fixed(lambda y, t: -y, jnp.float32(1.0), ts, m),
                static_argnums=1)
  for method, order in (("euler", 1), ("heun", 2), ("rk4", 4)):
    n = (8, 16) if method != "rk4" else (4, 8)
    err = [abs(float(run(jnp.linspace(0.0, 1.0, k + 1), method)) - np.exp(-1)) for k in n]
    slope = np.log(err[0] / err[1]) / np.log(2)
    assert abs(slope - order) < 0.15, (method, slope)
  assert ode.fixed_nfe(18, "heun") == 36
  _, traj = ode.odeint_fixed(lambda y, t: -y, jnp.float32(1), jnp.linspace(0, 1, 5), "euler", return_trajectory=True)
  np.testing.assert_allclose(traj, 0.75 ** np.arange(1, 5), rtol=1e-6)
  with pytest.raises(ValueError, match="method"):
    ode.odeint_fixed(lambda y, t: y, jnp.float32(1), jnp.linspace(0, 1, 3), "rk9")


SCHEDULES = [dif.VPSchedule(), dif.VESchedule(), dif.EDMSchedule(), dif.FlowMatchingSchedule()]


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: type(s).__name__)
def test_flow_map_is_schedule_independent(sched):
  """Data N(μ, s²I): x̃(σ) − μ = (x̃(σ') − μ)√((s²+σ²)/(s²+σ'²)) in σ-space, whatever σ(t) and s(t)."""
  mu, s2 = 0.3, 0.25
  D = lambda x, sigma: mu + s2 / (s2 + sigma[:, None] ** 2) * (x - mu)
  hi, lo = 20.0, 0.05
  t0, t1 = sched.sigma_inv(hi), sched.sigma_inv(lo)
  xt0 = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]) * hi
  drift = dif.pf_ode_drift(D, sched)
  sol = ode.odeint_rk45(drift, sched.s(t0) * xt0, t0, t1, rtol=1e-6, atol=1e-6)
  got = sol.y / sched.s(t1)
  want = mu + (np.asarray(xt0) - mu) * np.sqrt((s2 + lo ** 2) / (s2 + hi ** 2))
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
