"""Optimizers, learning-rate schedules and parameter EMA built from the ``optimizer`` config block.

Pure helpers shared by every task: ``make_optimizer(cfg, num_train_steps)`` returns an optax
transformation (gradient clipping first, then the optimizer, with the schedule inside);
``ema_decay(cfg, step, batch_size)`` is the EMA coefficient of a given update.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

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
    raise ValueError(f"optimizer.schedule={name!r} is unknown: use one of {', '.join(SCHEDULES)}.")
  if warmup <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(cfg: Any, num_train_steps: int) -> optax.GradientTransformation:
  """optax chain from an ``optimizer`` config block (see ``jaxgen.configs.base_config``)."""
  name = cfg.name
  sched = make_schedule(cfg, num_train_steps)
  wd = float(cfg.get("weight_decay", 0.0))
  parts = []
  if float(cfg.get("clip_grad_norm", 0.0)) > 0:
    parts.append(optax.clip_by_global_norm(float(cfg.clip_grad_norm)))
  if name == "adam":
    if wd:
      parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
  elif name == "adamw":
    parts.append(optax.adamw(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd))
  elif name == "lamb":
    parts.append(optax.lamb(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd))
  elif name == "sgd":
    if wd:
      parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.sgd(sched, momentum=cfg.momentum or None, nesterov=bool(cfg.get("nesterov", False))))
  elif name == "rmsprop":
    if wd:
      parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.rmsprop(sched, decay=cfg.get("rms_decay", 0.9), eps=cfg.eps,
                               momentum=cfg.momentum or None, centered=bool(cfg.get("centered", False))))
  else:
    raise ValueError(f"optimizer.name={name!r} is unknown: use one of {', '.join(OPTIMIZERS)}.")
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
  return jax.tree_util.tree_map(lambda e, p: (beta * e + (1.0 - beta) * p).astype(p.dtype), ema_params, params)
