"""Evaluation runs of the papers' tables, on converted published weights or on a network jaxgen trained.

    python -m jaxgen.eval.reproduce edm_table2 --row cifar10_uncond_vp --weights edm_uncond_vp.npz \\
        --inception_weights inception_fid.npz --fid_ref fid_refs/cifar10_train.npz
    python -m jaxgen.eval.reproduce score_sde_nll --weights subvp_deep.npz --data_dir ~/tensorflow_datasets
    python -m jaxgen.eval.reproduce ddim_table --weights ddpm_cifar10.npz --eta 0 --steps 10,20,50,100,1000 \\
        --inception_weights inception_fid.npz --fid_ref fid_refs/cifar10_train.npz
    python -m jaxgen.eval.reproduce imagenet_top1 --weights mobilenet_v2.npz --data_dir ~/tensorflow_datasets
    python -m jaxgen.eval.reproduce init|show|merge ...           # the results file itself

The network comes from ``--weights FILE`` (an ``.npz`` of ``jaxgen.convert.*``: its ``meta`` names the registry
network, its overrides and, for diffusion, the preconditioning; the result goes to the row's ``converted``
column) or from ``--workdir RUN`` (the latest checkpoint of a jaxgen run, its EMA params, with the run's own
config; the ``trained`` column). Every command writes its number, with the command line, the date, the
hardware (``jax.devices()``), the jax version and the jaxgen commit, into ``--results FILE`` (default
``runs/reproduce/results.json``; never the committed ``results/converted.json``, see
``jaxgen.eval.results``), and prints it. docs/reproduce.md has each protocol and its sources.

- ``edm_table2``: EDM Table 2 (config F). FID of ``--num_samples`` (50,000) samples for each of the seed sets
  ``--seeds`` (0,1,2), the minimum reported (EDM's protocol), against the reference statistics ``--fid_ref``
  (``python -m jaxgen.eval.fid``; the CIFAR-10 *train* split for CIFAR-10). The sampler is the row's: Heun on
  EDM's ρ = 7 grid, N = 18 (NFE 35) for CIFAR-10, 40 (NFE 79) for FFHQ/AFHQv2, and EDM's stochastic sampler
  with N = 256, S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003 (NFE 511) for ImageNet-64, σ from
  max(0.002, σ_min of the network) to min(80, σ_max) as EDM's ``generate.py``.
- ``ddim_table``: DDIM Table 1 (CIFAR-10): FID of 50,000 DDIM samples per (η, S) on DDIM's quadratic τ,
  one seed set per cell.
- ``score_sde_nll``: bits/dim of the test split by score_sde's protocol (``jaxgen.eval.bpd.score_sde_nll``:
  uniformly dequantized, the PF-ODE from t = 1e-5 to 1 with score_sde's prior, Rademacher probes, RK45
  rtol = atol = 1e-5, the mean over ``--repeats`` (5) passes over the split, as ``run_lib.evaluate``).
- ``imagenet_top1``: top-1 (and top-5) accuracy on the validation split with torchvision's evaluation crop
  (resize to 256, central 224 crop, i.e. a central square of 0.875 of the short side resized to 224, with
  the row's filter), the converted network's own input normalization.

Samples for FID are written with ``jaxgen.sampling.write_samples`` (fixed-size chunk files under
``--samples_dir``, drawn over every device of the mesh; docs/sampling.md), so a killed run resumes where it
stopped when the same command is rerun, and FID is read back from the files
(``jaxgen.sampling.fid_of_directory``). A run that deviates from the row's protocol (another network
resolution, preconditioning or fewer samples, e.g. a smoke run) is recorded with the list of ``deviations``
and the tables mark it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import shlex
import sys
from typing import Any, Sequence

import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.eval import results as res

COMMANDS = ("edm_table2", "score_sde_nll", "ddim_table", "imagenet_top1")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_RESULTS = os.path.join("runs", "reproduce", "results.json")
DEFAULT_SAMPLES = os.path.join("runs", "reproduce", "samples")
EDM_SIGMA = (0.002, 80.0)          # generate.py's sigma_min / sigma_max before clamping to the network's


@dataclasses.dataclass
class InferenceState:
  """What the tasks' sample / eval functions read of a state: the (EMA) params and the model state."""
  params: Any
  ema_params: Any
  model_state: Any


@dataclasses.dataclass
class Network:
  task: Any
  state: Any
  config: Any
  mesh: Any
  column: str                   # 'converted' | 'trained'
  source: dict                  # weights / workdir and step, for the sample identity and the record
  meta: dict                    # the converter's meta ({} for a trained run)


