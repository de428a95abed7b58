"""Evaluators chosen by the config (``config.evals``), as big_vision's ``config.evals``.

A config lists its evaluations by name; each entry names an evaluator ``type`` and its options::

    c.evals.fd = dict(type="digits_fd", num_samples=0)
    c.evals.toy = dict(type="toy2d", num_samples=2000, lp_samples=1000)

The trainer calls ``task.evaluate(state, key, batches)`` only; ``jaxgen.tasks.base.Task.evaluate`` runs
``run(config.evals, task.eval_functions(state), key, batches)``: the entries in the order of their names
(a ConfigDict keeps its keys sorted), the i-th name with the key ``fold_in(key, i)``, their metric dicts
merged into one. An entry set to None is skipped (the others keep their keys).

An evaluator is a plain function registered under its type::

    @register("my_metric", needs=("sample", "data"))
    def my_metric(fns, key, batches, *, num_samples: int = 1000) -> dict[str, float]: ...

Its keyword-only parameters are its options (their annotations and defaults are the option's type and
default, read with ``jaxgen.config_schema.from_block``: an unknown option or a wrong type is a
``ConfigError`` with a did-you-mean suggestion). Every entry also takes ``prefix`` (a string put in
front of each metric name, so two entries of one type can coexist). ``needs`` names the functions of
the task it calls, from this vocabulary (``fns`` is the dict a task's ``eval_functions(state)`` returns):

  'sample'   (key, n, start_index) -> np.ndarray   n samples; sample i depends only on (key, start_index + i)
  'predict'  (batch) -> logits [B, K]              classifiers
  'denoise'  D(x, sigma[B]) -> x̂                   diffusion denoiser (likelihoods, bits/dim)
  'loss'     (batch, key) -> per-example loss [B]  eval-mode loss
  'critic'   f(x) -> [B]                            a GAN's critic (KR estimate, Lipschitz bound)
  'reconstruct' (batch) -> dict(image=x̂ [B,H,W,C], indices=codes)  an autoencoder (VQGAN) on eval images
  'detect'   (batch) -> dict(boxes [B,N,4], scores [B,N], classes [B,N], mask [B,N])  a detector
  'data'     dict of facts: 'name' (the data set's base name), 'toy', 'resolution', and the task's own
             facts (diffusion: 'sigma_max' of its schedule)

and 'batches' when it reads the eval split (evaluators on the eval split report nothing when
``data.eval_split`` is '', so a config may list them unconditionally). A task states what it provides
in ``Task.EVAL_FUNCTIONS``; ``check(config, provides)`` (called when the task is built) turns an entry
whose evaluator needs a function the task lacks, an unknown type or option, or data the evaluator
cannot use into one ``ConfigError``. ``preflight(config)`` checks the local files an evaluator reads
(FID's Inception weights and reference statistics); the trainer calls it before training or evaluating.

A family may register its evaluators in its own module ``jaxgen/eval/evaluators_<family>.py``: every
module of ``jaxgen.eval`` named ``evaluators_*`` is imported before the first lookup.

Evaluators (metrics and their sources in docs/reference.md):

  toy2d            2-D toys, the same keys for every family: sliced W1 (``sw1``) and the unbiased Gaussian-
                   kernel MMD² (``mmd``, bandwidth: the median pairwise distance of the exact draw) of
                   ``num_samples`` samples against an exact draw, the exact W1 by LP (``w1``) on the first
                   min(``num_samples``, ``lp_samples``) points, the 1-D W1 of each coordinate (``w1_x``,
                   ``w1_y``); the floors ``sw1_floor``, ``mmd_floor``, ``w1_floor`` are the same numbers
                   between two independent exact draws (what a perfect model scores at that n); for
                   8gaussians / 25gaussians also ``modes_hit``, ``num_modes``, ``hq_fraction``
                   (``mode_coverage``).
  toy2d_likelihood mean PF-ODE log-likelihood (``log_likelihood``, nats, exact trace) of ``num_points``
                   exact points next to their exact mean log-density (``log_prob_exact``).
  critic_w1        a GAN critic on min(``num_samples``, ``lp_samples``) generated and exact points:
                   ``w1_critic`` = E f(data) − E f(G(z)), ``critic_lipschitz`` (max ‖∇f‖ over the points
                   and their random interpolates, a lower bound of f's Lipschitz constant),
                   ``w1_critic_normalized`` = w1_critic / critic_lipschitz.
  digits_fd        ``fd``, ``fd_real``, ``fd_gaussian`` (``jaxgen.eval.digits_fd``) of ``num_samples``
                   samples (0: as many as the digits test split holds).
  fid              ``fid``, ``is``, ``is_std`` (and ``kid``, ``kid_std`` when the reference file holds
                   features) of ``num_samples`` samples (``jaxgen.eval.fid``: TF-FID Inception weights
                   ``inception_weights``, reference statistics ``fid_ref``; both local files).
  bpd              bits/dim of the eval split through the PF-ODE (``jaxgen.eval.bpd``): ``bpd``,
                   ``bpd_sem``, ``num_images``.
  accuracy         ``top1``, ``top5``, ``eval_loss`` (mean cross-entropy), ``count`` of ``fns["predict"]``
                   over the eval split (``jaxgen.eval.classification``).
  eval_loss        ``eval_loss``: the mean per-example loss over the (masked) eval split.

In their families' modules: ``reconstruction`` (psnr, psnr_std, ssim, lpips, code_usage, perplexity,
num_codes, rfid of ``fns['reconstruct']`` over the eval split; ``jaxgen.eval.evaluators_vqgan``),
``voc_map`` / ``coco_ap`` (``fns['detect']`` over the eval split; ``jaxgen.eval.evaluators_detection``) and
``score_sde_bpd`` (bpd, bpd_sem, num_images, num_repeats of ``fns['denoise']`` over the eval split by
score_sde's likelihood protocol; ``jaxgen.eval.evaluators_score_sde``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import os
import typing
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import config_schema
from jaxgen.errors import ConfigError

__all__ = ["EVALUATORS", "FUNCTIONS", "Evaluator", "register", "entries", "check", "preflight", "run",
           "mmd2", "median_bandwidth", "mode_coverage"]

FUNCTIONS = ("sample", "predict", "denoise", "loss", "critic", "reconstruct", "detect", "data")


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """A registered evaluator: ``fn(fns, key, batches, **options)``, the task functions it ``needs``
  (names of ``FUNCTIONS``), whether it reads eval ``batches``, its options' dataclass, and ``data``:
  the base data set names it works on (empty: any)."""

  name: str
  fn: Callable[..., dict]
  needs: tuple[str, ...]
  batches: bool
  options: type
  data: tuple[str, ...] = ()
  files: tuple[str, ...] = ()


EVALUATORS: dict[str, Evaluator] = {}


def _options_class(type_name: str, fn: Callable, bounds: Mapping[str, dict]) -> type:
  """A frozen dataclass of ``fn``'s keyword-only parameters (plus ``prefix``) for ``from_block``."""
  hints = typing.get_type_hints(fn)
  fields = [("prefix", str, dataclasses.field(default=""))]
  for p in inspect.signature(fn).parameters.values():
    if p.kind is not inspect.Parameter.KEYWORD_ONLY:
      continue
    if p.default is inspect.Parameter.empty:
      raise TypeError(f"evaluator {type_name!r}: option {p.name!r} needs a default.")
    fields.append((p.name, hints.get(p.name, Any), config_schema.option(p.default, **bounds.get(p.name, {}))))
  unknown = set(bounds) - {f[0] for f in fields}
  if unknown:
    raise TypeError(f"evaluator {type_name!r}: bounds for unknown options {sorted(unknown)}.")
  return dataclasses.make_dataclass(f"evaluator {type_name!r}", fields, frozen=True)


