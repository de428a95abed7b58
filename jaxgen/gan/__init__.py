"""GAN building blocks: losses, Lipschitz penalties/constraints, spectral norm, n_critic schedules.

    from jaxgen import gan
    d_loss = gan.wasserstein_critic_loss(critic(x), critic(G(z))) \
             + 10.0 * gan.gradient_penalty(critic, x, G(z), key)
    tx = optax.chain(optax.rmsprop(5e-5), gan.weight_clipping(0.01))

Needs only jax, flax, optax and numpy. The trainer-facing task is ``jaxgen.tasks.gan``.
"""

from jaxgen.gan.losses import (LOSSES, GanLoss, gan_value, get_loss, hinge_d_loss, hinge_g_loss,
                               least_squares_d_loss, least_squares_g_loss, minimax_d_loss,
                               minimax_g_loss, non_saturating_g_loss, optimal_discriminator,
                               optimal_logits, wasserstein_critic_loss, wasserstein_g_loss)
from jaxgen.gan.penalties import (gradient_penalty, input_gradients, interpolates, r1_penalty,
                                  safe_norm, weight_clipping)
from jaxgen.gan.schedules import critic_iters, critic_steps_before, generator_update_due
from jaxgen.gan.spectral import SpectralNorm, power_iteration
