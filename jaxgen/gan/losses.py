"""GAN objectives as pure functions of discriminator logits / critic values.

Notation: ``real`` = D(x) on data, ``fake`` = D(G(z)) on generated samples. For the probabilistic
losses these are *logits* l with D = σ(l); for the Wasserstein and hinge losses they are unbounded
critic values. Every loss is a (weighted) mean over all elements, so per-patch outputs
([B, H, W, 1]) work too; ``weights`` (broadcastable to the values, e.g. an eval mask or quadrature
weights) turn the mean into Σ w·ℓ / Σ w. Each ``*_d_loss`` is minimized by the discriminator /
critic, each ``*_g_loss`` by the generator.

Goodfellow et al. 2014 ("Generative Adversarial Nets"), value function
  V(D, G) = E_p[log D(x)] + E_q[log(1 − D(G(z)))],
  minimax D loss  = −V = E_p[softplus(−l)] + E_q[softplus(l)]      (log σ(l) = −softplus(−l),
                                                                     log(1−σ(l)) = −softplus(l))
  minimax G loss  = E_q[log(1 − D)] = −E_q[softplus(l)]            (saturates: ∂/∂l = −σ(l) → 0)
  non-saturating G loss = −E_q[log D] = E_q[softplus(−l)]          (∂/∂l = −σ(−l) → −1)
The optimal discriminator is D* = p/(p+q) and V(D*, G) = −log 4 + 2·JSD(p‖q) (their Prop. 1, Thm 1).

Hinge (Lim & Ye 2017; Miyato et al. 2018): D: E_p[relu(1 − real)] + E_q[relu(1 + fake)]; G: −E_q[fake].
Least squares (Mao et al. 2017, a-b-c coding with a=0, b=1, c=1):
  D: ½E_p[(real − b)²] + ½E_q[(fake − a)²];  G: ½E_q[(fake − c)²].
Wasserstein (Arjovsky et al. 2017): critic loss E_q[f] − E_p[f] (its negative is the
Kantorovich–Rubinstein dual estimate of W1 when f is 1-Lipschitz); generator loss −E_q[f].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError

__all__ = [
    "mean", "minimax_d_loss", "minimax_g_loss", "non_saturating_g_loss", "hinge_d_loss",
    "hinge_g_loss", "least_squares_d_loss", "least_squares_g_loss", "wasserstein_critic_loss",
    "wasserstein_g_loss", "gan_value", "optimal_discriminator", "optimal_logits", "GanLoss", "LOSSES",
    "get_loss",
]


def mean(values, weights=None) -> jax.Array:
  """Mean of ``values`` in float32, or Σ w·v / Σ w with ``weights`` broadcast to ``values``."""
  v = jnp.asarray(values, jnp.float32)
  if weights is None:
    return jnp.mean(v)
  w = jnp.broadcast_to(jnp.asarray(weights, jnp.float32).reshape(
      jnp.shape(weights) + (1,) * (v.ndim - jnp.ndim(weights))), v.shape)
  return jnp.sum(w * v) / jnp.sum(w)


def minimax_d_loss(real, fake, real_weights=None, fake_weights=None) -> jax.Array:
  """−V(D, G) = −E_p[log σ(real)] − E_q[log(1 − σ(fake))] (binary cross-entropy, stable form)."""
  return mean(jax.nn.softplus(-real), real_weights) + mean(jax.nn.softplus(fake), fake_weights)


def minimax_g_loss(fake, fake_weights=None) -> jax.Array:
  """E_q[log(1 − σ(fake))] = −E_q[softplus(fake)]: the generator's side of the minimax game."""
  return -mean(jax.nn.softplus(fake), fake_weights)


def non_saturating_g_loss(fake, fake_weights=None) -> jax.Array:
  """−E_q[log σ(fake)] = E_q[softplus(−fake)] (Goodfellow et al. 2014, §3)."""
  return mean(jax.nn.softplus(-fake), fake_weights)


def hinge_d_loss(real, fake, real_weights=None, fake_weights=None) -> jax.Array:
  """E_p[max(0, 1 − real)] + E_q[max(0, 1 + fake)]."""
  return mean(jax.nn.relu(1.0 - real), real_weights) + mean(jax.nn.relu(1.0 + fake), fake_weights)


def hinge_g_loss(fake, fake_weights=None) -> jax.Array:
  """−E_q[fake]."""
  return -mean(fake, fake_weights)


def least_squares_d_loss(real, fake, real_weights=None, fake_weights=None, a: float = 0.0,
                         b: float = 1.0) -> jax.Array:
  """½E_p[(real − b)²] + ½E_q[(fake − a)²] (LSGAN, Mao et al. 2017, eq. 2)."""
  r = jnp.asarray(real, jnp.float32)
  f = jnp.asarray(fake, jnp.float32)
  return 0.5 * mean((r - b) ** 2, real_weights) + 0.5 * mean((f - a) ** 2, fake_weights)


def least_squares_g_loss(fake, fake_weights=None, c: float = 1.0) -> jax.Array:
  """½E_q[(fake − c)²]."""
  return 0.5 * mean((jnp.asarray(fake, jnp.float32) - c) ** 2, fake_weights)


def wasserstein_critic_loss(real, fake, real_weights=None, fake_weights=None) -> jax.Array:
  """E_q[f] − E_p[f]; −loss is the KR estimate of W1(p, q) for a 1-Lipschitz f."""
  return mean(fake, fake_weights) - mean(real, real_weights)


def wasserstein_g_loss(fake, fake_weights=None) -> jax.Array:
  """−E_q[f]."""
  return -mean(fake, fake_weights)


def gan_value(real, fake, real_weights=None, fake_weights=None) -> jax.Array:
  """V(D, G) = E_p[log D] + E_q[log(1 − D)] from logits (= −minimax_d_loss)."""
  return -minimax_d_loss(real, fake, real_weights, fake_weights)


def optimal_discriminator(p_density, q_density) -> jax.Array:
  """D*(x) = p(x) / (p(x) + q(x)) (Goodfellow et al. 2014, Prop. 1)."""
  p = jnp.asarray(p_density, jnp.float32)
  q = jnp.asarray(q_density, jnp.float32)
  return p / (p + q)


def optimal_logits(log_p, log_q) -> jax.Array:
  """Logit of D*: log p(x) − log q(x) (stable where the densities underflow)."""
  return jnp.asarray(log_p, jnp.float32) - jnp.asarray(log_q, jnp.float32)


class GanLoss(NamedTuple):
  """A discriminator loss ``d(real, fake)`` with its generator loss ``g(fake)``."""
  d: Callable[..., jax.Array]
  g: Callable[..., jax.Array]
  wasserstein: bool = False   # critic values estimate W1 by KR duality


LOSSES = {
    "minimax": GanLoss(minimax_d_loss, minimax_g_loss),
    "non_saturating": GanLoss(minimax_d_loss, non_saturating_g_loss),
    "hinge": GanLoss(hinge_d_loss, hinge_g_loss),
    "least_squares": GanLoss(least_squares_d_loss, least_squares_g_loss),
    "wasserstein": GanLoss(wasserstein_critic_loss, wasserstein_g_loss, True),
}


def get_loss(name: str) -> GanLoss:
  """The (D, G) loss pair named ``name`` (one of ``LOSSES``)."""
  if name not in LOSSES:
    raise ConfigError(f"GAN loss {name!r} is unknown: set task.loss to one of {', '.join(LOSSES)}.")
  return LOSSES[name]
