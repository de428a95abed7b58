"""k-diffusion's samplers (samplers_k.py) and Euler with churn against analytic facts: ideal denoisers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import samplers as S
from jaxgen.diffusion import samplers_k as K
from jaxgen.diffusion.schedules import karras_sigmas
from tests.diffusion import mixtures as M

S_DATA = np.array([0.1, 0.5, 1.0], np.float32)   # one data std per dimension (independent ODEs)
GAUSS = M.gaussian_denoiser(0.0, jnp.asarray(S_DATA))
MIX2 = M.Mixture(np.array([0.7, 0.3]), np.array([[-2.0], [2.0]]), np.array([[[0.09]], [[0.25]]]))
MIX2_D = MIX2.denoiser()
MIX_D = M.separated_mixture_2d().denoiser()
MIX_D_JIT = jax.jit(MIX_D)   # for the step-by-step references
CHURN = {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}


def _exact_at_sigma_min():
  """PF-ODE flow map of N(0, s²) from x(80) = 80 to σ = 0.002 (docs/reference.md §3)."""
  s2 = S_DATA.astype(np.float64) ** 2
  return 80.0 * np.sqrt((s2 + 0.002 ** 2) / (s2 + 80.0 ** 2))


def _rel_errors(f, ns):
  x0 = jnp.full((1, 3), 80.0)
  exact = _exact_at_sigma_min()
  errs = []
  for n in ns:
    sig = karras_sigmas(n)[:-1]   # no final 0: the error is taken at σ_min = 0.002
    x = np.asarray(jax.jit(lambda x, sig=sig: f(GAUSS, x, sig))(x0), np.float64)[0]
    errs.append(np.abs(x - exact) / exact)
  return errs


# ------------------------------------------------------------------------------------------------
# Convergence orders on the Gaussian ODE.

ORDERS = {  # name: (sampler, N pair, lower, upper, theoretical order)
    "dpm_2": (K.sample_dpm_2, (32, 128), 1.8, 2.3, 2),
    "dpm_2_ancestral_eta0": (lambda d, x, s: K.sample_dpm_2_ancestral(d, x, s, eta=0.0), (32, 128),
                             1.8, 2.3, 2),
    "dpmpp_2s_ancestral_eta0": (lambda d, x, s: K.sample_dpmpp_2s_ancestral(d, x, s, eta=0.0), (32, 128),
                                1.8, 2.3, 2),
    "lms_2": (lambda d, x, s: K.sample_lms(d, x, s, order=2), (32, 128), 1.8, 2.3, 2),
    "lms_3": (lambda d, x, s: K.sample_lms(d, x, s, order=3), (64, 128), 2.5, 3.3, 3),
    "lms_4": (K.sample_lms, (64, 128), 3.3, 4.3, 4),
}


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_convergence_order_on_gaussian_ode(name):
  # Setup (as test_samplers.py): data N(0, s²), s = 0.1/0.5/1 per dimension, ρ = 7 grid 80 → 0.002 with N
  # points (no final 0), x(80) = 80; relative error against the exact flow map; slope of log error between
  # the two N. Measured (slope 64 → 128): dpm_2 2.04–2.05, the η = 0 ancestral ones 1.99–2.05, lms_2
  # 1.92–1.95, lms_3 2.82–2.88, lms_4 3.67–3.78 (theoretical 2, 2, 3, 4; the LMS start-up steps use lower
  # orders, so LMS's slope approaches its order from below as N grows).
  f, (n1, n2), lo, hi, _ = ORDERS[name]
  e1, e2 = _rel_errors(f, (n1, n2))
  slope = np.log(e1 / e2) / np.log(n2 / n1)
  assert np.all((slope > lo) & (slope < hi)), (name, slope, e1, e2)


# ------------------------------------------------------------------------------------------------
# Linear multistep coefficients.

def test_lms_coefficients_are_adams_bashforth_on_a_uniform_grid():
  # On a uniform grid (here decreasing, h = σ_{i+1} − σ_i = −0.5) the integrals of the Lagrange basis are
  # Adams–Bashforth's: row 0 h·(1), row 1 h·(3, −1)/2, row 2 h·(23, −16, 5)/12,
  # rows ≥ 3 h·(55, −59, 37, −9)/24.
  sig = np.linspace(6.0, 1.0, 11)
  h = sig[1] - sig[0]
  c = K.lms_coefficients(sig, 4)
  assert c.shape == (10, 4)
  np.testing.assert_allclose(c[0], h * np.array([1.0, 0, 0, 0]), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(c[1], h * np.array([3.0, -1.0, 0, 0]) / 2, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(c[2], h * np.array([23.0, -16.0, 5.0, 0]) / 12, rtol=1e-12, atol=1e-14)
  for i in range(3, 10):
    np.testing.assert_allclose(c[i], h * np.array([55.0, -59.0, 37.0, -9.0]) / 24, rtol=1e-12)
  # Non-uniform grid: every row sums to σ_{i+1} − σ_i (the basis sums to 1) and integrates τ exactly.
  g = np.asarray(karras_sigmas(12), np.float64)
  c = K.lms_coefficients(g, 4)
  np.testing.assert_allclose(c.sum(1), np.diff(g), rtol=1e-10)
  for i in range(3, 12):
    nodes = g[i - np.arange(4)]
    np.testing.assert_allclose(c[i] @ nodes, (g[i + 1] ** 2 - g[i] ** 2) / 2, rtol=1e-9)


def test_lms_first_step_is_euler_and_second_is_ab2():
  sig = karras_sigmas(10)
  x = jax.random.normal(jax.random.key(1), (4, 2)) * sig[0]
  _, traj = K.sample_lms(MIX_D, x, sig, return_trajectory=True)
  _, traj_e = S.sample_euler(MIX_D, x, sig, return_trajectory=True)
  np.testing.assert_allclose(np.asarray(traj[1]), np.asarray(traj_e[1]), rtol=1e-6, atol=1e-6)
  # order = 1 is Euler on every step.
  np.testing.assert_allclose(np.asarray(K.sample_lms(MIX_D, x, sig, order=1)), np.asarray(traj_e[-1]),
                             rtol=1e-5, atol=1e-5)
  # Step 2 by hand: variable-step AB2 in σ, d = (x − D)/σ.
  s = np.asarray(sig, np.float64)
  dd = lambda x, i: (np.asarray(x, np.float64) - np.asarray(MIX_D_JIT(x, jnp.full((4,), sig[i])))) / s[i]
  h, h0 = s[2] - s[1], s[1] - s[0]
  want = np.asarray(traj[1]) + h * (1 + h / (2 * h0)) * dd(traj[1], 1) - h * h / (2 * h0) * dd(traj[0], 0)
  np.testing.assert_allclose(np.asarray(traj[2]), want, rtol=1e-4, atol=1e-4)


def test_lms_traced_grid_and_bad_options():
  # A grid traced under jit (coefficients computed in the program, float32) gives the host-coefficient result.
  sig = karras_sigmas(12)
  x = jax.random.normal(jax.random.key(6), (4, 2)) * sig[0]
  host = np.asarray(K.sample_lms(MIX_D, x, sig))
  traced = np.asarray(jax.jit(lambda x, s: K.sample_lms(MIX_D, x, s))(x, sig))
  np.testing.assert_allclose(traced, host, rtol=1e-4, atol=1e-4)
  c32 = np.asarray(jax.jit(lambda s: K._lms_table(s, 4, jnp))(sig))  # pylint: disable=protected-access
  np.testing.assert_allclose(c32, K.lms_coefficients(sig, 4), rtol=1e-4, atol=1e-6)
  x = jnp.ones((2, 2))
  with pytest.raises(ValueError, match="order must be"):
    K.sample_lms(MIX_D, x, karras_sigmas(4), order=0)
  with pytest.raises(ValueError, match="eta must be"):
    K.sample_euler_ancestral(MIX_D, x, karras_sigmas(4), jax.random.key(0), eta=-1.0)
  with pytest.raises(ValueError, match="pass key"):
    K.sample_dpmpp_2s_ancestral(MIX_D, x, karras_sigmas(4))
  with pytest.raises(ValueError, match="pass key"):
    S.sample_euler(MIX_D, x, karras_sigmas(4), s_churn=1.0)


# ------------------------------------------------------------------------------------------------
# Euler with churn; reductions between samplers.

def test_euler_churn_options():
  sig = karras_sigmas(8)
  key = jax.random.key(2)
  x = jax.random.normal(jax.random.key(3), (6, 2)) * sig[0]
  plain = np.asarray(S.sample_euler(MIX_D, x, sig))
  # (a) s_churn = 0 (the default, or passed explicitly with a key and the other options) is plain Euler,
  #     bitwise.
  zero = np.asarray(S.sample_euler(MIX_D, x, sig, key, s_churn=0.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003))
  np.testing.assert_array_equal(zero, plain)
  # (b) churn changes the result, a new key changes it again (the run-to-run determinism and batch
  #     independence are tested below); a churn window containing no σ_i is Euler.
  a = np.asarray(S.sample_euler(MIX_D, x, sig, key, **CHURN))
  assert np.max(np.abs(a - plain)) > 1e-3
  c = np.asarray(S.sample_euler(MIX_D, x, sig, jax.random.key(5), **CHURN))
  assert np.max(np.abs(a - c)) > 1e-3
  off = np.asarray(S.sample_euler(MIX_D, x, sig, key, s_churn=40.0, s_tmin=100.0, s_tmax=200.0))
  np.testing.assert_allclose(off, plain, rtol=1e-6, atol=1e-6)
  # (c) It is EDM Algorithm 2's first-order part: on a one-step grid [σ, 0] sample_edm makes no Heun
  #     correction, so both take the same churn (same noise draw) and the same Euler step.
  one = sig[-2:] * 10.0
  np.testing.assert_allclose(np.asarray(S.sample_euler(MIX_D, x / 8, one, key, s_churn=1.0)),
                             np.asarray(S.sample_edm(MIX_D, x / 8, one, key, s_churn=1.0)),
                             rtol=1e-6, atol=1e-6)
  # (d) Against k-diffusion's loop written out in numpy with the same noise.
  s = np.asarray(sig, np.float64)
  gamma = min(40.0 / 8, np.sqrt(2) - 1)
  y = np.asarray(x, np.float64)
  for i in range(8):
    g = gamma if 0.05 <= s[i] <= 50.0 else 0.0
    s_hat = s[i] * (1 + g)
    z = np.asarray(S.per_sample_noise(key, jnp.arange(6), i, (2,)), np.float64)
    y = y + z * 1.003 * np.sqrt(s_hat ** 2 - s[i] ** 2)
    den = np.asarray(MIX_D_JIT(jnp.asarray(y, jnp.float32), jnp.full((6,), s_hat, jnp.float32)), np.float64)
    y = y + (y - den) / s_hat * (s[i + 1] - s_hat)
  np.testing.assert_allclose(a, y, rtol=1e-4, atol=1e-4)


def test_reductions_between_samplers():
  sig = karras_sigmas(9)
  key = jax.random.key(4)
  x = jax.random.normal(jax.random.key(5), (6, 2)) * sig[0]
  # Euler ancestral is samplers.sample_ancestral (same update, same noise) and at η = 0 plain Euler.
  np.testing.assert_allclose(np.asarray(K.sample_euler_ancestral(MIX_D, x, sig, key)),
                             np.asarray(S.sample_ancestral(MIX_D, x, sig, key)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(K.sample_euler_ancestral(MIX_D, x, sig, eta=0.0)),
                             np.asarray(S.sample_euler(MIX_D, x, sig)), rtol=1e-6, atol=1e-6)
  # DPM-2 ancestral at η = 0 is DPM-2; DPM-Solver++(2S) at η = 0 is a different 2nd-order method.
  np.testing.assert_allclose(np.asarray(K.sample_dpm_2_ancestral(MIX_D, x, sig, eta=0.0)),
                             np.asarray(K.sample_dpm_2(MIX_D, x, sig)), rtol=1e-6, atol=1e-6)
  # DPM-2 step by hand (k-diffusion's formulas, float64 arithmetic) on the first step.
  s0, s1 = float(sig[0]), float(sig[1])
  xs = np.asarray(x, np.float64)
  den = np.asarray(MIX_D_JIT(x, jnp.full((6,), sig[0])), np.float64)
  s_mid = np.exp(0.5 * (np.log(s0) + np.log(s1)))
  x2 = xs + (xs - den) / s0 * (s_mid - s0)
  den2 = np.asarray(MIX_D_JIT(jnp.asarray(x2, jnp.float32), jnp.full((6,), s_mid, jnp.float32)), np.float64)
  want = xs + (x2 - den2) / s_mid * (s1 - s0)
  _, traj = K.sample_dpm_2(MIX_D, x, sig, return_trajectory=True)
  np.testing.assert_allclose(np.asarray(traj[1]), want, rtol=1e-4, atol=1e-4)
  # DPM-Solver++(2S) at η = 0, first step by hand in λ = −ln σ (Lu et al. 2022b, Alg. 1, r = ½).
  h = np.log(s0 / s1)
  x2 = np.exp(-h / 2) * xs - np.expm1(-h / 2) * den
  den2 = np.asarray(MIX_D_JIT(jnp.asarray(x2, jnp.float32), jnp.full((6,), s0 * np.exp(-h / 2), jnp.float32)),
                    np.float64)
  want = (s1 / s0) * xs - np.expm1(-h) * den2
  _, traj = K.sample_dpmpp_2s_ancestral(MIX_D, x, sig, eta=0.0, return_trajectory=True)
  np.testing.assert_allclose(np.asarray(traj[1]), want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Stochastic samplers reproduce a 2-component mixture.

STOCHASTIC = {  # name: (sampler, N, options)
    "euler_ancestral": (K.sample_euler_ancestral, 256, {}),
    "euler_churn": (S.sample_euler, 512, CHURN),   # at N = 256 its mode-share bias is ≈ 0.0065 (2 SE at 20k)
    "dpm_2_ancestral": (K.sample_dpm_2_ancestral, 64, {}),
    "dpm_2_churn": (K.sample_dpm_2, 64, CHURN),
    "dpmpp_2s_ancestral": (K.sample_dpmpp_2s_ancestral, 64, {}),
}


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_sampler_mode_masses_and_second_moment(name):
  # Setup: 1-D mixture 0.7·N(−2, 0.09) + 0.3·N(2, 0.25) (ideal denoiser, tests/diffusion/mixtures.py),
  # 4000 samples from x = 80·z on a ρ = 7 grid ending in 0 (N steps: 256 for Euler ancestral, 512 for Euler
  # with EDM's churn, 64 for the second-order ones). (a) Each mode's share within 4 binomial standard errors
  # of its weight; (b) E[x²] within 4 standard errors (of the sample mean of x²) of the exact
  # 0.7·4.09 + 0.3·4.25. Measured |z| ≤ 1.6 (shares) and ≤ 1.5 (E[x²]).
  f, n_steps, kw = STOCHASTIC[name]
  n = 4000
  sig = karras_sigmas(n_steps)
  lat = jax.random.normal(jax.random.key(7), (n, 1))
  x = np.asarray(jax.jit(lambda l: f(MIX2_D, l * sig[0], sig, jax.random.key(8), **kw))(lat), np.float64)
  share = np.bincount(MIX2.assign(x), minlength=2) / n
  se = np.sqrt(MIX2.weights * (1 - MIX2.weights) / n)
  assert np.all(np.abs(share - MIX2.weights) < 4 * se), (share, MIX2.weights)
  m2 = float(np.sum(MIX2.weights * (MIX2.means[:, 0] ** 2 + MIX2.covs[:, 0, 0])))
  x2 = x[:, 0] ** 2
  assert abs(x2.mean() - m2) < 4 * x2.std() / np.sqrt(n), (x2.mean(), m2, x2.std() / np.sqrt(n))


# ------------------------------------------------------------------------------------------------
# Contract: NFE, one program, exact last step, batch independence, vmap, signature.

EVERY = {  # name: (sampler, options, NFE for N steps to σ = 0)
    "euler_churn": (S.sample_euler, {"s_churn": 10.0}, lambda n: n),
    "euler_ancestral": (K.sample_euler_ancestral, {}, lambda n: n),
    "dpm_2": (K.sample_dpm_2, {}, lambda n: 2 * n - 1),
    "dpm_2_churn": (K.sample_dpm_2, {"s_churn": 10.0}, lambda n: 2 * n - 1),
    "dpm_2_ancestral": (K.sample_dpm_2_ancestral, {}, lambda n: 2 * n - 1),
    "dpmpp_2s_ancestral": (K.sample_dpmpp_2s_ancestral, {"eta": 0.7}, lambda n: 2 * n - 1),
    "lms": (K.sample_lms, {}, lambda n: n),
}
STOCHASTIC_NAMES = ["euler_churn", "euler_ancestral", "dpm_2_churn", "dpm_2_ancestral", "dpmpp_2s_ancestral"]


@pytest.mark.parametrize("name", sorted(EVERY))
def test_nfe_program_size_and_exact_last_step(name):
  # (a) A host callback in the denoiser counts the evaluations the compiled program runs (N = 9 steps to 0)
  #     and equals the returned NFE. (b) The jaxpr has the same number of equations for 4 and 40 steps.
  # (c) Finite point set: its ideal denoiser is NaN at σ = 0, so finite output proves σ = 0 is never
  #     evaluated, and the exact last step D(x; 0.002) puts every sample on a data point (≥ 1 apart).
  f, kw, nfe_of = EVERY[name]
  key = jax.random.key(0)
  calls = []

  def counting(x, sigma):
    jax.debug.callback(lambda: calls.append(1))
    return GAUSS(x, sigma)

  sig = karras_sigmas(9)
  x, nfe = jax.jit(lambda x: f(counting, x, sig, key, return_nfe=True, **kw))(jnp.ones((2, 3)))
  jax.block_until_ready(x)
  assert len(calls) == nfe_of(9) and int(nfe) == nfe_of(9), (len(calls), int(nfe))
  sizes = [len(jax.make_jaxpr(lambda x, s=karras_sigmas(n): f(GAUSS, x, s, key, **kw))(jnp.ones((2, 3))).eqns)
           for n in (4, 40)]
  assert sizes[0] == sizes[1]
  points = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5], [0.5, -1.0]])
  dfn = M.point_set_denoiser(points)
  x = 80.0 * jax.random.normal(jax.random.key(1), (16, 2))
  out = np.asarray(jax.jit(lambda x: f(dfn, x, karras_sigmas(24), key, **kw))(x))
  assert np.all(np.isfinite(out))
  dist = np.min(np.linalg.norm(out[:, None] - np.asarray(points)[None], axis=-1), axis=1)
  assert np.all(dist < 1e-4), dist


@pytest.mark.parametrize("name", STOCHASTIC_NAMES)
def test_batch_independence_and_vmap(name):
  # A sample drawn in a sub-batch with its global indices equals the same sample in the full batch; vmap
  # over 2 groups of 4 with their indices equals the batch of 8.
  f, kw, _ = EVERY[name]
  sig = karras_sigmas(6)
  key = jax.random.key(21)
  lat = jax.random.normal(jax.random.key(22), (8, 2)) * sig[0]
  full = np.asarray(f(MIX_D, lat, sig, key, **kw))
  pick = jnp.array([5, 2, 7])
  part = np.asarray(f(MIX_D, lat[pick], sig, key, indices=pick, **kw))
  np.testing.assert_allclose(part, full[np.asarray(pick)], rtol=1e-5, atol=1e-5)
  out = jax.vmap(lambda x, i: f(MIX_D, x, sig, key, indices=i, **kw))(lat.reshape(2, 4, 2),
                                                                      jnp.arange(8).reshape(2, 4))
  np.testing.assert_allclose(np.asarray(out).reshape(8, 2), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(EVERY))
def test_trajectory_and_signature(name):
  # fn(D, x, sigmas, key, indices=..., return_nfe=..., return_trajectory=...): trajectory [N + 1, B, ...]
  # float32, first entry x, last the returned sample; (x0, trajectory, nfe) equal the plain call's.
  f, kw, _ = EVERY[name]
  sig = karras_sigmas(6)
  key = jax.random.key(45)
  x = jax.random.normal(jax.random.key(46), (5, 2)) * sig[0]
  idx = jnp.arange(5) + 11
  plain, nfe = jax.jit(lambda x: f(MIX_D, x, sig, key, indices=idx, return_nfe=True, **kw))(x)
  out, traj, nfe_t = jax.jit(lambda x: f(MIX_D, x, sig, key, indices=idx, return_nfe=True,
                                         return_trajectory=True, **kw))(x)
  assert traj.shape == (7, 5, 2) and traj.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(traj[0]), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(traj[-1]), np.asarray(out))
  np.testing.assert_allclose(np.asarray(out), np.asarray(plain), rtol=1e-6, atol=1e-6)
  assert int(nfe_t) == int(nfe)


def test_under_shard_map_equals_one_device():
  # 8 samples, one per simulated device, each shard passing its global indices: the single-device result.
  from jax.sharding import PartitionSpec as P
  shard_map = getattr(jax, "shard_map", None)
  if shard_map is None:
    from jax.experimental.shard_map import shard_map
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sig = karras_sigmas(5)
  key = jax.random.key(61)
  lat = jax.random.normal(jax.random.key(62), (8, 2)) * sig[0]
  for name in ("dpm_2_churn", "dpmpp_2s_ancestral", "lms"):
    f, kw, _ = EVERY[name]

    def local(x, f=f, kw=kw):
      idx = jax.lax.axis_index("data") * x.shape[0] + jnp.arange(x.shape[0])
      return f(MIX_D, x, sig, key, indices=idx, **kw)

    ref = jax.jit(lambda x, f=f, kw=kw: f(MIX_D, x, sig, key, **kw))(lat)
    out = jax.jit(shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(lat)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-5, err_msg=name)
