"""Optimizers, learning-rate schedules and parameter EMA built from the ``optimizer`` config block.

Pure helpers shared by every task:

``make_optimizer(cfg, num_train_steps, *, decay_mask=None, rms_initial_scale=0.0)``
  The one optimizer factory: an optax chain of gradient clipping (``clip_grad_norm``), the weight decay
  and the optimizer, with the schedule inside. Weight decay (``weight_decay``) is *coupled* L2 for
  adam / sgd / rmsprop, i.e. wd·w added to the gradient before the optimizer (the gradient of
  (wd/2)·‖w‖², TF's ``weight_decay · Σ tf.nn.l2_loss(w)``), and *decoupled* for adamw / lamb (optax's
  own ``weight_decay``, Loshchilov & Hutter). ``decay_mask`` (a pytree of bools or a function
  params -> pytree of bools, optax's ``mask``) restricts the coupled decay to the leaves marked True
  (``decay_mask(params)`` below skips normalization parameters and, optionally, biases); the
  decoupled decay of adamw / lamb is not masked. RMSProp is TF1's ``RMSPropOptimizer``:
  ms ← ρ·ms + (1 − ρ)·g², mom ← μ·mom + lr·g/√(ms + ε) with ε *inside* the square root (optax's
  ``eps_in_sqrt=True``; PyTorch puts it outside) and ms starting at ``rms_initial_scale`` (TF1: 1;
  the keyword gives the value used when the config has no ``optimizer.rms_initial_scale``).
``make_schedule(cfg, num_train_steps)``
  The learning rate per step (warm-up, then constant / cosine / linear / exponential).
``ema_decay(cfg, step, batch_size)`` / ``ema_update``
  The EMA coefficient of a given update, and the EMA step.

A wrong optimizer or schedule name raises ``jaxgen.errors.ConfigError``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgen.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lamb")
SCHEDULES = ("constant", "cosine", "linear", "exponential")


def make_schedule(cfg: Any, num_train_steps: int) -> optax.Schedule:
  """Learning rate per step: linear warm-up from 0 over ``warmup_steps``, then ``schedule``.

  ``constant``; ``cosine`` (to ``end_lr_factor``·lr at ``num_train_steps``); ``linear`` (likewise);
  ``exponential``: lr·decay_rate^((step−warmup)/decay_steps), ``staircase`` as in TF's RMSProp recipes.
  The warm-up matches EDM's ramp-up: lr·min(step/warmup_steps, 1), so step 0 uses lr 0.
  """
  lr = float(cfg.learning_rate)
  warmup = int(cfg.get("warmup_steps", 0))
  name = cfg.get("schedule", "constant")
  end = lr * float(cfg.get("end_lr_factor", 0.0))
  rest = max(int(num_train_steps) - warmup, 1)
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, rest, alpha=end / lr if lr else 0.0)
  elif name == "linear":
    main = optax.linear_schedule(lr, end, rest)
  elif name == "exponential":
    main = optax.exponential_decay(lr, int(cfg.decay_steps), float(cfg.decay_rate),
                                   staircase=bool(cfg.get("staircase", True)))
  else:
    raise ConfigError(f"optimizer.schedule={name!r} is unknown: set --config.optimizer.schedule to one of "
                      f"{', '.join(SCHEDULES)}.")
  if warmup <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def decay_mask(params, *, decay_norm_params: bool = False, decay_biases: bool = True):
  """Pytree of bools: True where weight decay applies. Normalization parameters are the leaves under a
  module named like ``bn`` / ``*_bn*`` / ``BatchNorm_*`` / ``*norm*`` (TF EfficientNet excludes its
  'batch_normalization' variables, torchvision's recipes set norm_weight_decay 0): they decay only with
  ``decay_norm_params``; biases (leaves named 'bias' elsewhere) decay unless ``decay_biases`` is False."""

  def keep(path, _):
    names = [str(getattr(p, "key", getattr(p, "name", p))) for p in path]
    is_norm = any(n == "bn" or "_bn" in n or n.startswith("bn") or "BatchNorm" in n or "norm" in n.lower()
                  for n in names[:-1])
    if is_norm:
      return decay_norm_params
    if names and names[-1] == "bias":
      return decay_biases
    return True

  return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(cfg: Any, num_train_steps: int, *, decay_mask: Any = None,
                   rms_initial_scale: float = 0.0) -> optax.GradientTransformation:
  """optax chain from an ``optimizer`` config block (see the module docstring and
  ``jaxgen.configs.base_config``): clipping, coupled weight decay (masked by ``decay_mask``), optimizer.

  The chain's layout is the layout of the ``opt_state`` in checkpoints, so it must not change: with a
  ``decay_mask`` and a coupled decay, adam and sgd sit in a chain of their own (as the classification
  task composed them before this factory took the mask), rmsprop does not.
  """
  name = cfg.name
  sched = make_schedule(cfg, num_train_steps)
  wd = float(cfg.get("weight_decay", 0.0))
  parts = []
  if float(cfg.get("clip_grad_norm", 0.0)) > 0:
    parts.append(optax.clip_by_global_norm(float(cfg.clip_grad_norm)))
  coupled = name in ("adam", "sgd", "rmsprop") and wd != 0.0
  if coupled:
    decay = optax.add_decayed_weights(wd)
    parts.append(decay if decay_mask is None else optax.masked(decay, decay_mask))
  nest = coupled and decay_mask is not None
  if name == "adam":
    opt = optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    parts.append(optax.chain(opt) if nest else opt)
  elif name == "adamw":
    parts.append(optax.adamw(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd))
  elif name == "lamb":
    parts.append(optax.lamb(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd))
  elif name == "sgd":
    opt = optax.sgd(sched, momentum=cfg.momentum or None, nesterov=bool(cfg.get("nesterov", False)))
    parts.append(optax.chain(opt) if nest else opt)
  elif name == "rmsprop":
    initial = cfg.get("rms_initial_scale", None)
    parts.append(optax.rmsprop(sched, decay=float(cfg.get("rms_decay", 0.9)), eps=float(cfg.eps),
                               initial_scale=float(rms_initial_scale if initial is None else initial),
                               eps_in_sqrt=True, centered=bool(cfg.get("centered", False)),
                               momentum=float(cfg.momentum) or None))
  else:
    raise ConfigError(f"optimizer.name={name!r} is unknown: set --config.optimizer.name to one of "
                      f"{', '.join(OPTIMIZERS)}.")
  return optax.chain(*parts)


def ema_decay(cfg: Any, step: jax.Array, batch_size: int) -> jax.Array:
  """EMA coefficient β of the update that follows ``step`` completed updates.

  EDM (training_loop.py): with ``ema_halflife_kimg`` > 0, the half-life is counted in images,
  ema_nimg = min(halflife·1000, step·batch·ema_rampup_ratio) when ``ema_rampup_ratio`` > 0, and
  β = 0.5^(batch / max(ema_nimg, 1e-8)) (so the first update copies the params).
  Otherwise a constant ``ema_decay`` (0 disables EMA: the EMA params equal the params).
  """
  step = jnp.asarray(step, jnp.float32)
  halflife = float(cfg.get("ema_halflife_kimg", 0.0))
  if halflife > 0:
    ema_nimg = jnp.float32(halflife * 1000.0)
    ratio = float(cfg.get("ema_rampup_ratio", 0.0))
    if ratio > 0:
      ema_nimg = jnp.minimum(ema_nimg, step * batch_size * ratio)
    return jnp.power(jnp.float32(0.5), batch_size / jnp.maximum(ema_nimg, 1e-8))
  return jnp.float32(cfg.get("ema_decay", 0.0))


def ema_update(ema_params, params, beta):
  """ema ← β·ema + (1−β)·params, leaf-wise in the params' dtype."""
  return jax.tree_util.tree_map(lambda e, p: (beta * e + (1.0 - beta) * p).astype(p.dtype), ema_params,
                                params)
