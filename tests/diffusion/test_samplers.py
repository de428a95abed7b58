"""Samplers against analytic facts (docs/reference.md §1 and §3): ideal denoisers, no snapshots."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import samplers as S
from jaxgen import diffusion as dif
from jaxgen.diffusion.schedules import EDMSchedule, FlowMatchingSchedule, VPSchedule, karras_sigmas
from tests.diffusion import mixtures as M

S_DATA = np.array([0.1, 0.5, 1.0], np.float32)   # one data std per dimension (independent ODEs)
GAUSS = M.gaussian_denoiser(0.0, jnp.asarray(S_DATA))
MIX = M.separated_mixture_2d()
MIX_D = MIX.denoiser()
N_MIX = 2000
BANDWIDTH = 0.5


def _exact_flow(x, s, sigma_from, sigma_to):
  """PF-ODE flow map of N(0, s²): x(σ) = x(σ')·√((s² + σ²)/(s² + σ'²)) (docs/reference.md §3)."""
  return x * np.sqrt((s ** 2 + sigma_to ** 2) / (s ** 2 + sigma_from ** 2))


# ------------------------------------------------------------------------------------------------
# Convergence order on the Gaussian ODE.

@pytest.mark.parametrize("name,lo,hi", [("euler", 0.9, 1.1), ("heun", 1.8, 2.3)])
def test_convergence_slope_on_gaussian_ode(name, lo, hi):
  # Setup (docs/reference.md §3): data N(0, s²) with s = 0.1, 0.5, 1 (one per dimension), ρ = 7 grid from
  # σ_max = 80 to σ_min = 0.002 with N = 16…128 points (no final 0: the error is taken at σ_min),
  # x(80) = 80; global relative error against the exact flow map; slope of log error vs log N.
  f = {"euler": S.sample_euler, "heun": S.sample_heun}[name]
  ns = [16, 32, 64, 128]
  x0 = jnp.full((1, 3), 80.0)
  exact = _exact_flow(80.0, S_DATA.astype(np.float64), 80.0, 0.002)
  errs = []
  for n in ns:
    sig = karras_sigmas(n)[:-1]
    x = np.asarray(jax.jit(lambda x, sig=sig: f(GAUSS, x, sig))(x0), np.float64)[0]
    errs.append(np.abs(x - exact) / exact)
  errs = np.array(errs)
  for j in range(3):
    slope = -np.polyfit(np.log(ns), np.log(errs[:, j]), 1)[0]
    assert lo <= slope <= hi, (name, S_DATA[j], slope, errs[:, j])


def test_dpmpp_2m_is_second_order():
  # Same Gaussian-ODE setup; DPM-Solver++(2M) is a 2nd-order multistep method: slope of the error
  # between N = 32 and 128 in [1.8, 2.3].
  x0 = jnp.full((1, 3), 80.0)
  exact = _exact_flow(80.0, S_DATA.astype(np.float64), 80.0, 0.002)
  errs = []
  for n in (32, 128):
    sig = karras_sigmas(n)[:-1]
    x = np.asarray(jax.jit(lambda x, sig=sig: S.sample_dpmpp_2m(GAUSS, x, sig))(x0), np.float64)[0]
    errs.append(np.abs(x - exact) / exact)
  slope = np.log(errs[0] / errs[1]) / np.log(4.0)
  assert np.all((slope > 1.8) & (slope < 2.3)), slope


# ------------------------------------------------------------------------------------------------
# NFE, compile size, exact last step.

def test_heun_nfe_counted_inside_compiled_program():
  # A host callback inside the denoiser counts the evaluations the compiled program really runs;
  # EDM Algorithm 1 with N = 9 steps to σ = 0 makes 2N − 1 = 17 (no correction on the last step).
  calls = []

  def counting(x, sigma):
    jax.debug.callback(lambda: calls.append(1))
    return GAUSS(x, sigma)

  sig = karras_sigmas(9)
  x, nfe = jax.jit(lambda x: S.sample_heun(counting, x, sig, return_nfe=True))(jnp.ones((2, 3)))
  jax.block_until_ready(x)
  assert len(calls) == 17 and int(nfe) == 17
  calls.clear()
  _, nfe = jax.jit(lambda x: S.sample_euler(counting, x, sig, return_nfe=True))(jnp.ones((2, 3)))
  jax.block_until_ready(nfe)
  assert len(calls) == 9 and int(nfe) == 9


ALL_SIGMA_SAMPLERS = {
    "euler": (S.sample_euler, {}),
    "heun": (S.sample_heun, {}),
    "edm": (S.sample_edm, {"s_churn": 10.0}),
    "ddim": (S.sample_ddim, {"eta": 0.5}),
    "ancestral": (S.sample_ancestral, {}),
    "euler_maruyama": (S.sample_euler_maruyama, {}),
    "pc": (S.sample_pc, {}),
    "annealed_langevin": (S.sample_annealed_langevin, {"n_steps_each": 3, "step_lr": 8e-7}),
    "dpmpp_2m": (S.sample_dpmpp_2m, {}),
}


@pytest.mark.parametrize("name", sorted(ALL_SIGMA_SAMPLERS))
def test_program_size_independent_of_steps_and_last_step_exact(name):
  # (a) The traced program (jaxpr) has the same number of equations for 4 and 40 steps: one scan.
  # (b) Finite point set {y_i} (docs/reference.md §3): its ideal denoiser is NaN at σ = 0, so a finite
  #     result proves σ = 0 is never evaluated; with σ_min = 0.002 and points ≥ 1 apart every sample
  #     must land on a data point (the step to 0 is D(x; σ_min), a softmax that has collapsed).
  f, kw = ALL_SIGMA_SAMPLERS[name]
  key = jax.random.key(0)
  sizes = [len(jax.make_jaxpr(lambda x, s: f(GAUSS, x, s, key, **kw))(
      jnp.ones((2, 3)), karras_sigmas(n)).eqns) for n in (4, 40)]
  assert sizes[0] == sizes[1]
  points = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5], [0.5, -1.0]])
  dfn = M.point_set_denoiser(points)
  x = 80.0 * jax.random.normal(jax.random.key(1), (16, 2))
  out = np.asarray(jax.jit(lambda x: f(dfn, x, karras_sigmas(24), key, **kw))(x))
  assert np.all(np.isfinite(out))
  dist = np.min(np.linalg.norm(out[:, None] - np.asarray(points)[None], axis=-1), axis=1)
  assert np.all(dist < 1e-4), dist


# ------------------------------------------------------------------------------------------------
# DDIM.

def _ddim_paper(denoise_fn, x_tilde, sigmas, eta, noises):
  """DDIM (Song et al. 2021, Eq. 12) in the VP coordinates x = √ᾱ·x̃, ᾱ = 1/(1 + σ²):
  x_{t'} = √ᾱ'·x̂₀ + √(1 − ᾱ' − σ_t²)·ε̂ + σ_t·z, σ_t = η√((1−ᾱ')/(1−ᾱ))√(1 − ᾱ/ᾱ')."""
  sigmas = np.asarray(sigmas, np.float64)
  abar = 1.0 / (1.0 + sigmas ** 2)
  x = np.sqrt(abar[0]) * np.asarray(x_tilde, np.float64)
  for i in range(len(sigmas) - 1):
    a, a_next = abar[i], abar[i + 1]
    x_in = x / np.sqrt(a)
    x0 = np.asarray(denoise_fn(jnp.asarray(x_in, jnp.float32),
                               jnp.full((x.shape[0],), sigmas[i], jnp.float32)), np.float64)
    eps = (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
    sig_t = eta * np.sqrt((1 - a_next) / (1 - a)) * np.sqrt(1 - a / a_next)
    x = np.sqrt(a_next) * x0 + np.sqrt(max(1 - a_next - sig_t ** 2, 0.0)) * eps + sig_t * noises[i]
  return x / np.sqrt(abar[-1])


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_equals_paper_formula_and_euler(eta):
  # Setup: 2-D mixture denoiser, 12-step ρ=7 grid from 80 ending in 0, 8 samples. The paper's update
  # in ᾱ-coordinates with the same per-sample noise equals sample_ddim in EDM coordinates; with
  # η = 0 both equal Euler on the EDM ODE (docs/reference.md §3).
  sig = karras_sigmas(12)
  key = jax.random.key(3)
  x = 80.0 * jax.random.normal(jax.random.key(4), (8, 2))
  idx = jnp.arange(8)
  noises = [np.asarray(S.per_sample_noise(key, idx, i, (2,)), np.float64) for i in range(12)]
  ref = _ddim_paper(MIX_D, x, sig, eta, noises)
  got = np.asarray(S.sample_ddim(MIX_D, x, sig, key, eta=eta))
  np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-4)
  if eta == 0.0:
    np.testing.assert_allclose(got, np.asarray(S.sample_euler(MIX_D, x, sig)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Stochastic samplers reproduce a mixture.

@functools.cache
def _exact_and_threshold():
  exact, _ = MIX.sample(jax.random.key(100), N_MIX)
  thr, _ = M.mmd_threshold(lambda k, n: MIX.sample(k, n)[0], N_MIX, BANDWIDTH,
                           jax.random.key(101), reps=20, z=5.0)
  return exact, thr


STOCHASTIC = {
    "edm": (S.sample_edm, 64, {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}),
    "ancestral": (S.sample_ancestral, 128, {}),
    "euler_maruyama": (S.sample_euler_maruyama, 128, {}),
    "pc": (S.sample_pc, 96, {"corrector_norm": "batch"}),
    "pc_ald": (S.sample_pc, 96, {"corrector": "ald"}),
}


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_sampler_reproduces_mixture(name):
  # Setup: 3-component 2-D mixture with full covariances, weights (0.5, 0.3, 0.2), components > 10 std
  # apart; 2000 samples from x = 80·z on a ρ = 7 grid. (a) Each component's share is within 4
  # binomial standard errors of its weight. (b) Unbiased MMD² (Gaussian kernel h = 0.5) against 2000
  # exact draws is below mean + 5·std of 20 exact-vs-exact MMD² values (null calibration).
  # PC uses score_sde's batch-mean norms (in 2-D per-sample norms bias the corrector, see sde.py)
  # or score_sde's state-independent 'ald' corrector.
  f, n_steps, kw = STOCHASTIC[name]
  exact, thr = _exact_and_threshold()
  sig = karras_sigmas(n_steps)
  lat = jax.random.normal(jax.random.key(7), (N_MIX, 2))
  x = np.asarray(jax.jit(lambda l: f(MIX_D, l * sig[0], sig, jax.random.key(8), **kw))(lat))
  share = np.bincount(MIX.assign(x), minlength=3) / N_MIX
  se = np.sqrt(MIX.weights * (1 - MIX.weights) / N_MIX)
  assert np.all(np.abs(share - MIX.weights) < 4 * se), (share, MIX.weights)
  mmd = float(M._mmd2(x, exact, BANDWIDTH))
  assert mmd < thr, (mmd, thr)


def test_mmd_threshold_has_power():
  # The calibrated threshold must reject a visibly wrong distribution: the same components with
  # weights (0.3, 0.5, 0.2) swapped.
  exact, thr = _exact_and_threshold()
  wrong = M.Mixture(np.array([0.3, 0.5, 0.2]), MIX.means, MIX.covs).sample(jax.random.key(5), N_MIX)[0]
  assert float(M._mmd2(wrong, exact, BANDWIDTH)) > thr


def test_annealed_langevin_stationary_variance():
  # Setup: data N(0, v), one noise level σ (grid [σ, 0]) so the chain targets N(0, V), V = v + σ²;
  # ε = step_lr (σ_i = σ_L), T = 60 steps, 20000 one-dimensional chains started at N(0, V).
  # NCSN's update x ← x + (ε/2)∇log p + √ε z has stationary variance V/(1 − ε/(4V)) (docs/reference.md §3),
  # here 25% above V, checked to 4 standard errors of a sample variance (√(2/n)).
  v, sigma, eps, n = 0.5, 0.5, 0.75, 20000
  big_v = v + sigma ** 2
  x = math.sqrt(big_v) * jax.random.normal(jax.random.key(11), (n, 1))
  out = S.sample_annealed_langevin(M.gaussian_denoiser(0.0, math.sqrt(v)), x,
                                   jnp.array([sigma, 0.0]), jax.random.key(12), n_steps_each=60,
                                   step_lr=eps, denoise=False)
  target = big_v / (1 - eps / (4 * big_v))
  var = float(jnp.var(out))
  assert abs(var / target - 1) < 4 * math.sqrt(2 / n), (var, target, big_v)


# ------------------------------------------------------------------------------------------------
# Per-sample randomness, dtypes, transformations.

BATCH_SAMPLERS = ["edm", "ddim", "ancestral", "euler_maruyama", "pc", "annealed_langevin"]


@pytest.mark.parametrize("name", BATCH_SAMPLERS)
def test_sample_does_not_depend_on_its_batch(name):
  # Samples 5, 2, 7 drawn inside a batch of 8 (indices 0…7) equal the same samples drawn alone in a
  # batch of 3 with their global indices.
  f, kw = ALL_SIGMA_SAMPLERS[name]
  sig = karras_sigmas(6)
  key = jax.random.key(21)
  lat = jax.random.normal(jax.random.key(22), (8, 2)) * sig[0]
  full = np.asarray(f(MIX_D, lat, sig, key, **kw))
  pick = jnp.array([5, 2, 7])
  part = np.asarray(f(MIX_D, lat[pick], sig, key, indices=pick, **kw))
  np.testing.assert_allclose(part, full[np.asarray(pick)], rtol=1e-5, atol=1e-5)


def test_bfloat16_denoiser_keeps_float32_sigma_math():
  # A bfloat16 model: it must receive σ as float32 (exactly the grid values) and x in bfloat16; the
  # result is bfloat16 and agrees with the float32 run to bfloat16 precision (2⁻⁸ relative).
  seen = []

  def bf16_model(x, sigma):
    assert x.dtype == jnp.bfloat16 and sigma.dtype == jnp.float32
    seen.append(sigma)
    return GAUSS(x.astype(jnp.float32), sigma).astype(jnp.bfloat16)

  sig = karras_sigmas(10)
  lat = jax.random.normal(jax.random.key(2), (4, 3))
  out = S.sample_heun(bf16_model, (lat * sig[0]).astype(jnp.bfloat16), sig)
  ref = S.sample_heun(GAUSS, lat * sig[0], sig)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref), rtol=2e-2, atol=2e-3)
  assert all(s.dtype == jnp.float32 for s in seen)


def _reference_batch():
  sig = karras_sigmas(8)
  key = jax.random.key(31)
  lat = jax.random.normal(jax.random.key(32), (8, 2)) * sig[0]
  kw = {"s_churn": 20.0}
  ref = np.asarray(S.sample_edm(MIX_D, lat, sig, key, **kw))
  return sig, key, lat, kw, ref


def test_under_vmap():
  # vmap over a leading axis of 2 groups of 4 samples with their global indices = one batch of 8.
  sig, key, lat, kw, ref = _reference_batch()
  idx = jnp.arange(8).reshape(2, 4)
  out = jax.vmap(lambda x, i: S.sample_edm(MIX_D, x, sig, key, indices=i, **kw))(
      lat.reshape(2, 4, 2), idx)
  np.testing.assert_allclose(np.asarray(out).reshape(8, 2), ref, rtol=1e-5, atol=1e-5)


def test_under_pmap():
  sig, key, lat, kw, ref = _reference_batch()
  n = jax.device_count()
  assert n == 8
  out = jax.pmap(lambda x, i: S.sample_edm(MIX_D, x, sig, key, indices=i, **kw))(
      lat.reshape(n, 1, 2), jnp.arange(8).reshape(n, 1))
  np.testing.assert_allclose(np.asarray(out).reshape(8, 2), ref, rtol=1e-5, atol=1e-5)


VP_SIGMAS = VPSchedule().sigma_steps(4)   # sample_ode on VP's own grid (x = latents·σ_0, latents = x/80)


def _ode_vp(d, x, s, k=None, **kw):
  return S.sample_ode(d, x / 80.0 * VP_SIGMAS[0], VP_SIGMAS, k, schedule=VPSchedule(), **kw)


EVERY_SAMPLER = dict(ALL_SIGMA_SAMPLERS, pf_ode_fixed=(S.sample_pf_ode, {"fixed_steps": 4}),
                     ode_vp=(_ode_vp, {}))


def test_every_sampler_under_shard_map_equals_one_device():
  # 8 samples sharded one per simulated device, each shard passing its global indices: every sampler
  # gives the single-device batch result. The PF-ODE runs with fixed_steps (its multi-device mode),
  # and the adaptive RK45 (a lax.while_loop whose carry is marked device-varying like its state) runs
  # under shard_map with its default vma checking and also matches.
  from jax.sharding import PartitionSpec as P
  shard_map = getattr(jax, "shard_map", None)
  if shard_map is None:
    from jax.experimental.shard_map import shard_map
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sig = karras_sigmas(5)
  key = jax.random.key(61)
  lat = jax.random.normal(jax.random.key(62), (8, 2)) * sig[0]
  for name, (f, kw) in sorted(EVERY_SAMPLER.items()):
    stochastic = name in BATCH_SAMPLERS

    def local(x, f=f, kw=kw, stochastic=stochastic):
      extra = {}
      if stochastic:
        extra["indices"] = jax.lax.axis_index("data") * x.shape[0] + jnp.arange(x.shape[0])
      return f(MIX_D, x, sig, key, **kw, **extra)

    ref = jax.jit(lambda x, f=f, kw=kw: f(MIX_D, x, sig, key, **kw))(lat)
    out = jax.jit(shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(lat)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-5,
                               err_msg=name)
  pf = lambda x: S.sample_pf_ode(MIX_D, x, sig, rtol=1e-3, atol=1e-3)
  sm = shard_map(pf, mesh=mesh, in_specs=P("data"), out_specs=P("data"))
  np.testing.assert_allclose(np.asarray(jax.jit(sm)(lat)), np.asarray(jax.jit(pf)(lat)),
                             rtol=1e-5, atol=1e-5)


def test_under_jit_with_traced_grid_and_key():
  sig, key, lat, kw, ref = _reference_batch()
  out = jax.jit(lambda x, s, k: S.sample_edm(MIX_D, x, s, k, **kw))(lat, sig, key)
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# The general Algorithm 1 with σ(t), s(t).

@pytest.mark.parametrize("schedule", [VPSchedule(), FlowMatchingSchedule()], ids=["vp", "fm"])
def test_sample_ode_schedules_reach_exact_flow_map(schedule):
  # Setup: data N(0, s²), s = 0.1/0.5/1; x = latents·σ_0 on the schedule's own 64-step σ grid
  # (sigma_steps), integrated by Heun in the schedule's time t = σ⁻¹(σ) (x(t_0) = s(t_0)·x) to t = 0
  # (σ = 0, s = 1). The exact endpoint is latents·σ_0·s/√(s² + σ_0²) (docs/reference.md §3 flow map).
  # NFE = 2N − 1.
  sig = schedule.sigma_steps(64)
  lat = jnp.ones((1, 3))
  out, nfe = jax.jit(lambda l: S.sample_ode(GAUSS, l * sig[0], sig, schedule=schedule, return_nfe=True))(lat)
  s0 = float(sig[0])
  exact = s0 * S_DATA / np.sqrt(S_DATA ** 2 + s0 ** 2)
  euler = S.sample_ode(GAUSS, lat * sig[0], sig, schedule=schedule, solver="euler")
  err_heun = np.abs(np.asarray(out)[0] / exact - 1)
  err_euler = np.abs(np.asarray(euler)[0] / exact - 1)
  assert int(nfe) == 127
  if isinstance(schedule, FlowMatchingSchedule):  # EDM's general RK rule with α = ½ is 2nd order too
    mid = S.sample_ode(GAUSS, lat * sig[0], sig, schedule=schedule, alpha=0.5)
    assert np.all(np.abs(np.asarray(mid)[0] / exact - 1) < err_euler / 3)
  # (s = 1 under VP is a fixed point of the ODE: both errors are at float32 round-off there.)
  assert np.all(err_heun < 3e-2) and np.all(err_heun <= err_euler / 3 + 1e-6), (err_heun, err_euler)


def test_sample_ode_with_edm_schedule_is_algorithm_2():
  # With σ(t) = t, s(t) = 1 the general sampler (incl. churn and its noise) is sample_edm exactly.
  sched = EDMSchedule()
  ts = sched.time_steps(10)
  key = jax.random.key(41)
  lat = jax.random.normal(jax.random.key(42), (6, 2))
  kw = {"s_churn": 30.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}
  a = S.sample_ode(MIX_D, lat * ts[0], ts, key, schedule=sched, **kw)
  b = S.sample_edm(MIX_D, lat * ts[0], ts, key, **kw)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


SCHEDULES = {"vp": dif.VPSchedule(), "subvp": dif.SubVPSchedule(), "ve": dif.VESchedule(),
             "iddpm": dif.IDDPMSchedule(), "fm": dif.FlowMatchingSchedule(), "edm": dif.EDMSchedule(),
             "ddpm_linear": dif.DDPMSchedule(), "ddpm_cosine": dif.DDPMSchedule(kind="cosine"),
             "ncsn": dif.NCSNSchedule(), "vp_fit": dif.VPSchedule.fit(0.002, 80.0)}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_sample_ode_recovers_each_schedules_time_grid(name):
  # sample_ode takes the σ grid and works in t = σ⁻¹(σ): (a) σ⁻¹ gives back the schedule's own time
  # steps (float32 rounding, relative 2e-6), the last one, σ = 0, exactly t = 0 (for VPSchedule.fit,
  # β_min < 0, σ⁻¹(0) is the other root −2β_min/β_d, so this needs the σ = 0 ↦ t = 0 rule); (b) on
  # Gaussian data N(0, s²), s = 0.1/0.5/1, Heun over 200 steps (NCSN: its 10 levels) lands on the exact
  # flow-map endpoint σ_0·z·s/√(s² + σ_0²) (docs/reference.md §3) within 1e-2 relative (NCSN 5e-2; measured
  # ≤ 5.6e-3, VE, and 3.2e-2); NFE = 2N − 1.
  sched = SCHEDULES[name]
  n = 10 if name == "ncsn" else 200
  sig = sched.sigma_steps(n)
  ts = np.asarray(sched.time_steps(n), np.float64)
  rec = np.asarray(jnp.where(sig > 0, sched.sigma_inv(jnp.where(sig > 0, sig, 1.0)), 0.0), np.float64)
  np.testing.assert_allclose(rec[:-1], ts[:-1], rtol=2e-6)
  assert ts[-1] == 0 and float(sched.sigma(0.0)) == 0
  z = jax.random.normal(jax.random.key(43), (4, 3))
  out, nfe = jax.jit(lambda z: S.sample_ode(GAUSS, z * sig[0], sig, schedule=sched, return_nfe=True))(z)
  s0 = float(sig[0])
  exact = np.asarray(z) * s0 * S_DATA / np.sqrt(S_DATA ** 2 + s0 ** 2)
  assert int(nfe) == 2 * n - 1
  np.testing.assert_allclose(np.asarray(out), exact, rtol=5e-2 if name == "ncsn" else 1e-2, atol=1e-6 * s0)


@pytest.mark.parametrize("name", ["edm", "iddpm", "ddpm_linear", "ncsn"])
def test_sample_ode_with_sigma_equal_time_is_heun(name):
  # σ(t) = t, s = 1: the general sampler on the σ grid is EDM Algorithm 1 (sample_heun) exactly.
  sched = SCHEDULES[name]
  sig = sched.sigma_steps(8)
  x = 20.0 * jax.random.normal(jax.random.key(44), (6, 2))
  np.testing.assert_allclose(np.asarray(S.sample_ode(MIX_D, x, sig, schedule=sched)),
                             np.asarray(S.sample_heun(MIX_D, x, sig)), rtol=1e-5, atol=1e-5)


ONE_SIGNATURE = dict(EVERY_SAMPLER, pf_ode=(S.sample_pf_ode, {"rtol": 1e-4, "atol": 1e-4}),
                     ode=(S.sample_ode, {"schedule": VPSchedule()}),
                     ode_euler_churn=(S.sample_ode, {"schedule": VPSchedule(), "solver": "euler",
                                                     "s_churn": 5.0}))
del ONE_SIGNATURE["ode_vp"]


@pytest.mark.parametrize("name", sorted(ONE_SIGNATURE))
def test_one_signature_indices_and_trajectory(name):
  # Every sampler takes fn(D, x, sigmas, key, indices=..., return_nfe=..., return_trajectory=..., **options).
  # The trajectory is [N + 1, B, ...] float32, its first entry x itself, its last the returned sample;
  # with return_nfe the order is (x0, trajectory, nfe) and x0, nfe equal the plain call's.
  f, kw = ONE_SIGNATURE[name]
  sig = karras_sigmas(6)
  key = jax.random.key(45)
  x = jax.random.normal(jax.random.key(46), (5, 2)) * sig[0]
  idx = jnp.arange(5) + 11
  plain, nfe = jax.jit(lambda x: f(MIX_D, x, sig, key, indices=idx, return_nfe=True, **kw))(x)
  out, traj, nfe_t = jax.jit(lambda x: f(MIX_D, x, sig, key, indices=idx, return_nfe=True,
                                         return_trajectory=True, **kw))(x)
  out_only, traj_only = f(MIX_D, x, sig, key, indices=idx, return_trajectory=True, **kw)
  assert traj.shape == (7, 5, 2) and traj.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(traj[0]), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(traj[-1]), np.asarray(out))
  np.testing.assert_allclose(np.asarray(traj_only), np.asarray(traj), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out_only), np.asarray(out), rtol=1e-5, atol=1e-5)
  assert np.all(np.isfinite(np.asarray(traj)))
  if name != "pf_ode" and name != "pf_ode_fixed":  # the adaptive solve restarts at every grid point
    np.testing.assert_allclose(np.asarray(out), np.asarray(plain), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(nfe_t), np.asarray(nfe))


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m", "ode"])
def test_trajectory_is_the_state_at_each_grid_point(name):
  # For a deterministic sampler, entry k of the trajectory is the sample the same sampler returns on
  # the grid truncated after σ_k (it ran the same steps): the scan emits the state at every grid point.
  f, kw = ONE_SIGNATURE[name]
  sig = karras_sigmas(7)
  x = jax.random.normal(jax.random.key(47), (4, 2)) * sig[0]
  _, traj = f(MIX_D, x, sig, return_trajectory=True, **kw)
  for k in (1, 3, 6):
    np.testing.assert_allclose(np.asarray(traj[k]), np.asarray(f(MIX_D, x, sig[:k + 1], **kw)),
                               rtol=1e-5, atol=1e-5, err_msg=str(k))