def register(type_name: str, *, needs: Iterable[str] = (), batches: bool = False, data: Iterable[str] = (),
             files: Iterable[str] = (), bounds: Mapping[str, dict] | None = None):
  """Decorator: registers ``fn`` as the evaluator ``type_name`` (see the module docstring).

  ``data``: base data set names it accepts (checked when the task is built); ``files``: options naming
  local files that must exist (checked by ``preflight`` and when it runs); ``bounds``: option name ->
  ``config_schema.option`` bounds (``min``, ``max``, ``above``, ``below``, ``choices``).
  """
  needs = tuple(needs)
  bad = [n for n in needs if n not in FUNCTIONS]
  if bad:
    raise ValueError(f"evaluator {type_name!r} needs unknown function {bad[0]!r}: use names of {FUNCTIONS}.")

  def deco(fn):
    EVALUATORS[type_name] = Evaluator(type_name, fn, needs, bool(batches),
                                      _options_class(type_name, fn, bounds or {}), tuple(data), tuple(files))
    return fn

  return deco


# ------------------------------------------------------------------------------------ the config

@dataclasses.dataclass(frozen=True)
class Entry:
  """One ``config.evals`` entry, checked: its name, evaluator and options (a dict)."""

  name: str
  evaluator: Evaluator
  options: dict
  prefix: str
  index: int      # position of the name among all names of config.evals (its key: fold_in(key, index))


