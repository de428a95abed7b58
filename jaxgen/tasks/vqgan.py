"""The VQGAN first stage (Esser, Rombach & Ommer, CVPR 2021): a vector-quantised autoencoder trained with
an L1 + perceptual (LPIPS) reconstruction loss, the codebook loss and a PatchGAN adversarial loss.

Both networks update in one compiled step (docs/vqgan.md): the autoencoder (``config.model``, a
``jaxgen.models.vqgan.VQModel``) with ``config.optimizer``, then the discriminator (``task.disc``, e.g.
``patchgan``) with ``task.disc_optimizer``, on the same batch — taming-transformers' two optimizers of
``VQModel.training_step``. The loss is taming's ``VQLPIPSWithDiscriminator``:

  nll   = mean|x − x̂| + perceptual_weight · mean LPIPS(x, x̂)
  L_AE  = nll + λ · disc_factor(step) · L_G + codebook_weight · qloss,   L_G = −mean D(x̂)
  λ     = clamp(‖∇_W nll‖ / (‖∇_W L_G‖ + 1e-4), 0, 1e4) · disc_weight   (W: the decoder's last conv,
          ``params['decoder']['conv_out']['kernel']``; λ is a constant of the update, ``adaptive_weight``)
  L_D   = disc_factor(step) · hinge or vanilla loss of D(x) and D(sg x̂)    (½ of the two means, as taming)

with disc_factor(step) = ``disc_factor`` from ``disc_start`` on and 0 before. One backward pass of the
autoencoder serves all terms: the forward is linearised once (``jax.vjp``), the cotangents of nll and
L_G w.r.t. x̂ are formed separately (λ needs both at the last conv: one weight-gradient convolution each)
and pulled back together. Differences to taming (docs/vqgan.md): before ``disc_start`` the discriminator
is skipped entirely (taming runs it with a zero factor: same parameters, but its Adam step count starts
earlier); the discriminator sees x̂ of the autoencoder *before* this step's update (taming recomputes x̂
with the updated autoencoder, one more forward pass).

Codebook options (``jaxgen.vq``): ``codebook='ema'`` replaces the codebook's gradient update by EMA
statistics (van den Oord et al. 2017, App. A.1; the loss then keeps only β·commitment), ``restart_every``
> 0 replaces, every that many steps, the codes used fewer than ``restart_threshold`` times since the last
restart by random encoder outputs of the current batch. Code usage, perplexity and PSNR of every
(global) batch are metrics (``batch_code_usage``, ``batch_perplexity``, ``batch_psnr``: the
``reconstruction`` evaluator reports ``code_usage``, ``perplexity`` and ``psnr`` of the eval split).

Config (``task.*``; every key and default in ``VqganConfig``, written by ``jaxgen.recipes.vqgan``):
  disc.name / disc.overrides   the discriminator (registry name, keyword overrides)
  disc_optimizer               its optimizer block (taming: Adam, the same lr, β = (0.5, 0.9))
  codebook_weight, perceptual_weight, lpips_weights (an .npz of ``python -m jaxgen.convert.lpips``;
  required when perceptual_weight > 0), disc_start, disc_factor, disc_weight, disc_loss (hinge | vanilla),
  adaptive_weight, codebook (learned | ema), codebook_decay, codebook_eps, restart_every,
  restart_threshold, sample_batch_size.

State (``VqganState``): the autoencoder's params / opt_state / ema_params / model_state, the
discriminator's disc_params / disc_opt_state / disc_state, codebook_ema (``jaxgen.vq.EmaState``, ``{}``
unless codebook='ema'), code_usage (counts since the last restart), lpips_params (the frozen LPIPS
network, ``{}`` without perceptual loss), rng. A pytree: the trainer resumes it exactly.

Evaluation (``config.evals``): 'reconstruct' (batch → dict(image=x̂, indices), EMA params), 'loss'
(per-example nll) and 'data', so the ``reconstruction`` evaluator (``jaxgen.eval.evaluators_vqgan``:
PSNR, SSIM, LPIPS, code usage, rFID) and ``eval_loss`` apply. ``sample`` returns originals and
reconstructions of the first images of the eval split (train split without one) in alternating
columns, so the trainer's sample grids (``workdir/samples/step_<N>.png``) show reconstructions beside
their originals.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import config_schema, models, optim, sampling, vq
from jaxgen.config_schema import option
from jaxgen.errors import ConfigError
from jaxgen.eval import evaluators
from jaxgen.tasks import base
from jaxgen.tasks.gan import apply_with_state as _apply   # the discriminator's forward pass

log = logging.getLogger("jaxgen")

__all__ = ["VqganConfig", "DiscConfig", "VqganState", "Task", "hinge_d_loss", "vanilla_d_loss",
           "adaptive_weight"]


@dataclasses.dataclass(frozen=True)
class DiscConfig:
  """``task.disc``: the discriminator (a ``jaxgen.models`` name and its overrides)."""

  name: str = "patchgan"
  overrides: dict = option({})


@dataclasses.dataclass(frozen=True)
class VqganConfig:
  """``config.task`` of the VQGAN stage-1 task: every key with its default (taming's where it has one)."""

  disc: DiscConfig = option(DiscConfig())
  disc_optimizer: Any = None              # an optimizer block (jaxgen.optim); required
  codebook_weight: float = option(1.0, min=0.0)
  perceptual_weight: float = option(1.0, min=0.0)
  lpips_weights: str = ""                 # LPIPS .npz (python -m jaxgen.convert.lpips); perceptual_weight > 0
  disc_start: int = option(0, min=0)      # first step with the adversarial terms (taming: global_step ≥)
  disc_factor: float = option(1.0, min=0.0)
  disc_weight: float = option(0.8, min=0.0)
  disc_loss: str = option("hinge", choices=("hinge", "vanilla"))
  adaptive_weight: bool = True            # λ from the gradient norms (False: λ = disc_weight)
  codebook: str = option("learned", choices=("learned", "ema"))
  codebook_decay: float = option(0.99, min=0.0, below=1.0)
  codebook_eps: float = option(1e-5, above=0.0)
  restart_every: int = option(0, min=0)   # dead-code restarts every N steps (0: off)
  restart_threshold: float = option(1.0, above=0.0)
  sample_batch_size: int = option(0, min=0)   # chunk of reconstruct in sample() (0: eval batch size)

  def __post_init__(self):
    if self.disc_optimizer is None:
      raise ConfigError("task.disc_optimizer is missing: give the discriminator its own optimizer block "
                        "(same keys as config.optimizer; taming: Adam, β = (0.5, 0.9)).")
    if not self.disc.name:
      raise ConfigError("task.disc.name is empty: set it to a registered discriminator (e.g. patchgan).")
    if self.perceptual_weight > 0 and not self.lpips_weights:
      raise ConfigError("task.perceptual_weight > 0 needs the LPIPS weights: pass "
                        "--config.task.lpips_weights=<lpips.npz from python -m jaxgen.convert.lpips> or set "
                        "task.perceptual_weight=0.")


@flax.struct.dataclass
class VqganState:
  step: jax.Array
  params: Any                # autoencoder
  opt_state: Any
  ema_params: Any
  model_state: Any
  disc_params: Any
  disc_opt_state: Any
  disc_state: Any            # discriminator's batch_stats ({} with ActNorm)
  codebook_ema: Any          # vq.EmaState with codebook='ema', else {}
  code_usage: jax.Array      # [K] code counts since the last dead-code restart
  lpips_params: Any          # frozen LPIPS variables ({} without perceptual loss)
  rng: jax.Array


def hinge_d_loss(real, fake):
  """taming's hinge_d_loss: ½(mean relu(1 − D(x)) + mean relu(1 + D(x̂)))."""
  return 0.5 * (jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake)))