# ------------------------------------------------------------------------------------------------
# Configs and networks.


def load_config(spec: str):
  """The config of an experiment file ``path.py[:variant]`` (a path relative to the repository root works
  from anywhere), unlocked so that a command can set its keys."""
  path, _, variant = spec.partition(":")
  for cand in (path, os.path.join(ROOT, path)):
    if os.path.isfile(cand):
      path = cand
      break
  else:
    raise ConfigError(f"--config {spec}: {path} is not a file: pass an experiment file path.py[:variant].")
  name = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
  mod_spec = importlib.util.spec_from_file_location(f"_jaxgen_experiment_{name}", path)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  config = mod.get_config(variant or None)
  config.unlock()
  return config


def _read_meta(weights: str) -> dict:
  if not weights or not os.path.isfile(weights):
    raise ConfigError(f"--weights {weights!r} is not a file: convert the published weights first (python -m "
                      "jaxgen.convert.edm|ddpm|score_sde|torchvision|efficientnet IN OUT) and pass OUT.")
  with np.load(weights, allow_pickle=False) as z:
    if "meta" not in z.files:
      raise ConfigError(f"--weights {weights} has no 'meta' entry (model name and overrides): convert it with "
                        "a jaxgen.convert command.")
    return json.loads(str(z["meta"]))


def _apply_meta(config, meta: dict, *, diffusion: bool) -> None:
  """model.name / model.overrides (and the diffusion preconditioning) of a converted file's ``meta``."""
  import ml_collections

  if "model" not in meta:
    raise ConfigError("the converted file's meta names no 'model': convert it again with a jaxgen.convert command.")
  config.model.name = meta["model"]
  config.model.overrides = ml_collections.ConfigDict(dict(meta.get("overrides") or {}))
  config.model.init_from = ""
  if diffusion:
    pre = meta.get("precond") or {}
    if pre.get("name"):
      config.task.precond = pre["name"]
    config.task.augment = None        # sampling uses zero augmentation labels; augment_dim comes from meta
    if int(dict(meta.get("overrides") or {}).get("label_dim", 0) or 0) > 0:
      config.task.class_conditional = True
      config.task.num_classes = int(meta["overrides"]["label_dim"])
    ov = dict(meta.get("overrides") or {})
    res_ = int(ov.get("img_resolution", 0) or ov.get("resolution", 0) or 0)
    if res_:
      config.data.resolution = res_


def _replicate(tree, mesh):
  import jax

  from jaxgen import sharding as shd
  rep = shd.replicated(mesh)
  return jax.tree_util.tree_map(lambda a: jax.device_put(a, rep), tree)


def converted_network(config, weights: str, meta: dict) -> Network:
  """The task of ``config`` with the converted ``weights`` as its (EMA) params and model state."""
  import jax

  from jaxgen import sharding as shd
  from jaxgen import tasks as tasks_lib
  from jaxgen import train
  from jaxgen.convert.edm import load_into

  task = tasks_lib.get(config)
  example = train.data_api(config).example_batch(config.data, 1)
  like = jax.eval_shape(lambda: dict(task.init_variables(jax.random.key(0), example)))
  host = load_into(weights, like)
  mesh = shd.make_mesh()
  params = _replicate(host.pop("params"), mesh)
  state = InferenceState(params=params, ema_params=params, model_state=_replicate(host, mesh))
  return Network(task=task, state=state, config=config, mesh=mesh, column="converted",
                 source={"weights": os.path.abspath(weights), "weights_sha256": res.sha256(weights)}, meta=meta)


def trained_network(workdir: str, edit=None) -> Network:
  """The latest checkpoint of the jaxgen run in ``workdir`` (its config.json; ``edit(config, {})`` may change
  the evaluation keys, e.g. the sampler), restored read-only."""
  import ml_collections

  from jaxgen import train
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"--workdir {workdir} has no config.json: pass the directory of a jaxgen run.")
  with open(path, encoding="utf-8") as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.evals = ml_collections.ConfigDict()
  if edit is not None:
    edit(config, {})
  run = train._prepare(config, workdir, "eval")   # (config.evals emptied: no evaluator files to check)
  step, state = train._restore_for_inference(run)
  return Network(task=run.task, state=state, config=config, mesh=run.mesh, column="trained",
                 source={"workdir": os.path.abspath(workdir), "step": int(step)}, meta={})


