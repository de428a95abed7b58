"""Every sampler against NFE on the exact denoiser of a 2-D Gaussian mixture (EDM Fig. 2, DPM-Solver++ and
UniPC's NFE plots, with the network replaced by the ideal denoiser so only the solver's error is left).

    python -m jaxgen.tables samplers                 # the tables
    python -m jaxgen.tables samplers --out DIR       # and DIR/samplers_nfe.png (log-log)
    python -m jaxgen.tables.samplers --out DIR       # the same, this module alone
    python -m jaxgen.tables samplers --workdir RUN   # a trained diffusion run's network instead (below)

The samplers are discovered, not listed: every callable named ``sample_*`` in ``jaxgen.diffusion`` and in
the modules ``jaxgen.diffusion.samplers_k``, ``samplers_sde``, ``samplers_adaptive``, ``samplers_multistep``
and ``samplers_ddpm`` (a module that does not import is skipped with a note). Each is called with the one
signature ``fn(D, latents·σ₀, sigmas, key, indices=…, return_nfe=True)`` on the EDM grid
``karras_sigmas(N, 0.002, 80)`` (ρ = 7, ending in 0). Its NFE formula NFE = a·N + b is measured (N = 5 and
10), and N is the largest step count with NFE ≤ the target (10, 20, 50). A sampler whose output does not
depend on the key is deterministic and is scored by the RMS distance of its samples to the exact PF-ODE
solution from the same starting points (float64 RK4 with 4096 steps in ln σ down to σ = 1e-4, then D: the
flow's σ = 0 limit to ~1e-9); a stochastic one by the sliced Wasserstein-1 distance (64 directions) of its
samples to as many exact draws of the mixture. A sampler whose NFE does not depend on N (adaptive step
size) is run once with its defaults and listed with its own NFE. Mixture: 4 isotropic components,
weights (.3, .3, .2, .2), means (±1, ±.6)-ish, stds .2–.35 (``MIXTURE``); docs/reference.md §3 for D.

Checkpoint mode (``tables(workdir=RUN)``, ``--workdir RUN`` or $JAXGEN_TABLES_WORKDIR): the denoiser is a
trained diffusion run's network, D = task.denoiser(ema_params, model_state) of the latest checkpoint of RUN
(restored read-only by ``jaxgen.train``'s eval path; RUN/config.json gives the task), the grid is
``karras_sigmas(N, task.sigma_min, task.sigma_max, task.rho)``, the starting points are ``batch`` (64)
latents of the data shape (latent i from fold_in(key(seed), i)), and the reference is ``sample_heun`` at
N = 256 (its own error is reported: the distance to Heun at N = 512). Only deterministic samplers are
scored (RMS distance to the reference); stochastic ones are left out with a note, since the network's
exact distribution is unknown.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
import sys
import time

import numpy as np

from jaxgen.tables import Table, three_columns
from jaxgen.tables.diffusion import pf_ode_rk4

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
TARGETS = (10, 20, 50)
EXTRA_MODULES = ("samplers_k", "samplers_sde", "samplers_adaptive", "samplers_multistep", "samplers_ddpm")
# sampler -> (options it needs to run on a σ grid) or a reason it is left out of the table.
OPTIONS = {"sample_ode": lambda: {"schedule": _edm_schedule()}}
LEFT_OUT = {"sample_annealed_langevin": "NCSN's sampler: n_steps_each Langevin updates per level of its "
                                        "ladder, not a solver of the σ grid",
            "sample_reverse_sde": "takes an SDE and a score function, not a denoiser (sde.py)"}


@dataclasses.dataclass(frozen=True)
class Mixture2D:
  weights: tuple = (0.3, 0.3, 0.2, 0.2)
  means: tuple = ((-1.0, -0.6), (1.0, 0.6), (-0.8, 1.0), (0.9, -1.1))
  stds: tuple = (0.25, 0.2, 0.35, 0.3)

  def arrays(self):
    return (np.asarray(self.weights, np.float64), np.asarray(self.means, np.float64),
            np.asarray(self.stds, np.float64))

  def denoise_np(self, x, sigma):
    """D(x; σ) = Σ_k w_k(x)[μ_k + s_k²/(s_k² + σ²)(x − μ_k)], float64, x [B, 2], σ scalar."""
    w, mu, s = self.arrays()
    v = s ** 2 + sigma ** 2                                                   # [K]
    r = x[:, None, :] - mu[None]                                              # [B, K, 2]
    logp = np.log(w) - 0.5 * np.sum(r ** 2, -1) / v - np.log(v)               # 2-D: log det = 2·½ log v
    post = np.exp(logp - logp.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    return np.einsum("bk,bkd->bd", post, mu[None] + (s ** 2 / v)[None, :, None] * r)

  def denoiser(self):
    import jax
    import jax.numpy as jnp
    w, mu, s = (jnp.asarray(a, jnp.float32) for a in self.arrays())

    def d(x, sigma):
      xf = x.astype(jnp.float32)
      v = jnp.square(s)[None] + jnp.square(jnp.asarray(sigma, jnp.float32))[:, None]   # [B, K]
      r = xf[:, None, :] - mu[None]
      logp = jnp.log(w)[None] - 0.5 * jnp.sum(r * r, -1) / v - jnp.log(v)
      post = jax.nn.softmax(logp, axis=-1)
      comp = mu[None] + (jnp.square(s)[None] / v)[..., None] * r
      return jnp.einsum("bk,bkd->bd", post, comp).astype(x.dtype)

    return d

  def sample_np(self, rng, n):
    w, mu, s = self.arrays()
    k = rng.choice(len(w), size=n, p=w)
    return mu[k] + s[k, None] * rng.standard_normal((n, 2))


MIXTURE = Mixture2D()


def _edm_schedule():
  from jaxgen import diffusion as dif
  return dif.EDMSchedule(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)


def exact_flow(mix: Mixture2D, x_start, steps: int = 4096, sigma_end: float = 1e-4):
  """The PF-ODE's σ = 0 limit from x(σ_max) = x_start: float64 RK4 on dx/du = x − D(x; e^u) from ln σ_max
  to ln σ_end, then D(x; σ_end) (the flow map to σ = 0 up to O(σ_end²/s²))."""
  x = pf_ode_rk4(mix.denoise_np, x_start, SIGMA_MAX, sigma_end, steps)
  return mix.denoise_np(x, sigma_end)


def sliced_w1(a, b, num_dirs: int = 64, seed: int = 0):
  """Sliced Wasserstein-1 between two equal-size point sets [n, d]: mean over random unit directions of
  the 1-D W1 of the projections (mean |sorted difference|)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  dirs = np.random.RandomState(seed).randn(num_dirs, a.shape[1])
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  pa, pb = np.sort(a @ dirs.T, axis=0), np.sort(b @ dirs.T, axis=0)
  return float(np.mean(np.abs(pa - pb)))


