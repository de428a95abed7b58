"""Few-step multistep samplers (UniPC, iPNDM, DEIS) against analytic facts and step-by-step references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import samplers as S
from jaxgen.diffusion import samplers_multistep as MS
from jaxgen.diffusion.schedules import karras_sigmas
from jaxgen.errors import ConfigError
from tests.diffusion import mixtures as M

S_DATA = np.array([0.1, 0.5, 1.0], np.float32)   # one data std per dimension (independent ODEs)
GAUSS = M.gaussian_denoiser(0.0, jnp.asarray(S_DATA))
# Two components, full covariances (docs/reference.md §3 mixture denoiser).
MIX2 = M.Mixture(np.array([0.6, 0.4]), np.array([[-1.0, 0.5], [1.5, -0.5]]),
                 np.array([[[0.2, 0.05], [0.05, 0.1]], [[0.1, 0.0], [0.0, 0.3]]]))
MIX2_D = MIX2.denoiser()

SAMPLERS = {
    "unipc1": (MS.sample_unipc, {"order": 1}),
    "unipc2": (MS.sample_unipc, {"order": 2}),
    "unipc3_bh1": (MS.sample_unipc, {"order": 3, "variant": "bh1"}),
    "ipndm": (MS.sample_ipndm, {}),
    "deis": (MS.sample_deis, {}),
    "deis_sigma": (MS.sample_deis, {"order": 4, "poly": "sigma"}),
}


def _log_snr_grid(n, sigma_max=80.0, sigma_min=0.002):
  """n points uniform in λ = −ln σ (UniPC's / DPM-Solver's 'logSNR' grid), then 0."""
  return jnp.concatenate([jnp.exp(jnp.linspace(np.log(sigma_max), np.log(sigma_min), n)), jnp.zeros(1)])


# ------------------------------------------------------------------------------------------------
# Step-by-step references.

def _np_denoise(fn, x, s):
  return np.asarray(fn(jnp.asarray(x, jnp.float32), jnp.full((x.shape[0],), s, jnp.float32)), np.float64)


def _unipc_reference(fn, x, sig, order, variant, lower_order_final):
  """UniPC's multistep loop (UniPC paper Alg. 2/3, data prediction; the structure of the authors'
  ``multistep_uni_pc_bh_update`` and ``sample``) with Python lists, float64, α = 1, λ = −ln σ: warm-up
  steps of order 1, 2, …, UniC after every step but the last, its D reused by the next step."""
  sig = np.asarray(sig, np.float64)
  n, lam = len(sig) - 1, -np.log(sig)
  x = np.asarray(x, np.float64)

  def update(x, ms, ts, t, q, corrector):
    j, m0 = ts[-1], ms[-1]
    h = lam[t] - lam[j]
    rks = [(lam[ts[-(k + 1)]] - lam[j]) / h for k in range(1, q)]
    d1s = [(ms[-(k + 1)] - m0) / r for k, r in zip(range(1, q), rks)]
    rks.append(1.0)
    hh = -h
    phi1 = np.expm1(hh)
    bh = hh if variant == "bh1" else phi1
    big_r, b, hk, fact = [], [], phi1 / hh - 1, 1
    for m in range(1, q + 1):
      big_r.append(np.power(rks, m - 1))
      b.append(hk * fact / bh)
      fact *= m + 1
      hk = hk / hh - 1 / fact
    big_r, b = np.array(big_r), np.array(b)
    base = sig[t] / sig[j] * x - phi1 * m0
    x_t = base
    if d1s:
      rho_p = np.array([0.5]) if q == 2 else np.linalg.solve(big_r[:-1, :-1], b[:-1])
      x_t = base - bh * sum(r * d for r, d in zip(rho_p, d1s))
    model_t = None
    if corrector:
      rho_c = np.array([0.5]) if q == 1 else np.linalg.solve(big_r, b)
      model_t = _np_denoise(fn, x_t, sig[t])
      x_t = base - bh * (sum(r * d for r, d in zip(rho_c[:-1], d1s)) + rho_c[-1] * (model_t - m0))
    return x_t, model_t

  ms, ts = [_np_denoise(fn, x, sig[0])], [0]
  for step in range(1, n + 1):
    q = min(order, step, n + 1 - step) if lower_order_final else min(order, step)
    x, m = update(x, ms, ts, step, q, step < n)
    ms, ts = (ms + [m])[-order:], (ts + [step])[-order:]
  return x


@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_equals_step_by_step_reference(order):
  # Setup: 2-component 2-D mixture, 8 samples from x = 80·z, 10-point ρ = 7 grid to σ_min = 0.002 (no
  # final 0, so every step is UniPC's own update). The scan with precomputed coefficients equals the
  # list-based float64 loop for both B(h) and with/without lower_order_final.
  sig = karras_sigmas(10)[:-1]
  x = 80.0 * jax.random.normal(jax.random.key(0), (8, 2))
  for variant in ("bh1", "bh2"):
    for lof in (True, False):
      ref = _unipc_reference(MIX2_D, x, sig, order, variant, lof)
      got = np.asarray(MS.sample_unipc(MIX2_D, x, sig, order=order, variant=variant, lower_order_final=lof))
      np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5, err_msg=f"{variant} {lof}")


def _ab_reference(fn, x, sig, coef_fn):
  """x_{i+1} = x_i + Σ_j C_j(i)·d_{i−j}, d = (x − D)/σ; the step to σ = 0 is D."""
  sig = np.asarray(sig, np.float64)
  x, ds = np.asarray(x, np.float64), []
  for i in range(len(sig) - 1):
    den = _np_denoise(fn, x, sig[i])
    ds.insert(0, (x - den) / sig[i])
    x = den if sig[i + 1] == 0 else x + sum(c * d for c, d in zip(coef_fn(i, sig), ds))
  return x


def test_ipndm_equals_fixed_coefficient_reference():
  # iPNDM (Zhang & Chen 2023): (σ' − σ)·(1 | 3/2, −1/2 | 23, −16, 5 /12 | 55, −59, 37, −9 /24) on d,
  # order min(4, i + 1); 12-step ρ = 7 grid ending in 0.
  table = [[1.0], [1.5, -0.5], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24]]
  sig = karras_sigmas(12)
  x = 80.0 * jax.random.normal(jax.random.key(1), (8, 2))
  ref = _ab_reference(MIX2_D, x, sig, lambda i, s: [(s[i + 1] - s[i]) * c for c in table[min(i, 3)]])
  np.testing.assert_allclose(np.asarray(MS.sample_ipndm(MIX2_D, x, sig)), ref, rtol=0, atol=2e-5)


def test_deis_coefficients_closed_forms():
  # (a) poly='sigma', order 2 is variable-step Adams–Bashforth 2: with h = σ' − σ_i, g = σ_i − σ_{i−1},
  #     C = (h + h²/(2g), −h²/(2g)). (b) Every row sums to σ' − σ (constants are reproduced), both polys.
  # (c) On a uniform σ grid poly='sigma' gives iPNDM's fixed coefficients (1; 3/2, −1/2; …)·h.
  # (d) The step to σ = 0 is C = (−σ, 0, …), i.e. x' = D.
  sig = karras_sigmas(9)
  s = np.asarray(sig, np.float64)
  c2 = np.asarray(MS.deis_coefficients(sig, 2, "sigma"), np.float64)
  h, g = s[2:-1] - s[1:-2], s[1:-2] - s[:-3]
  np.testing.assert_allclose(c2[1:-1, 0], h + h * h / (2 * g), rtol=1e-5)
  np.testing.assert_allclose(c2[1:-1, 1], -h * h / (2 * g), rtol=1e-5)
  for poly in ("sigma", "log_sigma"):
    c = np.asarray(MS.deis_coefficients(sig, 4, poly), np.float64)
    np.testing.assert_allclose(c.sum(1), np.diff(s), rtol=1e-5)
    np.testing.assert_allclose(c[-1], [-s[-2], 0, 0, 0], rtol=1e-6)
  uni = jnp.linspace(3.0, 1.0, 9)
  cu = np.asarray(MS.deis_coefficients(uni, 4, "sigma"), np.float64) / -0.25
  table = MS._IPNDM  # pylint: disable=protected-access
  np.testing.assert_allclose(cu, table[np.minimum(np.arange(8), 3)], rtol=1e-5, atol=1e-6)


def test_deis_equals_lagrange_reference():
  # ε̂ interpolated in ln σ through the last 3 nodes, integrated exactly in σ (reference: numpy
  # polyfit + polyint in u = ln σ of e^u·ℓ_j by a 400-point midpoint-free Simpson rule).
  sig = karras_sigmas(8)
  x = 80.0 * jax.random.normal(jax.random.key(2), (8, 2))

  def coef(i, s):
    q = min(3, i + 1)
    nodes = np.log(s[i - np.arange(q)])
    u = np.linspace(nodes[0], np.log(s[i + 1]), 401)
    out = []
    for j in range(q):
      ell = np.prod([(u - nodes[k]) / (nodes[j] - nodes[k]) for k in range(q) if k != j], axis=0)
      f = np.exp(u) * ell
      out.append((u[1] - u[0]) / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))
    return out

  ref = _ab_reference(MIX2_D, x, sig, coef)
  np.testing.assert_allclose(np.asarray(MS.sample_deis(MIX2_D, x, sig)), ref, rtol=0, atol=5e-5)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_first_step_is_the_one_step_base(name):
  # Every method's first step (no history yet) is Euler = DDIM = DPM-Solver-1 (UniPC: UniP-1 = DDIM;
  # its corrector only acts once D at the next point is known): trajectory[1] equals Euler's.
  f, kw = SAMPLERS[name]
  sig = karras_sigmas(8)
  x = 80.0 * jax.random.normal(jax.random.key(3), (8, 2))
  _, path = f(MIX2_D, x, sig, return_trajectory=True, **kw)
  _, euler = S.sample_euler(MIX2_D, x, sig, return_trajectory=True)
  np.testing.assert_allclose(np.asarray(path[1]), np.asarray(euler[1]), rtol=1e-6, atol=1e-5)
  assert not np.allclose(np.asarray(path[2]), np.asarray(euler[2]), atol=1e-3)


# ------------------------------------------------------------------------------------------------
# Convergence order on the Gaussian ODE.

# Measured slopes (N = 32 → 64, or 64 → 128 for DEIS-3) for s = 0.1, 0.5, 1 on the ρ = 7 grid:
# UniPC-1 1.97/2.00/2.00 (theory 2), UniPC-2 3.12/3.11/3.11 (theory 3), UniPC-3 4.04/4.09/4.07 (theory 4),
# iPNDM-4 2.22/2.19/2.17 (order 4 needs a uniform σ grid; the fixed coefficients on ρ = 7 steps give
# 2), DEIS-3 (ln σ) 2.80/2.87/2.91 (theory 3, pre-asymptotic), DEIS-4 (ln σ) 4.21/4.35/4.37 (theory 4).
def _unipc(order):
  return lambda x, s: MS.sample_unipc(GAUSS, x, s, order=order, lower_order_final=False)


ORDERS = {
    "unipc1": (_unipc(1), (32, 64), 1.8, 2.3),
    "unipc2": (_unipc(2), (32, 64), 2.8, 3.4),
    "unipc3": (_unipc(3), (32, 64), 3.7, 4.4),
    "ipndm": (lambda x, s: MS.sample_ipndm(GAUSS, x, s), (32, 64), 1.9, 2.5),
    "deis3": (lambda x, s: MS.sample_deis(GAUSS, x, s, order=3), (64, 128), 2.6, 3.3),
    "deis4": (lambda x, s: MS.sample_deis(GAUSS, x, s, order=4), (32, 64), 3.7, 4.7),
}


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_convergence_order_on_gaussian_ode(name):
  # Setup (docs/reference.md §3): data N(0, s²), s = 0.1/0.5/1 per dimension, ρ = 7 grid 80 → 0.002
  # without the final 0 (error at σ_min), x(80) = 80; relative error against the exact flow map
  # x·√((s² + σ_min²)/(s² + σ_max²)); slope of log error vs log N in [lo, hi] (UniPC without
  # lower_order_final, which would make the last step first order).
  f, ns, lo, hi = ORDERS[name]
  x0 = jnp.full((1, 3), 80.0)
  s64 = S_DATA.astype(np.float64)
  exact = 80.0 * np.sqrt((s64 ** 2 + 0.002 ** 2) / (s64 ** 2 + 80.0 ** 2))
  errs = []
  for n in ns:
    sig = karras_sigmas(n)[:-1]
    errs.append(np.abs(np.asarray(jax.jit(lambda x, sig=sig: f(x, sig))(x0), np.float64)[0] - exact) / exact)
  slope = np.log(errs[0] / errs[1]) / np.log(ns[1] / ns[0])
  assert np.all((slope >= lo) & (slope <= hi)), (name, slope, errs)


# ------------------------------------------------------------------------------------------------
# Few-step accuracy on a mixture.

def test_ten_nfe_beats_euler_and_heun_on_mixture():
  # Setup: 2-component 2-D mixture (exact denoiser), 256 samples x = 80·z. The exact flow map to σ = 0
  # is EDM Heun on a 512-step ρ = 7 grid (RK45 at rtol 1e-6 agrees to 1e-4). RMS error
  # at 10 NFE: on the log-SNR-uniform grid (UniPC's) UniPC-2, UniPC-3, iPNDM and DEIS-3 each beat Euler
  # (10 steps) and Heun with 5 and 6 steps (9 and 11 NFE) by 2×. Measured: Euler 0.29, Heun 2.8/1.3,
  # DPM-Solver++(2M) 0.14, UniPC-1 0.22, UniPC-2 0.13, UniPC-3 0.085, iPNDM 0.067, DEIS-3 0.088. On the
  # ρ = 7 grid iPNDM and DEIS-3 beat them by 3× (0.076, 0.072 vs Euler 0.28, Heun-6 0.87); UniPC-3 does
  # not there (0.44: its extrapolation over the fast-growing λ steps at the end of a 10-point ρ = 7
  # grid), nor UniPC-2 Euler (0.27, as DPM-Solver++(2M) 0.26).
  lat = jax.random.normal(jax.random.key(0), (256, 2))
  ref = jax.jit(lambda l: S.sample_heun(MIX2_D, l * 80.0, karras_sigmas(512)))(lat)

  def err(f, sig, **kw):
    out = jax.jit(lambda l: f(MIX2_D, l * 80.0, sig, **kw))(lat)
    return float(jnp.sqrt(jnp.mean(jnp.sum(jnp.square(out - ref), -1))))

  cases = ((_log_snr_grid, ["unipc2", "unipc3", "ipndm", "deis3"]), (karras_sigmas, ["ipndm", "deis3"]))
  for grid, few in cases:
    base = min(err(S.sample_euler, grid(10)), err(S.sample_heun, grid(5)), err(S.sample_heun, grid(6)))
    got = {"unipc2": lambda: err(MS.sample_unipc, grid(10), order=2),
           "unipc3": lambda: err(MS.sample_unipc, grid(10), order=3),
           "ipndm": lambda: err(MS.sample_ipndm, grid(10)),
           "deis3": lambda: err(MS.sample_deis, grid(10))}
    for name in few:
      e = got[name]()
      assert e < 0.5 * base, (grid.__name__, name, e, base)


# ------------------------------------------------------------------------------------------------
# Contract: NFE, one program, exact last step, batch independence, jit/vmap, trajectory, errors.

@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_nfe_counted_inside_compiled_program(name):
  # A host callback in the denoiser counts real evaluations: N = 9 for a 9-step grid ending in 0.
  f, kw = SAMPLERS[name]
  calls = []

  def counting(x, sigma):
    jax.debug.callback(lambda: calls.append(1))
    return GAUSS(x, sigma)

  x, nfe = jax.jit(lambda x: f(counting, x, karras_sigmas(9), return_nfe=True, **kw))(jnp.ones((2, 3)))
  jax.block_until_ready(x)
  assert len(calls) == 9 and int(nfe) == 9


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_program_size_independent_of_steps_and_last_step_exact(name):
  # (a) Same number of jaxpr equations for 4 and 40 steps (one scan). (b) Finite point set: its ideal
  # denoiser is NaN at σ = 0, so finite output proves σ = 0 is never evaluated, and the step to 0 being
  # D(x; σ_min) puts every sample on a data point.
  f, kw = SAMPLERS[name]
  sizes = [len(jax.make_jaxpr(lambda x: f(GAUSS, x, karras_sigmas(n), **kw))(jnp.ones((2, 3))).eqns)
           for n in (4, 40)]
  assert sizes[0] == sizes[1]
  points = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5], [0.5, -1.0]])
  x = 80.0 * jax.random.normal(jax.random.key(1), (16, 2))
  out = np.asarray(jax.jit(lambda x: f(M.point_set_denoiser(points), x, karras_sigmas(24), **kw))(x))
  assert np.all(np.isfinite(out))
  dist = np.min(np.linalg.norm(out[:, None] - np.asarray(points)[None], axis=-1), axis=1)
  assert np.all(dist < 1e-4), dist


@pytest.mark.parametrize("name", ["unipc2", "unipc3_bh1", "ipndm", "deis"])
def test_batch_independence_jit_traced_grid_vmap_trajectory(name):
  # (a) Samples 5, 2, 7 alone equal the same samples in a batch of 8. (b) Under jit with the grid as a
  # traced argument (coefficients then in float32 jnp instead of float64 numpy) the result agrees.
  # (c) vmap over 2 groups of 4 equals the batch of 8. (d) Trajectory [N + 1, B, d], first entry x,
  # last the sample; key/indices accepted and ignored.
  f, kw = SAMPLERS[name]
  sig = karras_sigmas(6)
  lat = jax.random.normal(jax.random.key(22), (8, 2)) * sig[0]
  full = np.asarray(f(MIX2_D, lat, sig, **kw))
  pick = jnp.array([5, 2, 7])
  np.testing.assert_allclose(np.asarray(f(MIX2_D, lat[pick], sig, jax.random.key(0), indices=pick, **kw)),
                             full[np.asarray(pick)], rtol=1e-5, atol=1e-5)
  traced = jax.jit(lambda x, s: f(MIX2_D, x, s, **kw))(lat, sig)
  np.testing.assert_allclose(np.asarray(traced), full, rtol=1e-4, atol=1e-4)
  vm = jax.vmap(lambda x: f(MIX2_D, x, sig, **kw))(lat.reshape(2, 4, 2))
  np.testing.assert_allclose(np.asarray(vm).reshape(8, 2), full, rtol=1e-5, atol=1e-5)
  out, path, nfe = f(MIX2_D, lat, sig, return_trajectory=True, return_nfe=True, **kw)
  assert path.shape == (7, 8, 2) and int(nfe) == 6
  np.testing.assert_allclose(np.asarray(path[0]), np.asarray(lat), rtol=0, atol=0)
  np.testing.assert_allclose(np.asarray(path[-1]), np.asarray(out), rtol=0, atol=0)


def test_under_shard_map_equals_one_device():
  # 8 samples sharded one per simulated device (tests/conftest.py): every sampler gives the
  # single-device batch result (the history buffers are device-varying scan state).
  from jax.sharding import PartitionSpec as P
  shard_map = getattr(jax, "shard_map", None)
  if shard_map is None:
    from jax.experimental.shard_map import shard_map
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sig = karras_sigmas(5)
  lat = jax.random.normal(jax.random.key(62), (8, 2)) * sig[0]
  for name, (f, kw) in sorted(SAMPLERS.items()):
    run = lambda x, f=f, kw=kw: f(MIX2_D, x, sig, **kw)
    out = jax.jit(shard_map(run, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(lat)
    np.testing.assert_allclose(np.asarray(out), np.asarray(jax.jit(run)(lat)), rtol=1e-5, atol=1e-5,
                               err_msg=name)


def test_bad_options_raise_config_error():
  sig = karras_sigmas(5)
  x = jnp.ones((2, 2))
  for f, kw in ((MS.sample_unipc, {"order": 4}), (MS.sample_unipc, {"variant": "bh3"}),
                (MS.sample_ipndm, {"order": 5}), (MS.sample_ipndm, {"order": 0}),
                (MS.sample_deis, {"order": 5}), (MS.sample_deis, {"poly": "t"})):
    with pytest.raises(ConfigError):
      f(GAUSS, x, sig, **kw)
  with pytest.raises(ConfigError):
    MS.sample_unipc(GAUSS, x, jnp.array([1.0, 2.0, 0.0]))