def vanilla_d_loss(real, fake):
  """taming's vanilla_d_loss: ½(mean softplus(−D(x)) + mean softplus(D(x̂)))."""
  return 0.5 * (jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake)))


def adaptive_weight(nll_grad, g_grad, disc_weight: float):
  """λ = clamp(‖∇nll‖ / (‖∇L_G‖ + 1e-4), 0, 1e4) · disc_weight (taming ``calculate_adaptive_weight``)."""
  a = jnp.sqrt(jnp.sum(jnp.square(nll_grad.astype(jnp.float32))))
  b = jnp.sqrt(jnp.sum(jnp.square(g_grad.astype(jnp.float32))))
  return jnp.clip(a / (b + 1e-4), 0.0, 1e4) * disc_weight


def _forward(m, x, train: bool):
  """VQModel forward returning what the losses need: (x̂, the vq.Quantized result, latent z)."""
  z = m.encode_latent(x, train)
  q = m.quantize_latent(z)
  return m.decode(q.z_q, train), q, z


class _LastLayer:
  """Records the input and a standalone copy of the decoder's last conv during one forward pass
  (``nn.intercept_methods``), so the adaptive weight's gradients at that layer cost one weight-gradient
  convolution each instead of another backward pass through the autoencoder."""

  def __init__(self):
    self.inputs = None
    self.module = None

  def __call__(self, next_fun, args, kwargs, context):
    mod = context.module
    if (context.method_name == "__call__" and mod.name == "conv_out" and mod.parent is not None
        and getattr(mod.parent, "name", None) == "decoder"):
      self.inputs = args[0]
      self.module = mod.clone(parent=None)
    return next_fun(*args, **kwargs)