def discover(names=None):
  """[(name, module, fn)] of every ``sample_*`` callable (first module wins for an object exported twice),
  and notes on modules that fail to import."""
  from jaxgen import diffusion as dfn
  mods, notes = [("jaxgen.diffusion", dfn)], []
  for m in EXTRA_MODULES:
    try:
      mods.append((f"jaxgen.diffusion.{m}", importlib.import_module(f"jaxgen.diffusion.{m}")))
    except Exception as e:  # noqa: BLE001 (another helper's module may be missing or broken)
      first = str(e).splitlines()[0] if str(e) else ""
      notes.append(f"jaxgen.diffusion.{m} skipped: {type(e).__name__}: {first}")
  seen, found = set(), []
  for mod_name, mod in mods:
    for name in sorted(dir(mod)):
      fn = getattr(mod, name)
      if not name.startswith("sample_") or not callable(fn) or id(fn) in seen:
        continue
      if names is not None and name not in names:
        continue
      seen.add(id(fn))
      found.append((name, mod_name, fn))
  return found, notes


@dataclasses.dataclass
class Result:
  name: str
  module: str
  kind: str = ""                 # 'ODE' (deterministic) | 'SDE' (stochastic) | 'adaptive'
  formula: str = ""
  runs: dict = dataclasses.field(default_factory=dict)   # target -> (N, nfe, error)
  note: str = ""
  seconds: float = 0.0


@dataclasses.dataclass
class Problem:
  """What the samplers are measured on: the denoiser, the unit-variance starting latents ``z`` (the state
  starts at z·σ₀), the deterministic reference from the same latents, and (or None) exact samples for the
  stochastic samplers."""
  D: object
  z: np.ndarray
  ref: np.ndarray
  exact: np.ndarray | None = None
  floors: dict = dataclasses.field(default_factory=dict)
  sigma_min: float = SIGMA_MIN
  sigma_max: float = SIGMA_MAX
  rho: float = 7.0
  options: dict = dataclasses.field(default_factory=dict)   # sampler name -> extra keywords
  source: str = ""
  ref_error: float | None = None     # checkpoint mode: |Heun(N_ref) − Heun(2·N_ref)| (RMS)


