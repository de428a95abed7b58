"""EDM Figure 2's shape with exact denoisers: deterministic sampling error against NFE.

Karras et al. (2022, Fig. 2 and §3) show that the 2nd-order Heun solver and the ρ = 7 time steps of
eq. 5 reach a given quality with far fewer network evaluations than Euler on the original VP/VE
discretizations. Here the network is the *ideal* denoiser of a 1-D Gaussian mixture (docs/reference.md §3:
D(x; σ) = Σ_k w_k(x)[μ_k + s_k²/(s_k²+σ²)(x − μ_k)]), so the only error left is the ODE solver's: we
report the RMS distance at σ_min between each sampler's output and the exact PF-ODE solution (a float64
RK4 reference with 2048 steps in ln σ, converged to 1e-10), for the same 512 starting points x(σ_max) = σ_max·z.

Columns: the original VP sampler (Euler on the VP ODE in t, with s(t) and σ(t) of VP, VP time steps;
``sample_ode``), Heun on the VP ODE with EDM's t_i, and Euler / Heun in EDM's σ-space (σ(t) = t, s = 1;
``sample_euler`` / ``sample_heun``) on the VP, VE and EDM (ρ = 7) grids. Every grid spans σ ∈ [0.002, 80] (VP's β refitted to this range,
as EDM's ``ablation_sampler`` does). A second table checks the observed orders on the Gaussian ODE,
whose flow is known in closed form (docs/reference.md §3).
"""

from __future__ import annotations

import math

import numpy as np

from jaxgen.tables import Table, three_columns

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
W = np.array([0.25, 0.5, 0.25])
MU = np.array([-0.7, 0.1, 0.6])
S = np.array([0.05, 0.15, 0.1])
NFES = (16, 32, 64, 128, 256)


def _mixture_D_np(x, sigma):
  v = S ** 2 + sigma ** 2
  logw = np.log(W) - 0.5 * (x[:, None] - MU) ** 2 / v - 0.5 * np.log(v)
  w = np.exp(logw - logw.max(1, keepdims=True))
  w /= w.sum(1, keepdims=True)
  return (w * (MU + S ** 2 / v * (x[:, None] - MU))).sum(1)


def pf_ode_rk4(denoise_np, x0, sigma_from: float, sigma_to: float, steps: int):
  """The PF-ODE dx/dσ = (x − D)/σ from σ_from to σ_to by float64 RK4 in u = ln σ (dx/du = x − D(x; e^u)):
  the exact reference of the solver tables (``denoise_np(x, σ)`` a float64 numpy denoiser)."""
  u = np.linspace(math.log(sigma_from), math.log(sigma_to), steps + 1)
  f = lambda x, uu: x - denoise_np(x, math.exp(uu))
  x = np.asarray(x0, np.float64)
  for a, b in zip(u[:-1], u[1:]):
    h = b - a
    k1 = f(x, a)
    k2 = f(x + 0.5 * h * k1, a + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, a + 0.5 * h)
    k4 = f(x + h * k3, b)
    x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
  return x


def _mixture_D(x, sigma):
  import jax
  import jax.numpy as jnp
  mu, s2, w = (jnp.asarray(a, jnp.float32) for a in (MU, S ** 2, W))
  v = s2 + sigma[:, None, None] ** 2                     # [B, 1, K]
  xe = x[..., None]                                      # [B, 1, 1]
  logits = jnp.log(w) - 0.5 * (xe - mu) ** 2 / v - 0.5 * jnp.log(v)
  post = jax.nn.softmax(logits, axis=-1)
  return jnp.sum(post * (mu + s2 / v * (xe - mu)), axis=-1)


def _run(sampler, grid, x0):
  import jax
  import jax.numpy as jnp
  out, nfe = jax.jit(lambda g, x: sampler(_mixture_D, x, g, return_nfe=True))(jnp.asarray(grid), x0)
  return np.asarray(out, np.float64)[:, 0], int(nfe)


def _vp_ode(solver, sigmas, x0, sched):
  """EDM's general sampler on the VP ODE (x_t = s(t)·x̃, σ(t), s(t) of VP) over the σ grid ``sigmas``,
  integrated in VP's time t = σ⁻¹(σ); the result is in σ-space (x_t/s(t_N))."""
  import jax
  from jaxgen import diffusion as dif
  fn = jax.jit(lambda g, x: dif.sample_ode(_mixture_D, x, g, schedule=sched, solver=solver, return_nfe=True))
  out, nfe = fn(sigmas, x0 / SIGMA_MAX * sigmas[0])      # x = latents·σ_0
  return np.asarray(out, np.float64)[:, 0], int(nfe)


def _rms(a, b):
  return float(np.sqrt(np.mean((a - b) ** 2)))


