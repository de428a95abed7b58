"""Schedules against EDM Table 1 (Karras et al. 2022) recomputed independently in float64."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dif

SIGMAS = np.array([0.002, 0.02, 0.3, 1.0, 5.0, 40.0, 80.0])

CONTINUOUS = [dif.VPSchedule(), dif.VESchedule(), dif.EDMSchedule(), dif.FlowMatchingSchedule(),
              dif.IDDPMSchedule()]


@pytest.mark.parametrize("sched", CONTINUOUS, ids=lambda s: type(s).__name__)
def test_sigma_inverse_round_trip(sched):
  np.testing.assert_allclose(sched.sigma(sched.sigma_inv(SIGMAS)), SIGMAS, rtol=2e-5)


@pytest.mark.parametrize("sched", CONTINUOUS, ids=lambda s: type(s).__name__)
def test_derivatives_match_autodiff(sched):
  ts = sched.sigma_inv(jnp.asarray(SIGMAS[1:-1], jnp.float32))
  for f, df in ((sched.sigma, sched.sigma_deriv), (sched.s, sched.s_deriv)):
    auto = jax.vmap(jax.grad(lambda t: f(t)))(ts)
    np.testing.assert_allclose(df(ts), auto, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sched", CONTINUOUS + [dif.SubVPSchedule(), dif.DDPMSchedule(), dif.NCSNSchedule()],
                         ids=lambda s: type(s).__name__)
def test_sigma_sq_deriv_is_the_derivative_of_sigma_squared(sched):
  # d(σ²)/dt (the SDEs' g² = s²·d(σ²)/dt) against autodiff, and finite at t = 0 where σ(0) = 0.
  ts = sched.sigma_inv(jnp.asarray(SIGMAS[1:-1], jnp.float32))
  auto = jax.vmap(jax.grad(lambda t: sched.sigma(t) ** 2))(ts)
  np.testing.assert_allclose(sched.sigma_sq_deriv(ts), auto, rtol=1e-4)
  assert np.isfinite(float(sched.sigma_sq_deriv(0.0)))


def test_vp_formulas():
  vp = dif.VPSchedule()
  t = np.array([1e-5, 1e-3, 0.1, 0.5, 1.0])
  sig = np.sqrt(np.exp(0.5 * 19.9 * t ** 2 + 0.1 * t) - 1)
  np.testing.assert_allclose(vp.sigma(t), sig, rtol=1e-5)
  np.testing.assert_allclose(vp.s(t), 1 / np.sqrt(sig ** 2 + 1), rtol=1e-6)
  np.testing.assert_allclose(vp.sigma_inv(SIGMAS),
                             (np.sqrt(0.1 ** 2 + 2 * 19.9 * np.log(1 + SIGMAS ** 2)) - 0.1) / 19.9, rtol=1e-5)
  # official ablation_sampler: σ̇ = ½(β_min + β_d t)(σ + 1/σ), ṡ = −σσ̇s³
  np.testing.assert_allclose(vp.sigma_deriv(t[1:]), 0.5 * (0.1 + 19.9 * t[1:]) * (sig[1:] + 1 / sig[1:]), rtol=1e-4)
  sd = 0.5 * (0.1 + 19.9 * t) * (sig + 1 / sig)
  np.testing.assert_allclose(vp.s_deriv(t[1:]), (-sig * sd / np.sqrt(sig ** 2 + 1) ** 3)[1:], rtol=1e-4)
  assert math.isclose(vp.sigma_min, math.sqrt(math.expm1(0.5 * 19.9e-6 + 0.1e-3)), rel_tol=1e-12)
  assert math.isclose(vp.sigma_max, math.sqrt(math.expm1(10.05)), rel_tol=1e-12)


def _table1(name, s):
  """EDM Table 1 rows (c_skip, c_out, c_in, c_noise) in float64."""
  if name == "vp":
    t = (np.sqrt(0.1 ** 2 + 2 * 19.9 * np.log(1 + s ** 2)) - 0.1) / 19.9
    return 1 + 0 * s, -s, 1 / np.sqrt(s ** 2 + 1), 999 * t
  if name == "ve":
    return 1 + 0 * s, s, 1 + 0 * s, np.log(0.5 * s)
  if name == "edm":
    sd = 0.5
    return sd ** 2 / (s ** 2 + sd ** 2), s * sd / np.sqrt(s ** 2 + sd ** 2), 1 / np.sqrt(sd ** 2 + s ** 2), np.log(s) / 4
  u = dif.iddpm_u()
  j = np.argmin(np.abs(s[:, None] - u[None]), axis=1)
  return 1 + 0 * s, -s, 1 / np.sqrt(s ** 2 + 1), 999 - j


@pytest.mark.parametrize("name,sched", [("vp", dif.VPSchedule()), ("ve", dif.VESchedule()),
                                        ("edm", dif.EDMSchedule()), ("iddpm", dif.IDDPMSchedule())])
def test_precond_table1(name, sched):
  got = sched.precond(jnp.asarray(SIGMAS, jnp.float32))
  for g, w in zip(got, _table1(name, SIGMAS)):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-6)


def test_loss_weights():
  s = SIGMAS
  for sched in (dif.VPSchedule(), dif.VESchedule(), dif.IDDPMSchedule(), dif.DDPMSchedule()):
    np.testing.assert_allclose(sched.loss_weight(s), 1 / s ** 2, rtol=1e-6)
  np.testing.assert_allclose(dif.EDMSchedule().loss_weight(s), (s ** 2 + 0.25) / (0.5 * s) ** 2, rtol=1e-6)
  np.testing.assert_allclose(dif.FlowMatchingSchedule().loss_weight(s), ((1 + s) / s) ** 2, rtol=1e-6)


def test_time_grids():
  N = 7
  i = np.arange(N)
  vp = dif.VPSchedule()
  np.testing.assert_allclose(vp.time_steps(N), np.r_[1 + i / (N - 1) * (1e-3 - 1), 0], rtol=1e-6)
  np.testing.assert_allclose(dif.vp_sigmas(N), np.r_[np.sqrt(np.expm1(0.5 * 19.9 * (1 + i / (N - 1) * (1e-3 - 1)) ** 2
                                                                      + 0.1 * (1 + i / (N - 1) * (1e-3 - 1)))), 0], rtol=1e-6)
  # refitted β (ablation_sampler): the VP grid then spans exactly [σ_min, σ_max]
  g = dif.vp_sigmas(N, 0.002, 80.0)
  np.testing.assert_allclose([g[0], g[-2]], [80.0, 0.002], rtol=1e-5)
  ve_t = 100.0 ** 2 * (0.02 ** 2 / 100.0 ** 2) ** (i / (N - 1))
  np.testing.assert_allclose(dif.VESchedule().time_steps(N), np.r_[ve_t, 0], rtol=1e-6)
  np.testing.assert_allclose(dif.ve_sigmas(N), np.r_[np.sqrt(ve_t), 0], rtol=1e-6)
  edm = (80 ** (1 / 7) + i / (N - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
  for g in (dif.EDMSchedule().time_steps(N), dif.karras_sigmas(N), jax.jit(dif.karras_sigmas, static_argnums=0)(N, 0.002, 80.0)):
    assert g.shape == (N + 1,) and g.dtype == jnp.float32 and g[-1] == 0
    np.testing.assert_allclose(g[:-1], edm, rtol=2e-6)
  fm = dif.FlowMatchingSchedule()
  np.testing.assert_allclose(fm.time_steps(4), [0.999, 0.999 * 0.75, 0.999 * 0.5, 0.999 * 0.25, 0], rtol=1e-6)
  np.testing.assert_allclose(fm.sigma_steps(4)[:-1], fm.sigma(fm.time_steps(4)[:-1]), rtol=1e-6)
  for sched in (vp, dif.VESchedule(), dif.EDMSchedule(), dif.IDDPMSchedule(), dif.DDPMSchedule()):
    sg = sched.sigma_steps(N)
    assert sg[-1] == 0 and np.all(np.diff(np.asarray(sg)) < 0)
    np.testing.assert_allclose([sg[0], sg[-2]], [sched.sigma_max if not isinstance(sched, dif.IDDPMSchedule)
                                                 else dif.iddpm_u()[8], sched.sigma_min], rtol=1e-5)


def test_iddpm_u_recurrence():
  M, C1, C2 = 1000, 0.001, 0.008
  u = dif.iddpm_u()
  abar = lambda j: np.sin(0.5 * np.pi * j / (M * (C2 + 1))) ** 2
  j = np.arange(1, M + 1)
  assert u.shape == (M + 1,) and u[M] == 0 and np.all(np.diff(u) < 0)
  np.testing.assert_allclose(u[j - 1] ** 2 + 1, (u[j] ** 2 + 1) / np.maximum(abar(j - 1) / abar(j), C1), rtol=1e-12)
  # iDDPM's u grid is the cosine-β DDPM ladder read backwards (β ≤ 0.999 ⇔ ratio ≥ C₁).
  np.testing.assert_allclose(u[:M][::-1], dif.DDPMSchedule(kind="cosine").sigmas, rtol=1e-9)
  N = 18
  i = np.arange(N)
  np.testing.assert_allclose(dif.iddpm_sigmas(N)[:-1], u[np.floor(8 + (M - 1 - 8) / (N - 1) * i + 0.5).astype(int)], rtol=1e-6)
  assert dif.iddpm_sigmas(N)[0] == np.float32(u[8]) and dif.iddpm_sigmas(N)[-2] == np.float32(u[M - 1])
  # official ablation_sampler: u filtered to [0.002, 81], then round-half-even((len−1)/(N−1)·i) — the same grid
  filt = u[(u >= 0.002) & (u <= 81)]
  for n in (2, 3, 18, 40, 256):
    k = np.arange(n)
    np.testing.assert_allclose(dif.iddpm_sigmas(n)[:-1], filt[np.round((len(filt) - 1) / (n - 1) * k).astype(int)], rtol=1e-6)
  sch = dif.IDDPMSchedule()
  np.testing.assert_allclose(sch.round_sigma(jnp.array([u[5] * 1.001, u[700] * 0.999])), [u[5], u[700]], rtol=1e-6)


def test_ddpm_ladders():
  lin = dif.DDPMSchedule()
  b = np.linspace(1e-4, 0.02, 1000)
  np.testing.assert_allclose(lin.alphas_cumprod, np.cumprod(1 - b), rtol=1e-12)
  np.testing.assert_allclose(lin.sigmas, np.sqrt((1 - np.cumprod(1 - b)) / np.cumprod(1 - b)), rtol=1e-12)
  cos = dif.DDPMSchedule(kind="cosine")
  f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
  # Nichol & Dhariwal eq. 17: ᾱ_t = f(t)/f(0) (before the 0.999 clip bites at the very end)
  np.testing.assert_allclose(cos.alphas_cumprod[:900], f(np.arange(1, 901) / 1000) / f(0), rtol=1e-9)
  assert cos.betas.max() == 0.999
  np.testing.assert_array_equal(lin.index(jnp.asarray(lin.sigmas[[0, 17, 999]], jnp.float32)), [0, 17, 999])
  c = lin.precond(jnp.float32(lin.sigmas[250]))
  assert float(c.c_noise) == 250 and np.isclose(c.c_in, np.sqrt(lin.alphas_cumprod[250]), rtol=1e-6)
  with pytest.raises(ValueError, match="kind"):
    dif.DDPMSchedule(kind="quadratic")


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddpm_schedule_is_a_preconditioning_like_the_others(kind):
  # Everything a task uses of a schedule: σ(t) = t, s = 1, σ⁻¹ = id; time_steps(N) = sigma_steps(N) =
  # DDIM's σ_{j_i}, j_i = round((T−1)(1 − i/(N−1))), decreasing from σ_max to σ_min, then exactly 0;
  # precond at σ_j: c_noise = j, c_in = √ᾱ_j (ε: c_skip = 1, c_out = −σ); p_train: σ on the ladder with
  # j uniform on {0..T−1} (mean within 5 standard errors of (T−1)/2), noise_level returns (σ_j, j);
  # more steps than the ladder has is a one-line error.
  sched = dif.DDPMSchedule(kind=kind)
  lad = sched.sigmas
  N = 10
  j = np.round(999 * (1 - np.arange(N) / (N - 1))).astype(int)
  for grid in (sched.time_steps(N), sched.sigma_steps(N)):
    assert grid.shape == (N + 1,) and grid.dtype == jnp.float32 and grid[-1] == 0
    np.testing.assert_allclose(grid[:-1], lad[j], rtol=1e-6)
  assert np.all(np.diff(np.asarray(sched.sigma_steps(N))) < 0)
  np.testing.assert_allclose([sched.sigma_steps(N)[0], sched.sigma_steps(N)[-2]],
                             [sched.sigma_max, sched.sigma_min], rtol=1e-6)
  t = jnp.asarray(lad[[0, 300, 999]], jnp.float32)
  np.testing.assert_array_equal(sched.sigma(t), t)
  np.testing.assert_array_equal(sched.sigma_inv(t), t)
  np.testing.assert_array_equal(sched.s(t), 1.0)
  np.testing.assert_array_equal(sched.sigma_deriv(t), 1.0)
  np.testing.assert_array_equal(sched.s_deriv(t), 0.0)
  c = sched.precond(t)
  np.testing.assert_array_equal(c.c_noise, [0, 300, 999])
  np.testing.assert_allclose(c.c_in, np.sqrt(sched.alphas_cumprod[[0, 300, 999]]), rtol=1e-5)
  np.testing.assert_allclose(c.c_skip, 1.0)
  np.testing.assert_allclose(c.c_out, -np.asarray(t))
  n = 100_000
  sig = np.asarray(sched.sample_sigma(jax.random.key(5), (n,)))
  idx = np.asarray(sched.index(sig))
  np.testing.assert_allclose(sig, np.float32(lad)[idx], rtol=1e-6)
  assert abs(idx.mean() - 499.5) < 5 * np.sqrt((1000 ** 2 - 1) / 12 / n)
  s2, c_noise = sched.noise_level(jax.random.key(6), (64,))
  np.testing.assert_allclose(s2, np.float32(lad)[np.asarray(c_noise).astype(int)], rtol=1e-6)
  with pytest.raises(ValueError, match="exceeds the T=1000 DDPM steps"):
    sched.time_steps(1001)


def test_training_distributions():
  key = jax.random.key(0)
  n = 200_000
  ln = np.log(np.asarray(dif.EDMSchedule().sample_sigma(key, (n,))))
  # lnσ ~ N(−1.2, 1.2²): mean/std within 5 standard errors
  assert abs(ln.mean() + 1.2) < 5 * 1.2 / np.sqrt(n) and abs(ln.std() - 1.2) < 5 * 1.2 / np.sqrt(2 * n)
  ve = np.log(np.asarray(dif.VESchedule().sample_sigma(key, (n,))))
  assert ve.min() >= np.log(0.02) - 1e-5 and ve.max() <= np.log(100) + 1e-5
  assert abs(ve.mean() - 0.5 * (np.log(0.02) + np.log(100))) < 5 * (np.log(5000) / np.sqrt(12 * n))
  vp = dif.VPSchedule()
  t = np.asarray(vp.sigma_inv(vp.sample_sigma(key, (n,))))
  assert t.min() >= 1e-5 * 0.99 and t.max() <= 1.0 + 1e-5 and abs(t.mean() - 0.5) < 0.01
  fm = dif.FlowMatchingSchedule()
  tt = np.asarray(fm.sample_time(key, (n,)))
  assert tt.min() >= 1e-5 and tt.max() < 1 and abs(tt.mean() - 0.5) < 0.01
  ln_t = np.asarray(dif.FlowMatchingSchedule(p_train="logit_normal").sample_time(key, (n,)))
  assert abs(np.median(ln_t) - 0.5) < 0.01          # t = sigmoid(N(0, 1)): median ½
  sig = np.asarray(dif.IDDPMSchedule().sample_sigma(key, (n,)))
  assert np.all(np.isin(sig, np.float32(dif.iddpm_u()[:-1])))


def test_schedule_is_static_jit_argument():
  f = jax.jit(lambda sched, s: sched.precond(s).c_in * sched.loss_weight(s), static_argnums=0)
  for sched in (dif.EDMSchedule(), dif.VPSchedule(), dif.DDPMSchedule(kind="cosine")):
    hash(sched)
    np.testing.assert_allclose(f(sched, jnp.float32(0.7)), sched.precond(0.7).c_in * sched.loss_weight(0.7), rtol=1e-6)


def test_bad_input_errors():
  with pytest.raises(ValueError, match="num_steps"):
    dif.karras_sigmas(0)
  with pytest.raises(ValueError, match="sigma_min"):
    dif.karras_sigmas(5, 1.0, 0.5)
  with pytest.raises(ValueError, match="t_max"):
    dif.FlowMatchingSchedule(t_max=1.0)