class Task(base.Task):
  """VQGAN stage-1 training for the one trainer (module docstring for the config keys)."""

  EVAL_FUNCTIONS = ("reconstruct", "loss", "data")

  def __init__(self, config):
    super().__init__(config)
    self.cfg = cfg = config_schema.from_block(VqganConfig, config.task)
    dtype = config_schema.lookup(config, "model.dtype", "float32")
    self.model = self.create_model(needs="encode_latent", otherwise="is not a VQGAN autoencoder: use "
                                   "vqgan_tiny, vqgan_imagenet_f16_1024 or another "
                                   "jaxgen.models.vqgan.VQModel.")
    if cfg.codebook == "ema" and self.model.cosine:
      raise ConfigError("task.codebook='ema' averages raw encoder outputs, which a cosine codebook does not "
                        "compare: set model.overrides.cosine=False or task.codebook='learned'.")
    self.disc = models.create(cfg.disc.name, dtype=dtype, **cfg.disc.overrides)
    total = int(config.num_train_steps)
    self.tx = optim.make_optimizer(config.optimizer, total)
    self.d_tx = optim.make_optimizer(cfg.disc_optimizer, total)
    self.d_loss_fn = hinge_d_loss if cfg.disc_loss == "hinge" else vanilla_d_loss
    self.num_codes = int(self.model.n_embed)
    self.lpips = None
    if cfg.perceptual_weight > 0:
      from jaxgen.models import lpips as lpips_lib  # noqa: PLC0415 (only with a perceptual loss)
      self.lpips = lpips_lib.LPIPS()
      self._lpips_vars = lpips_lib.load_lpips(cfg.lpips_weights)   # ConfigError on a bad file

  def preflight(self) -> None:
    """The evaluators' files, and the Inception weights of a ``reconstruction`` entry with ``rfid``
    (an option the generic check cannot know is needed), before any training."""
    super().preflight()
    for e in evaluators.entries(config_schema.lookup(self.config, "evals", None)):
      path = str(e.options.get("inception_weights", ""))
      if e.evaluator.name == "reconstruction" and e.options.get("rfid") and not os.path.exists(path):
        raise ConfigError(f"config.evals.{e.name}.inception_weights={path!r} does not exist: pass "
                          f"--config.evals.{e.name}.inception_weights=<the Inception .npz from python -m "
                          f"jaxgen.convert.inception ...> or set evals.{e.name}.rfid=False.")

  # ------------------------------------------------------------------------------------- init
  def _image(self, batch):
    if "image" not in batch:
      raise ConfigError(f"VQGAN batches need an 'image' entry, got keys {sorted(batch)}: use an image "
                        "data set.")
    return jnp.asarray(batch["image"], jnp.float32)

  def init(self, key, example_batch) -> VqganState:
    ka, kd = jax.random.split(key)
    x = self._image(example_batch)
    avars = dict(self.model.init({"params": ka}, x))
    dvars = dict(self.disc.init({"params": kd}, x))
    ap, dp = avars.pop("params"), dvars.pop("params")
    ema = vq.ema_init(ap["quantize"]["embedding"]) if self.cfg.codebook == "ema" else {}
    lp = jax.tree_util.tree_map(jnp.asarray, self._lpips_vars) if self.lpips is not None else {}
    return VqganState(step=jnp.zeros((), jnp.int32), params=ap, opt_state=self.tx.init(ap), ema_params=ap,
                      model_state=avars, disc_params=dp, disc_opt_state=self.d_tx.init(dp),
                      disc_state=dvars, codebook_ema=ema,
                      code_usage=jnp.zeros((self.num_codes,), jnp.float32), lpips_params=lp,
                      rng=jax.random.key_data(jax.random.key(self.config.seed)))

  # ------------------------------------------------------------------------------- train step
  def _perceptual(self, lpips_params, x, y):
    """Per-example LPIPS(x, y) [B] (zeros without a perceptual loss)."""
    if self.lpips is None:
      return jnp.zeros((x.shape[0],), jnp.float32)
    if x.shape[-1] == 1:     # grey images: LPIPS's VGG takes RGB
      x, y = jnp.repeat(x, 3, axis=-1), jnp.repeat(y, 3, axis=-1)
    return self.lpips.apply(lpips_params, x, y).reshape(x.shape[0]).astype(jnp.float32)

  def _nll(self, lpips_params, x, x_rec):
    l1 = jnp.mean(jnp.abs(x - x_rec))
    p = jnp.mean(self._perceptual(lpips_params, x, x_rec))
    return l1 + self.cfg.perceptual_weight * p, (l1, p)

  def train_step(self, state: VqganState, batch, key):
    cfg = self.cfg
    x = self._image(batch)
    k_drop, k_restart = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    ema_codebook = cfg.codebook == "ema"
    last = _LastLayer()

    def ae_forward(p):
      with nn.intercept_methods(last):   # (VQModel has no mutable collections: GroupNorm only)
        x_rec, q, z = self.model.apply({"params": p, **state.model_state}, x, True, method=_forward,
                                       rngs={"dropout": k_drop})
      return (x_rec, q.loss, q.commitment_loss), (q.indices, z, last.inputs)

    (x_rec, qloss, commit), ae_vjp, (indices, z, h) = jax.vjp(ae_forward, state.params, has_aux=True)
    if cfg.adaptive_weight and last.module is None:
      raise ConfigError(f"model {self.config.model.name!r} has no decoder.conv_out layer for the adaptive "
                        "weight: set task.adaptive_weight=False or use a jaxgen.models.vqgan VQModel.")
    (nll, (l1, p_loss)), g_nll = jax.value_and_grad(
        lambda xr: self._nll(state.lpips_params, x, xr), has_aux=True)(x_rec)
    disc_on = state.step >= cfg.disc_start
    factor = jnp.where(disc_on, cfg.disc_factor, 0.0).astype(jnp.float32)
    x_fake = jax.lax.stop_gradient(x_rec)
    conv_out = last.module

    def gan_terms(operand):
      dparams, dstate, dopt = operand

      def g_loss_fn(xr):
        logits, _ = _apply(self.disc, dparams, dstate, xr, True)   # (its statistics are discarded)
        return -jnp.mean(logits)

      g_loss, g_g = jax.value_and_grad(g_loss_fn)(x_rec)
      if cfg.adaptive_weight:
        out, w_vjp = jax.vjp(lambda w: conv_out.apply({"params": w}, h), state.params["decoder"]["conv_out"])
        grad_w = lambda ct: w_vjp(ct.astype(out.dtype))[0]["kernel"]
        lam = adaptive_weight(grad_w(g_nll), grad_w(g_g), cfg.disc_weight)
      else:
        lam = jnp.float32(cfg.disc_weight)

      def d_loss_fn(dp):
        real, ds = _apply(self.disc, dp, dstate, x, True)
        fake, ds = _apply(self.disc, dp, ds, x_fake, True)
        return factor * self.d_loss_fn(real, fake), (ds, jnp.mean(real), jnp.mean(fake))

      (d_loss, (dstate2, real_m, fake_m)), dgrads = jax.value_and_grad(d_loss_fn, has_aux=True)(dparams)
      updates, dopt2 = self.d_tx.update(dgrads, dopt, dparams)
      dparams2 = optax.apply_updates(dparams, updates)
      aux = dict(g_loss=g_loss, d_weight=lam, d_loss=d_loss, logits_real=real_m, logits_fake=fake_m,
                 grad_norm_d=optax.global_norm(dgrads))
      return g_g, lam, (dparams2, dstate2, dopt2), aux

    def no_gan(operand):
      zero = jnp.zeros((), jnp.float32)
      aux = dict(g_loss=zero, d_weight=zero, d_loss=zero, logits_real=zero, logits_fake=zero,
                 grad_norm_d=zero)
      return jnp.zeros_like(x_rec), zero, operand, aux

    g_g, lam, (dparams, dstate, dopt), aux = jax.lax.cond(
        disc_on, gan_terms, no_gan, (state.disc_params, state.disc_state, state.disc_opt_state))

    # one pull-back of the autoencoder for nll + λ·f·L_G + w_q·qloss (β·commitment with an EMA codebook)
    ct_x = (g_nll + lam * factor * g_g).astype(x_rec.dtype)
    w_q = 0.0 if ema_codebook else cfg.codebook_weight
    w_c = cfg.codebook_weight * float(self.model.beta) if ema_codebook else 0.0
    (grads,) = ae_vjp((ct_x, jnp.float32(w_q), jnp.float32(w_c)))
    if ema_codebook:
      grads = _replace_codebook(grads, jnp.zeros_like(grads["quantize"]["embedding"]))
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    # codebook: EMA statistics, usage counts, dead-code restarts
    counts = vq.code_counts(indices, self.num_codes)
    z_flat = z.reshape(-1, z.shape[-1])
    codebook_ema = state.codebook_ema
    if ema_codebook:
      codebook_ema, codebook = vq.ema_update(codebook_ema, z_flat, indices, decay=cfg.codebook_decay,
                                             eps=cfg.codebook_eps)
      params = _replace_codebook(params, codebook)
    usage = state.code_usage + counts
    restarted = jnp.zeros((), jnp.int32)
    if cfg.restart_every > 0:
      due = (state.step + 1) % cfg.restart_every == 0
      old = params["quantize"]["embedding"]
      new, n_dead = vq.restart_dead_codes(old, usage, z_flat, k_restart, threshold=cfg.restart_threshold)
      dead = due & (usage < cfg.restart_threshold)
      params = _replace_codebook(params, jnp.where(due, new, old))
      if ema_codebook:
        codebook_ema = vq.ema_reset_codes(codebook_ema, new, dead)
      usage = jnp.where(due, jnp.zeros_like(usage), usage)
      restarted = jnp.where(due, n_dead, 0)

    beta = optim.ema_decay(self.config.optimizer, state.step, self.config.batch_size)
    ema = optim.ema_update(state.ema_params, params, beta)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
                              disc_params=dparams, disc_state=dstate, disc_opt_state=dopt,
                              codebook_ema=codebook_ema, code_usage=usage)
    q_term = float(self.model.beta) * commit if ema_codebook else qloss
    loss = nll + lam * factor * aux["g_loss"] + cfg.codebook_weight * q_term
    g_norm = optax.global_norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(g_norm) & jnp.isfinite(aux["grad_norm_d"])
    new_state = base.tree_where(ok, new_state, state)
    mse = jnp.mean(jnp.square(x_rec - x), axis=tuple(range(1, x.ndim)))
    metrics = dict(aux)
    metrics.update(
        loss=loss, nll_loss=nll, rec_loss=l1, p_loss=p_loss, quant_loss=qloss, commitment_loss=commit,
        disc_factor=factor, grad_norm=g_norm, nonfinite=~ok,
        batch_psnr=jnp.mean(10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))),    # data range 2 ([−1, 1])
        batch_code_usage=vq.usage_fraction(counts), batch_perplexity=vq.perplexity(counts),
        codes_restarted=restarted.astype(jnp.float32),
        learning_rate=optim.make_schedule(self.config.optimizer,
                                          int(self.config.num_train_steps))(state.step))
    return new_state, metrics

  # --------------------------------------------------------------------------------- evaluate
  def reconstruct_fn(self, variables):
    """(batch) -> dict(image=x̂ float32, indices [B, h, w] int32) with the autoencoder ``variables``."""
    return lambda batch: self._reconstruct(variables, self._image(batch))

  @functools.cached_property
  def _reconstruct(self):
    def rec(variables, x):
      x = sampling.shard_batch_dim(x)   # split over the mesh of jax.set_mesh (``sample``), when one is set
      x_rec, _, indices = self.model.apply(variables, x, False)
      return sampling.shard_batch_dim(dict(image=x_rec.astype(jnp.float32), indices=indices))
    return jax.jit(rec)

  @functools.cached_property
  def _per_example_nll(self):
    def loss(variables, lpips_params, x):
      x_rec, qloss, _ = self.model.apply(variables, x, False)
      l1 = jnp.mean(jnp.abs(x - x_rec), axis=tuple(range(1, x.ndim)))
      return l1 + self.cfg.perceptual_weight * self._perceptual(lpips_params, x, x_rec)
    return jax.jit(loss)

  def autoencoder_variables(self, state: VqganState) -> dict:
    """The variables of the evaluated autoencoder (EMA params) for ``self.model.apply``."""
    return {"params": state.ema_params, **state.model_state}

  def eval_functions(self, state: VqganState) -> dict:
    """reconstruct (EMA autoencoder), loss (per-example nll: L1 + perceptual, eval mode) and data."""
    data = self.config.data
    variables = self.autoencoder_variables(state)
    facts = dict(name=str(config_schema.lookup(data, "name", "")).split("/")[0],
                 resolution=int(config_schema.lookup(data, "resolution", 0)), num_codes=self.num_codes,
                 lpips_weights=self.cfg.lpips_weights)
    return dict(reconstruct=self.reconstruct_fn(variables),
                loss=lambda batch, key: self._per_example_nll(variables, state.lpips_params,
                                                              self._image(batch)),
                data=facts)

  # ----------------------------------------------------------------------------------- sample
  def _grid_images(self, n: int) -> np.ndarray:
    """The first ``n`` images of the eval split (the training split without one), unaugmented."""
    from jaxgen import train  # noqa: PLC0415 (the trainer's data module lookup)

    data_cfg = copy.deepcopy(self.config.data)
    if not config_schema.lookup(data_cfg, "eval_split", ""):
      data_cfg.eval_split = str(config_schema.lookup(data_cfg, "split", "train"))
    data_cfg.eval_size = n
    ds = train.data_api(self.config).eval_dataset(data_cfg, batch_size=n)
    batch = next(iter(ds))
    return np.asarray(batch["image"], np.float32)[:n]

  def sample(self, state: VqganState, key, n: int, start_index: int = 0):
    """Originals and reconstructions alternating: item 2i is image ``start_index//2 + i`` of the grid
    split, item 2i+1 its reconstruction (the key is unused: reconstruction is deterministic)."""
    del key
    n = int(n)
    if n <= 0:
      raise ConfigError(f"sample needs a positive number of images, got {n}.")
    first = start_index // 2
    count = (start_index + n + 1) // 2 - first
    images = self._grid_images(first + count)[first:]
    chunk = sampling.round_up(self.cfg.sample_batch_size
                              or int(self.config.get("eval_batch_size", 0) or self.config.batch_size))
    variables = self.autoencoder_variables(state)
    recs = []
    for s in range(0, len(images), chunk):
      part = images[s:s + chunk]
      pad = np.zeros((chunk - len(part),) + part.shape[1:], np.float32)
      out = self._reconstruct(variables, jnp.asarray(np.concatenate([part, pad])))["image"]
      recs.append(sampling.to_host(out)[:len(part)])
    rec = np.concatenate(recs)
    pairs = np.stack([images, rec], axis=1).reshape((-1,) + images.shape[1:])
    return pairs[start_index % 2:start_index % 2 + n]


def _replace_codebook(tree, codebook):
  """``tree`` with ``tree['quantize']['embedding']`` replaced (params or gradients)."""
  return {**tree, "quantize": {**tree["quantize"], "embedding": codebook}}