def _dtype(config, args) -> None:
  """Both columns compute in ``--dtype`` (float32 by default, as the papers evaluate), whatever dtype the run
  trained in (params are float32 either way)."""
  config.model.dtype = args.dtype


def _sample_batch(config, args) -> None:
  if getattr(args, "sample_batch_size", 0):
    config.task.sample_batch_size = int(args.sample_batch_size)


def _network(args, default_config: str, edit, *, diffusion: bool) -> Network:
  if bool(args.weights) == bool(args.workdir):
    raise ConfigError("pass exactly one of --weights FILE (converted published weights) and --workdir RUN "
                      "(a network jaxgen trained).")
  if args.workdir:
    return trained_network(args.workdir,
                           lambda c, m: (_sample_batch(c, args), _dtype(c, args), edit and edit(c, m)))
  meta = _read_meta(args.weights)
  config = load_config(args.config or default_config)
  import ml_collections
  config.evals = ml_collections.ConfigDict()
  config.model.dtype = args.dtype
  _apply_meta(config, meta, diffusion=diffusion)
  _sample_batch(config, args)
  if edit is not None:
    edit(config, meta)
  return converted_network(config, args.weights, meta)


# ------------------------------------------------------------------------------------------------
# Sampling and FID.


def net_sigma_range(precond: dict) -> tuple[float, float]:
  """(σ_min, σ_max) of an EDM preconditioner (EDM ``training/networks.py``): VP σ(ε_t) and σ(1); VE its
  constants; EDM (0, ∞); iDDPM the ends of its u grid."""
  name = precond.get("name", "edm")
  if name == "vp":
    bd, bm = float(precond.get("beta_d", 19.9)), float(precond.get("beta_min", 0.1))
    sig = lambda t: math.sqrt(math.expm1(0.5 * bd * t * t + bm * t))  # noqa: E731
    return sig(float(precond.get("epsilon_t", 1e-5))), sig(1.0)
  if name == "ve":
    return float(precond.get("sigma_min", 0.02)), float(precond.get("sigma_max", 100.0))
  if name == "iddpm":
    c1, c2, m = float(precond.get("C_1", 0.001)), float(precond.get("C_2", 0.008)), int(precond.get("M", 1000))
    abar = lambda j: math.sin(0.5 * math.pi * j / m / (c2 + 1)) ** 2  # noqa: E731
    u = [0.0] * (m + 1)
    for j in range(m, 0, -1):
      u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(abar(j - 1) / abar(j), c1) - 1)
    return u[m - 1], u[0]
  return float(precond.get("sigma_min", 0.0) or 0.0), float(precond.get("sigma_max", math.inf))


def _sample_fn(net: Network):
  return lambda key, n, start: net.task.sample(net.state, key, n, start)


def draw_and_score(net: Network, name: str, identity: dict, args, seed: int) -> dict:
  """Writes (or completes) the seed set ``seed`` of ``args.num_samples`` samples under
  ``args.samples_dir/name/seed<seed>`` and returns its FID/IS (``jaxgen.sampling.fid_of_directory``)."""
  import jax

  from jaxgen import sampling
  directory = os.path.join(args.samples_dir, name, f"seed{seed}")
  with sampling.over_mesh(net.mesh):
    info = sampling.write_samples(_sample_fn(net), directory, args.num_samples, jax.random.key(int(seed)),
                                  identity=identity, chunk_size=args.chunk_size, progress=not args.quiet)
  out = sampling.fid_of_directory(directory, args.inception_weights, args.fid_ref, batch_size=args.batch_size,
                                  progress=not args.quiet)
  out = {k: float(v) for k, v in out.items()}
  out.update(directory=info.directory, written_chunks=info.written, reused_chunks=info.skipped)
  return out


def _check_fid_files(args) -> None:
  import jax
  if jax.process_count() > 1:
    raise ConfigError(f"the FID commands run in one process (all of its devices; the sample chunks are written "
                      f"by process 0 and read back for FID): run them on one host, not {jax.process_count()}.")
  for flag, path in (("--inception_weights", args.inception_weights), ("--fid_ref", args.fid_ref)):
    if not path or not os.path.isfile(path):
      hint = ("python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth OUT.npz" if "incep" in flag
              else "python -m jaxgen.eval.fid --data cifar10 --split train --weights W.npz --out OUT.npz")
      raise ConfigError(f"{flag} {path!r} is not a file: make it with `{hint}` and pass OUT.")


