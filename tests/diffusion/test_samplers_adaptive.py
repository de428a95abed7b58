"""DPM-Solver-fast and adaptive DPM-Solver against the Gaussian ODE's closed form (docs/reference.md §3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import samplers as S
from jaxgen.diffusion import samplers_adaptive as A
from jaxgen.diffusion.schedules import karras_sigmas
from jaxgen.errors import ConfigError
from tests.diffusion import mixtures as M

S_DATA = np.array([0.1, 0.5, 1.0], np.float32)   # one data std per dimension (independent ODEs)
GAUSS = M.gaussian_denoiser(0.0, jnp.asarray(S_DATA))
MIX_D = M.separated_mixture_2d().denoiser()
ENDS = jnp.array([80.0, 1.0, 0.002])             # σ_max = 80 → σ_min = 0.002, no final 0


def _exact_flow(x, s, sigma_from, sigma_to):
  """PF-ODE flow map of N(0, s²): x(σ) = x(σ')·√((s² + σ²)/(s² + σ'²)) (docs/reference.md §3)."""
  return x * np.sqrt((s ** 2 + sigma_to ** 2) / (s ** 2 + sigma_from ** 2))


EXACT = _exact_flow(80.0, S_DATA.astype(np.float64), 80.0, 0.002)
X80 = jnp.full((1, 3), 80.0)


def _rel_err(y):
  return np.abs(np.asarray(y, np.float64)[0] - EXACT) / np.abs(EXACT)


# ------------------------------------------------------------------------------------------------
# DPM-Solver-fast.

def test_fast_plan_uses_exactly_nfe_calls():
  for nfe in range(1, 40):
    m, orders = A.fast_plan(nfe)
    assert sum(orders) == nfe and m == len(orders) and set(orders[:-2]) <= {3}
  assert A.fast_plan(10)[1] == [3, 3, 3, 1] and A.fast_plan(9)[1] == [3, 3, 2, 1]


def test_fast_error_decreases_with_nfe():
  # x(80) = 80 to σ_min = 0.002 (no final 0): relative error at σ_min, measured 0.05–0.12 (nfe 10),
  # ~0.01 (20), ~8e-4 (40).
  errs = [_rel_err(A.sample_dpm_fast(GAUSS, X80, ENDS, nfe=n)) for n in (10, 20, 40)]
  assert np.all(errs[0] > 4 * errs[1]) and np.all(errs[1] > 4 * errs[2]), errs
  assert np.all(errs[2] < 2e-3), errs


def test_fast_is_third_order():
  # nfe = 3m − 1: m − 1 order-3 steps and one order-2 step, uniform in λ; the global error ~ h³.
  # Measured slopes vs m (8 → 16 → 32): 3.3–3.4 (pre-asymptotic; → 3.2 at m = 64).
  ms = np.array([8, 16, 32])
  errs = np.stack([_rel_err(A.sample_dpm_fast(GAUSS, X80, ENDS, nfe=3 * m - 1)) for m in ms])
  for j in range(3):
    slope = -np.polyfit(np.log(ms), np.log(errs[:, j]), 1)[0]
    assert 2.8 <= slope <= 3.7, (S_DATA[j], slope, errs[:, j])


def test_fast_order_one_is_euler_and_interior_ignored():
  # nfe = 1 is one DPM-Solver-1 step = DDIM = Euler from σ_max to σ_min; interior points don't matter.
  lat = jax.random.normal(jax.random.key(0), (4, 3)) * 80.0
  euler = S.sample_euler(GAUSS, lat, jnp.array([80.0, 0.002]))
  np.testing.assert_allclose(np.asarray(A.sample_dpm_fast(GAUSS, lat, ENDS, nfe=1)), np.asarray(euler),
                             rtol=1e-5, atol=1e-5)
  a = A.sample_dpm_fast(GAUSS, lat, karras_sigmas(12), nfe=11)
  b = A.sample_dpm_fast(GAUSS, lat, jnp.array([80.0, 3.0, 0.002, 0.0]), nfe=11)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_final_zero_is_exact_denoising_and_nfe_counted_in_program():
  calls = []

  def counting(x, sigma):
    jax.debug.callback(lambda: calls.append(1))
    return GAUSS(x, sigma)

  lat = jax.random.normal(jax.random.key(1), (2, 3)) * 80.0
  with_zero = jnp.array([80.0, 0.002, 0.0])
  for f, kw in ((A.sample_dpm_fast, {"nfe": 11}), (A.sample_dpm_adaptive, {})):
    calls.clear()
    x0, nfe = jax.jit(lambda x, f=f, kw=kw: f(counting, x, with_zero, return_nfe=True, **kw))(lat)
    jax.block_until_ready(x0)
    assert len(calls) == int(np.max(nfe)), (f.__name__, len(calls), nfe)
    x_min, nfe_min = f(GAUSS, lat, jnp.array([80.0, 0.002]), return_nfe=True, **kw)
    np.testing.assert_array_equal(np.asarray(nfe), np.asarray(nfe_min) + 1)
    np.testing.assert_allclose(np.asarray(x0), np.asarray(GAUSS(x_min, jnp.full((2,), 0.002))),
                               rtol=1e-6, atol=1e-6)
  assert int(A.sample_dpm_fast(GAUSS, lat, with_zero, nfe=11, return_nfe=True)[1]) == 12
  # Default nfe: the grid's number of steps in total (10 solver calls + the final step for N = 11).
  assert int(A.sample_dpm_fast(GAUSS, lat, karras_sigmas(11), return_nfe=True)[1]) == 11
  traced = jax.jit(lambda s: A.sample_dpm_fast(GAUSS, lat, s, return_nfe=True)[1])(karras_sigmas(11))
  assert int(traced) == 11  # a traced grid is assumed to end in 0


def test_fast_trajectory():
  lat = jax.random.normal(jax.random.key(2), (3, 3)) * 80.0
  sig = karras_sigmas(10)
  x0, traj, nfe = A.sample_dpm_fast(GAUSS, lat, sig, return_trajectory=True, return_nfe=True, nfe=10)
  m = A.fast_plan(10)[0]
  assert traj.shape == (m + 2, 3, 3) and int(nfe) == 11
  np.testing.assert_array_equal(np.asarray(traj[0]), np.asarray(lat))
  np.testing.assert_array_equal(np.asarray(traj[-1]), np.asarray(x0))
  np.testing.assert_allclose(np.asarray(traj[-2]), np.asarray(A.sample_dpm_fast(GAUSS, lat, ENDS, nfe=10)),
                             rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Adaptive DPM-Solver.

def test_adaptive_reaches_closed_form_within_tolerance_and_reports_nfe():
  # Measured (order 3, atol 1e-4): rtol 0.05 → err ≤ 0.10, NFE 30; 0.01 → 0.023, 39; 0.002 → 0.006, 54.
  errs, nfes = [], []
  for rtol in (0.05, 0.01, 0.002):
    y, nfe = A.sample_dpm_adaptive(GAUSS, X80, ENDS, rtol=rtol, atol=1e-4, return_nfe=True)
    errs.append(_rel_err(y))
    nfes.append(int(nfe[0]))
    assert np.all(errs[-1] < 4 * rtol), (rtol, errs[-1])
  assert nfes[0] < nfes[1] < nfes[2], nfes
  assert np.max(errs[2]) < np.max(errs[0]) / 5, errs
  assert all(n % 3 == 0 for n in nfes), nfes
  y, nfe = A.sample_dpm_adaptive(GAUSS, X80, ENDS, order=2, rtol=0.01, atol=1e-4, return_nfe=True)
  assert np.all(_rel_err(y) < 0.04) and int(nfe[0]) % 2 == 0


def test_adaptive_max_steps_stops_the_loop():
  # Two attempted steps of 3 calls, then the final step to 0 at the σ reached (not σ_min).
  lat = jnp.full((2, 3), 80.0)
  x0, nfe = A.sample_dpm_adaptive(GAUSS, lat, jnp.array([80.0, 0.002, 0.0]), max_steps=2, return_nfe=True)
  np.testing.assert_array_equal(np.asarray(nfe), [7, 7])
  assert np.all(np.isfinite(np.asarray(x0)))
  x1 = A.sample_dpm_adaptive(GAUSS, lat, jnp.array([80.0, 0.002]), max_steps=2)
  assert np.all(np.asarray(x1) > 10.0)  # still near σ = 80 · e^{−h}: far from the data


@pytest.mark.parametrize("name,kw", [("fast", {"nfe": 11, "eta": 1.0}), ("adaptive", {}),
                                     ("adaptive", {"eta": 0.5})])
def test_sample_does_not_depend_on_its_batch(name, kw):
  # Samples 5, 2, 7 drawn inside a batch of 8 equal the same samples drawn alone with their indices;
  # the adaptive solver gives each sample its own steps (different NFE across the batch).
  f = {"fast": A.sample_dpm_fast, "adaptive": A.sample_dpm_adaptive}[name]
  sig = karras_sigmas(6)
  key = jax.random.key(21)
  lat = jax.random.normal(jax.random.key(22), (8, 2)) * sig[0]
  full, nfe = f(MIX_D, lat, sig, key, return_nfe=True, **kw)
  pick = jnp.array([5, 2, 7])
  part, nfe_part = f(MIX_D, lat[pick], sig, key, indices=pick, return_nfe=True, **kw)
  np.testing.assert_allclose(np.asarray(part), np.asarray(full)[np.asarray(pick)], rtol=1e-5, atol=1e-5)
  if name == "adaptive":
    np.testing.assert_array_equal(np.asarray(nfe_part), np.asarray(nfe)[np.asarray(pick)])
  # Samples land on the mixture (near a component mean at σ = 0 the denoiser's output).
  assert np.all(np.isfinite(np.asarray(full)))


def test_stochastic_fast_has_the_data_variance():
  # η = 1 (ancestral DPM-Solver-fast, nfe 30) on N(0, s²): per-dimension std of 4000 samples ≈ s.
  n = 4000
  lat = jax.random.normal(jax.random.key(5), (n, 3)) * 80.0
  out = A.sample_dpm_fast(GAUSS, lat, karras_sigmas(10), jax.random.key(6), nfe=30, eta=1.0)
  std = np.asarray(out).std(0)
  np.testing.assert_allclose(std, S_DATA, rtol=0.08)


@pytest.mark.parametrize("name", ["fast", "adaptive"])
def test_under_jit_with_traced_grid_and_vmap(name):
  # vmap over 2 groups of 4 samples with their global indices = one batch of 8 (η = 0.5: noise too;
  # the adaptive solver's per-sample step counts differ across the batch).
  f = {"fast": A.sample_dpm_fast, "adaptive": A.sample_dpm_adaptive}[name]
  kw = {"nfe": 8, "eta": 0.5} if name == "fast" else {"eta": 0.5}
  sig = karras_sigmas(8)
  key = jax.random.key(31)
  lat = jax.random.normal(jax.random.key(32), (8, 3)) * sig[0]
  ref, nfe = f(GAUSS, lat, sig, key, return_nfe=True, **kw)
  if name == "adaptive":
    assert len(set(np.asarray(nfe).tolist())) > 1, nfe
  jitted = jax.jit(lambda x, s, k: f(GAUSS, x, s, k, **kw))(lat, sig, key)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(ref), rtol=1e-5, atol=1e-5)
  idx = jnp.arange(8).reshape(2, 4)
  out = jax.vmap(lambda x, i: f(GAUSS, x, sig, key, indices=i, **kw))(lat.reshape(2, 4, 3), idx)
  np.testing.assert_allclose(np.asarray(out).reshape(8, 3), np.asarray(ref), rtol=1e-5, atol=1e-5)


def test_bad_options_raise_config_error():
  lat = jnp.ones((1, 3))
  with pytest.raises(ConfigError, match="return_trajectory"):
    A.sample_dpm_adaptive(GAUSS, lat, ENDS, return_trajectory=True)
  with pytest.raises(ConfigError, match="order"):
    A.sample_dpm_adaptive(GAUSS, lat, ENDS, order=4)
  with pytest.raises(ConfigError, match="nfe"):
    A.sample_dpm_fast(GAUSS, lat, ENDS, nfe=0)
  with pytest.raises(ConfigError, match="key"):
    A.sample_dpm_fast(GAUSS, lat, ENDS, nfe=5, eta=1.0)


def test_under_shard_map_equals_one_device():
  # 8 samples, one per simulated device, each shard passing its global index (η = 0.5: noise too).
  from jax.sharding import PartitionSpec as P
  shard_map = getattr(jax, "shard_map", None)
  if shard_map is None:
    from jax.experimental.shard_map import shard_map
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sig = karras_sigmas(5)
  key = jax.random.key(61)
  lat = jax.random.normal(jax.random.key(62), (8, 3)) * sig[0]
  for f, kw in ((A.sample_dpm_fast, {"nfe": 8}), (A.sample_dpm_adaptive, {})):
    def local(x, f=f, kw=kw):
      idx = jax.lax.axis_index("data") * x.shape[0] + jnp.arange(x.shape[0])
      return f(GAUSS, x, sig, key, indices=idx, eta=0.5, **kw)

    ref = jax.jit(lambda x, f=f, kw=kw: f(GAUSS, x, sig, key, eta=0.5, **kw))(lat)
    out = jax.jit(shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(lat)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-5, err_msg=f.__name__)
