"""GAN objectives: the optimal discriminator, the JSD identity and the saturation of minimax G."""

import numpy as np
import pytest
from scipy.stats import norm

import jax
import jax.numpy as jnp

from jaxgen import gan
from jaxgen.errors import ConfigError

# Quadrature grid for p = N(0, 1) and q = N(1.5, 0.8²): ∫ h dp ≈ Σ h(t) p(t) Δt.
T = np.linspace(-10, 12, 20001)
DT = T[1] - T[0]
P, Q = norm.pdf(T, 0, 1), norm.pdf(T, 1.5, 0.8)
LOGP, LOGQ = norm.logpdf(T, 0, 1), norm.logpdf(T, 1.5, 0.8)


def _jsd(p, q):
  m = 0.5 * (p + q)
  kl = lambda a: np.sum(a * (np.log(a + 1e-300) - np.log(m + 1e-300))) * DT
  return 0.5 * kl(p) + 0.5 * kl(q)


def test_optimal_discriminator_value_is_minus_log4_plus_2jsd():
  logits = gan.optimal_logits(LOGP, LOGQ)
  np.testing.assert_allclose(jax.nn.sigmoid(logits), gan.optimal_discriminator(P, Q), atol=1e-6)
  v = gan.gan_value(logits, logits, real_weights=P * DT, fake_weights=Q * DT)
  np.testing.assert_allclose(float(v), -np.log(4) + 2 * _jsd(P, Q), atol=2e-4)


def test_optimal_discriminator_is_stationary_and_beats_perturbations():
  # Pointwise the D loss p·softplus(−l) + q·softplus(l) is minimized at l = log p − log q.
  logits = jnp.asarray(gan.optimal_logits(LOGP, LOGQ))
  grad = jax.grad(lambda l: gan.minimax_d_loss(l, l, P * DT, Q * DT))(logits)
  assert float(jnp.max(jnp.abs(grad))) < 1e-6
  base = gan.minimax_d_loss(logits, logits, P * DT, Q * DT)
  for delta in (0.3, -0.3):
    assert gan.minimax_d_loss(logits + delta, logits + delta, P * DT, Q * DT) > base


def test_equal_distributions_give_one_half_and_minus_log4():
  d = gan.optimal_discriminator(P, P)
  np.testing.assert_allclose(d, 0.5, atol=1e-7)
  logits = gan.optimal_logits(LOGP, LOGP)
  np.testing.assert_allclose(gan.gan_value(logits, logits, P * DT, P * DT), -np.log(4), atol=1e-5)


def test_minimax_generator_saturates_where_non_saturating_does_not():
  # D confidently rejects the fakes (logit −20): ∂/∂l log(1 − σ(l)) = −σ(l) ≈ 2e-9, while
  # ∂/∂l [−log σ(l)] = −σ(−l) ≈ −1.
  fake = jnp.full((8,), -20.0)
  g_mm = jax.grad(lambda l: gan.minimax_g_loss(l))(fake)
  g_ns = jax.grad(lambda l: gan.non_saturating_g_loss(l))(fake)
  assert float(jnp.max(jnp.abs(g_mm))) < 1e-9 * 8
  np.testing.assert_allclose(g_ns, -1.0 / 8, rtol=1e-6)
  # both push the logit up (same sign), and they agree in direction everywhere
  l = jnp.linspace(-5, 5, 11)
  assert bool(jnp.all(jax.grad(lambda v: gan.minimax_g_loss(v))(l) < 0))
  assert bool(jnp.all(jax.grad(lambda v: gan.non_saturating_g_loss(v))(l) < 0))


def test_hinge_least_squares_wasserstein_values():
  r, f = jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.0])
  np.testing.assert_allclose(gan.hinge_d_loss(r, f), (0 + 0.5) / 2 + (0 + 1) / 2)
  np.testing.assert_allclose(gan.hinge_g_loss(f), 1.0)
  np.testing.assert_allclose(gan.least_squares_d_loss(r, f), 0.5 * (1 + 0.25) / 2 + 0.5 * 4 / 2)
  np.testing.assert_allclose(gan.least_squares_g_loss(f), 0.5 * (9 + 1) / 2)
  np.testing.assert_allclose(gan.wasserstein_critic_loss(r, f), -1.0 - 1.25)
  np.testing.assert_allclose(gan.wasserstein_g_loss(f), 1.0)
  # per-patch outputs and weights (an eval mask) reduce the same way
  np.testing.assert_allclose(gan.wasserstein_g_loss(f[:, None, None, None] * jnp.ones((2, 3, 3, 1)),
                                                    jnp.array([1.0, 0.0])), 2.0)
  with pytest.raises(ConfigError, match="task.loss"):
    gan.get_loss("wgan")


def test_losses_and_penalties_compose_with_jit_vmap_grad():
  from jaxgen import ot
  r = jax.random.normal(jax.random.key(0), (4, 8))
  f = jax.random.normal(jax.random.key(1), (4, 8))
  for pair in gan.LOSSES.values():
    d = jax.jit(jax.vmap(pair.d))(r, f)
    g = jax.vmap(jax.grad(pair.g))(f)
    assert d.shape == (4,) and g.shape == (4, 8)
    np.testing.assert_allclose(d[1], pair.d(r[1], f[1]), rtol=1e-6)
  w = jnp.array([0.6, 0.8])
  gp = jax.jit(lambda key: gan.gradient_penalty(lambda x: x @ w, r[:, :2], f[:, :2], key))(jax.random.key(2))
  assert float(gp) < 1e-10
  w1 = jax.jit(jax.vmap(ot.wasserstein_1d))(r, f)
  np.testing.assert_allclose(w1[0], np.mean(np.abs(np.sort(r[0]) - np.sort(f[0]))), rtol=1e-5)