def _identity(net: Network) -> dict:
  """What makes a sample set: the converted file's content (not its path) or the run and its step."""
  if net.column == "converted":
    return {"weights_sha256": net.source["weights_sha256"]}
  return {"workdir": net.source["workdir"], "step": net.source["step"]}


def _source_tag(net: Network) -> str:
  if net.column == "converted":
    return f"converted_{net.source['weights_sha256'][:12]}"
  run = hashlib.sha256(net.source["workdir"].encode()).hexdigest()[:12]   # stable across processes
  return f"trained_step{net.source['step']}_{run}"


# ------------------------------------------------------------------------------------------------
# The commands.


def edm_table2(args) -> tuple[str, str, float, dict]:
  row = res.row(f"edm_table2/{args.row}")
  spec = row.spec
  _check_fid_files(args)

  def edit(c, meta):
    lo, hi = net_sigma_range(dict(meta.get("precond") or {"name": str(c.task.get("precond", "edm"))}))
    c.task.sampler = spec["sampler"]
    c.task.num_steps = int(args.num_steps or spec["num_steps"])
    c.task.sampler_options = dict(spec["sampler_options"])
    c.task.sigma_grid = "karras"
    c.task.rho = 7.0
    c.task.sigma_min, c.task.sigma_max = max(EDM_SIGMA[0], lo), min(EDM_SIGMA[1], hi)

  net = _network(args, spec["config"], edit, diffusion=True)
  cfg = net.task.cfg
  deviations = _edm_deviations(net, spec, args)
  sampler = dict(sampler=cfg.sampler, num_steps=cfg.num_steps, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max,
                 rho=cfg.rho, options=dict(cfg.sampler_options), precond=cfg.precond,
                 class_conditional=cfg.class_conditional)
  identity = dict(row=row.id, sampler=sampler, dtype=str(net.config.model.dtype), **_identity(net))
  per_seed = {}
  for s in args.seeds:
    per_seed[s] = draw_and_score(net, f"{row.id.replace('/', '_')}_{_source_tag(net)}", identity, args, s)
    _say(args, f"{row.id} seed set {s}: FID {per_seed[s]['fid']:.4f} ({args.num_samples} samples)")
  fids = [per_seed[s]["fid"] for s in args.seeds]
  best = int(np.argmin(fids))
  details = dict(fid_per_seed=dict(zip(map(str, args.seeds), fids)), fid_mean=float(np.mean(fids)),
                 best_seed=int(args.seeds[best]), is_best=per_seed[args.seeds[best]].get("is"),
                 num_samples=args.num_samples, nfe=2 * cfg.num_steps - 1 if cfg.sampler in ("heun", "edm") else None,
                 sampler=sampler, fid_ref=os.path.abspath(args.fid_ref),
                 inception_weights=os.path.abspath(args.inception_weights),
                 samples=[per_seed[s]["directory"] for s in args.seeds], deviations=deviations)
  return row.id, net.column, float(min(fids)), dict(details, **_source_details(net))


def _edm_deviations(net: Network, spec: dict, args) -> list[str]:
  out = []
  cfg = net.task.cfg
  arch = str(net.config.model.name)
  want = {"ddpmpp": "ddpmpp", "ncsnpp": "ncsnpp", "adm": "adm"}[spec["arch"]]
  if not arch.startswith(want):
    out.append(f"network {arch} (the row is {spec['arch']})")
  if bool(cfg.class_conditional) != bool(spec["class_conditional"]):
    out.append(f"class_conditional={cfg.class_conditional} (the row: {spec['class_conditional']})")
  from jaxgen import train
  image = train.data_api(net.config).example_batch(net.config.data, 1).get("image")
  res_ = int(image.shape[1]) if image is not None else 0
  if res_ != spec["resolution"]:
    out.append(f"resolution {res_} (the row: {spec['resolution']})")
  if cfg.precond != "edm":
    out.append(f"preconditioning {cfg.precond!r} (config F: 'edm')")
  if cfg.num_steps != spec["num_steps"]:
    out.append(f"{cfg.num_steps} sampler steps (the row: {spec['num_steps']})")
  if args.num_samples != 50_000:
    out.append(f"{args.num_samples} samples per seed set (the protocol: 50,000)")
  if len(args.seeds) != 3:
    out.append(f"{len(args.seeds)} seed set(s) (the protocol: minimum over 3)")
  return out