def fig2_table() -> Table:
  import jax
  import jax.numpy as jnp
  from jaxgen import diffusion as dif
  z = np.random.RandomState(0).randn(512)
  x0 = jnp.asarray(SIGMA_MAX * z, jnp.float32)[:, None]
  ref = pf_ode_rk4(_mixture_D_np, np.asarray(x0, np.float64)[:, 0], SIGMA_MAX, SIGMA_MIN, 2048)
  vp = dif.VPSchedule.fit(SIGMA_MIN, SIGMA_MAX)
  vp_t = lambda n: vp.sigma_steps(n + 1)[:-1]           # VP's t_i: N steps from t = 1 to ε_s (σ_max → σ_min)
  edm = lambda n: dif.karras_sigmas(n + 1, SIGMA_MIN, SIGMA_MAX)[:-1]
  vps = lambda n: dif.vp_sigmas(n + 1, SIGMA_MIN, SIGMA_MAX)[:-1]
  ves = lambda n: dif.ve_sigmas(n + 1, SIGMA_MIN, SIGMA_MAX)[:-1]
  runs = [lambda nfe: _vp_ode("euler", vp_t(nfe), x0, vp),
          lambda nfe: _vp_ode("heun", edm(nfe // 2), x0, vp),
          lambda nfe: _run(dif.sample_euler, vps(nfe), x0),
          lambda nfe: _run(dif.sample_euler, edm(nfe), x0),
          lambda nfe: _run(dif.sample_heun, vps(nfe // 2), x0),
          lambda nfe: _run(dif.sample_heun, ves(nfe // 2), x0),
          lambda nfe: _run(dif.sample_heun, edm(nfe // 2), x0)]
  rows = []
  for nfe in NFES:
    row = [nfe]
    for run in runs:
      out, got = run(nfe)
      assert got == nfe, (got, nfe)
      row.append(_rms(out, ref))
    rows.append(row)
  return Table(
      title="EDM Fig. 2 shape: RMS error at σ_min = 0.002 vs NFE, ideal denoiser of a 1-D Gaussian mixture",
      columns=["NFE", "VP-ODE Euler VP t_i (orig.)", "VP-ODE Heun EDM t_i", "Euler VP t_i", "Euler EDM t_i",
               "Heun VP t_i", "Heun VE t_i", "Heun EDM t_i"],
      rows=rows,
      source="Karras et al. 2022, Fig. 2 / §3 (qualitative: Heun + EDM t_i needs the fewest NFE); "
             "mixture w=(.25,.5,.25), μ=(−.7,.1,.6), s=(.05,.15,.1); reference: float64 RK4, 2048 steps in ln σ",
      notes=["Columns 2-3: EDM's general sampler on the VP ODE (σ(t), s(t) of VP); the rest in σ-space "
             "(σ(t) = t, s = 1). Heun: N = NFE/2 steps, a correction on every step (grid ends at σ_min).",
             "RMS is dominated by the few trajectories near a mode boundary. On this 1-D mixture the solver and the "
             "grid matter more than the coordinates: Heun with EDM t_i is best from NFE 64 on in both; Euler is "
             "better on the VP ODE than in σ-space on the same σ points (EDM's σ(t) = t gain, seen in FID on "
             "images, does not show in this metric).",
             "Samplers run in float32: errors below ~1e-6 are at the float32 floor."])


def order_table() -> Table:
  """Observed global order on the Gaussian ODE (data N(0, s²)), ρ = 7 grid 80 → 0.002, N = 32 → 64 → 128."""
  import jax
  import jax.numpy as jnp
  from jaxgen import diffusion as dif
  rows = []
  for s in (0.1, 0.5, 1.0):
    D = lambda x, sigma, s=s: s * s / (s * s + sigma[:, None] ** 2) * x
    x0 = jnp.asarray(SIGMA_MAX * np.random.RandomState(1).randn(256, 1), jnp.float32)
    exact = np.asarray(x0, np.float64)[:, 0] * math.sqrt((s * s + SIGMA_MIN ** 2) / (s * s + SIGMA_MAX ** 2))
    for name, solver, paper in (("Euler", dif.sample_euler, "0.98–1.0"), ("Heun", dif.sample_heun, "2.05–2.13")):
      err = []
      for n in (32, 64, 128):
        g = dif.karras_sigmas(n + 1, SIGMA_MIN, SIGMA_MAX)[:-1]
        out = jax.jit(lambda g, x: solver(D, x, g))(g, x0)
        err.append(_rms(np.asarray(out, np.float64)[:, 0], exact))
      rows.append([f"{name}, s={s}", paper, math.log2(err[1] / err[2]), math.log2(err[0] / err[1]), err[2]])
  return Table(
      title="Observed order on the Gaussian PF-ODE (error at σ_min, ρ = 7 grid)",
      columns=["solver, data std", "reference slope", "slope N 64→128", "slope N 32→64", "error N=128"],
      rows=rows,
      source="docs/reference.md §3 (float64 study: Euler 0.98–1.0, Heun 2.05–2.13 over N = 16…128)")


def edm_table2(results: str | None = None) -> Table:
  """EDM Table 2 (config F): the paper's FID, the released networks converted, a jaxgen-trained network."""
  return three_columns(
      "edm_table2", "EDM Table 2 (config F): FID, 50k samples, minimum over 3 seed sets",
      "Karras et al. 2022 Table 2; measured by `python -m jaxgen.eval.reproduce edm_table2 --row ROW` "
      "(docs/reproduce.md)", results,
      notes=["Sampler per row (EDM generate.py): Heun, ρ = 7, N = 18 (NFE 35) at 32², N = 40 (NFE 79) at 64²; "
             "ImageNet-64: EDM's stochastic sampler, N = 256, S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003 "
             "(NFE 511). FID against the training set's statistics (CIFAR-10: train split)."])


def score_sde_nll(results: str | None = None) -> Table:
  """score_sde's bits/dim on the CIFAR-10 test split: paper, converted checkpoint, jaxgen-trained."""
  return three_columns(
      "score_sde_nll", "score SDE: bits/dim on the CIFAR-10 test split (PF-ODE likelihood)",
      "Song et al. 2021; measured by `python -m jaxgen.eval.reproduce score_sde_nll` (docs/reproduce.md)",
      results,
      notes=["Uniform dequantization, Rademacher trace probes, RK45 rtol = atol = 1e-5 from t = 1e-5, the test "
             "split passed 5 times (score_sde run_lib.evaluate); bpd = −log p/(D ln 2) + 7 on [−1, 1] data "
             "(docs/reference.md §2)."])


def tables(results: str | None = None) -> list[Table]:
  return [fig2_table(), order_table(), edm_table2(results), score_sde_nll(results)]
