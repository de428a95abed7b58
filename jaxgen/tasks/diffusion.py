"""The diffusion task (``task.name = 'diffusion'``): EDM's framework on top of the one trainer.

A registry network F (``model.name``, ``model.overrides``, compute dtype ``model.dtype``, params
float32) becomes the denoiser D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise) with the preconditioning
of ``task.precond`` (EDM Table 1; ``jaxgen.diffusion.precondition``), and is trained with the loss
``task.loss``, a name of ``jaxgen.diffusion.LOSSES`` (the library's and the task's one vocabulary). Every
loss is computed through D (``preconditioned=True`` in ``jaxgen.diffusion.losses``), so any loss can
train any parameterization, as in EDM's official code, where loss and preconditioning are separate
choices:

  task.precond  edm | vp | subvp | ve | iddpm | fm | ncsn | ddpm   (the schedule: σ(t), s(t), c_*, sampling
                grid; subvp is score_sde's sub-VP SDE in EDM's frame, ``jaxgen.diffusion.SubVPSchedule``;
                ncsn a score network s(x, i) on the dsm ladder, D = x + σ²s, c_noise = level index i,
                ``jaxgen.diffusion.NCSNSchedule``, e.g. the ``ncsn_cifar10`` RefineNet; ddpm the discrete
                DDPM schedule, ``jaxgen.diffusion.DDPMSchedule`` with T = 1000 steps and the β schedule
                ``task.ddpm_schedule`` ('linear': β 1e-4 → 0.02, Ho et al.; 'cosine': Nichol & Dhariwal),
                the network F(x_t, j) called with the integer step j and predicting what ``task.loss``
                names when it is eps | v | x0, else ε)
  task.loss     edm | vp | subvp | ve    λ(σ)·‖D(y + σn; σ) − y‖² with σ ~ p_train of that column of
                Table 1 (subvp: score_sde's continuous sub-VP loss, t ~ U(ε_t, 1), λ = 1/σ²)
                eps | v | x0   prediction MSE, σ ~ p_train of ``task.precond``'s schedule (eps with
                                precond ddpm: DDPM's L_simple; the old name ``ddpm_eps`` is refused)
                fm              velocity MSE ‖v̂ − (ε − y)‖², t ~ U(t_eps, 1) with t_eps = 1e-5, or
                                t = sigmoid(N(0, 1)) clipped to [t_eps, 1 − t_eps] with
                                ``task.fm_p_train='logit_normal'`` (read when ``task.precond`` is fm;
                                ``jaxgen.diffusion.FlowMatchingSchedule``)
                dsm             NCSN's ½σ²‖s(y + σn) + n/σ‖² over a geometric σ ladder
                                (``task.ncsn_sigma_max`` → ``task.ncsn_sigma_min``, ``task.ncsn_levels``)

``task.dequantize`` replaces each 8-bit image y by its uniform dequantization (k + U[0, 1))/256 mapped
to [−1, 1] (k = the pixel value; ``jaxgen.diffusion.dequantize``) in the training and eval losses, as
NCSN's training data. ``task.loss_reduce`` sums ('sum', EDM's and NCSN's convention) or averages ('mean',
DDPM's and score_sde's ``reduce_mean``) each example's squared error over its dimensions; unset, each loss
keeps its default (sum for edm/vp/subvp/ve/dsm, mean for eps/v/x0/fm). ``task.sigma_data`` (0.5) is EDM's
σ_d; ``task.class_conditional`` feeds ``batch['label']`` (the model needs ``num_classes``; it is filled in
from ``task.num_classes`` when absent). Dropout uses its own key, split from the step key.

Every ``task.*`` key, its default and its rule is a field of ``DiffusionConfig`` (read with
``jaxgen.config_schema.from_block``: an unknown key is an error with a did-you-mean suggestion).

``task.augment`` (a dict of ``jaxgen.diffusion.AugmentPipe`` fields; absent, None or p=0: off) is EDM's
non-leaking augmentation: in training each clean image y is augmented on device (its own key, split from
the step key) before noise is added, and the network gets the pipe's labels as ``augment_labels``;
``model.overrides.augment_dim`` is set to the pipe's ``label_dim`` (an error if set to another value).
EDM config F: CIFAR-10 ``dict(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1,
translate_frac=1)`` (9 labels), FFHQ / AFHQv2 64² the same with p=0.15. The eval loss and sampling use
clean images and no augmentation labels (zeros, as EDM's sampler). Without the pipe,
``batch['augment_labels']`` goes to the network when present.

Sampling (``sample``) uses the EMA params and the sampler ``task.sampler``:

  euler | heun | edm | ddim | ancestral | euler_maruyama | pc | dpmpp_2m | pf_ode | ode | euler_ancestral |
  dpm_2 | dpm_2_ancestral | lms | dpmpp_2s_ancestral | dpmpp_sde | dpmpp_2m_sde | dpmpp_3m_sde | dpm_fast |
  dpm_adaptive | unipc | ipndm | deis
      (``jaxgen.diffusion.sample_<name>``; dpm_fast and dpm_adaptive use only the grid's two ends)
      on the σ grid ``task.sigma_grid``: 'schedule' (the σ(t_i) of ``task.precond``'s own EDM Table 1
      discretization), 'karras' (ρ-spaced between ``task.sigma_min`` and ``task.sigma_max``) or, with
      task.precond 'ddpm', 'ddim_uniform' | 'ddim_quadratic' (DDIM's official sub-sequences τ of the T
      steps, ``range(0, T, T//N)`` and ⌊linspace(0, √(0.8T), N)²⌋: ``DDPMSchedule.ddim_steps``); ode is
      EDM's general Algorithm 1 in ``task.precond``'s own time variable (σ(t), s(t)) on that grid;
  ddpm  DDPM's ancestral sampler with ``task.sampler_options.variance`` 'beta_tilde' (β̃_t) or 'beta' (β_t)
      (``jaxgen.diffusion.samplers_ddpm.sample_ddpm``; on the 'schedule' grid of precond 'ddpm' with
      num_steps = T: DDPM's 1000 steps);
  annealed_langevin   NCSN's ladder (the dsm ladder) with ``task.sampler_options``; chains start at
      latents·σ_1, or with ``task.langevin_init='uniform'`` at U(−1, 1) images (2Φ(latent) − 1, NCSN's
      official sampler's U(0, 1) start on jaxgen's [−1, 1] scale).

``task.num_steps`` sets N; ``task.sampler_options`` (a dict) goes to the sampler as keywords (e.g.
s_churn, eta, snr, solver). Every sampler is called with the one signature of ``jaxgen.diffusion``,
``sample_<name>(D, x_start, sigmas, key, indices=..., **options)`` with x_start = latents·σ_0. Samples
are drawn in chunks of ``task.sample_batch_size`` (one compiled program whatever n; the last chunk is
padded). Sample i starts from latents drawn with ``fold_in(key, start_index + i)`` and stochastic
samplers use global indices start_index + i, so a sample depends only on its index;
labels of class-conditional samples are (start_index + i) mod num_classes. Images are clipped to
[−1, 1]; 2-D points are returned as they are.

Evaluation is configured in ``config.evals`` (``jaxgen.eval.evaluators``): the task provides 'sample'
(EMA params), 'denoise' (D of the EMA params), 'loss' (the per-example eval-mode loss, for
``eval_loss``) and 'data' (data set name, toy, resolution, the schedule's σ_max), so digits_fd, toy2d,
toy2d_likelihood, fid, bpd and eval_loss all apply.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import config_schema
from jaxgen import diffusion as dfn
from jaxgen import models
from jaxgen import sampling
from jaxgen.config_schema import option
from jaxgen.errors import ConfigError
from jaxgen.tasks import base

PRECONDS = ("edm", "vp", "subvp", "ve", "iddpm", "fm", "ncsn", "ddpm")
# ``task.loss``: the names of ``jaxgen.diffusion.LOSSES`` (one vocabulary for the library and the task).
LOSSES = ("edm", "vp", "subvp", "ve", "eps", "v", "x0", "fm", "dsm")
RENAMED_LOSSES = {"ddpm_eps": "eps"}
SAMPLERS = ("euler", "heun", "edm", "ddim", "ancestral", "euler_maruyama", "pc", "dpmpp_2m", "pf_ode",
            "ode", "annealed_langevin", "ddpm", "euler_ancestral", "dpm_2", "dpm_2_ancestral", "lms",
            "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "dpm_fast", "dpm_adaptive",
            "unipc", "ipndm", "deis")
# ``task.sigma_grid``: the schedule's own steps, EDM's ρ-spaced grid, or (task.precond 'ddpm') DDIM's
# official sub-sequences of the T steps (``DDPMSchedule.ddim_steps(num_steps, 'uniform' | 'quadratic')``).
SIGMA_GRIDS = ("schedule", "karras", "ddim_uniform", "ddim_quadratic")


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
  """``config.task`` of the diffusion task: every key with its default (stated only here) and its rule;
  built by ``jaxgen.config_schema.from_block`` (an unknown key is a ConfigError with did-you-mean)."""

  precond: str = option("edm", choices=PRECONDS)
  loss: str = "edm"                      # one of LOSSES (checked below: a renamed name says so)
  loss_reduce: str | None = None         # 'sum' | 'mean' | None (the loss's own default)
  sigma_data: float = option(0.5, above=0.0)
  ddpm_schedule: str = option("linear", choices=("linear", "cosine"))   # task.precond='ddpm' β schedule
  fm_p_train: str = option("uniform", choices=("uniform", "logit_normal"))
  ncsn_sigma_max: float = option(2.0, above=0.0)
  ncsn_sigma_min: float = option(0.02, above=0.0)
  ncsn_levels: int = option(10, min=1)
  class_conditional: bool = False
  num_classes: int = option(10, min=1)
  dequantize: bool = False
  augment: dict | None = None            # jaxgen.diffusion.AugmentPipe fields; None / p=0: off
  sampler: str = option("heun", choices=SAMPLERS)
  num_steps: int = option(18, min=1)
  sampler_options: dict = option({})
  sigma_grid: str = option("schedule", choices=SIGMA_GRIDS)
  sigma_min: float = option(0.002, above=0.0)     # the 'karras' grid
  sigma_max: float = option(80.0, above=0.0)
  rho: float = option(7.0, above=0.0)
  langevin_init: str = "gaussian"        # annealed_langevin start: 'gaussian' | 'uniform'
  sample_batch_size: int = option(256, min=1)

  def __post_init__(self):
    if self.loss in RENAMED_LOSSES:
      new = RENAMED_LOSSES[self.loss]
      raise ConfigError(f"task.loss={self.loss!r} was renamed to {new!r} (the loss names of "
                        f"jaxgen.diffusion.LOSSES): set --config.task.loss={new}.")
    if self.loss not in LOSSES:
      close = difflib.get_close_matches(self.loss, LOSSES, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ConfigError(f"task.loss={self.loss!r} is unknown{hint}: use one of {', '.join(LOSSES)}.")
    if self.langevin_init not in ("gaussian", "uniform"):
      raise ConfigError(f"task.langevin_init={self.langevin_init!r} is unknown: use 'gaussian' (latents·σ_1) "
                        "or 'uniform' (NCSN's U(−1, 1) start).")
    if self.sigma_grid.startswith("ddim_") and self.precond != "ddpm":
      raise ConfigError(f"task.sigma_grid={self.sigma_grid!r} is a sub-sequence of the discrete DDPM steps: "
                        f"set task.precond='ddpm' (got {self.precond!r}) or use sigma_grid 'schedule' | "
                        "'karras'.")
    if self.loss_reduce not in (None, "sum", "mean"):
      raise ConfigError(f"task.loss_reduce={self.loss_reduce!r} is unknown: use 'sum' (EDM, NCSN), 'mean' "
                        "(DDPM, score_sde's reduce_mean) or leave it unset for the loss's own default.")

  @property
  def ncsn_ladder(self) -> tuple[float, float, int]:
    return (self.ncsn_sigma_max, self.ncsn_sigma_min, self.ncsn_levels)


def make_schedule(name: str, sigma_data: float = 0.5, fm_p_train: str = "uniform",
                  ncsn_ladder: tuple = (2.0, 0.02, 10), ddpm_schedule: str = "linear",
                  ddpm_prediction: str = "eps"):
  """The schedule object of a ``task.precond`` / ``task.loss`` name (EDM Table 1 constants;
  ``ncsn_ladder``: NCSN's (σ_max, σ_min, L); ``ddpm_schedule``, ``ddpm_prediction``: the
  ``DDPMSchedule``'s β schedule and network parameterization)."""
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
  if name == "ddpm":
    return dfn.DDPMSchedule(kind=ddpm_schedule, prediction=ddpm_prediction)
  raise ConfigError(f"task.precond={name!r} is unknown: use one of {', '.join(PRECONDS)}.")


def make_augment_pipe(cfg) -> dfn.AugmentPipe | None:
  """The augmentation pipe of ``task.augment``, or None when it is off (absent, None, p=0 or no op)."""
  d = config_schema.to_dict(cfg)
  if not d:
    return None
  pipe = dfn.AugmentPipe.from_config(d)
  return pipe if pipe.active else None




class Task(base.LossTask):
  """See the module docstring."""

  EVAL_FUNCTIONS = ("sample", "denoise", "loss", "data")

  def __init__(self, config):
    super().__init__(config)
    self.cfg = cfg = config_schema.from_block(DiffusionConfig, config.task)
    prediction = cfg.loss if cfg.loss in ("eps", "v", "x0") else "eps"
    self.schedule = make_schedule(cfg.precond, cfg.sigma_data, cfg.fm_p_train, cfg.ncsn_ladder,
                                  cfg.ddpm_schedule, prediction)
    self.ncsn_sigmas = dfn.ncsn_sigmas(*cfg.ncsn_ladder)  # the dsm loss's and annealed Langevin's ladder
    self._loss_options = self._loss_schedule_options()
    model_name = config_schema.lookup(config, "model.name", "")
    overrides = config_schema.to_dict(config_schema.lookup(config, "model.overrides", None))
    self.augment = make_augment_pipe(cfg.augment)
    if self.augment is not None:
      if overrides.get("augment_dim", self.augment.label_dim) != self.augment.label_dim:
        raise ConfigError(f"model.overrides.augment_dim={overrides['augment_dim']} but task.augment yields "
                          f"{self.augment.label_dim} labels: remove augment_dim (it is set automatically).")
      overrides["augment_dim"] = self.augment.label_dim
    if cfg.class_conditional:
      overrides.setdefault("num_classes", cfg.num_classes)
    dtype = str(config_schema.lookup(config, "model.dtype", "float32"))
    if dtype != "float32":
      overrides["dtype"] = dtype
    if not model_name:
      raise ConfigError("model.name is empty: set it to a denoiser network, e.g. 'small_unet' or 'toy_mlp'.")
    self.model = models.create(model_name, **overrides)
    if cfg.precond == "ncsn" and getattr(self.model, "num_levels", cfg.ncsn_levels) != cfg.ncsn_levels:
      raise ConfigError(f"{model_name} has num_levels={self.model.num_levels} but task.ncsn_levels="
                        f"{cfg.ncsn_levels}: set model.overrides.num_levels to task.ncsn_levels.")
    self._accepts_augment = "augment_labels" in inspect.signature(type(self.model).__call__).parameters
    if self.augment is not None and not self._accepts_augment:
      raise ConfigError(f"task.augment needs a network that takes augment_labels; {model_name} does "
                        "not: use e.g. ddpmpp_cifar10 or small_unet, or remove task.augment.")

  def _loss_schedule_options(self) -> dict:
    """The ``schedule`` and ``sigmas`` keywords of ``jaxgen.diffusion.LOSSES[task.loss]`` (each loss reads
    the one it uses): the denoising losses sample σ from their own EDM Table 1 column (the
    preconditioning's schedule when it is the same), the prediction losses from the preconditioning's
    schedule, fm from the flow, dsm from the NCSN ladder."""
    cfg = self.cfg
    schedule = self.schedule
    if cfg.loss in ("edm", "vp", "subvp", "ve") and cfg.loss != cfg.precond:
      schedule = make_schedule(cfg.loss, cfg.sigma_data)
    elif cfg.loss == "fm" and cfg.precond != "fm":
      schedule = make_schedule("fm")
    return {"schedule": schedule, "sigmas": self.ncsn_sigmas}

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
    raise ConfigError(f"diffusion batches need an 'image' or 'x' entry, got keys {sorted(batch)}: use an "
                      "image data set or data.name=toy2d.")

  def _labels(self, batch):
    if not self.cfg.class_conditional:
      return None
    if "label" not in batch:
      raise ConfigError("task.class_conditional is set but the data set yields no 'label': use a "
                        "labelled data set or set task.class_conditional=False.")
    return batch["label"]

  # --- LossTask ----------------------------------------------------------------------------------
  def init_variables(self, key, example_batch) -> dict:
    x = jnp.asarray(self._data(example_batch))[:1]
    c_noise = jnp.zeros((1,), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32) if self.cfg.class_conditional else None
    k_params, k_drop = jax.random.split(key)
    variables = self.model.init({"params": k_params, "dropout": k_drop}, x, c_noise, labels)
    return jax.tree_util.tree_map(lambda v: v.astype(jnp.float32) if jnp.issubdtype(v.dtype, jnp.floating) else v,
                                  dict(variables))

  def per_example_loss(self, params, model_state, batch, key, train: bool):
    """The loss of each example [B] (float32) through the preconditioned denoiser:
    ``jaxgen.diffusion.LOSSES[task.loss]`` with ``preconditioned=True``."""
    y = self._data(batch)
    if self.cfg.dequantize:  # the 8-bit pixel k becomes (k + U[0, 1))/256 on [−1, 1] (NCSN's data)
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
    reduce = {"reduce": self.cfg.loss_reduce} if self.cfg.loss_reduce else {}
    return dfn.LOSSES[self.cfg.loss](D, y, k_loss, labels=self._labels(batch), preconditioned=True,
                                     **self._loss_options, **reduce)

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
    """The σ grid (N + 1 values ending in 0) of the samplers other than annealed Langevin."""
    cfg = self.cfg
    if cfg.sigma_grid == "karras":
      return dfn.karras_sigmas(cfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    if cfg.sigma_grid.startswith("ddim_"):  # DDIM's official τ on the T steps (precond 'ddpm', checked)
      return self.schedule.ddim_steps(cfg.num_steps, cfg.sigma_grid[len("ddim_"):])
    return self.schedule.sigma_steps(cfg.num_steps)

  def draw(self, params, model_state, latents, key, indices, labels=None):
    """Runs the configured sampler from unit-variance ``latents`` (pure; jit it). Every sampler is called
    the same way, ``sample_<name>(D, x_start, sigmas, key, indices=indices, **task.sampler_options)``
    (``ode`` also gets the schedule whose time it integrates in)."""
    D = self.denoiser(params, model_state, labels=labels)
    opts = dict(self.cfg.sampler_options)
    name = self.cfg.sampler
    if name == "annealed_langevin":
      sigmas = jnp.concatenate([self.ncsn_sigmas, jnp.zeros((1,), jnp.float32)])
    else:
      sigmas = self.sigma_grid()
    if name == "annealed_langevin" and self.cfg.langevin_init == "uniform":
      # NCSN's chains start from U(0, 1) images, i.e. U(−1, 1) here: 2Φ(z) − 1 ~ U(−1, 1)
      x = jax.lax.erf(latents.astype(jnp.float32) / np.sqrt(2.0)).astype(latents.dtype)
    else:
      x = latents * sigmas[0]
    if name == "ode":
      opts["schedule"] = self.schedule
    return getattr(dfn, f"sample_{name}")(D, x, sigmas, key, indices=indices, **opts)

  def draw_indices(self, params, model_state, key, idx, shape):
    """The samples of the global indices ``idx`` (pure; jit it with ``shape`` static): latents from
    ``fold_in(k_latent, i)``, labels ``i mod num_classes``. Under ``jax.set_mesh`` the per-sample arrays
    are split over the mesh's batch axes (``jaxgen.sampling.shard_batch_dim``), so every device draws
    its slice of the chunk; the values do not depend on the split."""
    k_latent, k_sampler = jax.random.split(key)
    idx = sampling.shard_batch_dim(idx)
    latents = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(k_latent, i), shape, jnp.float32))(idx)
    latents = sampling.shard_batch_dim(latents)
    labels = (idx % self.cfg.num_classes) if self.cfg.class_conditional else None
    return sampling.shard_batch_dim(self.draw(params, model_state, latents, k_sampler, idx, labels))

  @functools.cached_property
  def _draw_indices_jit(self):
    return jax.jit(self.draw_indices, static_argnums=(4,))

  def sample(self, state, key, n: int, start_index: int = 0):
    """n samples with the EMA params; sample i depends only on (key, start_index + i). Chunks of
    ``task.sample_batch_size`` (rounded up to a multiple of the ambient mesh's batch devices) are drawn
    split over the mesh set by ``jax.set_mesh`` (the trainer sets it), else on one device."""
    if n <= 0:
      raise ConfigError(f"the number of samples must be positive, got {n}.")
    shape = self._sample_shape(state)
    chunk = sampling.round_up(self.cfg.sample_batch_size)  # one compiled shape for every n
    out = []
    for lo in range(0, n, chunk):
      idx = np.arange(chunk, dtype=np.int32) + np.int32(start_index + lo)  # the last chunk is padded
      x = self._draw_indices_jit(state.ema_params, state.model_state, key, jnp.asarray(idx), shape)
      out.append(sampling.to_host(x)[:min(chunk, n - lo)])
    x = np.concatenate(out, axis=0)
    return np.clip(x, -1.0, 1.0) if x.ndim == 4 else x

  def sample_shape(self, state) -> tuple[int, ...]:
    """The shape of one sample (no drawing): what ``jaxgen.sampling`` checks the free disk space with."""
    return self._sample_shape(state)

  def _sample_shape(self, state) -> tuple[int, ...]:
    shape = getattr(self, "_shape", None)
    if shape is None:
      from jaxgen import data as data_lib  # noqa: PLC0415 (grain only when a run samples)
      batch = data_lib.example_batch(self.config.data, 1)
      shape = tuple(np.asarray(self._data(batch)).shape[1:])
      self._shape = shape
    return shape

  # --- evaluation (config.evals; jaxgen.eval.evaluators) -------------------------------------------
  @functools.cached_property
  def _eval_loss_jit(self):
    return jax.jit(lambda p, ms, b, k: self.per_example_loss(p, ms, b, k, False))

  def eval_functions(self, state) -> dict:
    """sample (EMA params), denoise (D of the EMA params), loss (per-example eval-mode loss, EMA params)
    and data (data set name, toy, resolution, and the schedule's σ_max)."""
    data = self.config.data
    name = str(config_schema.lookup(data, "name", "")).split("/")[0]
    facts = dict(name=name, toy=str(config_schema.lookup(data, "toy", "")) if name == "toy2d" else "",
                 resolution=int(config_schema.lookup(data, "resolution", 0)),
                 sigma_max=float(self.schedule.sigma_max))

    def loss(batch, key):
      b = {k: jnp.asarray(v) for k, v in batch.items() if k != "mask"}
      return self._eval_loss_jit(state.ema_params, state.model_state, b, key)

    return dict(sample=lambda key, n, start_index=0: self.sample(state, key, n, start_index),
                denoise=self.denoiser(state.ema_params, state.model_state), loss=loss, data=facts)