def ddim_table(args) -> list[tuple[str, str, float, dict]]:
  _check_fid_files(args)
  out = []
  for eta in args.eta:
    for steps in args.steps:
      rid = f"ddim_table/eta{eta:g}_S{steps}"
      row = res.row(rid) if rid in res.BY_ID else None

      def edit(c, meta, eta=eta, steps=steps):
        c.task.sampler = "ddim"
        c.task.num_steps = int(steps)
        c.task.sampler_options = dict(eta=float(eta))
        c.task.sigma_grid = args.sigma_grid

      net = _network(args, "experiments/ddpm/cifar10_ddim.py", edit, diffusion=True)
      cfg = net.task.cfg
      sampler = dict(sampler="ddim", num_steps=cfg.num_steps, eta=float(eta), sigma_grid=cfg.sigma_grid,
                     precond=cfg.precond, ddpm_schedule=cfg.ddpm_schedule)
      identity = dict(row=rid, sampler=sampler, dtype=str(net.config.model.dtype), **_identity(net))
      deviations = []
      if row is None:
        deviations.append(f"(η, S) = ({eta:g}, {steps}) is not a cell of DDIM Table 1")
      if cfg.precond != "ddpm":
        deviations.append(f"preconditioning {cfg.precond!r} (DDIM samples a DDPM: 'ddpm')")
      if args.sigma_grid != "ddim_quadratic":
        deviations.append(f"τ {args.sigma_grid} (CIFAR-10 in Table 1: ddim_quadratic)")
      if args.num_samples != 50_000:
        deviations.append(f"{args.num_samples} samples (the protocol: 50,000)")
      per_seed = {s: draw_and_score(net, f"{rid.replace('/', '_')}_{_source_tag(net)}", identity, args, s)
                  for s in args.seeds}
      fids = [per_seed[s]["fid"] for s in args.seeds]
      _say(args, f"{rid}: FID {min(fids):.4f} ({args.num_samples} samples)")
      details = dict(fid_per_seed=dict(zip(map(str, args.seeds), fids)), num_samples=args.num_samples,
                     sampler=sampler, nfe=int(steps), fid_ref=os.path.abspath(args.fid_ref),
                     inception_weights=os.path.abspath(args.inception_weights),
                     samples=[per_seed[s]["directory"] for s in args.seeds], deviations=deviations)
      if row is not None:
        out.append((rid, net.column, float(min(fids)), dict(details, **_source_details(net))))
      else:
        _say(args, f"{rid} is not a row of the results file: printed, not recorded.")
  return out


def score_sde_of(net: Network, t_eps: float) -> dict | None:
  """score_sde's SDE of the network (``jaxgen.eval.bpd.score_sde_terms`` format): the converter's
  ``meta['sde']`` (jaxgen.convert.score_sde), else the one a jaxgen run's preconditioning trains (vp, subvp:
  β from the schedule; ve: σ range in score_sde's [0, 1] units, half of jaxgen's); None for other schedules."""
  if net.meta.get("sde"):
    return dict(net.meta["sde"])
  pre, sch = net.task.cfg.precond, net.task.schedule
  if pre in ("vp", "subvp"):
    b0, bd = float(sch.beta_min), float(sch.beta_d)
    return {"name": "vpsde" if pre == "vp" else "subvpsde", "beta_min": b0, "beta_max": b0 + bd, "T": 1.0,
            "eps": float(t_eps)}
  if pre == "ve":
    return {"name": "vesde", "sigma_min": float(sch.sigma_min) / 2, "sigma_max": float(sch.sigma_max) / 2,
            "T": 1.0, "eps": float(t_eps)}
  return None