def mixture_problem(mix: Mixture2D = MIXTURE, batch: int = 1024, seed: int = 0) -> Problem:
  rng = np.random.RandomState(seed)
  z = rng.standard_normal((batch, 2))
  ref_ode = exact_flow(mix, SIGMA_MAX * z)
  exact = mix.sample_np(rng, batch)
  floors = {"ODE": 0.0, "SDE": sliced_w1(exact, mix.sample_np(rng, batch))}
  return Problem(D=mix.denoiser(), z=z, ref=ref_ode, exact=exact, floors=floors,
                 source=f"exact denoiser of a 2-D, 4-component Gaussian mixture; EDM grid ρ = 7, "
                        f"σ {SIGMA_MAX:g} → {SIGMA_MIN:g} → 0; {batch} samples")


def _rms(a, b) -> float:
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  return float(np.sqrt(np.mean(np.sum(d.reshape(len(d), -1) ** 2, -1))))


REF_STEPS = 256


def checkpoint_problem(workdir: str, batch: int = 64, seed: int = 0, ref_steps: int = REF_STEPS) -> Problem:
  """The network of the latest checkpoint of the diffusion run in ``workdir`` (EMA params, read-only),
  ``batch`` latents of the data shape, and the reference Heun(``ref_steps``) (checked against Heun at
  2·ref_steps: ``ref_error``)."""
  import json
  import jax
  import jax.numpy as jnp
  import ml_collections
  from jaxgen import diffusion as dif
  from jaxgen import train

  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    config = ml_collections.ConfigDict(json.load(f))
  run = train._prepare(config, workdir, "eval")   # builds the task (jaxgen.tasks.get), checks the workdir
  task = run.task
  if not hasattr(task, "denoiser"):
    raise ValueError(f"{workdir}: task {config.task.name!r} has no denoiser; the samplers table needs a "
                     "diffusion run.")
  step, state = train._restore_for_inference(run)
  D = task.denoiser(state.ema_params, state.model_state)
  shape = tuple(task._sample_shape(state))
  key = jax.random.key(seed)
  z = np.asarray(jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32))(
      jnp.arange(batch, dtype=jnp.int32)), np.float64)
  cfg = task.cfg
  smin, smax, rho = float(cfg.sigma_min), float(cfg.sigma_max), float(cfg.rho)
  idx = jnp.arange(batch, dtype=jnp.int32)

  def heun(n):
    grid = dif.karras_sigmas(n, smin, smax, rho)
    x = jnp.asarray(z * float(grid[0]), jnp.float32)
    return np.asarray(jax.jit(lambda x: dif.sample_heun(D, x, grid, None, indices=idx))(x), np.float64)

  ref = heun(ref_steps)
  ref_error = _rms(ref, heun(2 * ref_steps))
  return Problem(D=D, z=z, ref=ref, exact=None, floors={"ODE": ref_error}, sigma_min=smin, sigma_max=smax,
                 rho=rho, options={"sample_ode": {"schedule": task.schedule}}, ref_error=ref_error,
                 source=f"network of {os.path.abspath(workdir)} (step {step}, EMA params, task "
                        f"{config.task.name}, precond {cfg.precond}); Karras grid ρ = {rho:g}, σ {smax:g} → "
                        f"{smin:g} → 0; {batch} latents of shape {shape}; reference: sample_heun, "
                        f"N = {ref_steps}")


def _nfe_value(nfe):
  return float(np.mean(np.asarray(nfe)))