_DISCOVERED = False


def _discover() -> None:
  """Imports every module of ``jaxgen.eval`` whose name starts with ``evaluators_`` (e.g.
  ``evaluators_detection``), so a family registers its evaluators in its own file without editing this
  one; they import jaxgen.eval.evaluators and use ``@register``."""
  global _DISCOVERED
  if _DISCOVERED:
    return
  _DISCOVERED = True
  import importlib  # noqa: PLC0415
  import pkgutil  # noqa: PLC0415

  from jaxgen import eval as eval_pkg  # noqa: PLC0415
  for info in pkgutil.iter_modules(eval_pkg.__path__):
    if info.name.startswith("evaluators_"):
      importlib.import_module(f"jaxgen.eval.{info.name}")


def entries(evals_cfg) -> list[Entry]:
  """The entries of ``config.evals`` in order (None entries skipped), types and options checked."""
  if evals_cfg is None:
    return []
  _discover()
  if not hasattr(evals_cfg, "keys"):
    raise ConfigError(f"config.evals must be a block of name -> dict(type=..., ...), got "
                      f"{type(evals_cfg).__name__}: set c.evals.<name> = dict(type=...) in the experiment.")
  out = []
  for index, name in enumerate(sorted(evals_cfg.keys())):
    spec = config_schema.lookup(evals_cfg, name, None)
    if spec is None:
      continue
    where = f"evals.{name}"
    if not hasattr(spec, "keys"):
      raise ConfigError(f"config.{where}={spec!r} is not an evaluator: set c.{where} = dict(type=..., "
                        "options...) in the experiment.")
    type_name = config_schema.lookup(spec, "type", "")
    if not type_name:
      raise ConfigError(f"config.{where} has no type: set --config.{where}.type to one of "
                        f"{', '.join(sorted(EVALUATORS))}.")
    if type_name not in EVALUATORS:
      close = difflib.get_close_matches(str(type_name), list(EVALUATORS), n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ConfigError(f"config.{where}.type={type_name!r} is unknown{hint}: set --config.{where}.type to "
                        f"one of {', '.join(sorted(EVALUATORS))}.")
    ev = EVALUATORS[type_name]
    opts = config_schema.from_block(ev.options, spec, where=where, ignore=("type",))
    options = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name != "prefix"}
    same = [e.name for e in out if e.evaluator is ev and e.prefix == opts.prefix]
    if same:   # they would report the same metric names
      raise ConfigError(f"config.evals.{same[0]} and evals.{name} are both {type_name!r} evaluators with the "
                        f"same metric names: set --config.evals.{name}.prefix (e.g. '{name}_').")
    out.append(Entry(name, ev, options, opts.prefix, index))
  return out