def score_sde_nll(args) -> tuple[str, str, float, dict]:
  row = res.row(f"score_sde_nll/{args.row}")

  def edit(c, meta):
    c.data.eval_split = args.split
    if args.data_dir:
      c.data.data_dir = args.data_dir
    if args.data:
      c.data.name = args.data

  net = _network(args, row.spec["config"], edit, diffusion=True)
  import jax

  from jaxgen import train
  from jaxgen.eval import bpd as bpd_lib
  repeats = int(args.repeats)
  if repeats < 1:
    raise ConfigError(f"--repeats={repeats} is impossible: pass 1 or more (score_sde: 5).")
  data = train.data_api(net.config)
  split = lambda: data.eval_dataset(net.config.data, batch_size=int(args.batch_size),   # noqa: E731
                                    process_index=jax.process_index(), process_count=jax.process_count())
  D = net.task.denoiser(net.state.ema_params, net.state.model_state)
  key = jax.random.key(int(args.seed))
  sde = score_sde_of(net, args.t_eps)
  deviations = []
  if sde is not None:   # score_sde's own protocol: x at t = ε, ODE to T, its prior (jaxgen.eval.bpd)
    out = bpd_lib.score_sde_nll(D, sde, split, key, num_repeats=repeats, limit=args.limit or None,
                                progress=not args.quiet, rtol=args.rtol, atol=args.atol)
    terms = bpd_lib.score_sde_terms(sde)
    n, protocol = out["num_images"], dict(sde=sde, sigma_min=terms["sigma_min"], sigma_max=terms["sigma_max"],
                                          bpd_repeats=out["bpd_repeats"])
  else:   # a schedule without an SDE (e.g. EDM's): the PF-ODE from σ(t_eps) to σ_max, prior N(0, σ_max² I)
    sch = net.task.schedule
    smin = float(sch.sigma(args.t_eps)) if hasattr(sch, "sigma") else float(args.t_eps)
    counts = []

    def passes():   # the split `repeats` times in one stream: image j of pass r has index r·N + j (its own
      for _ in range(repeats):   # dequantization noise and probes)
        n = 0
        for b in split():
          m = np.asarray(b["mask"]) if "mask" in b else np.ones(np.asarray(b["image"]).shape[:1], np.float32)
          if args.limit:
            m = m * (np.cumsum(m) + n <= args.limit)
          n += int(m.sum())
          if m.sum():
            yield dict(b, mask=m.astype(np.float32))
          if args.limit and n >= args.limit:
            break
        counts.append(n)

    out = bpd_lib.bits_per_dim_on_split(D, passes(), key, progress=not args.quiet, sigma_min=smin,
                                        sigma_max=float(sch.sigma_max), rtol=args.rtol, atol=args.atol)
    n, protocol = counts[0], dict(sigma_min=smin, sigma_max=float(sch.sigma_max), prior="N(0, σ_max² I)")
    deviations.append(f"preconditioning {net.task.cfg.precond!r} has no score_sde SDE: jaxgen's PF-ODE "
                      "likelihood from σ(t_eps) with the prior N(0, σ_max² I)")
  value = float(out["bpd"])
  _say(args, f"{row.id}: {value:.4f} bits/dim over {n} images × {repeats} pass(es)")
  if (sde or {}).get("name") != "subvpsde":
    deviations.append(f"SDE {(sde or {}).get('name', net.task.cfg.precond)!r} (the row's model: sub-VP)")
  if args.split != "test":
    deviations.append(f"split {args.split!r} (the row: test)")
  if args.limit:
    deviations.append(f"the first {n} images only (the row: the whole test split)")
  if repeats != 5:
    deviations.append(f"{repeats} pass(es) over the split (score_sde: 5)")
  details = dict(bpd_sem=out["bpd_sem"], num_images=n, repeats=repeats, t_eps=args.t_eps, rtol=args.rtol,
                 atol=args.atol, estimator="rademacher", data=str(net.config.data.name), split=args.split,
                 deviations=deviations, **protocol)
  return row.id, net.column, value, dict(details, **_source_details(net))