def evaluate(targets=TARGETS, batch: int = 1024, names=None, mix: Mixture2D = MIXTURE, seed: int = 0,
             problem: Problem | None = None):
  """Runs every discovered sampler at each target NFE on ``problem`` (default: the mixture's); returns
  ([Result], module notes, floors)."""
  import jax
  import jax.numpy as jnp
  from jaxgen import diffusion as dif

  found, notes = discover(names)
  p = problem if problem is not None else mixture_problem(mix, batch, seed)
  D, z, ref_ode, exact, floors = p.D, p.z, p.ref, p.exact, p.floors
  batch = len(z)
  idx = jnp.arange(batch, dtype=jnp.int32)
  keys = jax.random.key(seed + 1), jax.random.key(seed + 2)
  rms = lambda out: _rms(out, ref_ode)
  results = []
  for name, mod_name, fn in found:
    t0 = time.perf_counter()
    res = Result(name, mod_name)
    results.append(res)
    if name in LEFT_OUT:
      res.note = LEFT_OUT[name]
      continue
    opts = p.options[name] if name in p.options else OPTIONS[name]() if name in OPTIONS else {}

    def run(n, fn=fn, opts=opts):
      grid = dif.karras_sigmas(n, p.sigma_min, p.sigma_max, p.rho)   # a program constant
      prog = jax.jit(lambda x, k: fn(D, x, grid, k, indices=idx, return_nfe=True, **opts))
      x = jnp.asarray(z * float(grid[0]), jnp.float32)
      return lambda key: (lambda o: (np.asarray(o[0], np.float64), _nfe_value(o[1])))(prog(x, key))

    try:
      prog5 = run(5)   # probes at N = 5 and 10: the 10-NFE runs of 2N − 1 and N samplers, reused below
      (out5, n5), (out5b, _) = prog5(keys[0]), prog5(keys[1])
      out10, n10 = run(10)(keys[0])
    except Exception as e:  # noqa: BLE001 (a sampler that does not follow the contract is reported)
      res.note = f"not run: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
      continue
    deterministic = bool(np.array_equal(out5, out5b))
    if not deterministic and exact is None:
      res.note = "stochastic: left out (no exact distribution of the network is known to score it against)"
      continue
    score = rms if deterministic else (lambda out: sliced_w1(out, exact))
    res.kind = "ODE" if deterministic else "SDE"
    a = (n10 - n5) / 5.0
    b = n5 - 5 * a
    if a <= 0:  # adaptive: NFE set by its tolerance, not by N
      res.kind += " adaptive"
      res.formula = "adaptive"
      res.runs["adaptive"] = (10, n10, score(out10))
    else:
      res.formula = f"{a:g}N{b:+g}" if b else f"{a:g}N"
      for t in targets:
        n = int(math.floor((t - b) / a + 1e-9))
        if n < 1:
          continue
        try:
          out, nfe = (out5, n5) if n == 5 else (out10, n10) if n == 10 else run(n)(keys[0])
        except Exception as e:  # noqa: BLE001
          res.note = f"N={n}: {type(e).__name__}"
          continue
        res.runs[t] = (n, nfe, score(out))
    res.seconds = time.perf_counter() - t0
  return results, notes, floors


def _winners(results, kind, targets):
  line = []
  for t in targets:
    cand = [(r.runs[t][2], r.name) for r in results if r.kind == kind and t in r.runs]
    if cand:
      err, name = min(cand)
      line.append(f"{t} NFE: {name} ({err:.3g})")
  return "; ".join(line)