def _base_name(data_name) -> str:
  return str(data_name or "").split("/")[0]


def check(config, provides: Iterable[str] | None, *, task: str = "the task") -> list[Entry]:
  """Checks ``config.evals`` against a task that provides the functions ``provides`` (None: unknown,
  checked when it runs) and against ``config.data``; returns the entries."""
  out = entries(config_schema.lookup(config, "evals", None))
  data = _base_name(config_schema.lookup(config, "data.name", ""))
  for e in out:
    if provides is not None:
      _check_needs(e, provides, task)
    if e.evaluator.data and data not in e.evaluator.data:
      raise ConfigError(f"config.evals.{e.name} (type {e.evaluator.name!r}) evaluates "
                        f"{' or '.join(e.evaluator.data)} data, but data.name={data!r}: remove "
                        f"evals.{e.name} from the experiment or train on that data.")
  return out


def _check_needs(e: Entry, provides: Iterable[str], task: str) -> None:
  provides = set(provides)
  missing = [n for n in e.evaluator.needs if n not in provides]
  if missing:
    have = ", ".join(sorted(provides)) or "none"
    raise ConfigError(f"config.evals.{e.name} (type {e.evaluator.name!r}) needs the task's {missing[0]!r} "
                      f"function, which task {task!r} does not provide (it provides: {have}): remove "
                      f"evals.{e.name} or use an evaluator of this task.")


def preflight(config) -> None:
  """Checks that the local files named by the evaluators' options exist (FID's weights and reference)."""
  for e in entries(config_schema.lookup(config, "evals", None)):
    _check_files(e.evaluator, e.options, e.name)


def _check_files(ev: Evaluator, options: Mapping[str, Any], name: str = "<name>") -> None:
  for opt in ev.files:
    path = str(options.get(opt, ""))
    if not path or not os.path.exists(path):
      raise ConfigError(f"config.evals.{name}.{opt}={path!r} does not exist: pass "
                        f"--config.evals.{name}.{opt}=<path> ({_FILE_HELP.get(opt, 'a local file')}).")


_FILE_HELP = {
    "inception_weights": "the Inception .npz from python -m jaxgen.convert.inception ...",
    "fid_ref": "reference statistics from python -m jaxgen.eval.fid --data ... --out REF.npz",
}


def run(evals_cfg, fns: Mapping[str, Any], key, batches, *, task: str = "the task") -> dict[str, float]:
  """Runs the entries of ``evals_cfg`` with the task functions ``fns``; returns their merged metrics."""
  out: dict[str, float] = {}
  source: dict[str, str] = {}
  for e in entries(evals_cfg):
    _check_needs(e, fns.keys(), task)
    if e.evaluator.batches and batches is None:
      continue
    metrics = e.evaluator.fn(fns, jax.random.fold_in(key, e.index), batches, **e.options)
    for k, v in metrics.items():
      name = e.prefix + k
      if name in out:
        raise ConfigError(f"config.evals.{source[name]} and evals.{e.name} both report {name!r}: set "
                          f"--config.evals.{e.name}.prefix (e.g. '{e.name}_').")
      out[name], source[name] = float(v), e.name
  return out


# ----------------------------------------------------------------------------------- helpers

def _facts(fns) -> dict:
  return dict(fns.get("data") or {})


def _toy(fns, type_name: str) -> str:
  toy = _facts(fns).get("toy")
  if not toy:
    raise ConfigError(f"the {type_name} evaluator needs a 2-D toy data set: set --config.data.name=toy2d "
                      "and data.toy, or remove it from config.evals.")
  return str(toy)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _toy_sample(name: str, key, n: int):
  from jaxgen.data import toy2d  # noqa: PLC0415

  return toy2d.sample(name, key, n)


