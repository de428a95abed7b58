"""The diffusion task (``task.name = 'diffusion'``): EDM's framework on top of the one trainer.

A registry network F (``model.name``, ``model.overrides``, compute dtype ``model.dtype``, params
float32) becomes the denoiser D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise) with the preconditioning
of ``task.precond`` (EDM Table 1; ``jaxgen.diffusion.precondition``), and is trained with the loss
``task.loss``. Every loss is computed through D (``preconditioned=True`` in ``jaxgen.diffusion.losses``),
so any loss can train any parameterization, as in EDM's official code, where loss and preconditioning
are separate choices:

  task.precond  edm | vp | subvp | ve | iddpm | fm | ncsn   (the schedule: σ(t), s(t), c_*, sampling grid;
                subvp is score_sde's sub-VP SDE in EDM's frame, ``jaxgen.diffusion.SubVPSchedule``;
                ncsn a score network s(x, i) on the dsm ladder, D = x + σ²s, c_noise = level index i,
                ``jaxgen.diffusion.NCSNSchedule``, e.g. the ``ncsn_cifar10`` RefineNet)
  task.loss     edm | vp | subvp | ve    λ(σ)·‖D(y + σn; σ) − y‖² with σ ~ p_train of that column of
                Table 1 (subvp: score_sde's continuous sub-VP loss, t ~ U(ε_t, 1), λ = 1/σ²)
                ddpm_eps | v | x0   prediction MSE, σ ~ p_train of ``task.precond``'s schedule
                fm              velocity MSE ‖v̂ − (ε − y)‖², t ~ U(0, 1) (``task.fm_p_train``)
                dsm             NCSN's ½σ²‖s(y + σn) + n/σ‖² over a geometric σ ladder
                                (``task.ncsn_sigma_max`` → ``task.ncsn_sigma_min``, ``task.ncsn_levels``)

``task.dequantize`` replaces each 8-bit image y by its uniform dequantization (k + U[0, 1))/256 mapped
to [−1, 1] (k = the pixel value; ``jaxgen.diffusion.dequantize``) in the training and eval losses, as
NCSN's training data. ``task.loss_reduce`` sums ('sum', EDM's and NCSN's convention) or averages ('mean', DDPM's and
score_sde's ``reduce_mean``) each example's squared error over its dimensions; unset, each loss keeps its
default (sum for edm/vp/subvp/ve/dsm, mean for ddpm_eps/v/x0/fm). ``task.sigma_data`` (0.5) is EDM's σ_d; ``task.class_conditional`` feeds ``batch['label']`` (the model
needs ``num_classes``; it is filled in from ``task.num_classes`` when absent). Dropout uses its own key,
split from the step key.

``task.augment`` (a dict of ``jaxgen.diffusion.AugmentPipe`` fields; absent, None or p=0: off) is EDM's
non-leaking augmentation: in training each clean image y is augmented on device (its own key, split from
the step key) before noise is added, and the network gets the pipe's labels as ``augment_labels``;
``model.overrides.augment_dim`` is set to the pipe's ``label_dim`` (an error if set to another value).
EDM config F: CIFAR-10 ``dict(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1,
translate_frac=1)`` (9 labels), FFHQ / AFHQv2 64² the same with p=0.15. The eval loss and sampling use
clean images and no augmentation labels (zeros, as EDM's sampler). Without the pipe,
``batch['augment_labels']`` goes to the network when present.

Sampling (``sample``) uses the EMA params and the sampler ``task.sampler``:

  euler | heun | edm | ddim | ancestral | euler_maruyama | pc | dpmpp_2m | pf_ode
      on the σ grid ``task.sigma_grid``: 'schedule' (the σ(t_i) of ``task.precond``'s own EDM Table 1
      discretization) or 'karras' (ρ-spaced between ``task.sigma_min`` and ``task.sigma_max``);
  ode      EDM's general Algorithm 1 in ``task.precond``'s own time variable (σ(t), s(t));
  annealed_langevin   NCSN's ladder (the dsm ladder) with ``task.sampler_options``; chains start at
      latents·σ_1, or with ``task.langevin_init='uniform'`` at U(−1, 1) images (2Φ(latent) − 1, NCSN's
      official sampler's U(0, 1) start on jaxgen's [−1, 1] scale).

``task.num_steps`` sets N; ``task.sampler_options`` (a dict) goes to the sampler as keywords (e.g.
s_churn, eta, snr, solver). Samples are drawn in chunks of ``task.sample_batch_size`` (one compiled
program whatever n; the last chunk is padded). Sample i starts from latents drawn with ``fold_in(key, start_index + i)``
and stochastic samplers use global indices start_index + i, so a sample depends only on its index;
labels of class-conditional samples are (start_index + i) mod num_classes. Images are clipped to
[−1, 1]; 2-D points are returned as they are.

Evaluation (``evaluate``): the mean ``eval_loss`` over the eval batches (EMA params) and, by data set,
* ``digits``: ``fd``, ``fd_real``, ``fd_gaussian`` (``jaxgen.eval.digits_fd``) from
  ``task.eval.num_samples`` samples (0: as many as the test split holds);
* ``toy2d``: sliced W1 and a Gaussian-kernel MMD² between ``task.eval.num_samples`` samples and exact
  draws of the toy (``sw1``, ``mmd``), the same two numbers between two exact draws as their floor
  (``sw1_exact``, ``mmd_exact``), and with ``task.eval.likelihood`` the mean log-likelihood
  (``log_likelihood``, nats) of ``task.eval.likelihood_points`` eval points through the PF-ODE with
  the exact trace, next to the exact mean log-density of those points (``log_prob_exact``);
* other image sets with ``task.eval.fid``: FID of ``task.eval.num_samples`` samples (default 50k)
  through ``jaxgen.eval.fid.compute_fid`` (``task.eval.inception_weights``, ``task.eval.fid_ref``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import diffusion as dfn
from jaxgen import models
from jaxgen.tasks import base

PRECONDS = ("edm", "vp", "subvp", "ve", "iddpm", "fm", "ncsn")
LOSSES = ("edm", "vp", "subvp", "ve", "ddpm_eps", "v", "x0", "fm", "dsm")
SAMPLERS = ("euler", "heun", "edm", "ddim", "ancestral", "euler_maruyama", "pc", "dpmpp_2m", "pf_ode",
            "ode", "annealed_langevin")


def _get(cfg, key: str, default: Any) -> Any:
  try:
    v = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
  except (AttributeError, KeyError):
    v = default
  return default if v is None else v


def _to_dict(d) -> dict:
  if d is None:
    return {}
  return dict(d.to_dict()) if hasattr(d, "to_dict") else dict(d)


def make_schedule(name: str, sigma_data: float = 0.5, fm_p_train: str = "uniform",
                  ncsn_ladder: tuple = (2.0, 0.02, 10)):
  """The schedule object of a ``task.precond`` / ``task.loss`` name (EDM Table 1 constants;
  ``ncsn_ladder``: NCSN's (σ_max, σ_min, L))."""
  if name == "ncsn":
    return dfn.NCSNSchedule(sigma_max=float(ncsn_ladder[0]), sigma_min=float(ncsn_ladder[1]),
                            num_levels=int(ncsn_ladder[2]))
  if name == "edm":
    return dfn.EDMSchedule(sigma_data=sigma_data)
  if name == "vp":
    return dfn.VPSchedule()
  if name == "subvp":
    return dfn.SubVPSchedule()
  if name == "ve":
    return dfn.VESchedule()
  if name == "iddpm":
    return dfn.IDDPMSchedule()
  if name == "fm":
    return dfn.FlowMatchingSchedule(p_train=fm_p_train)
  raise ValueError(f"task.precond={name!r} is unknown: use one of {', '.join(PRECONDS)}.")


def make_augment_pipe(cfg) -> dfn.AugmentPipe | None:
  """The augmentation pipe of ``task.augment``, or None when it is off (absent, None, p=0 or no op)."""
  d = _to_dict(cfg)
  if not d:
    return None
  pipe = dfn.AugmentPipe.from_config(d)
  return pipe if pipe.active else None


class Task(base.LossTask):
  """See the module docstring."""

  def __init__(self, config):
    super().__init__(config)
    t = config.task
    self.precond_name = str(_get(t, "precond", "edm"))
    self.loss_name = str(_get(t, "loss", "edm"))
    self.sampler_name = str(_get(t, "sampler", "heun"))
    if self.loss_name not in LOSSES:
      raise ValueError(f"task.loss={self.loss_name!r} is unknown: use one of {', '.join(LOSSES)}.")
    if self.sampler_name not in SAMPLERS:
      raise ValueError(f"task.sampler={self.sampler_name!r} is unknown: use one of {', '.join(SAMPLERS)}.")
    self.sigma_data = float(_get(t, "sigma_data", 0.5))
    self.loss_reduce = _get(t, "loss_reduce", None)
    self.langevin_init = str(_get(t, "langevin_init", "gaussian"))
    self.dequantize = bool(_get(t, "dequantize", False))
    if self.langevin_init not in ("gaussian", "uniform"):
      raise ValueError(f"task.langevin_init={self.langevin_init!r} is unknown: use 'gaussian' (latents·σ_1) "
                       "or 'uniform' (NCSN's U(−1, 1) start).")
    if self.loss_reduce not in (None, "sum", "mean"):
      raise ValueError(f"task.loss_reduce={self.loss_reduce!r} is unknown: use 'sum' (EDM, NCSN), 'mean' "
                       "(DDPM, score_sde's reduce_mean) or leave it unset for the loss's own default.")
    ncsn_ladder = (float(_get(t, "ncsn_sigma_max", 2.0)), float(_get(t, "ncsn_sigma_min", 0.02)),
                   int(_get(t, "ncsn_levels", 10)))
    self.schedule = make_schedule(self.precond_name, self.sigma_data, str(_get(t, "fm_p_train", "uniform")),
                                  ncsn_ladder)
    self.num_steps = int(_get(t, "num_steps", 18))
    self.class_conditional = bool(_get(t, "class_conditional", False))
    self.num_classes = int(_get(t, "num_classes", 10))
    self.sample_batch_size = int(_get(t, "sample_batch_size", 256))
    self.ncsn_sigmas = dfn.ncsn_sigmas(*ncsn_ladder)  # the dsm loss's and annealed Langevin's ladder
    overrides = _to_dict(config.model.get("overrides", None))
    self.augment = make_augment_pipe(_get(t, "augment", None))
    if self.augment is not None:
      if overrides.get("augment_dim", self.augment.label_dim) != self.augment.label_dim:
        raise ValueError(f"model.overrides.augment_dim={overrides['augment_dim']} but task.augment yields "
                         f"{self.augment.label_dim} labels: remove augment_dim (it is set automatically).")
      overrides["augment_dim"] = self.augment.label_dim
    if self.class_conditional:
      overrides.setdefault("num_classes", self.num_classes)
    dtype = str(config.model.get("dtype", "float32"))
    if dtype != "float32":
      overrides["dtype"] = dtype
    if not config.model.name:
      raise ValueError("model.name is empty: set it to a denoiser network, e.g. 'small_unet' or 'toy_mlp'.")
    self.model = models.create(config.model.name, **overrides)
    if self.precond_name == "ncsn" and getattr(self.model, "num_levels", ncsn_ladder[2]) != ncsn_ladder[2]:
      raise ValueError(f"{config.model.name} has num_levels={self.model.num_levels} but task.ncsn_levels="
                       f"{ncsn_ladder[2]}: set model.overrides.num_levels to task.ncsn_levels.")
    self._accepts_augment = "augment_labels" in inspect.signature(type(self.model).__call__).parameters
    if self.augment is not None and not self._accepts_augment:
      raise ValueError(f"task.augment needs a network that takes augment_labels; {config.model.name} does "
                       "not: use e.g. ddpmpp_cifar10 or small_unet, or remove task.augment.")

  # --- the network as a raw F and as a denoiser D -------------------------------------------------
  def _net(self, params, model_state, *, train: bool, dropout_key=None, augment_labels=None):
    """``net(x_in, c_noise, labels) -> F`` (the signature ``jaxgen.diffusion.precondition`` wraps)."""
    variables = {"params": params, **(model_state or {})}
    rngs = {"dropout": dropout_key} if (train and dropout_key is not None) else {}

    def net(x_in, c_noise, labels=None, **kw):
      if augment_labels is not None and self._accepts_augment:
        kw["augment_labels"] = augment_labels
      return self.model.apply(variables, x_in, c_noise, labels, train=train, rngs=rngs, **kw)

    return net

  def denoiser(self, params, model_state=None, labels=None, **kw):
    """D(x, σ[B]) of the network with ``params`` (inference mode), labels closed over."""
    return dfn.precondition(self._net(params, model_state, train=False, **kw), self.schedule, labels=labels)

  @staticmethod
  def _data(batch):
    if "image" in batch:
      return batch["image"]
    if "x" in batch:
      return batch["x"]
    raise ValueError(f"diffusion batches need an 'image' or 'x' entry, got keys {sorted(batch)}.")

  def _labels(self, batch):
    if not self.class_conditional:
      return None
    if "label" not in batch:
      raise ValueError("task.class_conditional is set but the data set yields no 'label': use a "
                       "labelled data set or set task.class_conditional=False.")
    return batch["label"]

  # --- LossTask ----------------------------------------------------------------------------------
  def init_variables(self, key, example_batch) -> dict:
    x = jnp.asarray(self._data(example_batch))[:1]
    c_noise = jnp.zeros((1,), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32) if self.class_conditional else None
    k_params, k_drop = jax.random.split(key)
    variables = self.model.init({"params": k_params, "dropout": k_drop}, x, c_noise, labels)
    return jax.tree_util.tree_map(lambda v: v.astype(jnp.float32) if jnp.issubdtype(v.dtype, jnp.floating) else v,
                                  dict(variables))

  def per_example_loss(self, params, model_state, batch, key, train: bool):
    """The loss of each example [B] (float32) through the preconditioned denoiser."""
    y = self._data(batch)
    if self.dequantize:  # the 8-bit pixel k becomes (k + U[0, 1))/256 on [−1, 1] (NCSN's data)
      k = jnp.round((jnp.asarray(y, jnp.float32) + 1.0) * 127.5)
      y = dfn.dequantize(jax.random.fold_in(key, 0x0DE9), k, data_range=(-1.0, 1.0))
    augment_labels = batch.get("augment_labels")
    if self.augment is not None and train:
      k_loss, k_drop, k_aug = jax.random.split(key, 3)
      y, augment_labels = self.augment(k_aug, y)
    else:
      k_loss, k_drop = jax.random.split(key)
    net = self._net(params, model_state, train=train, dropout_key=k_drop, augment_labels=augment_labels)
    D = dfn.precondition(net, self.schedule)
    labels = self._labels(batch)
    name = self.loss_name
    kw = dict(labels=labels, preconditioned=True, **({"reduce": self.loss_reduce} if self.loss_reduce else {}))
    if name in ("edm", "vp", "subvp", "ve"):
      loss_schedule = self.schedule if name == self.precond_name else make_schedule(name, self.sigma_data)
      return dfn.denoising_loss(D, y, k_loss, schedule=loss_schedule, **kw)
    if name in ("ddpm_eps", "v", "x0"):
      prediction = {"ddpm_eps": "eps", "v": "v", "x0": "x0"}[name]
      return dfn.ddpm_loss(D, y, k_loss, schedule=self.schedule, prediction=prediction, **kw)
    if name == "fm":
      fm = self.schedule if self.precond_name == "fm" else make_schedule("fm")
      return dfn.flow_matching_loss(D, y, k_loss, schedule=fm, **kw)
    return dfn.dsm_loss(D, y, k_loss, sigmas=self.ncsn_sigmas, **kw)

  def loss(self, params, model_state, batch, key, train: bool):
    per = self.per_example_loss(params, model_state, batch, key, train)
    if "mask" in batch:
      m = jnp.asarray(batch["mask"], jnp.float32)
      loss = jnp.sum(per * m) / jnp.maximum(jnp.sum(m), 1.0)
    else:
      loss = jnp.mean(per)
    return loss, {}, model_state

  # --- sampling ----------------------------------------------------------------------------------
  def sigma_grid(self):
    """The σ grid (N + 1 values ending in 0) of the σ-space samplers."""
    grid = str(_get(self.config.task, "sigma_grid", "schedule"))
    if grid == "schedule":
      return self.schedule.sigma_steps(self.num_steps)
    if grid == "karras":
      t = self.config.task
      return dfn.karras_sigmas(self.num_steps, float(_get(t, "sigma_min", 0.002)),
                               float(_get(t, "sigma_max", 80.0)), float(_get(t, "rho", 7.0)))
    raise ValueError(f"task.sigma_grid={grid!r} is unknown: use 'schedule' or 'karras'.")

  def _sampler_options(self) -> dict:
    return _to_dict(self.config.task.get("sampler_options", None))

  def draw(self, params, model_state, latents, key, indices, labels=None):
    """Runs the configured sampler from unit-variance ``latents`` (pure; jit it)."""
    D = self.denoiser(params, model_state, labels=labels)
    opts = self._sampler_options()
    name = self.sampler_name
    if name == "ode":
      ts = self.schedule.time_steps(self.num_steps)
      fn = dfn.sample_ode
      if "indices" in inspect.signature(fn).parameters:
        opts.setdefault("indices", indices)
      return fn(D, latents, ts, self.schedule, key=key, **opts)
    x0 = None
    if name == "annealed_langevin":
      sigmas = jnp.concatenate([self.ncsn_sigmas, jnp.zeros((1,), jnp.float32)])
      if self.langevin_init == "uniform":  # NCSN's chains start from U(0, 1) images, i.e. U(−1, 1) here:
        x0 = jax.lax.erf(latents.astype(jnp.float32) / np.sqrt(2.0))  # 2Φ(z) − 1 ~ U(−1, 1)
    else:
      sigmas = self.sigma_grid()
    fn = getattr(dfn, f"sample_{name}")
    if "indices" in inspect.signature(fn).parameters:
      opts.setdefault("indices", indices)
    return fn(D, latents * sigmas[0] if x0 is None else x0.astype(latents.dtype), sigmas, key, **opts)

  @functools.cached_property
  def _draw_jit(self):
    return jax.jit(self.draw)

  def sample(self, state, key, n: int, start_index: int = 0):
    """n samples with the EMA params; sample i depends only on (key, start_index + i)."""
    if n <= 0:
      raise ValueError(f"the number of samples must be positive, got {n}.")
    shape = self._sample_shape(state)
    k_latent, k_sampler = jax.random.split(key)
    chunk = max(1, self.sample_batch_size)  # one compiled shape for every n; the last chunk is padded
    out = []
    for lo in range(0, n, chunk):
      idx = jnp.arange(chunk, dtype=jnp.int32) + start_index + lo  # the last chunk is padded
      latents = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(k_latent, i), shape, jnp.float32))(idx)
      labels = (idx % self.num_classes) if self.class_conditional else None
      x = self._draw_jit(state.ema_params, state.model_state, latents, k_sampler, idx, labels)
      out.append(np.asarray(x)[:min(chunk, n - lo)])
    x = np.concatenate(out, axis=0)
    return np.clip(x, -1.0, 1.0) if x.ndim == 4 else x

  def _sample_shape(self, state) -> tuple[int, ...]:
    shape = getattr(self, "_shape", None)
    if shape is None:
      from jaxgen import data as data_lib  # noqa: PLC0415 (grain only when a run samples)
      batch = data_lib.example_batch(self.config.data, 1)
      shape = tuple(np.asarray(self._data(batch)).shape[1:])
      self._shape = shape
    return shape

  # --- evaluation --------------------------------------------------------------------------------
  @functools.cached_property
  def _eval_loss_jit(self):
    return jax.jit(lambda p, ms, b, k: self.loss(p, ms, b, k, False)[0] * jnp.sum(b["mask"]))

  def eval_loss(self, state, key, batches) -> dict[str, float]:
    """Mean per-example loss over the (masked) eval batches, EMA params, fixed keys."""
    fn = self._eval_loss_jit
    total, count = 0.0, 0.0
    for i, b in enumerate(batches):
      b = {k: jnp.asarray(v) for k, v in b.items()}
      if "mask" not in b:
        b["mask"] = jnp.ones((self._data(b).shape[0],), jnp.float32)
      total += float(fn(state.ema_params, state.model_state, b, jax.random.fold_in(key, i)))
      count += float(jnp.sum(b["mask"]))
    return {"eval_loss": total / max(count, 1.0)} if count else {}

  def evaluate(self, state, key, batches) -> dict[str, float]:
    k_loss, k_sample, k_metric = jax.random.split(key, 3)
    metrics = self.eval_loss(state, k_loss, batches) if batches is not None else {}
    ev = self.config.task.get("eval", None)
    data_name = str(self.config.data.name).split("/")[0]
    if data_name == "digits" and bool(_get(ev, "fd", True)):
      metrics.update(self._digits_fd(state, k_sample, ev))
    elif data_name == "toy2d" and bool(_get(ev, "toy", True)):
      metrics.update(self._toy_metrics(state, k_sample, k_metric, ev, batches))
    elif bool(_get(ev, "fid", False)):
      metrics.update(self._fid(state, ev))
    return metrics

  def _digits_fd(self, state, key, ev) -> dict[str, float]:
    from jaxgen.eval import digits_fd  # noqa: PLC0415

    ref = digits_fd.DigitsFD(resolution=int(_get(self.config.data, "resolution", 0)))
    n = int(_get(ev, "num_samples", 0)) or ref.num_real
    samples = self.sample(state, key, n)
    return ref.metrics(samples, seed=int(_get(ev, "seed", 0)))

  def _toy_metrics(self, state, key, k_metric, ev, batches) -> dict[str, float]:
    from jaxgen import ot  # noqa: PLC0415
    from jaxgen.data import toy2d  # noqa: PLC0415

    toy = str(_get(self.config.data, "toy", "8gaussians"))
    n = int(_get(ev, "num_samples", 0)) or 2000
    samples = jnp.asarray(self.sample(state, key, n))
    k_ref, k_ref2, k_proj = jax.random.split(jax.random.fold_in(k_metric, 1), 3)
    exact = toy2d.sample(toy, k_ref, n)
    exact2 = toy2d.sample(toy, k_ref2, n)
    bw = float(_get(ev, "mmd_bandwidth", 0.0)) or float(_median_bandwidth(exact))
    out = {"sw1": float(ot.sliced_wasserstein(samples, exact, k_proj)),
           "sw1_exact": float(ot.sliced_wasserstein(exact2, exact, k_proj)),
           "mmd": float(mmd2(samples, exact, bw)), "mmd_exact": float(mmd2(exact2, exact, bw))}
    m = int(_get(ev, "likelihood_points", 0))
    if bool(_get(ev, "likelihood", False)) and m > 0:
      pts = jnp.asarray(toy2d.sample(toy, jax.random.fold_in(k_metric, 2), m))
      D = self.denoiser(state.ema_params, state.model_state)
      sched = self.schedule
      ll = dfn.log_likelihood(D, pts, sigma_min=float(_get(ev, "likelihood_sigma_min", 1e-3)),
                              sigma_max=float(_get(ev, "likelihood_sigma_max", sched.sigma_max)),
                              exact_trace=True, rtol=1e-4, atol=1e-4)
      out["log_likelihood"] = float(jnp.mean(ll))
      out["log_prob_exact"] = float(jnp.mean(toy2d.log_prob(toy, pts)))
    return out

  def _fid(self, state, ev) -> dict[str, float]:
    """FID of ``task.eval.num_samples`` samples (default 50k) with ``jaxgen.eval.fid.compute_fid``
    (Inception weights ``task.eval.inception_weights``, reference statistics ``task.eval.fid_ref``)."""
    from jaxgen.eval import fid  # noqa: PLC0415

    n = int(_get(ev, "num_samples", 0)) or 50_000
    value = fid.compute_fid(lambda k, m, start: self.sample(state, k, m, start), n, self.config,
                            batch_size=self.sample_batch_size, progress=False)
    return {"fid": float(value)}


