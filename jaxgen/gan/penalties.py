"""Lipschitz penalties and constraints for discriminators / critics.

``critic_fn(x) -> values`` maps a batch ``x[B, ...]`` to per-sample outputs ``[B]`` or ``[B, 1]``;
it must treat samples independently (no BatchNorm in train mode), so that the gradient of Σ_i f(x_i)
with respect to x_i is ∇f(x_i).

- WGAN-GP (Gulrajani et al. 2017, Alg. 1): x̂ = ε·x + (1 − ε)·x̃ with ε ~ U[0, 1] per sample,
  GP = E[(‖∇f(x̂)‖₂ − 1)²]; one-sided (their §4 / App.): E[max(0, ‖∇f(x̂)‖₂ − 1)²]. The caller
  multiplies by λ (10 in the paper).
- R1 (Mescheder et al. 2018, eq. 9): R1 = (γ/2)·E_p[‖∇D(x)‖²] on real data (R2: the same on fakes).
  ``r1_penalty`` returns E‖∇D(x)‖²; the caller multiplies by γ/2.
- Weight clipping (Arjovsky et al. 2017, Alg. 1): after every critic update w ← clip(w, −c, c),
  c = 0.01; here an optax ``GradientTransformation`` placed last in the critic's chain. optax is
  imported when ``weight_clipping`` is called, so this module (part of the pure core) needs only jax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError

if TYPE_CHECKING:
  import optax

__all__ = ["interpolates", "input_gradients", "safe_norm", "gradient_penalty", "r1_penalty",
           "weight_clipping"]


def interpolates(key, real, fake) -> jax.Array:
  """x̂ = ε·real + (1 − ε)·fake with one ε ~ U[0, 1] per sample (broadcast over feature axes)."""
  real = jnp.asarray(real)
  fake = jnp.asarray(fake).astype(real.dtype)
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return eps * real + (1.0 - eps) * fake


def input_gradients(critic_fn: Callable, x) -> jax.Array:
  """∇_x f(x_i) for every sample (the gradient of Σ_i f(x_i), valid for per-sample critics)."""
  return jax.grad(lambda v: jnp.sum(jnp.asarray(critic_fn(v), jnp.float32)))(x)


def safe_norm(g) -> jax.Array:
  """Per-sample Euclidean norm over all non-batch axes, with a finite gradient at 0 (where it is 0)."""
  g = jnp.asarray(g, jnp.float32)
  sq = jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1)
  pos = sq > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def gradient_penalty(critic_fn: Callable, real, fake, key, *, target: float = 1.0,
                     one_sided: bool = False, return_norms: bool = False):
  """WGAN-GP penalty E[(‖∇f(x̂)‖ − target)²] on random interpolates (unweighted by λ).

  ``one_sided`` penalizes only norms above ``target``. With ``return_norms`` also returns the
  per-sample gradient norms (useful as a metric: they should hover around 1).
  """
  x_hat = interpolates(key, real, fake)
  norms = safe_norm(input_gradients(critic_fn, x_hat))
  dev = norms - target
  if one_sided:
    dev = jax.nn.relu(dev)
  gp = jnp.mean(jnp.square(dev))
  return (gp, norms) if return_norms else gp


def r1_penalty(critic_fn: Callable, x) -> jax.Array:
  """E[‖∇D(x)‖²] on the given (real) samples; R1 = γ/2 times this (Mescheder et al. 2018)."""
  g = jnp.asarray(input_gradients(critic_fn, x), jnp.float32)
  return jnp.mean(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))


def weight_clipping(clip_value: float) -> optax.GradientTransformation:
  """Clips the *parameters* to [−c, c] after the update: u' = clip(p + u, −c, c) − p.

  Put it last in a chain (``optax.chain(optax.rmsprop(5e-5), weight_clipping(0.01))``) so that
  ``optax.apply_updates(p, u')`` returns clipped weights. Wrap in ``optax.masked`` to clip only some
  leaves. Needs ``params`` in ``update``. The result is exact: ``apply_updates`` lands inside
  [−c, c] in floating point (if t and p are within a factor 2, t − p is exact by Sterbenz's lemma;
  otherwise one ulp of u moves p + u past the bound, so a few ``nextafter`` nudges suffice).
  """
  try:
    import optax  # noqa: PLC0415 (the pure core imports only jax and numpy)
  except ModuleNotFoundError as e:
    raise ModuleNotFoundError("jaxgen.gan.weight_clipping builds an optax transform: pip install optax "
                              "(or 'jaxgen[train]').", name=e.name) from e

  c = float(clip_value)
  if not c > 0:
    raise ConfigError(f"weight clipping needs a positive clip value, got {clip_value}; set "
                      "task.clip_value > 0 or disable clipping with 0.")

  def _clipping_update(p, u):
    # t − p rounds, so p + (t − p) may land one ulp outside [−c, c]; nudge u by ulps until the
    # applied update stays inside (two nudges suffice: see the Sterbenz-lemma note below).
    t = jnp.clip(p + u, -c, c)
    u = (t - p).astype(p.dtype)
    for _ in range(3):
      r = p + u
      u = jnp.where(r > c, jnp.nextafter(u, jnp.array(-jnp.inf, u.dtype)),
                    jnp.where(r < -c, jnp.nextafter(u, jnp.array(jnp.inf, u.dtype)), u))
    return u.astype(p.dtype)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("weight_clipping needs the current params: call update(grads, state, params).")
    return jax.tree_util.tree_map(_clipping_update, params, updates), state

  return optax.GradientTransformation(init_fn, update_fn)