def median_bandwidth(x) -> jax.Array:
  """Median pairwise distance of (at most 1000 of) the points: the usual MMD kernel width."""
  x = jnp.asarray(x)[:1000]
  d = jnp.sqrt(jnp.maximum(jnp.sum((x[:, None] - x[None]) ** 2, -1), 0.0))
  return jnp.median(d[jnp.triu_indices(x.shape[0], 1)])


@jax.jit
def mmd2(x, y, bandwidth) -> jax.Array:
  """Unbiased MMD² with the Gaussian kernel k(a, b) = exp(−‖a − b‖²/(2h²)) (Gretton et al. 2012)."""
  def k(a, b):
    return jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1) / (2.0 * bandwidth ** 2))
  n, m = x.shape[0], y.shape[0]
  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
  syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
  return sxx + syy - 2.0 * jnp.mean(kxy)


def mode_coverage(samples, centers, std: float, *, num_std: float = 3.0, min_count: int = 20):
  """Mode coverage of a Gaussian-mixture toy (VEEGAN / PacGAN protocol).

  A sample is *high quality* when it lies within ``num_std`` standard deviations of its nearest
  mode (Srivastava et al. 2017); a mode is *hit* when at least ``min_count`` high-quality samples
  are assigned to it (Lin et al. 2018 use 20 of 2,500 samples). Returns (modes hit, high-quality
  fraction, per-mode counts).
  """
  x = np.asarray(samples, np.float64)
  c = np.asarray(centers, np.float64)
  d = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1))
  nearest = d.argmin(1)
  hq = d[np.arange(len(x)), nearest] <= num_std * std
  counts = np.bincount(nearest[hq], minlength=len(c))
  return int((counts >= min_count).sum()), float(hq.mean()), counts


def _points(fns, key, n: int, type_name: str) -> np.ndarray:
  x = np.asarray(fns["sample"](key, n, 0), np.float32)
  if x.ndim != 2 or x.shape != (n, 2):
    raise ConfigError(f"the {type_name} evaluator needs 2-D points, the task's samples have shape "
                      f"{x.shape}: use it with data.name=toy2d only.")
  return x


# ---------------------------------------------------------------------------------- evaluators

@register("toy2d", needs=("sample", "data"), data=("toy2d",),
          bounds=dict(num_samples=dict(min=2), lp_samples=dict(min=1), num_projections=dict(min=1),
                      mmd_bandwidth=dict(min=0.0), hq_num_std=dict(above=0.0), min_mode_count=dict(min=1)))
def toy2d(fns, key, batches, *, num_samples: int = 2000, lp_samples: int = 1000, num_projections: int = 128,
          mmd_bandwidth: float = 0.0, hq_num_std: float = 3.0, min_mode_count: int = 20) -> dict:
  """Sample-quality numbers of a 2-D toy, and their exact-vs-exact floors (see the module docstring)."""
  from jaxgen import ot  # noqa: PLC0415
  from jaxgen.data import toy2d as toys  # noqa: PLC0415

  del batches
  toy = _toy(fns, "toy2d")
  n, m = num_samples, min(lp_samples, num_samples)
  k_s, k_ref, k_ref2, k_proj = jax.random.split(key, 4)
  x = _points(fns, k_s, n, "toy2d")
  exact = np.asarray(_toy_sample(toy, k_ref, n))
  exact2 = np.asarray(_toy_sample(toy, k_ref2, n))
  bw = float(mmd_bandwidth) or float(median_bandwidth(exact))
  sw = lambda a: float(ot.sliced_wasserstein(a, exact, k_proj, num_projections))
  out = dict(sw1=sw(x), sw1_floor=sw(exact2),
             mmd=float(mmd2(x, exact, bw)), mmd_floor=float(mmd2(exact2, exact, bw)),
             w1=float(ot.emd(x[:m], exact[:m], p=1)), w1_floor=float(ot.emd(exact2[:m], exact[:m], p=1)),
             w1_x=float(ot.wasserstein_1d(x[:, 0], exact[:, 0])),
             w1_y=float(ot.wasserstein_1d(x[:, 1], exact[:, 1])))
  if toy in toys.MIXTURES:
    mix = toys.mixture(toy)
    hit, hq, _ = mode_coverage(x, mix.means, mix.std, num_std=hq_num_std, min_count=min_mode_count)
    out.update(modes_hit=float(hit), num_modes=float(len(mix.means)), hq_fraction=hq)
  return out