def test_pf_ode_trajectory_follows_the_exact_flow():
  # PF-ODE trajectory on Gaussian data: every entry with σ_k > 0 is the exact flow map
  # x·√((s² + σ_k²)/(s² + σ_0²)) (docs/reference.md §3) to the solver tolerance; the last is D(x; σ_min).
  sig = karras_sigmas(5)
  x = jax.random.normal(jax.random.key(48), (3, 3)) * sig[0]
  _, traj, nfe = S.sample_pf_ode(GAUSS, x, sig, rtol=1e-6, atol=1e-6, return_trajectory=True,
                                 return_nfe=True)
  s2 = S_DATA.astype(np.float64) ** 2
  for k in range(5):
    want = np.asarray(x, np.float64) * np.sqrt((s2 + float(sig[k]) ** 2) / (s2 + float(sig[0]) ** 2))
    np.testing.assert_allclose(np.asarray(traj[k]), want, rtol=1e-4, err_msg=str(k))
  np.testing.assert_allclose(np.asarray(traj[5]), np.asarray(GAUSS(traj[4], jnp.full((3,), sig[4]))),
                             rtol=1e-6)
  assert nfe.shape == (3,) and np.all(np.asarray(nfe) > 4)


# ------------------------------------------------------------------------------------------------
# Probability-flow ODE with adaptive RK45.