def _median_bandwidth(x) -> jax.Array:
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


# --- experiment configs for the 2-D toys (used by experiments/toy2d/*.py) ------------------------
TOYS = ("8gaussians", "25gaussians", "swiss_roll", "checkerboard", "two_moons", "rings")
# σ_data per toy: the RMS coordinate of 100k exact samples (EDM's σ_d is the data's standard deviation).
TOY_SIGMA_DATA = {"8gaussians": 1.41, "25gaussians": 2.83, "swiss_roll": 0.92, "checkerboard": 2.31,
                  "two_moons": 1.44, "rings": 1.45}


def toy2d_config(arg, *, precond: str, loss: str, sampler: str, num_steps: int,
                 sampler_options: dict | None = None, default_toy: str = "8gaussians"):
  """The whole config of a toy2d diffusion experiment; ``arg``: comma-separated toy name and/or 'smoke'.

  toy_mlp (128 wide, 3 residual blocks), batch 512, 20k Adam steps (lr 1e-3, cosine to 5%, warm-up
  200), EMA 0.999; evaluation: sliced W1 and MMD² of 2000 samples against exact draws, and the
  PF-ODE log-likelihood of 256 exact points (exact trace) next to their true mean log-density.
  """
  from jaxgen import configs  # noqa: PLC0415 (ml_collections only for experiment files)

  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in TOYS + ("smoke",)]
  if bad:
    raise ValueError(f"unknown variant {bad[0]!r}: use a toy ({', '.join(TOYS)}) and/or smoke, "
                     "comma-separated (e.g. ':swiss_roll,smoke').")
  toy = next((p for p in parts if p in TOYS), default_toy)
  c = configs.base_config()
  c.batch_size = 512
  c.num_train_steps = 20_000
  c.log_every_steps = 1000
  c.checkpoint_every_steps = 10_000
  c.num_grid_samples = 2000
  c.data.name = "toy2d"
  c.data.toy = toy
  c.data.eval_split = "test"
  c.data.eval_size = 2048
  c.model.name = "toy_mlp"
  c.model.overrides.hidden = 128
  c.model.overrides.num_layers = 3
  c.model.overrides.emb_dim = 64
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.end_lr_factor = 0.05
  c.optimizer.warmup_steps = 200
  c.optimizer.ema_decay = 0.999
  c.task.name = "diffusion"
  c.task.precond = precond
  c.task.loss = loss
  c.task.sigma_data = TOY_SIGMA_DATA[toy]
  c.task.sampler = sampler
  c.task.num_steps = num_steps
  c.task.sampler_options = dict(sampler_options or {})
  c.task.sample_batch_size = 2000
  c.task.eval = dict(num_samples=2000, likelihood=True, likelihood_points=256)
  if "smoke" in parts:
    configs.smoke(c)
    c.num_grid_samples = 16
    c.data.eval_size = 32
    c.model.overrides.hidden = 16
    c.model.overrides.num_layers = 1
    c.model.overrides.emb_dim = 8
    c.task.num_steps = min(num_steps, 4)
    c.task.sample_batch_size = 64
    c.task.eval = dict(num_samples=64, likelihood=False, likelihood_points=0)
  return c