def _plot(results, targets, path, floor=0.0, what="2-D mixture, exact D"):
  import matplotlib
  matplotlib.use("Agg", force=False)
  from matplotlib.figure import Figure
  fig = Figure(figsize=(12, 5))
  for ax, kind, ylabel in ((fig.add_subplot(1, 2, 1), "ODE", "RMS error vs exact PF-ODE solution"),
                           (fig.add_subplot(1, 2, 2), "SDE", "sliced W1 to exact samples")):
    mine = [r for r in results if r.kind.startswith(kind)]
    for i, r in enumerate(mine):
      pts = sorted((v[1], v[2]) for v in r.runs.values() if v[2] > 0)
      if pts:
        style = "osD^v"[i // 10 % 5] + ("-" if i < 10 else "--")
        ax.loglog(*zip(*pts), style if len(pts) > 1 else style[0], label=r.name.removeprefix("sample_"))
    if kind == "SDE" and floor:
      ax.axhline(floor, color="gray", lw=0.8, ls=":", label="exact vs exact")
    ax.set_xlabel("NFE")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{'deterministic' if kind == 'ODE' else 'stochastic'} samplers, {what}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def ddim_table(results: str | None = None) -> Table:
  """DDIM Table 1 (CIFAR-10): FID against the number of steps S for η = 0 and 1 — the paper's, the DDPM
  release converted (jaxgen.convert.ddpm), and a jaxgen-trained DDPM, from the results file."""
  return three_columns(
      "ddim_table", "DDIM Table 1 (CIFAR-10): FID of 50k samples vs steps S, η = 0 (DDIM) and η = 1",
      "Song, Meng & Ermon 2021 Table 1; measured by `python -m jaxgen.eval.reproduce ddim_table` "
      "(docs/reproduce.md)", results,
      notes=["τ: DDIM's quadratic sub-sequence for CIFAR-10, ⌊linspace(0, √(0.8T), S)²⌋ (task.sigma_grid "
             "'ddim_quadratic'); NFE = S; one 50k seed set per cell (experiments/ddpm/cifar10_ddim.py)."])


def tables(out: str | None = None, targets=TARGETS, batch: int | None = None, names=None,
           workdir: str | None = None, samplers=None, results: str | None = None) -> list[Table]:
  """The deterministic and the stochastic table (and, with ``out`` or $JAXGEN_TABLES_OUT, the PNG), then
  DDIM's step table (three columns, ``ddim_table``; ``results``: the results file to read).

  With ``workdir`` (or $JAXGEN_TABLES_WORKDIR) the checkpoint mode: the deterministic table only, on the
  network of that diffusion run (module docstring); ``batch`` defaults to 1024 on the mixture, 64 there.
  ``samplers`` (or ``names``): only these ``sample_*`` names."""
  results_file = results      # (``results`` below is the samplers' evaluation)
  out = out or os.environ.get("JAXGEN_TABLES_OUT") or None
  workdir = workdir or os.environ.get("JAXGEN_TABLES_WORKDIR") or None
  names = names if names is not None else samplers
  if workdir:
    problem = checkpoint_problem(workdir, batch=batch or 64)
  else:
    problem = mixture_problem(MIXTURE, batch or 1024)
  batch = len(problem.z)
  results, notes, floors = evaluate(targets, batch, names, problem=problem)
  cols = ["sampler", "module", "NFE(N)"] + [f"NFE≤{t}: N, NFE, error" for t in targets]
  made = []
  kinds = (("ODE", "RMS distance to the exact PF-ODE solution (σ = 0)"),
           ("SDE", "sliced W1 (64 directions) to exact mixture samples"))
  if workdir:
    kinds = (("ODE", f"RMS distance to Heun at N = {REF_STEPS} (the network's PF-ODE solution)"),)
  for kind, metric in kinds:
    rows = []
    for r in results:
      if r.kind.split()[0:1] != [kind]:
        continue
      cells = []
      for t in targets:
        v = r.runs.get(t) or (r.runs.get("adaptive") if t == targets[0] else None)
        cells.append(f"{v[0]}, {v[1]:.4g}, {v[2]:.3e}" if v else "—")
      rows.append([r.name, r.module.removeprefix("jaxgen.diffusion").lstrip(".") or "diffusion", r.formula]
                  + cells)
    table_notes = [f"winner at {_winners(results, kind, targets)}"]
    if kind == "SDE":
      table_notes.append(f"floor: sliced W1 between two exact draws of {batch} points = {floors['SDE']:.3e} "
                         "(differences below about a third of it are sampling noise)")
    elif workdir:
      table_notes.append(f"floor: the reference's own error, RMS |Heun(N = {REF_STEPS}) − Heun(N = "
                         f"{2 * REF_STEPS})| = {problem.ref_error:.3e}; error is the RMS over samples of the "
                         "Euclidean distance over all data dimensions")
      table_notes.append("stochastic samplers are left out: the network's exact distribution is not known")
    else:
      table_notes.append("floor: the last step D(x; 0.002) vs the σ = 0 limit, O(σ_min²/s²)·|x − μ| ≈ 1e-5; "
                         "float32 state ≈ 1e-6")
    table_notes.append("adaptive samplers (NFE set by their tolerance) are shown once, in the first column, "
                       "at their own NFE")
    label = "deterministic" if kind == "ODE" else "stochastic"
    title = f"Samplers vs NFE ({label}): {metric}"
    if workdir:
      title = f"Samplers vs NFE on a trained network ({label}): {metric}"
    made.append(Table(title=title, columns=cols, rows=rows, notes=table_notes, source=problem.source))
  left = [f"{r.name} ({r.module}): {r.note}" for r in results if r.note]
  if made:
    made[-1].notes.extend([f"left out / partial: {n}" for n in left] + notes)
    win = ("winners (deterministic, error to the " + ("reference): " if workdir else "exact ODE solution): ")
           + _winners(results, "ODE", targets))
    if not workdir:
      win += " | (stochastic, sliced W1): " + _winners(results, "SDE", targets)
    made[-1].notes.append(win)
  if out:
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "samplers_nfe_checkpoint.png" if workdir else "samplers_nfe.png")
    _plot(results, targets, path, floors.get('SDE', 0.0),
          what="trained network vs Heun N = 256" if workdir else "2-D mixture, exact D")
    made[-1].notes.append(f"plot: {path}")
  if not workdir:
    made.append(ddim_table(results_file))
  return made


def _option(argv, flag):
  for i, a in enumerate(argv):
    if a == flag:
      if i + 1 >= len(argv):
        sys.exit(f"{flag} needs a directory")
      return argv[i + 1]
    if a.startswith(flag + "="):
      return a.partition("=")[2]
  return None


def main(argv):
  for t in tables(out=_option(argv, "--out"), workdir=_option(argv, "--workdir")):
    print(t.render())
    print()


if __name__ == "__main__":
  main(sys.argv[1:])
