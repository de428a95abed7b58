"""Critic/generator update schedules (n_critic) with static shapes.

One trainer step is one critic update; the generator updates at the end of the trainer steps where
its critic quota is complete. With c(g) the number of critic iterations that precede generator
update g (g = 0, 1, ...), the generator updates after critic step s (0-based) iff s + 1 = C(g + 1),
C(g) = Σ_{j<g} c(j), where g counts the generator updates done so far.

- ``constant``: c(g) = n_critic (WGAN-GP Alg. 1 with n_critic = 5; n_critic = 1 alternates D/G as in
  DCGAN).
- ``wgan``: Arjovsky et al.'s reference code (main.py): ``Diters = 100 if gen_iterations < 25 or
  gen_iterations % 500 == 0 else n_critic``, i.e. 100 critic iterations for the first 25 generator
  steps and before every 500th. Closed form used here:
    C(g) = 100·g                                                    (g ≤ 25)
    C(g) = 2500 + n·(g − 25) + (100 − n)·⌊(g − 1)/500⌋              (g ≥ 25)
  (the multiples of 500 in [25, g − 1] each add 100 − n iterations).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxgen.errors import ConfigError

SCHEDULES = ("constant", "wgan")
WGAN_WARMUP_GEN_STEPS = 25
WGAN_DENSE_ITERS = 100
WGAN_EVERY = 500


def _check(schedule: str, n_critic: int) -> None:
  if schedule not in SCHEDULES:
    raise ConfigError(f"n_critic schedule {schedule!r} is unknown: set task.n_critic_schedule to one "
                      f"of {', '.join(SCHEDULES)}.")
  if int(n_critic) < 1:
    raise ConfigError(f"task.n_critic must be >= 1, got {n_critic}.")


def critic_iters(gen_step, n_critic: int, schedule: str = "constant"):
  """c(g): critic iterations that precede generator update ``gen_step`` (array-friendly)."""
  _check(schedule, n_critic)
  g = jnp.asarray(gen_step, jnp.int32)
  if schedule == "constant":
    return jnp.full_like(g, n_critic)
  dense = (g < WGAN_WARMUP_GEN_STEPS) | (g % WGAN_EVERY == 0)
  return jnp.where(dense, WGAN_DENSE_ITERS, n_critic).astype(jnp.int32)


def critic_steps_before(gen_step, n_critic: int, schedule: str = "constant"):
  """C(g) = Σ_{j<g} c(j): critic updates done when generator update g starts (closed form)."""
  _check(schedule, n_critic)
  g = jnp.asarray(gen_step, jnp.int32)
  if schedule == "constant":
    return n_critic * g
  early = WGAN_DENSE_ITERS * jnp.minimum(g, WGAN_WARMUP_GEN_STEPS)
  late_g = jnp.maximum(g - WGAN_WARMUP_GEN_STEPS, 0)
  extra = (WGAN_DENSE_ITERS - n_critic) * (jnp.maximum(g - 1, 0) // WGAN_EVERY)
  return early + n_critic * late_g + jnp.where(g > WGAN_WARMUP_GEN_STEPS, extra, 0)


def generator_update_due(critic_step, gen_step, n_critic: int, schedule: str = "constant"):
  """True when critic update number ``critic_step`` (0-based) completes generator ``gen_step``'s quota."""
  return jnp.asarray(critic_step, jnp.int32) + 1 == critic_steps_before(
      jnp.asarray(gen_step, jnp.int32) + 1, n_critic, schedule)