@register("toy2d_likelihood", needs=("denoise", "data"), data=("toy2d",),
          bounds=dict(num_points=dict(min=1), sigma_min=dict(above=0.0), sigma_max=dict(min=0.0),
                      rtol=dict(above=0.0), atol=dict(above=0.0)))
def toy2d_likelihood(fns, key, batches, *, num_points: int = 256, sigma_min: float = 1e-3,
                     sigma_max: float = 0.0, rtol: float = 1e-4, atol: float = 1e-4) -> dict:
  """PF-ODE log-likelihood (exact trace) of exact toy points vs their exact log-density; ``sigma_max``
  0: the task's schedule σ_max (``fns['data']['sigma_max']``)."""
  from jaxgen import diffusion as dfn  # noqa: PLC0415
  from jaxgen.data import toy2d as toys  # noqa: PLC0415

  del batches
  toy = _toy(fns, "toy2d_likelihood")
  smax = float(sigma_max) or float(_facts(fns).get("sigma_max", 80.0))
  pts = jnp.asarray(_toy_sample(toy, key, num_points))
  ll = dfn.log_likelihood(fns["denoise"], pts, sigma_min=sigma_min, sigma_max=smax, exact_trace=True,
                          rtol=rtol, atol=atol)
  return dict(log_likelihood=float(jnp.mean(ll)), log_prob_exact=float(jnp.mean(toys.log_prob(toy, pts))))


@register("critic_w1", needs=("sample", "critic", "data"), data=("toy2d",),
          bounds=dict(num_samples=dict(min=1), lp_samples=dict(min=1)))
def critic_w1(fns, key, batches, *, num_samples: int = 2500, lp_samples: int = 1000) -> dict:
  """A GAN critic's Kantorovich–Rubinstein estimate of W1 and its Lipschitz lower bound."""
  from jaxgen import gan, ot  # noqa: PLC0415

  del batches
  toy = _toy(fns, "critic_w1")
  n, m = num_samples, min(lp_samples, num_samples)
  k_s, k_d, k_i = jax.random.split(key, 3)
  fake = _points(fns, k_s, n, "critic_w1")[:m]
  real = np.asarray(_toy_sample(toy, k_d, n), np.float32)[:m]
  f = fns["critic"]
  w1_critic = float(ot.kr_dual_estimate(f, real, fake))
  pts = np.concatenate([real, fake, np.asarray(gan.interpolates(k_i, real, fake))])
  lip = float(jnp.max(ot.critic_gradient_norms(f, pts)))
  return dict(w1_critic=w1_critic, critic_lipschitz=lip, w1_critic_normalized=w1_critic / max(lip, 1e-12))


@register("digits_fd", needs=("sample", "data"), data=("digits",), bounds=dict(num_samples=dict(min=0)))
def digits_fd(fns, key, batches, *, num_samples: int = 0, seed: int = 0) -> dict:
  """The digits Fréchet distance of ``num_samples`` samples (0: the test-split size)."""
  from jaxgen.eval import digits_fd as dfd  # noqa: PLC0415

  del batches
  ref = dfd.DigitsFD(resolution=int(_facts(fns).get("resolution", 0) or 0))
  samples = fns["sample"](key, num_samples or ref.num_real, 0)
  return {k: float(v) for k, v in ref.metrics(samples, seed=seed).items()}


