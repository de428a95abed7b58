"""DDIM's official sub-sequences on the discrete DDPM schedule, DDPM ancestral sampling with β_t / β̃_t
(jaxgen.diffusion.samplers_ddpm), and the samplers-vs-NFE table (jaxgen.tables.samplers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import DDPMSchedule, sample_ancestral
from jaxgen.diffusion.samplers_ddpm import ddpm_step_coefficients, sample_ddpm
from jaxgen.errors import ConfigError
from tests.diffusion import mixtures


def _linear_abar():
  beta = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
  return beta, np.cumprod(1.0 - beta)


# ---- DDIM's τ ------------------------------------------------------------------------------------

def test_ddim_uniform_and_quadratic_are_the_official_sequences():
  sched = DDPMSchedule()
  np.testing.assert_array_equal(sched.ddim_timesteps(10, "uniform"), np.arange(0, 1000, 100))
  np.testing.assert_array_equal(sched.ddim_timesteps(3, "uniform"), [0, 333, 666, 999])  # range(0, T, T//S)
  for s in (10, 20, 50, 100):
    quad = [int(v) for v in list(np.linspace(0, np.sqrt(1000 * 0.8), s) ** 2)]
    np.testing.assert_array_equal(sched.ddim_timesteps(s, "quadratic"), quad)
  np.testing.assert_array_equal(sched.ddim_timesteps(10, "quadratic"),
                                [0, 9, 39, 88, 158, 246, 355, 483, 632, 800])
  with pytest.raises(ConfigError, match="unknown DDIM skip_type 'cubic'"):
    sched.ddim_timesteps(10, "cubic")


@pytest.mark.parametrize("skip", ["uniform", "quadratic"])
@pytest.mark.parametrize("steps", [10, 20, 50, 100, 1000])
def test_ddim_sigma_grid_is_sigma_of_abar_at_tau(skip, steps):
  _, abar = _linear_abar()
  sched = DDPMSchedule()
  tau = sched.ddim_timesteps(steps, skip)
  g = np.asarray(sched.ddim_steps(steps, skip), np.float64)
  assert g.shape == (len(tau) + 1,) and g[-1] == 0.0
  np.testing.assert_allclose(g[:-1], np.sqrt((1 - abar[tau[::-1]]) / abar[tau[::-1]]), rtol=1e-6)
  assert np.all(np.diff(g) <= 0)


def test_ddim_10_uniform_steps_start_at_sigma_900():
  # σ_t = √((1 − ᾱ_t)/ᾱ_t) at t = 900 of the linear schedule ≈ 60.82, not the continuous VP grid's 152.
  _, abar = _linear_abar()
  sigma_900 = np.sqrt((1 - abar[900]) / abar[900])
  assert abs(sigma_900 - 60.82) < 0.01
  g = DDPMSchedule().ddim_steps(10, "uniform")
  np.testing.assert_allclose(float(g[0]), sigma_900, rtol=1e-6)
  np.testing.assert_allclose(float(g[-2]), np.sqrt(1e-4 / (1 - 1e-4)), rtol=1e-6)   # σ_0, then 0


def test_time_steps_keeps_the_full_ladder_for_ddpm():
  sched = DDPMSchedule()
  np.testing.assert_array_equal(np.asarray(sched.sigma_steps(1000))[:-1],
                                np.asarray(sched.sigmas[::-1], np.float32))


# ---- DDPM ancestral: β̃_t and β_t ------------------------------------------------------------------

@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_step_is_ddpm_posterior_in_sigma_space(variance):
  # x-space DDPM (Ho et al. eq. 7): x_{t−1} = c0·x̂₀ + ct·x_t + √v·z; in σ-space x̃ = x/√ᾱ it must read
  # x̃' = D + c(x̃ − D) + σ_up z with c = ct·√ᾱ_t/√ᾱ_{t−1}, 1 − c = c0/√ᾱ_{t−1}, σ_up² = v/ᾱ_{t−1}.
  beta, abar = _linear_abar()
  t = np.arange(1, 1000)
  a, a_prev, alpha, b = abar[t], abar[t - 1], 1 - beta[t], beta[t]
  c0 = np.sqrt(a_prev) * b / (1 - a)
  ct = np.sqrt(alpha) * (1 - a_prev) / (1 - a)
  v = b if variance == "beta" else (1 - a_prev) / (1 - a) * b
  sig = np.sqrt((1 - abar) / abar)
  c, up = ddpm_step_coefficients(sig[t], sig[t - 1], variance)
  np.testing.assert_allclose(np.asarray(c), ct * np.sqrt(a) / np.sqrt(a_prev), rtol=2e-4)
  np.testing.assert_allclose(1 - np.asarray(c, np.float64), c0 / np.sqrt(a_prev), rtol=2e-3, atol=1e-6)
  np.testing.assert_allclose(np.asarray(up, np.float64) ** 2, v / a_prev, rtol=2e-3)
  c_last, up_last = ddpm_step_coefficients(sig[0], 0.0, variance)     # t = 0: no noise, returns x̂₀
  assert float(c_last) == 0.0 and float(up_last) == 0.0


def test_beta_tilde_is_sample_ancestral_and_beta_is_larger():
  # sample_ancestral (η = 1) uses σ_up² = σ'²(σ² − σ'²)/σ² = β̃_t/ᾱ_{t−1}: identical draws on the DDPM ladder.
  sched = DDPMSchedule()
  grid = sched.sigma_steps(1000)
  D = mixtures.gaussian_denoiser(0.3, 0.5)
  x = jax.random.normal(jax.random.key(0), (64, 3)) * grid[0]
  key = jax.random.key(1)
  a = jax.jit(lambda x: sample_ddpm(D, x, grid, key, variance="beta_tilde"))(x)
  b = jax.jit(lambda x: sample_ancestral(D, x, grid, key))(x)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  c, up = ddpm_step_coefficients(grid[:-2], grid[1:-1], "beta")
  _, up_t = ddpm_step_coefficients(grid[:-2], grid[1:-1], "beta_tilde")
  assert np.all(np.asarray(up) >= np.asarray(up_t))       # β_t ≥ β̃_t (1 − ᾱ_{t−1} ≤ 1 − ᾱ_t)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_per_step_variance_matches_closed_form(variance):
  # One step from a fixed x with D ≡ 0: x' = c·x + σ_up·z; its sample variance against β_t/ᾱ_{t−1}
  # (or β̃_t/ᾱ_{t−1}) of the float64 schedule, at t = 999 and t = 500.
  beta, abar = _linear_abar()
  sig = np.sqrt((1 - abar) / abar)
  zero = lambda x, s: jnp.zeros_like(x)
  for t in (999, 500):
    grid = jnp.asarray([sig[t], sig[t - 1], 0.0], jnp.float32)
    x = jnp.full((4096, 8), 2.0)
    _, path = sample_ddpm(zero, x, grid, jax.random.key(t), variance=variance, return_trajectory=True)
    step = np.asarray(path[1], np.float64)
    v = beta[t] if variance == "beta" else (1 - abar[t - 1]) / (1 - abar[t]) * beta[t]
    np.testing.assert_allclose(step.var(), v / abar[t - 1], rtol=0.05)
    np.testing.assert_allclose(step.mean(), 2.0 * sig[t - 1] ** 2 / sig[t] ** 2,
                               atol=4 * np.sqrt(v / abar[t - 1] / step.size))
    np.testing.assert_array_equal(np.asarray(path[2]), 0.0)      # last step: D, no noise


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_1000_steps_reproduce_mixture(variance):
  mix = mixtures.Mixture(weights=np.array([0.3, 0.7]), means=np.array([[-1.0, 0.5], [1.0, -0.5]]),
                         covs=np.stack([0.09 * np.eye(2), 0.04 * np.eye(2)]))
  sched = DDPMSchedule()
  grid = sched.sigma_steps(1000)
  n = 2048
  x = jax.random.normal(jax.random.key(3), (n, 2)) * grid[0]
  out, nfe = jax.jit(lambda x: sample_ddpm(mix.denoiser(), x, grid, jax.random.key(4), variance=variance,
                                           return_nfe=True))(x)
  assert int(nfe) == 1000
  labels = mix.assign(out)
  np.testing.assert_allclose(np.mean(labels == 1), 0.7, atol=0.035)
  ref, _ = mix.sample(jax.random.key(5), 200_000)
  np.testing.assert_allclose(np.asarray(out).mean(0), np.asarray(ref).mean(0), atol=0.06)
  np.testing.assert_allclose(np.asarray(out).std(0), np.asarray(ref).std(0), rtol=0.06)


def test_ddpm_batch_independence_vmap_and_errors():
  grid = DDPMSchedule().ddim_steps(20, "uniform")
  D = mixtures.gaussian_denoiser(0.0, 0.5)
  lat = jax.random.normal(jax.random.key(0), (6, 2))
  key = jax.random.key(9)
  full = sample_ddpm(D, lat * grid[0], grid, key, indices=jnp.arange(6) + 10, variance="beta")
  part = sample_ddpm(D, lat[2:4] * grid[0], grid, key, indices=jnp.arange(2, 4) + 10, variance="beta")
  np.testing.assert_allclose(np.asarray(full[2:4]), np.asarray(part), rtol=1e-6, atol=1e-6)
  vm = jax.vmap(lambda x: sample_ddpm(D, x, grid, key, variance="beta"))(lat[:, None] * grid[0])
  one = sample_ddpm(D, lat[3:4] * grid[0], grid, key, variance="beta")      # the same program, batch 1
  np.testing.assert_allclose(np.asarray(vm[3]), np.asarray(one), rtol=1e-6, atol=1e-6)
  with pytest.raises(ConfigError, match="variance='large' is unknown"):
    sample_ddpm(D, lat, grid, key, variance="large")
  with pytest.raises(ConfigError, match="pass key"):
    sample_ddpm(D, lat, grid)
  clipped = sample_ddpm(lambda x, s: 3.0 * jnp.ones_like(x), lat * grid[0], grid, key, clip_denoised=1.0)
  np.testing.assert_allclose(np.asarray(clipped), 1.0)


# ---- the samplers-vs-NFE table ---------------------------------------------------------------------

def test_samplers_table_heun_beats_euler_and_finds_every_sampler(tmp_path):
  from jaxgen.tables import samplers as tab
  found, _ = tab.discover()
  names = {n for n, _, _ in found}
  assert {"sample_euler", "sample_heun", "sample_ddim", "sample_ddpm", "sample_ancestral"} <= names
  results, _, _ = tab.evaluate(targets=(20, 50), batch=128,
                               names={"sample_euler", "sample_heun", "sample_ddim", "sample_ddpm"})
  by = {r.name: r for r in results}
  assert by["sample_euler"].formula == "1N" and by["sample_heun"].formula == "2N-1"
  assert by["sample_euler"].kind == "ODE" and by["sample_ddpm"].kind == "SDE"
  for t in (20, 50):
    assert by["sample_heun"].runs[t][1] <= t and by["sample_euler"].runs[t][1] == t
    # DDIM with η = 0 is Euler
    assert by["sample_ddim"].runs[t][2] == pytest.approx(by["sample_euler"].runs[t][2], rel=1e-3)
  # Orders from 20 to 50 NFE (Euler N = 20 → 50, Heun N = 10 → 25, step ratio 2.5): Euler's error falls
  # ≈ 2.5× (order 1), Heun's ≈ 2.5² ≈ 6× or more (order 2; pre-asymptotic on the mixture, hence > 4), and at
  # 50 NFE the 2nd-order method wins (at 20 NFE it does not yet on this σ 80 → 0.002 mixture problem).
  err = lambda name, t: by[name].runs[t][2]
  assert 1.8 < err("sample_euler", 20) / err("sample_euler", 50) < 3.5
  assert err("sample_heun", 20) / err("sample_heun", 50) > 4.0
  assert err("sample_heun", 50) < 0.7 * err("sample_euler", 50)
  tables = tab.tables(out=str(tmp_path), targets=(10, 20), batch=64, names={"sample_euler", "sample_heun"})
  assert (tmp_path / "samplers_nfe.png").stat().st_size > 1000
  text = "\n".join(t.render() for t in tables)
  assert "winner at 10 NFE:" in text and "sample_heun" in text