def imagenet_top1(args) -> tuple[str, str, float, dict]:
  import jax

  from jaxgen import sharding as shd
  from jaxgen import train
  from jaxgen.eval import classification as ce
  meta = _read_meta(args.weights) if args.weights else {}
  name = args.row or meta.get("model", "")
  row = res.row(f"imagenet_top1/{name}")
  spec = row.spec

  def edit(c, meta):
    c.data.name = args.data
    c.data.eval_split = args.split
    c.data.data_dir = args.data_dir
    c.data.resolution = int(args.crop or spec["crop"])
    c.data.crop = "center"
    c.data.crop_fraction = float(spec["crop"]) / float(spec["resize"])
    c.data.resize_method = args.interpolation or spec["interpolation"]

  if args.weights:
    from jaxgen import configs
    config = configs.base_config()
    config.unlock()
    config.task.name = "classification"
    config.model.dtype = args.dtype
    _apply_meta(config, meta, diffusion=False)
    edit(config, meta)
    net = converted_network(config, args.weights, meta)
  else:
    net = trained_network(args.workdir, lambda c, m: (_dtype(c, args), edit(c, m)))
  predict = net.task.eval_functions(net.state)["predict"]
  mesh = net.mesh
  sums = jax.jit(lambda logits, labels, mask: ce.batch_sums(logits, labels, mask, (1, 5)))
  ways = int(np.prod([mesh.shape[a] for a in shd.batch_axes(mesh)]))
  data_sh = shd.data_sharding(mesh)
  bs = -(-int(args.batch_size) // ways) * ways

  def sums_fn(_, images, labels, mask):
    if images.shape[0] % ways == 0:
      images = jax.device_put(np.asarray(images), data_sh)
    return sums(predict({"image": images}), labels, mask)

  batches = train.data_api(net.config).eval_dataset(net.config.data, batch_size=bs,
                                                      process_index=jax.process_index(),
                                                      process_count=jax.process_count())
  if args.limit:
    batches = _limited(batches, int(args.limit))
  out = ce.evaluate_classifier(None, batches, ks=(1, 5), sums_fn=sums_fn)
  deviations = []
  if args.limit:
    deviations.append(f"the first {int(out['count'])} images only (the row: the whole validation split)")
  if args.data != "imagenet2012" or args.split != "validation":
    deviations.append(f"data {args.data}/{args.split} (the row: imagenet2012/validation)")
  if str(net.config.model.name) != spec["model"]:
    deviations.append(f"network {net.config.model.name} (the row: {spec['model']})")
  details = dict(top1=out["top1"] * 100, top5=out["top5"] * 100, count=int(out["count"]),
                 eval_loss=out["loss"], data=f"{args.data}/{args.split}", resize=spec["resize"],
                 crop=int(net.config.data.resolution), interpolation=str(net.config.data.resize_method),
                 deviations=deviations)
  _say(args, f"{row.id}: top-1 {out['top1'] * 100:.3f}%  top-5 {out['top5'] * 100:.3f}% ({int(out['count'])} images)")
  return row.id, net.column, out["top1"] * 100, dict(details, **_source_details(net))


def _limited(batches, limit: int):
  n = 0
  for b in batches:
    if n >= limit:
      return
    mask = np.asarray(b["mask"]) if "mask" in b else np.ones(np.asarray(b["label"]).shape, np.float32)
    keep = np.cumsum(mask) + n <= limit
    b = dict(b, mask=(mask * keep).astype(np.float32))
    n += int(b["mask"].sum())
    yield b


def _source_details(net: Network) -> dict:
  out = dict(net.source)
  out.update(model=str(net.config.model.name), model_dtype=str(net.config.model.dtype))
  if net.meta:
    out["converter_meta"] = {k: v for k, v in net.meta.items() if k in ("source", "model", "precond",
                                                                      "network_class", "precond_class")}
  return out


# ------------------------------------------------------------------------------------------------
# Command line.


def _say(args, msg: str) -> None:
  import jax
  if jax.process_index() == 0:
    print(msg, flush=True)


def _ints(s: str) -> list[int]:
  try:
    return [int(v) for v in str(s).split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of integers") from None


def _floats(s: str) -> list[float]:
  try:
    return [float(v) for v in str(s).split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of numbers") from None


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jaxgen.eval.reproduce", description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="command", required=True)

  def common(q, default_batch):
    src = q.add_argument_group("network (exactly one)")
    src.add_argument("--weights", default="", help="converted published weights (.npz of jaxgen.convert)")
    src.add_argument("--workdir", default="", help="a jaxgen run: its latest checkpoint (EMA params)")
    q.add_argument("--config", default="", help="experiment file path.py[:variant] for --weights (default: the row's)")
    q.add_argument("--dtype", default="float32", help="compute dtype of the network (default float32)")
    q.add_argument("--results", default=DEFAULT_RESULTS, help=f"results JSON to update (default {DEFAULT_RESULTS})")
    q.add_argument("--batch_size", type=int, default=default_batch)
    q.add_argument("--quiet", action="store_true", help="no progress bars")

  def fid_args(q, seeds):
    q.add_argument("--inception_weights", default="", help=".npz of python -m jaxgen.convert.inception")
    q.add_argument("--fid_ref", default="", help="reference statistics of python -m jaxgen.eval.fid")
    q.add_argument("--num_samples", type=int, default=50_000)
    q.add_argument("--seeds", type=_ints, default=seeds, help="seed sets, e.g. 0,1,2")
    q.add_argument("--samples_dir", default=DEFAULT_SAMPLES, help="where the sample chunks go (resumable)")
    q.add_argument("--chunk_size", type=int, default=1000)
    q.add_argument("--sample_batch_size", type=int, default=0,
                   help="samples per compiled draw (default: the config's task.sample_batch_size)")

  e = sub.add_parser("edm_table2", help="EDM Table 2: FID, best of 3 seed sets")
  e.add_argument("--row", required=True, choices=[r.key for r in res.rows_of("edm_table2")])
  e.add_argument("--num_steps", type=int, default=0, help="override the row's N (a deviation)")
  common(e, 500)
  fid_args(e, [0, 1, 2])
  d = sub.add_parser("ddim_table", help="DDIM Table 1: FID per (η, steps)")
  d.add_argument("--eta", type=_floats, default=[0.0, 1.0])
  d.add_argument("--steps", type=_ints, default=[10, 20, 50, 100, 1000])
  d.add_argument("--sigma_grid", default="ddim_quadratic", choices=("ddim_quadratic", "ddim_uniform"))
  common(d, 500)
  fid_args(d, [0])
  s = sub.add_parser("score_sde_nll", help="score_sde bits/dim on the test split")
  s.add_argument("--row", default="cifar10_ddpmpp_deep_subvp", choices=[r.key for r in res.rows_of("score_sde_nll")])
  s.add_argument("--data", default="", help="data.name (default: the config's, cifar10)")
  s.add_argument("--data_dir", default="")
  s.add_argument("--split", default="test")
  s.add_argument("--repeats", type=int, default=5)
  s.add_argument("--limit", type=int, default=0, help="first N images only (a deviation)")
  s.add_argument("--t_eps", type=float, default=1e-5)
  s.add_argument("--rtol", type=float, default=1e-5)
  s.add_argument("--atol", type=float, default=1e-5)
  s.add_argument("--seed", type=int, default=0)
  common(s, 100)
  t = sub.add_parser("imagenet_top1", help="ImageNet validation top-1 of a backbone")
  t.add_argument("--row", default="", choices=[""] + [r.key for r in res.rows_of("imagenet_top1")],
                 help="default: the converted file's model")
  t.add_argument("--data", default="imagenet2012")
  t.add_argument("--data_dir", default="")
  t.add_argument("--split", default="validation")
  t.add_argument("--crop", type=int, default=0, help="eval resolution (default: the row's 224)")
  t.add_argument("--interpolation", default="", help="resize filter (default: the row's)")
  t.add_argument("--limit", type=int, default=0, help="first N images only (a deviation)")
  common(t, 250)
  i = sub.add_parser("init", help="write a results file with every row and nothing measured")
  i.add_argument("path")
  sh = sub.add_parser("show", help="print a results file's measured cells")
  sh.add_argument("path", nargs="?", default="")
  m = sub.add_parser("merge", help="copy the measured cells of SRC into DST")
  m.add_argument("src")
  m.add_argument("dst")
  m.add_argument("--rows", default="", help="comma-separated row ids (default: all measured)")
  return p


def run(argv: Sequence[str]) -> list[tuple[str, str, float, dict]]:
  """Runs one command line (without the program name); returns the recorded (row, column, value, details)."""
  args = parser().parse_args(list(argv))
  if args.command == "init":
    res.save(args.path, res.empty())
    print(f"wrote {args.path}: {len(res.ROWS)} rows, nothing measured")
    return []
  if args.command == "show":
    doc = res.load(args.path or None)
    for r in doc["rows"]:
      for col in res.COLUMNS:
        if r.get(col):
          print(f"{r['id']:45s} {col:9s} {r[col]['value']:.4f}  ({r[col]['date']}, {r[col]['hardware']})")
    return []
  if args.command == "merge":
    copied = res.merge(args.src, args.dst, [v for v in args.rows.split(",") if v])
    print(f"merged {len(copied)} cell(s) into {args.dst}: {', '.join(copied) or 'none'}")
    return []
  if getattr(args, "num_samples", 1) < 1:
    raise ConfigError(f"--num_samples={args.num_samples} is impossible: pass a positive number (50000 for the "
                      "paper's protocol).")
  fn = {"edm_table2": edm_table2, "ddim_table": ddim_table, "score_sde_nll": score_sde_nll,
        "imagenet_top1": imagenet_top1}[args.command]
  made = fn(args)
  made = made if isinstance(made, list) else [made]
  command = "python -m jaxgen.eval.reproduce " + " ".join(shlex.quote(a) for a in argv)
  import jax
  for rid, column, value, details in made:
    m = res.measurement(value, command, weights=args.weights or None, workdir=args.workdir or None,
                        details=details)
    if jax.process_index() == 0:
      res.record(args.results, rid, column, m)
      print(f"{rid} [{column}] = {value:.4f}  -> {args.results}")
  return made


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    run(argv)
  except ConfigError as e:
    print(f"jaxgen.eval.reproduce: error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
    return 2
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
