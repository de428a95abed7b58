"""The GAN task: minimax / non-saturating / hinge / least-squares GANs, WGAN and WGAN-GP.

One trainer step = one critic (discriminator) update on one data batch; the generator updates inside
the same compiled step when its n_critic quota is complete (``jaxgen.gan.schedules``; a
``lax.cond``, so shapes are static and no Python branch depends on the step). ``state.step`` counts
critic updates, ``state.g_step`` generator updates.

Config (``task.*`` unless noted):
  model.name / model.overrides / model.dtype   the generator (registry name, e.g. ``gan_mlp_g``)
  critic.name / critic.overrides               the discriminator or critic (e.g. ``gan_mlp_d``)
  optimizer                                    the generator's optimizer (and its EMA: ema_decay /
                                               ema_halflife_kimg, applied at generator updates)
  critic_optimizer                             the critic's optimizer block (same keys as
                                               ``optimizer``; TTUR = two learning rates)
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
  eval.*          see ``evaluate``

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

import functools
import logging
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import gan, models, optim, ot
from jaxgen.gan import schedules
from jaxgen.tasks import base

log = logging.getLogger("jaxgen")

__all__ = ["GanState", "Task", "mode_coverage", "generator_steps", "task_config", "toy2d_variants",
           "toy2d_base", "toy2d_smoke"]


def task_config(c, *, critic: str, loss: str = "non_saturating", latent_dim: int = 2):
  """Fills ``c.task`` of a ``jaxgen.configs.base_config()`` with the GAN task's keys and defaults.

  The critic optimizer starts as a copy of ``c.optimizer``; experiments then set what differs.
  """
  import copy  # noqa: PLC0415

  import ml_collections  # noqa: PLC0415

  t = c.task
  t.name = "gan"
  t.loss = loss
  t.latent_dim = latent_dim
  t.critic = ml_collections.ConfigDict(dict(name=critic, overrides=ml_collections.ConfigDict()))
  t.critic_optimizer = copy.deepcopy(c.optimizer)
  t.n_critic = 1
  t.n_critic_schedule = "constant"
  t.gp_weight = 0.0
  t.gp_one_sided = False
  t.r1_weight = 0.0
  t.clip_value = 0.0
  t.generator_batch_size = 0
  t.sample_batch_size = 500
  t.eval = ml_collections.ConfigDict(dict(
      num_samples=0,          # 0: the task's default (toy2d 2500, digits the test-split size, FID 50k)
      lp_samples=1000, num_projections=256, hq_num_std=3.0, min_mode_count=20,
      fid=False, inception_weights="", fid_ref="", fid_batch_size=500))
  return c

# --- 2-D toy experiment builders (shared by experiments/gan/toy2d_*.py) -------------------------
TOYS = ("8gaussians", "25gaussians", "swiss_roll")


def toy2d_variants(arg, *, default: str, extra: tuple = ()):
  """Parses a comma-separated variant ('25gaussians,smoke', ...): returns (toy, parts)."""
  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in TOYS + tuple(extra) + ("smoke",)]
  if bad:
    raise ValueError(f"unknown variant {bad[0]!r}: use one of {', '.join(TOYS + tuple(extra))} and/or "
                     "smoke (comma-separated).")
  return next((p for p in parts if p in TOYS), default), parts


def toy2d_base(toy: str):
  """The run-length, data and generator keys every 2-D toy GAN experiment shares."""
  from jaxgen.configs import base_config  # noqa: PLC0415

  c = base_config()
  c.batch_size = 256
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.sample_every_steps = 5000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 1000
  c.data.name = "toy2d"
  c.data.toy = toy
  c.model.name = "gan_mlp_g"
  return c


def toy2d_smoke(c):
  """The ``:smoke`` variant of a 2-D toy GAN experiment: tiny MLPs, cheap evaluation."""
  from jaxgen.configs import smoke  # noqa: PLC0415

  smoke(c)
  c.num_grid_samples = 16
  c.model.overrides.hidden = 16
  c.task.critic.overrides.hidden = 16
  c.task.n_critic = min(c.task.n_critic, 2)
  c.task.eval.num_samples = 64
  c.task.eval.lp_samples = 64
  c.task.eval.num_projections = 16
  return c



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


def _apply(module, params, state, x, train: bool):
  """Forward pass; with ``train`` the non-trainable collections are mutable and returned updated."""
  variables = {"params": params, **state}
  if train and state:
    out, new = module.apply(variables, x, train=True, mutable=list(state))
    return out, {**state, **new}
  return module.apply(variables, x, train=train), state


def _block(cfg) -> dict:
  return dict(cfg) if cfg is not None else {}


class Task(base.Task):
  """GAN training for the one trainer (see the module docstring for config keys)."""

  def __init__(self, config):
    super().__init__(config)
    t = config.task
    self.loss_fn = gan.get_loss(str(t.get("loss", "non_saturating")))
    self.latent_dim = int(t.get("latent_dim", 2))
    self.n_critic = int(t.get("n_critic", 1))
    self.schedule = str(t.get("n_critic_schedule", "constant"))
    schedules.critic_iters(0, self.n_critic, self.schedule)   # validates both
    self.gp_weight = float(t.get("gp_weight", 0.0))
    self.gp_one_sided = bool(t.get("gp_one_sided", False))
    self.r1_weight = float(t.get("r1_weight", 0.0))
    self.clip_value = float(t.get("clip_value", 0.0))
    for k, v in (("gp_weight", self.gp_weight), ("r1_weight", self.r1_weight), ("clip_value", self.clip_value)):
      if v < 0:
        raise ValueError(f"task.{k}={v} is negative: set it to 0 (off) or a positive value.")
    self.gen_batch = int(t.get("generator_batch_size", 0))
    self.sample_batch = int(t.get("sample_batch_size", 500))
    critic = t.get("critic")
    if critic is None or not critic.get("name"):
      raise ValueError("task.critic.name is empty: set it to a registered discriminator (e.g. gan_mlp_d).")
    dtype = config.model.get("dtype", "float32")
    self.generator = models.create(config.model.name, dtype=dtype, **_block(config.model.get("overrides")))
    self.critic = models.create(critic.name, dtype=dtype, **_block(critic.get("overrides")))
    if "critic_optimizer" not in t:
      raise ValueError("task.critic_optimizer is missing: give the critic its own optimizer block "
                       "(same keys as config.optimizer).")
    total = int(config.num_train_steps)
    self.g_total = max(generator_steps(total, self.n_critic, self.schedule), 1)
    self.g_tx = optim.make_optimizer(config.optimizer, self.g_total)
    d_tx = optim.make_optimizer(t.critic_optimizer, total)
    self.d_tx = optax.chain(d_tx, gan.weight_clipping(self.clip_value)) if self.clip_value > 0 else d_tx
    ev = t.get("eval", None)
    if ev is not None and ev.get("fid", False):
      import os  # noqa: PLC0415
      for key, what in (("inception_weights", "the Inception .npz (python -m jaxgen.convert.inception ...)"),
                        ("fid_ref", "the reference statistics (python -m jaxgen.eval.fid --data ... --out REF.npz)")):
        if not os.path.exists(str(ev.get(key, ""))):
          raise ValueError(f"task.eval.fid is on but task.eval.{key}={ev.get(key, '')!r} does not exist: pass "
                           f"--config.task.eval.{key}=<path to {what}> or set --config.task.eval.fid=False.")

  # ------------------------------------------------------------------------------------- init
  def _real(self, batch):
    if "image" in batch:
      return batch["image"]
    if "x" in batch:
      return batch["x"]
    raise ValueError(f"GAN batches need an 'image' or 'x' entry, got keys {sorted(batch)}.")

  def _latents(self, key, n):
    return jax.random.normal(key, (n, self.latent_dim), jnp.float32)

  def init(self, key, example_batch) -> GanState:
    kg, kd, ku = jax.random.split(key, 3)
    real = jnp.asarray(self._real(example_batch))
    gvars = dict(self.generator.init({"params": kg}, self._latents(ku, real.shape[0])))
    dvars = dict(self.critic.init({"params": kd}, real))
    gp, dp = gvars.pop("params"), dvars.pop("params")
    if self.gp_weight > 0 and "batch_stats" in dvars:
      raise ValueError("the gradient penalty needs a critic without batch norm (it couples the "
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
    d_real, dstate = _apply(self.critic, dparams, dstate, real, True)
    d_fake, dstate = _apply(self.critic, dparams, dstate, fake, True)
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
      fake, gstate = _apply(self.generator, gparams, gstate, z, True)
      d_fake, _ = _apply(self.critic, dparams, dstate, fake, True)   # critic stats untouched
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
    fake, gstate = _apply(self.generator, state.params, state.model_state, self._latents(k_z, bsz), True)
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
                   learning_rate_critic=optim.make_schedule(self.config.task.critic_optimizer,
                                                            int(self.config.num_train_steps))(state.step))
    return new, metrics

  # ----------------------------------------------------------------------------------- sample
  @functools.cached_property
  def _generate(self):
    def gen(params, model_state, key, idx):
      z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (self.latent_dim,)))(idx)
      return self.generator.apply({"params": params, **model_state}, z, train=False)
    return jax.jit(gen)

  def sample(self, state: GanState, key, n: int, start_index: int = 0):
    """G_ema(z_i), z_i = N(0, I) drawn with ``fold_in(key, start_index + i)``; chunks of sample_batch_size.

    Images come out in [−1, 1] (tanh); 2-D toy points are unbounded.
    """
    n = int(n)
    if n <= 0:
      raise ValueError(f"sample needs a positive number of samples, got {n}.")
    chunk = max(1, min(self.sample_batch, n))
    out = []
    for s in range(0, n, chunk):
      idx = np.arange(start_index + s, start_index + s + chunk, dtype=np.int32)   # fixed chunk shape
      out.append(np.asarray(jax.device_get(self._generate(state.ema_params, state.model_state, key, idx))))
    return np.concatenate(out)[:n]

  # --------------------------------------------------------------------------------- evaluate
  def evaluate(self, state: GanState, key, batches) -> dict[str, float]:
    """Sample-based metrics; the data set decides which.

    toy2d (``task.eval.num_samples`` = 2500 samples): ``w1_exact`` (exact W1 by LP between
    ``eval.lp_samples`` generated and data points), ``w1_critic`` (the critic's KR estimate
    E f(data) − E f(G(z)) on the same points), ``critic_lipschitz`` (max ‖∇f‖ over those points and
    their interpolates, a lower bound of f's Lipschitz constant) and ``w1_critic_normalized``
    (w1_critic / critic_lipschitz), ``sliced_w1`` (``eval.num_projections`` directions), ``w1_x``,
    ``w1_y`` (exact 1-D W1 of the coordinates); for 8/25 gaussians ``modes_hit``, ``num_modes``,
    ``hq_fraction`` (``mode_coverage``; ``eval.hq_num_std`` = 3, ``eval.min_mode_count`` = 20).
    digits: ``fd``, ``fd_real``, ``fd_gaussian`` (``jaxgen.eval.digits_fd``).
    Other image data with ``task.eval.fid``: ``fid``, ``is``, ``is_std`` of ``num_samples`` (50k)
    samples via ``jaxgen.eval.fid`` (TF-FID Inception, ``task.eval.inception_weights``; reference
    statistics ``task.eval.fid_ref``; both local files, checked when the task is built).
    """
    del batches
    ev = self.config.task.get("eval", None) or {}
    get = lambda k, d: ev.get(k, d) if hasattr(ev, "get") else d
    data = self.config.data
    k_s, k_d, k_p, k_i = jax.random.split(key, 4)
    if data.name == "toy2d":
      return self._evaluate_toy(state, data, get, k_s, k_d, k_p, k_i)
    if data.name == "digits":
      from jaxgen.eval import digits_fd  # noqa: PLC0415
      fd = digits_fd.DigitsFD(int(data.get("resolution", 0) or 0))
      n = int(get("num_samples", 0) or fd.num_real)
      return {k: float(v) for k, v in fd.metrics(self.sample(state, k_s, n)).items()}
    return self._evaluate_images(state, get, k_s)

  def _evaluate_toy(self, state, data, get, k_s, k_d, k_p, k_i):
    from jaxgen.data import toy2d  # noqa: PLC0415
    toy = str(data.get("toy", "8gaussians"))
    n = int(get("num_samples", 0) or 2500)
    m = min(int(get("lp_samples", 1000)), n)
    x_gen = np.asarray(self.sample(state, k_s, n), np.float32)
    x_data = np.asarray(jax.jit(toy2d.sample, static_argnums=(0, 2))(toy, k_d, n), np.float32)
    f = self._critic_fn(state.critic_params, state.critic_state)
    a, b = x_data[:m], x_gen[:m]
    w1_critic = float(ot.kr_dual_estimate(f, a, b))
    pts = np.concatenate([a, b, np.asarray(gan.interpolates(k_i, a, b))])
    lip = float(jnp.max(ot.critic_gradient_norms(f, pts)))
    out = dict(w1_exact=float(ot.emd(b, a, p=1)), w1_critic=w1_critic, critic_lipschitz=lip,
               w1_critic_normalized=w1_critic / max(lip, 1e-12),
               sliced_w1=float(ot.sliced_wasserstein(x_gen, x_data, k_p, int(get("num_projections", 256)))),
               w1_x=float(ot.wasserstein_1d(x_gen[:, 0], x_data[:, 0])),
               w1_y=float(ot.wasserstein_1d(x_gen[:, 1], x_data[:, 1])))
    if toy in ("8gaussians", "25gaussians"):
      mix = toy2d.mixture(toy)
      hit, hq, _ = mode_coverage(x_gen, mix.means, mix.std, num_std=float(get("hq_num_std", 3.0)),
                                 min_count=int(get("min_mode_count", 20)))
      out.update(modes_hit=float(hit), num_modes=float(len(mix.means)), hq_fraction=hq)
    return out

  def _evaluate_images(self, state, get, k_s):
    if not bool(get("fid", False)):
      return {}
    from jaxgen.eval import fid  # noqa: PLC0415
    bs = int(get("fid_batch_size", 500))
    if getattr(self, "_inception", None) is None:
      self._inception = fid.InceptionFeatures(str(get("inception_weights", "")), batch_size=bs)
    ref = fid.load_stats(str(get("fid_ref", "")))
    n = int(get("num_samples", 0) or 50_000)
    out = fid.evaluate_samples(lambda k, m, start: self.sample(state, k, m, start), k_s, n, self._inception,
                               ref, batch_size=bs, progress=False, kid_subsets=0)
    return {k: float(v) for k, v in out.items()}
