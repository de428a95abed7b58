"""The GAN task: minimax / non-saturating / hinge / least-squares GANs, WGAN and WGAN-GP.

One trainer step = one critic (discriminator) update on one data batch; the generator updates inside
the same compiled step when its n_critic quota is complete (``jaxgen.gan.schedules``; a
``lax.cond``, so shapes are static and no Python branch depends on the step). ``state.step`` counts
critic updates, ``state.g_step`` generator updates.

Config (``task.*`` unless noted):
  model.name / model.overrides / model.dtype   the generator (registry name, e.g. ``gan_mlp_g``)
  critic.name / critic.overrides               the discriminator or critic (e.g. ``gan_mlp_d``)
  config.optimizer                             the generator's optimizer (and its EMA: ema_decay /
                                               ema_halflife_kimg, applied at generator updates)
  critic_optimizer                             the critic's optimizer block (same keys as
                                               ``config.optimizer``; TTUR = two learning rates)
  loss            minimax | non_saturating | hinge | least_squares | wasserstein
  latent_dim      z ~ N(0, I_latent_dim)
  n_critic, n_critic_schedule ('constant' | 'wgan': 100 critic iterations for the first 25
                  generator steps and every 500th, Arjovsky et al.'s code)
  gp_weight, gp_one_sided  λ of the WGAN-GP penalty on random interpolates (0: off)
  r1_weight       γ of R1 = γ/2·E_p‖∇D(x)‖² (0: off)
  clip_value      WGAN weight clipping of every critic parameter to [−c, c] after each update (0: off)
  generator_batch_size  latents per generator update (0: the data batch size; WGAN-GP's CIFAR
                  ResNet used 2× the critic batch)
  sample_batch_size     chunk size of ``sample``

Every ``task.*`` key and its default is a field of ``GanConfig`` (``jaxgen.config_schema.from_block``: an
unknown key is an error with a did-you-mean suggestion); ``jaxgen.recipes.gan.task_config`` writes them all
into an experiment's config so each can be overridden on the command line.

Evaluation is configured in ``config.evals`` (``jaxgen.eval.evaluators``): the task provides 'sample'
(G_ema), 'critic' (the critic in inference mode, for ``critic_w1``) and 'data', so toy2d, critic_w1,
digits_fd and fid apply.

State (``GanState``): step, g_step (int32), params / opt_state / ema_params / model_state of the
generator, critic_params / critic_opt_state / critic_state of the critic, rng (raw key data).

Per-step randomness: the trainer's key k → latents of the critic step, GP interpolation ε and the
generator step's latents, each a ``fold_in`` of k. Non-finite guard: if the critic loss or the
global norm of either gradient is not finite, the old state is returned and ``nonfinite`` is set.
Metrics: ``loss`` (critic loss incl. penalties), ``loss_g`` (the generator loss on the critic step's
fakes, before its update), ``d_loss`` (without penalties), ``d_real``/``d_fake`` (mean outputs),
``gp``, ``grad_norm_interp`` (mean ‖∇f(x̂)‖), ``r1``, ``w1_estimate`` (wasserstein: E f(x) − E f(G(z))
on the batch), ``g_updated``, ``grad_norm_d``, ``grad_norm_g``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import config_schema, gan, models, optim, sampling
from jaxgen.config_schema import option
from jaxgen.errors import ConfigError
from jaxgen.gan import schedules
from jaxgen.tasks import base

log = logging.getLogger("jaxgen")

__all__ = ["GanConfig", "CriticConfig", "GanState", "Task", "generator_steps", "apply_with_state"]


@dataclasses.dataclass(frozen=True)
class CriticConfig:
  """``task.critic``: the discriminator / critic network (a ``jaxgen.models`` name and its overrides)."""

  name: str = ""
  overrides: dict = option({})


@dataclasses.dataclass(frozen=True)
class GanConfig:
  """``config.task`` of the GAN task: every key with its default (stated only here)."""

  loss: str = "non_saturating"           # a name of jaxgen.gan.LOSSES
  latent_dim: int = option(2, min=1)
  critic: CriticConfig = option(CriticConfig())
  critic_optimizer: Any = None           # an optimizer block (jaxgen.optim); required
  n_critic: int = 1
  n_critic_schedule: str = "constant"    # constant | wgan
  gp_weight: float = 0.0
  gp_one_sided: bool = False
  r1_weight: float = 0.0
  clip_value: float = 0.0
  generator_batch_size: int = option(0, min=0)
  sample_batch_size: int = option(500, min=1)

  def __post_init__(self):
    gan.get_loss(self.loss)                                   # validates the name
    schedules.critic_iters(0, self.n_critic, self.n_critic_schedule)   # validates both
    for k in ("gp_weight", "r1_weight", "clip_value"):
      if getattr(self, k) < 0:
        raise ConfigError(f"task.{k}={getattr(self, k)} is negative: set it to 0 (off) or a positive value.")
    if not self.critic.name:
      raise ConfigError("task.critic.name is empty: set it to a registered discriminator (e.g. gan_mlp_d).")
    if self.critic_optimizer is None:
      raise ConfigError("task.critic_optimizer is missing: give the critic its own optimizer block "
                        "(same keys as config.optimizer).")


@flax.struct.dataclass
class GanState:
  step: jax.Array            # critic updates completed (= trainer steps)
  g_step: jax.Array          # generator updates completed
  params: Any                # generator
  opt_state: Any
  ema_params: Any
  model_state: Any           # generator's non-trainable collections (batch_stats)
  critic_params: Any
  critic_opt_state: Any
  critic_state: Any          # critic's non-trainable collections (batch_stats, spectral)
  rng: jax.Array


def generator_steps(num_critic_steps: int, n_critic: int, schedule: str) -> int:
  """Generator updates completed after ``num_critic_steps`` critic updates (inverse of C(g))."""
  lo, hi = 0, int(num_critic_steps) + 1
  while lo < hi:                              # largest g with C(g) ≤ num_critic_steps
    mid = (lo + hi + 1) // 2
    if int(schedules.critic_steps_before(mid, n_critic, schedule)) <= num_critic_steps:
      lo = mid
    else:
      hi = mid - 1
  return lo


def apply_with_state(module, params, state, x, train: bool):
  """``(output, state)`` of one forward pass; with ``train`` the non-trainable collections (``state``:
  batch_stats, spectral, ...) are mutable and returned updated (also the vqgan task's discriminator)."""
  variables = {"params": params, **state}
  if train and state:
    out, new = module.apply(variables, x, train=True, mutable=list(state))
    return out, {**state, **new}
  return module.apply(variables, x, train=train), state


class Task(base.Task):
  """GAN training for the one trainer (see the module docstring for config keys)."""

  EVAL_FUNCTIONS = ("sample", "critic", "data")

  def __init__(self, config):
    super().__init__(config)
    self.cfg = cfg = config_schema.from_block(GanConfig, config.task)
    self.loss_fn = gan.get_loss(cfg.loss)
    self.latent_dim = cfg.latent_dim
    self.n_critic = cfg.n_critic
    self.schedule = cfg.n_critic_schedule
    self.gp_weight, self.gp_one_sided = cfg.gp_weight, cfg.gp_one_sided
    self.r1_weight, self.clip_value = cfg.r1_weight, cfg.clip_value
    self.gen_batch = cfg.generator_batch_size
    self.sample_batch = cfg.sample_batch_size
    dtype = config_schema.lookup(config, "model.dtype", "float32")
    self.generator = self.create_model()
    self.critic = models.create(cfg.critic.name, dtype=dtype, **cfg.critic.overrides)
    total = int(config.num_train_steps)
    self.g_total = max(generator_steps(total, self.n_critic, self.schedule), 1)
    self.g_tx = optim.make_optimizer(config.optimizer, self.g_total)
    d_tx = optim.make_optimizer(cfg.critic_optimizer, total)
    self.d_tx = optax.chain(d_tx, gan.weight_clipping(self.clip_value)) if self.clip_value > 0 else d_tx

  # ------------------------------------------------------------------------------------- init
  def _real(self, batch):
    if "image" in batch:
      return batch["image"]
    if "x" in batch:
      return batch["x"]
    raise ConfigError(f"GAN batches need an 'image' or 'x' entry, got keys {sorted(batch)}: use an image "
                      "data set or data.name=toy2d.")

  def _latents(self, key, n):
    return jax.random.normal(key, (n, self.latent_dim), jnp.float32)

  def init(self, key, example_batch) -> GanState:
    kg, kd, ku = jax.random.split(key, 3)
    real = jnp.asarray(self._real(example_batch))
    gvars = dict(self.generator.init({"params": kg}, self._latents(ku, real.shape[0])))
    dvars = dict(self.critic.init({"params": kd}, real))
    gp, dp = gvars.pop("params"), dvars.pop("params")
    if self.gp_weight > 0 and "batch_stats" in dvars:
      raise ConfigError("the gradient penalty needs a critic without batch norm (it couples the "
                       "samples): use a critic with norm='layer' or 'none', or set task.gp_weight=0.")
    return GanState(step=jnp.zeros((), jnp.int32), g_step=jnp.zeros((), jnp.int32),
                    params=gp, opt_state=self.g_tx.init(gp), ema_params=gp, model_state=gvars,
                    critic_params=dp, critic_opt_state=self.d_tx.init(dp), critic_state=dvars,
                    rng=jax.random.key_data(jax.random.key(self.config.seed)))

  # ------------------------------------------------------------------------------- train step
  def _critic_fn(self, params, state):
    """Per-sample critic for penalties: inference mode (stored spectral-norm vectors, no stats)."""
    return lambda x: self.critic.apply({"params": params, **state}, x, train=False)

  def _critic_loss(self, dparams, dstate, real, fake, key):
    d_real, dstate = apply_with_state(self.critic, dparams, dstate, real, True)
    d_fake, dstate = apply_with_state(self.critic, dparams, dstate, fake, True)
    d_loss = self.loss_fn.d(d_real, d_fake)
    total = d_loss
    aux = dict(d_loss=d_loss, d_real=jnp.mean(d_real), d_fake=jnp.mean(d_fake),
               loss_g=self.loss_fn.g(d_fake))
    if self.loss_fn.wasserstein:
      aux["w1_estimate"] = jnp.mean(d_real) - jnp.mean(d_fake)
    if self.gp_weight > 0:
      gp, norms = gan.gradient_penalty(self._critic_fn(dparams, dstate), real, fake, key,
                                       one_sided=self.gp_one_sided, return_norms=True)
      total = total + self.gp_weight * gp
      aux.update(gp=gp, grad_norm_interp=jnp.mean(norms))
    if self.r1_weight > 0:
      r1 = gan.r1_penalty(self._critic_fn(dparams, dstate), real)
      total = total + 0.5 * self.r1_weight * r1
      aux["r1"] = r1
    return total, (dstate, aux)

  def _generator_update(self, state: GanState, dparams, dstate, key):
    n = self.gen_batch or None

    def g_loss(gparams, gstate, z):
      fake, gstate = apply_with_state(self.generator, gparams, gstate, z, True)
      d_fake, _ = apply_with_state(self.critic, dparams, dstate, fake, True)   # critic stats untouched
      return self.loss_fn.g(d_fake), gstate

    def run(operand):
      st, z = operand
      (_, gstate), grads = jax.value_and_grad(g_loss, has_aux=True)(st.params, st.model_state, z)
      updates, opt_state = self.g_tx.update(grads, st.opt_state, st.params)
      params = optax.apply_updates(st.params, updates)
      beta = optim.ema_decay(self.config.optimizer, st.g_step, self.config.batch_size)
      ema = optim.ema_update(st.ema_params, params, beta)
      g_norm = optax.global_norm(grads)
      return params, opt_state, ema, gstate, jnp.isfinite(g_norm), g_norm

    def skip(operand):
      st, _ = operand
      return (st.params, st.opt_state, st.ema_params, st.model_state, jnp.bool_(True),
              jnp.zeros((), jnp.float32))

    return run, skip, n

  def train_step(self, state: GanState, batch, key):
    real = jnp.asarray(self._real(batch), jnp.float32)
    bsz = real.shape[0]
    k_z, k_gp, k_g = (jax.random.fold_in(key, i) for i in range(3))
    # critic update on one batch
    z = self._latents(k_z, bsz)
    fake, gstate = apply_with_state(self.generator, state.params, state.model_state, z, True)
    fake = jax.lax.stop_gradient(fake)
    (total, (dstate, aux)), dgrads = jax.value_and_grad(self._critic_loss, has_aux=True)(
        state.critic_params, state.critic_state, real, fake, k_gp)
    dupdates, dopt = self.d_tx.update(dgrads, state.critic_opt_state, state.critic_params)
    dparams = optax.apply_updates(state.critic_params, dupdates)
    mid = state.replace(step=state.step + 1, model_state=gstate, critic_params=dparams,
                        critic_opt_state=dopt, critic_state=dstate)
    # generator update when its critic quota is complete
    due = schedules.generator_update_due(state.step, state.g_step, self.n_critic, self.schedule)
    run, skip, n = self._generator_update(mid, dparams, dstate, k_g)
    z = self._latents(k_g, n or bsz)
    params, gopt, ema, gstate2, g_ok, g_norm = jax.lax.cond(due, run, skip, (mid, z))
    new = mid.replace(g_step=state.g_step + due.astype(jnp.int32), params=params, opt_state=gopt,
                      ema_params=ema, model_state=gstate2)
    # one reduction per gradient (a NaN/Inf anywhere makes the global norm non-finite), as LossTask:
    # per-leaf isfinite reductions make XLA's compiles of conv nets several times slower
    d_norm = optax.global_norm(dgrads)
    ok = jnp.isfinite(total) & jnp.isfinite(d_norm) & g_ok
    new = base.tree_where(ok, new, state)
    metrics = dict(aux)
    metrics.update(loss=total, nonfinite=~ok, g_updated=due.astype(jnp.float32),
                   grad_norm_d=d_norm, grad_norm_g=g_norm,
                   learning_rate=optim.make_schedule(self.config.optimizer, self.g_total)(state.g_step),
                   learning_rate_critic=optim.make_schedule(self.cfg.critic_optimizer,
                                                            int(self.config.num_train_steps))(state.step))
    return new, metrics

  # ----------------------------------------------------------------------------------- sample
  @functools.cached_property
  def _generate(self):
    def gen(params, model_state, key, idx):
      idx = sampling.shard_batch_dim(idx)   # split over the mesh of jax.set_mesh, when one is set
      z = sampling.shard_batch_dim(
          jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (self.latent_dim,)))(idx))
      return sampling.shard_batch_dim(self.generator.apply({"params": params, **model_state}, z, train=False))
    return jax.jit(gen)

  def sample(self, state: GanState, key, n: int, start_index: int = 0):
    """G_ema(z_i), z_i = N(0, I) drawn with ``fold_in(key, start_index + i)``; chunks of sample_batch_size
    (rounded up to a multiple of the batch devices of the mesh set by ``jax.set_mesh``, over which each
    chunk is split).

    Images come out in [−1, 1] (tanh); 2-D toy points are unbounded.
    """
    n = int(n)
    if n <= 0:
      raise ConfigError(f"sample needs a positive number of samples, got {n}.")
    chunk = sampling.round_up(max(1, min(self.sample_batch, n)))
    out = []
    for s in range(0, n, chunk):
      idx = np.arange(start_index + s, start_index + s + chunk, dtype=np.int32)   # fixed chunk shape
      out.append(sampling.to_host(self._generate(state.ema_params, state.model_state, key, jnp.asarray(idx))))
    return np.concatenate(out)[:n]

  def sample_shape(self, state: GanState) -> tuple[int, ...]:
    """The shape of one sample, traced abstractly (``jax.eval_shape``: no drawing)."""
    out = jax.eval_shape(self._generate, state.ema_params, state.model_state, jax.random.key(0),
                         jnp.zeros((1,), jnp.int32))
    return tuple(out.shape[1:])

  # --------------------------------------------------------------------------------- evaluate
  def eval_functions(self, state: GanState) -> dict:
    """sample (G_ema), critic (f(x) -> [B], inference mode) and data (data set name, toy, resolution)."""
    data = self.config.data
    name = str(config_schema.lookup(data, "name", "")).split("/")[0]
    facts = dict(name=name, toy=str(config_schema.lookup(data, "toy", "")) if name == "toy2d" else "",
                 resolution=int(config_schema.lookup(data, "resolution", 0)))
    return dict(sample=lambda key, n, start_index=0: self.sample(state, key, n, start_index),
                critic=self._critic_fn(state.critic_params, state.critic_state), data=facts)