def test_pf_ode_rk45_tolerance_nfe_and_fixed_steps():
  # Setup: data N(0, s²), s = 0.1/0.5/1 per dimension, 4 samples; integrate 80 → 0.002 and stop
  # there (grid [80, 0.002]). The exact flow map is x·√((s² + σ_min²)/(s² + σ_max²)) (docs/reference.md §3).
  # Tighter tolerances give smaller errors and more evaluations; per-sample NFE is returned;
  # fixed_steps=n costs exactly 6n + 1; a grid ending in 0 adds the exact step x ← D(x; σ_min).
  lat = jax.random.normal(jax.random.key(51), (4, 3))
  x = lat * 80.0
  exact = np.asarray(x) * np.sqrt((S_DATA ** 2 + 0.002 ** 2) / (S_DATA ** 2 + 80.0 ** 2))
  run = jax.jit(lambda x, s, tol: S.sample_pf_ode(GAUSS, x, s, rtol=tol, atol=tol, return_nfe=True))
  grid = jnp.array([80.0, 0.002])
  errs, nfes = [], []
  for tol in (1e-3, 1e-5):
    out, nfe = run(x, grid, tol)
    errs.append(np.max(np.abs(np.asarray(out) - exact) / np.abs(exact)))
    nfes.append(np.asarray(nfe))
  assert nfes[0].shape == (4,) and np.all(nfes[1] > nfes[0])
  assert errs[1] < 1e-3 and errs[1] < errs[0] / 10, errs
  out, nfe = jax.jit(lambda x: S.sample_pf_ode(GAUSS, x, grid, fixed_steps=8, return_nfe=True))(x)
  assert np.all(np.asarray(nfe) == 49)
  np.testing.assert_allclose(np.asarray(out), exact, rtol=5e-2)  # h = ln(4e4)/8 ≈ 1.3
  out0, nfe0 = run(x, jnp.array([80.0, 0.002, 0.0]), 1e-5)
  d_min = GAUSS(jnp.asarray(exact, jnp.float32), jnp.full((4,), 0.002))
  np.testing.assert_allclose(np.asarray(out0), np.asarray(d_min), rtol=1e-4, atol=1e-6)
  assert np.all(np.asarray(nfe0) == nfes[1] + 1)


def test_bad_input_errors_name_the_fix():
  x = jnp.ones((2, 2))
  with pytest.raises(ValueError, match="decreasing"):
    S.sample_euler(MIX_D, x, jnp.array([1.0, 2.0, 0.0]))
  with pytest.raises(ValueError, match="pass key"):
    S.sample_ancestral(MIX_D, x, karras_sigmas(3))
  with pytest.raises(ValueError, match="indices must have shape"):
    S.sample_edm(MIX_D, x, karras_sigmas(3), jax.random.key(0), s_churn=1.0, indices=jnp.arange(3))
  with pytest.raises(ValueError, match="Unknown predictor"):
    S.sample_pc(MIX_D, x, karras_sigmas(3), jax.random.key(0), predictor="ancestral")
  with pytest.raises(ValueError, match="solver must be"):
    S.sample_ode(MIX_D, x, VPSchedule().sigma_steps(3), schedule=VPSchedule(), solver="rk4")
