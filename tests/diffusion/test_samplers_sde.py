"""Brownian paths and the DPM-Solver++ SDE samplers against analytic facts (docs/reference.md §3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import samplers as S
from jaxgen.diffusion import samplers_sde as SS
from jaxgen.diffusion.brownian import BrownianPath
from jaxgen.diffusion.schedules import karras_sigmas
from jaxgen.errors import ConfigError
from tests.diffusion import mixtures as M

S_DATA = np.array([0.1, 0.5, 1.0], np.float32)   # one data std per dimension (independent ODEs)
GAUSS = M.gaussian_denoiser(0.0, jnp.asarray(S_DATA))
MIX2 = M.Mixture(np.array([0.7, 0.3]), np.array([[-2.0, 0.0], [2.0, 1.0]]),
                 np.array([[[0.09, 0.03], [0.03, 0.16]], [[0.25, 0.0], [0.0, 0.04]]]))
MIX2_D = MIX2.denoiser()
SIG_MIN, SIG_MAX = 0.002, 80.0


def _run(f, denoiser, x, sig, key=None, **kw):
  """f(denoiser, x, sig, key, **kw) as one compiled program (x, sig and key traced)."""
  return jax.jit(lambda x, s, k: f(denoiser, x, s, k, **kw))(x, sig, key)


SAMPLERS = {
    "dpmpp_sde": (SS.sample_dpmpp_sde, {}),
    "dpmpp_2m_sde": (SS.sample_dpmpp_2m_sde, {}),
    "dpmpp_2m_sde_heun": (SS.sample_dpmpp_2m_sde, {"solver_type": "heun"}),
    "dpmpp_3m_sde": (SS.sample_dpmpp_3m_sde, {}),
}


# ------------------------------------------------------------------------------------------------
# Brownian paths.

@jax.jit
def _w(key, idx, ts):
  """W at the times ts ([T]) for the samples idx: [T, B] (scalar paths on [SIG_MIN, SIG_MAX])."""
  return jax.vmap(BrownianPath(key, idx, (), SIG_MIN, SIG_MAX).value)(ts)


def test_brownian_path_is_a_function_of_key_index_and_time():
  # W(t) of sample i depends only on (key, indices[i], t): the values on a coarse grid reappear bit for
  # bit inside a refinement of it, queried in another order and in another batch, so the coarse
  # increments are exactly the sums of the refined ones; another key or index gives another path.
  key = jax.random.key(3)
  coarse = np.asarray(karras_sigmas(6)[:-1])
  fine = np.sort(np.concatenate([coarse, np.asarray(karras_sigmas(17)[:-1])]))   # ascending refinement
  w_coarse = np.asarray(_w(key, jnp.arange(8), jnp.asarray(coarse)))
  w_fine = np.asarray(_w(key, jnp.array([6, 3]), jnp.asarray(fine)))
  pos = np.searchsorted(fine, coarse)
  np.testing.assert_array_equal(w_fine[pos], w_coarse[:, [6, 3]])
  fine_inc = np.diff(w_fine.astype(np.float64), axis=0)
  summed = np.stack([fine_inc[a:b].sum(0) for a, b in zip(pos[1:], pos[:-1])])   # coarse is descending
  np.testing.assert_allclose(-summed, np.diff(w_coarse[:, [6, 3]], axis=0), atol=1e-5)
  other = np.asarray(_w(jax.random.key(4), jnp.arange(8), jnp.asarray(coarse)))
  assert np.all(other[:-1] != w_coarse[:-1])                     # W(σ_min) = 0 for every key
  assert np.all(w_coarse[:-1, 0] != w_coarse[:-1, 1])


@pytest.mark.parametrize("n_points", [5, 17])
def test_brownian_increments_have_brownian_law_on_coarse_and_refined_grids(n_points):
  # 20000 scalar paths on [0.002, 80] queried at a ρ = 7 grid of n_points σ's (not tree nodes) plus one
  # time above 80 and one below 0.002. Brownian motion: increments over consecutive times have
  # variance Δt (each within 5 standard errors, √(2/n) relative) and are uncorrelated (|corr| < 5/√n);
  # the same holds on the coarse and the refined grid.
  n = 20000
  ts = np.sort(np.concatenate([np.asarray(karras_sigmas(n_points)[:-1]), [0.0015, 83.0]])).astype(np.float32)
  w = np.asarray(_w(jax.random.key(5), jnp.arange(n), jnp.asarray(ts)), np.float64)
  inc = np.diff(w, axis=0)
  dt = np.diff(ts.astype(np.float64))
  ratio = inc.var(1) / dt
  assert np.all(np.abs(ratio - 1) < 5 * math.sqrt(2 / n)), ratio
  corr = np.corrcoef(inc)[np.triu_indices(len(dt), 1)]
  assert np.all(np.abs(corr) < 5 / math.sqrt(n)), corr


def test_brownian_bridge_covariance_and_leaf_deviation():
  # (a) Nested intervals a < c < b (none a tree node): Cov(W(b) − W(a), W(c) − W(a)) = c − a.
  # (b) The documented deviation: with depth 1 (leaves [t0, m], [m, t1]) two non-node times s < t in one
  # leaf [a, b] get Var(W(t) − W(s)) = (t − s) + 2(s − a)(b − t)/(b − a), not t − s.
  n = 40000
  a, c, b = 0.3, 1.7, 5.1
  w = np.asarray(_w(jax.random.key(6), jnp.arange(n), jnp.array([a, c, b], jnp.float32)), np.float64)
  cov = np.mean((w[2] - w[0]) * (w[1] - w[0]))
  assert abs(cov / (c - a) - 1) < 5 * math.sqrt(2 / n) * math.sqrt((b - a) / (c - a)), cov
  t0, t1 = 0.0, 1.0
  s, t = 0.1, 0.3
  inc = jax.jit(lambda key, depth: BrownianPath(key, jnp.arange(n), (), t0, t1, depth=depth).increment(s, t),
                static_argnums=1)
  d = np.asarray(inc(jax.random.key(7), 1), np.float64)
  expect = (t - s) + 2 * (s - t0) * (0.5 - t) / (0.5 - t0)
  assert abs(d.var() / expect - 1) < 5 * math.sqrt(2 / n), (d.var(), expect, t - s)
  assert abs(np.asarray(inc(jax.random.key(7), 20)).var() / (t - s) - 1) < 5 * math.sqrt(2 / n)


def test_brownian_path_shapes_and_bad_options():
  # Shapes, W(t0) = 0, normalized = increment/√|Δt|.
  @jax.jit
  def run(key):
    p = BrownianPath(key, jnp.array([4, 9]), (3, 2), 0.5, 2.0, depth=4)
    return p.value(1.0), p.value(0.5), p.normalized(2.0, 1.25), p.value(1.25) - p.value(2.0)

  w, w0, z, inc = run(jax.random.key(0))
  assert w.shape == (2, 3, 2) and w.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(w0), 0.0)
  np.testing.assert_allclose(np.asarray(z) * math.sqrt(0.75), np.asarray(inc), rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="depth"):
    BrownianPath(jax.random.key(0), jnp.arange(2), (), 0.0, 1.0, depth=0)
  with pytest.raises(ConfigError, match="indices"):
    BrownianPath(jax.random.key(0), jnp.zeros((2, 2), jnp.int32), (), 0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# The samplers on a 2-component mixture.

@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sde_sampler_reproduces_two_component_mixture(name):
  # Setup: 2-D mixture, weights (0.7, 0.3), full covariances, components > 10 std apart; 4000 samples
  # from x = 80·z on a ρ = 7 grid of 32 steps ending in 0, η = 1. Each mode's share is within 4 binomial
  # standard errors of its weight; the mean and the second moments E[x_j²] within 5 standard errors of
  # the mixture's (se from the samples' own spread).
  f, kw = SAMPLERS[name]
  n = 4000
  sig = karras_sigmas(32)
  lat = jax.random.normal(jax.random.key(10), (n, 2))
  x = np.asarray(jax.jit(lambda l: f(MIX2_D, l * sig[0], sig, jax.random.key(11), **kw))(lat), np.float64)
  share = np.bincount(MIX2.assign(x), minlength=2) / n
  se = np.sqrt(MIX2.weights * (1 - MIX2.weights) / n)
  assert np.all(np.abs(share - MIX2.weights) < 4 * se), (share, MIX2.weights)
  mean = MIX2.weights @ MIX2.means
  second = MIX2.weights @ (np.diagonal(MIX2.covs, axis1=1, axis2=2) + MIX2.means ** 2)
  se_mean = x.std(0) / math.sqrt(n)
  se_second = (x ** 2).std(0) / math.sqrt(n)
  assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), (x.mean(0), mean)
  assert np.all(np.abs((x ** 2).mean(0) - second) < 5 * se_second), ((x ** 2).mean(0), second)


def test_dpmpp_2m_sde_without_noise_is_dpmpp_2m():
  # η = 0, 'midpoint': the SDE update's coefficients reduce to DPM-Solver++(2M)'s: the whole trajectory
  # (12-step ρ = 7 grid ending in 0, mixture denoiser) equals sample_dpmpp_2m to float32 rounding.
  sig = karras_sigmas(12)
  x = jax.random.normal(jax.random.key(12), (16, 2)) * sig[0]
  _, got = _run(SS.sample_dpmpp_2m_sde, MIX2_D, x, sig, eta=0.0, return_trajectory=True)
  _, want = _run(S.sample_dpmpp_2m, MIX2_D, x, sig, return_trajectory=True)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-5)


def test_multistep_sde_first_steps_equal_their_lower_order_bases():
  # Same noise (same key, same Brownian path), η = 1: step 1 of 2M-SDE (both variants) and of 3M-SDE is
  # the first-order SDE-DPM-Solver++-1 step; step 2 of 3M-SDE is the 'heun' 2M-SDE step.
  sig = karras_sigmas(10)
  key = jax.random.key(13)
  x = jax.random.normal(jax.random.key(14), (8, 2)) * sig[0]
  traj = {name: np.asarray(_run(f, MIX2_D, x, sig, key, return_trajectory=True, **kw)[1])
          for name, (f, kw) in SAMPLERS.items() if name != "dpmpp_sde"}
  np.testing.assert_allclose(traj["dpmpp_2m_sde"][:2], traj["dpmpp_3m_sde"][:2], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(traj["dpmpp_2m_sde_heun"][:3], traj["dpmpp_3m_sde"][:3], rtol=1e-5, atol=1e-5)
  assert np.abs(traj["dpmpp_2m_sde"][2] - traj["dpmpp_3m_sde"][2]).max() > 1e-3
  assert np.abs(traj["dpmpp_2m_sde_heun"][3] - traj["dpmpp_3m_sde"][3]).max() > 1e-4


def _loop_reference(name, denoiser, x, sig, noise, d2_coef=2.0, eta=1.0):
  """The updates of the module docstring (DPM-Solver++ paper; k-diffusion's loop structure) as a plain
  float64 Python loop; ``noise(σ, σ')`` the normalized Brownian increment, σ_s given in float32."""
  den = lambda x, s: np.asarray(denoiser(jnp.asarray(x, jnp.float32), jnp.full((x.shape[0],), s)), np.float64)
  hist, hs = [], []
  for s, sn in zip(sig[:-1], sig[1:]):
    d = den(x, s)
    if sn == 0:
      return d
    h = math.log(s / sn)
    if name == "dpmpp_sde":
      s_mid = float(jnp.exp(0.5 * jnp.log(jnp.float32(s)) + 0.5 * jnp.log(jnp.float32(sn))))
      up, down = (float(v) for v in S.ancestral_step(s, s_mid, eta))
      x_mid = down / s * x + (1 - down / s) * d + up * noise(s, s_mid)
      d_mid = den(x_mid, s_mid)
      up, down = (float(v) for v in S.ancestral_step(s, sn, eta))
      x = down / s * x + (1 - down / s) * d_mid + up * noise(s, sn)
      continue
    hh = (1 + eta) * h
    phi_2 = math.expm1(-hh) / hh + 1
    x = math.exp(-hh) * x - math.expm1(-hh) * d
    if hs and (name == "dpmpp_2m_sde_heun" or name == "dpmpp_2m_sde" or len(hs) == 1):
      coef = -0.5 * math.expm1(-hh) if name == "dpmpp_2m_sde" else phi_2
      x = x + coef * (d - hist[-1]) / (hs[-1] / h)
    elif len(hs) >= 2:
      r0, r1 = hs[-1] / h, hs[-2] / h
      a, b = (d - hist[-1]) / r0, (hist[-1] - hist[-2]) / r1
      x = x + phi_2 * (a + (a - b) * r0 / (r0 + r1)) - d2_coef * (phi_2 / hh - 0.5) * (a - b) / (r0 + r1)
    x = x + sn * math.sqrt(-math.expm1(-2 * eta * h)) * noise(s, sn)
    hist.append(d)
    hs.append(h)
  return x


@pytest.mark.parametrize("name", sorted(SAMPLERS) + ["dpmpp_3m_sde_k_diffusion"])
def test_sampler_equals_plain_loop_of_its_update(name):
  # Setup: Gaussian data, 10-step ρ = 7 grid ending in 0, 4 samples, η = 1. The scan (masked first and
  # last steps, carried W) equals a float64 Python loop of the same updates fed the same Brownian path
  # (W(σ) evaluated at the same float32 σ's), to float32 rounding.
  cases = {**SAMPLERS, "dpmpp_3m_sde_k_diffusion": (SS.sample_dpmpp_3m_sde, {"match_k_diffusion": True})}
  f, kw = cases[name]
  sig = karras_sigmas(10)
  key = jax.random.key(30)
  x = jax.random.normal(jax.random.key(31), (4, 3)) * sig[0]
  w = jax.jit(BrownianPath(key, jnp.arange(4), (3,), sig[-2], sig[0]).value)
  noise = lambda a, b: (np.asarray(w(jnp.float32(b)), np.float64)
                        - np.asarray(w(jnp.float32(a)), np.float64)) / math.sqrt(a - b)
  want = _loop_reference(name.replace("_k_diffusion", ""), GAUSS, np.asarray(x, np.float64),
                         [float(v) for v in np.asarray(sig)], noise,
                         d2_coef=1.0 if name.endswith("k_diffusion") else 2.0)
  got = np.asarray(_run(f, GAUSS, x, sig, key, **kw), np.float64)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _exact_flow(x, s, sigma_from, sigma_to):
  return x * np.sqrt((s ** 2 + sigma_to ** 2) / (s ** 2 + sigma_from ** 2))


ORDER_CASES = {
    "dpmpp_sde": (SS.sample_dpmpp_sde, {}),
    "dpmpp_2m_sde_heun": (SS.sample_dpmpp_2m_sde, {"solver_type": "heun"}),
    "dpmpp_3m_sde": (SS.sample_dpmpp_3m_sde, {}),
    "dpmpp_3m_sde_k_diffusion": (SS.sample_dpmpp_3m_sde, {"match_k_diffusion": True}),
}


@pytest.mark.parametrize("name,ns,lo,hi", [("dpmpp_sde", (16, 64), 1.8, 2.3),
                                           ("dpmpp_2m_sde_heun", (32, 128), 1.8, 2.3),
                                           ("dpmpp_3m_sde", (32, 64), 2.7, 3.5),
                                           ("dpmpp_3m_sde_k_diffusion", (128, 256), 1.7, 2.3)])
def test_deterministic_limit_convergence_order(name, ns, lo, hi):
  # η = 0 on the Gaussian ODE (data N(0, s²), s = 0.1, 0.5, 1 per dimension), ρ = 7 grid 80 → 0.002 (no
  # final 0), x(80) = 80: the relative error against the exact flow map falls as N^(−p), p measured
  # between the two N's. DPM-Solver++(2S) and 2M (heun) are 2nd order (measured 2.0, 2.1), 3M 3rd order
  # (measured 3.1–3.5); 3M with k-diffusion's / the official code's second-difference term (half the
  # Taylor coefficient) only 2nd order (measured 1.9).
  f, kw = ORDER_CASES[name]
  x0 = jnp.full((1, 3), 80.0)
  exact = _exact_flow(80.0, S_DATA.astype(np.float64), 80.0, 0.002)
  errs = []
  for n in ns:
    sig = karras_sigmas(n)[:-1]
    x = np.asarray(jax.jit(lambda x, s, f=f: f(GAUSS, x, s, eta=0.0, **kw))(x0, sig), np.float64)[0]
    errs.append(np.abs(x - exact) / exact)
  slope = np.log(errs[0] / errs[1]) / np.log(ns[1] / ns[0])
  assert np.all((slope > lo) & (slope < hi)), (slope, errs)


def test_sde_paths_are_consistent_across_step_counts():
  # The noise is one Brownian path per sample: with the same key, the η = 1 samples for N = 64 and
  # N = 128 steps (same σ_min, σ_max) approximate the same SDE solution, so they are far closer to each
  # other than to the N = 128 samples of another key (strong vs no coupling): mean |Δ| ratio < 0.25.
  x = jax.random.normal(jax.random.key(15), (256, 3)) * 80.0
  for name in ("dpmpp_2m_sde", "dpmpp_sde"):
    f, kw = SAMPLERS[name]
    a = np.asarray(_run(f, GAUSS, x, karras_sigmas(64)[:-1], jax.random.key(16), **kw))
    fine = jax.jit(lambda k, f=f, kw=kw: f(GAUSS, x, karras_sigmas(128)[:-1], k, **kw))
    b, c = np.asarray(fine(jax.random.key(16))), np.asarray(fine(jax.random.key(17)))
    ratio = np.abs(a - b).mean() / np.abs(c - b).mean()
    assert ratio < 0.25, (name, ratio)


# ------------------------------------------------------------------------------------------------
# Contract: NFE, batch independence, jit/vmap, final step, errors.

@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_nfe_batch_independence_and_exact_last_step(name):
  # One compiled program (grid, key, indices traced), run twice. (a) A host callback in the denoiser
  # counts the evaluations the program runs: N = 6 steps to σ = 0 make 2N − 1 (two stages, one on the
  # final step) or N (multistep); return_nfe agrees. (b) Samples 5, 2, 7 of a batch of 8 (indices 0…7)
  # are unchanged when drawn in another batch (other samples, other order) with the same indices.
  # (c) The trajectory is [N + 1, B, ...], its last entry the output, which is D(x; σ_last) of the state
  # before it (the exact final step).
  calls = []

  def counting(x, sigma):
    jax.debug.callback(lambda: calls.append(1))
    return MIX2_D(x, sigma)

  f, kw = SAMPLERS[name]
  sig = karras_sigmas(6)
  key = jax.random.key(21)
  run = jax.jit(lambda x, s, k, i: f(counting, x, s, k, indices=i, return_trajectory=True, return_nfe=True,
                                     **kw))
  lat = jax.random.normal(jax.random.key(22), (8, 2)) * sig[0]
  full, traj, nfe = run(lat, sig, key, jnp.arange(8))
  jax.block_until_ready(full)
  jax.effects_barrier()
  expect = 2 * 6 - 1 if name == "dpmpp_sde" else 6
  assert len(calls) == expect and int(nfe) == expect, (len(calls), int(nfe), expect)
  pick = np.array([5, 2, 7])
  other = jax.random.normal(jax.random.key(25), (8, 2)) * sig[0]
  part, _, _ = run(other.at[:3].set(lat[pick]), sig, key, jnp.array([5, 2, 7, 100, 101, 102, 103, 104]))
  np.testing.assert_allclose(np.asarray(part)[:3], np.asarray(full)[pick], rtol=1e-5, atol=1e-5)
  assert traj.shape == (7, 8, 2)
  np.testing.assert_array_equal(np.asarray(traj[-1]), np.asarray(full))
  den = MIX2_D(traj[-2], jnp.full((8,), sig[-2]))
  np.testing.assert_allclose(np.asarray(full), np.asarray(den), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_3m_sde"])
def test_under_vmap_equals_separate_calls(name):
  # vmap over two batches of 4 (grid and key constants) equals the two batches run one by one through
  # the program with a traced grid and key. (Gaussian data: on the mixture, 8-step multistep
  # extrapolation across a mode switch amplifies the programs' different float32 rounding.)
  f, kw = SAMPLERS[name]
  sig = karras_sigmas(8)
  lat = jax.random.normal(jax.random.key(23), (2, 4, 3)) * sig[0]
  key = jax.random.key(24)
  prog = jax.jit(lambda x, s, k: f(GAUSS, x, s, k, **kw))
  want = np.stack([np.asarray(prog(lat[0], sig, key)), np.asarray(prog(lat[1], sig, key))])
  mapped = jax.jit(jax.vmap(lambda x: f(GAUSS, x, sig, key, **kw)))(lat)
  np.testing.assert_allclose(np.asarray(mapped), want, rtol=1e-5, atol=1e-5)


def test_under_shard_map_equals_one_device():
  # 8 samples sharded one per simulated device, each shard passing its global indices: the same samples
  # as the single-device batch (the Brownian tree's loop carry is device-varying like its keys).
  from jax.sharding import PartitionSpec as P
  shard_map = getattr(jax, "shard_map", None)
  if shard_map is None:
    from jax.experimental.shard_map import shard_map
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sig = karras_sigmas(5)
  key = jax.random.key(61)
  lat = jax.random.normal(jax.random.key(62), (8, 2)) * sig[0]
  for name in ("dpmpp_sde", "dpmpp_2m_sde"):
    f, kw = SAMPLERS[name]

    def local(x, f=f, kw=kw):
      idx = jax.lax.axis_index("data") * x.shape[0] + jnp.arange(x.shape[0])
      return f(MIX2_D, x, sig, key, indices=idx, **kw)

    ref = jax.jit(lambda x, f=f, kw=kw: f(MIX2_D, x, sig, key, **kw))(lat)
    out = jax.jit(shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(lat)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-5, err_msg=name)


def test_bad_options_raise_config_error():
  sig = karras_sigmas(4)
  x = jnp.ones((2, 2))
  with pytest.raises(ConfigError, match="key"):
    SS.sample_dpmpp_2m_sde(MIX2_D, x, sig)
  with pytest.raises(ConfigError, match="solver_type"):
    SS.sample_dpmpp_2m_sde(MIX2_D, x, sig, jax.random.key(0), solver_type="rk4")
  with pytest.raises(ConfigError, match="eta"):
    SS.sample_dpmpp_3m_sde(MIX2_D, x, sig, jax.random.key(0), eta=-1.0)
  with pytest.raises(ConfigError, match="r must be"):
    SS.sample_dpmpp_sde(MIX2_D, x, sig, jax.random.key(0), r=0.0)
  np.testing.assert_array_equal(np.asarray(SS.sample_dpmpp_sde(MIX2_D, x, sig, eta=0.0)).shape, (2, 2))


def test_program_size_independent_of_steps():
  # One lax.scan: the traced program has the same number of equations for 4 and 40 steps.
  key = jax.random.key(0)
  for f, kw in SAMPLERS.values():
    sizes = [len(jax.make_jaxpr(lambda x, s, f=f, kw=kw: f(GAUSS, x, s, key, **kw))(
        jnp.ones((2, 3)), karras_sigmas(n)).eqns) for n in (4, 40)]
    assert sizes[0] == sizes[1], sizes