@register("fid", needs=("sample",), files=("inception_weights", "fid_ref"),
          bounds=dict(num_samples=dict(min=2), batch_size=dict(min=1), kid_subsets=dict(min=0)))
def fid(fns, key, batches, *, num_samples: int = 50_000, inception_weights: str = "", fid_ref: str = "",
        batch_size: int = 500, kid_subsets: int = 100) -> dict:
  """FID, IS (and KID) of ``num_samples`` samples through the TF-FID Inception (``jaxgen.eval.fid``)."""
  from jaxgen.eval import fid as fid_lib  # noqa: PLC0415

  del batches
  _check_files(EVALUATORS["fid"], dict(inception_weights=inception_weights, fid_ref=fid_ref))
  ext = fid_lib.cached_extractor(inception_weights, batch_size)
  out = fid_lib.evaluate_samples(fns["sample"], key, num_samples, ext, fid_lib.load_stats(fid_ref),
                                 batch_size=batch_size, progress=False, kid_subsets=kid_subsets)
  return {k: float(v) for k, v in out.items()}


@register("bpd", needs=("denoise", "data"), batches=True,
          bounds=dict(limit=dict(min=0), sigma_min=dict(above=0.0), sigma_max=dict(min=0.0),
                      rtol=dict(above=0.0), atol=dict(above=0.0)))
def bpd(fns, key, batches, *, limit: int = 0, sigma_min: float = 1e-5, sigma_max: float = 0.0,
        exact_trace: bool = False, rtol: float = 1e-5, atol: float = 1e-5) -> dict:
  """bits/dim of the eval split (up to ``limit`` images, 0: all) through the PF-ODE likelihood;
  ``sigma_max`` 0: the task's schedule σ_max."""
  from jaxgen.eval import bpd as bpd_lib  # noqa: PLC0415

  smax = float(sigma_max) or float(_facts(fns).get("sigma_max", 80.0))
  return bpd_lib.bits_per_dim_on_split(fns["denoise"], batches, key, limit=limit or None, progress=False,
                                       sigma_min=sigma_min, sigma_max=smax, exact_trace=exact_trace,
                                       rtol=rtol, atol=atol)


@functools.lru_cache(maxsize=8)
def _sums_fn(ks: tuple[int, ...]):
  from jaxgen.eval import classification as ce  # noqa: PLC0415

  return jax.jit(lambda logits, labels, mask: ce.batch_sums(logits, labels, mask, ks))


@register("accuracy", needs=("predict",), batches=True)
def accuracy(fns, key, batches, *, ks: tuple[int, ...] = (1, 5)) -> dict:
  """Top-k accuracies (``top1``, ``top5``), mean cross-entropy (``eval_loss``: not ``loss``, which a
  training record of the same step holds) and ``count`` of ``fns['predict']`` over the eval split."""
  from jaxgen.eval import classification as ce  # noqa: PLC0415

  del key
  predict, sums = fns["predict"], _sums_fn(tuple(int(k) for k in ks))
  out = ce.evaluate_classifier(None, batches, ks=ks,
                               sums_fn=lambda args, images, labels, mask: sums(predict({"image": images}),
                                                                               labels, mask))
  out["eval_loss"] = out.pop("loss")
  return out


@register("eval_loss", needs=("loss",), batches=True)
def eval_loss(fns, key, batches) -> dict:
  """The mean per-example loss over the (masked) eval batches, batch i with the key ``fold_in(key, i)``."""
  loss = fns["loss"]
  total, count = 0.0, 0.0
  for i, b in enumerate(batches):
    per = np.asarray(loss(b, jax.random.fold_in(key, i)), np.float64)
    mask = np.asarray(b["mask"], np.float64) if "mask" in b else np.ones_like(per)
    total += float(np.sum(per * mask))
    count += float(np.sum(mask))
  return {"eval_loss": total / count} if count else {}

