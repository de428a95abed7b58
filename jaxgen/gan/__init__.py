"""GAN building blocks: losses, Lipschitz penalties/constraints, spectral norm, n_critic schedules.

    from jaxgen import gan
    d_loss = gan.wasserstein_critic_loss(critic(x), critic(G(z))) \
             + 10.0 * gan.gradient_penalty(critic, x, G(z), key)
    tx = optax.chain(optax.rmsprop(5e-5), gan.weight_clipping(0.01))

Part of the pure core: ``import jaxgen.gan`` needs only jax and numpy (tests/test_packaging.py).
Two names need more, and are loaded on first use: ``weight_clipping`` builds an optax transform (optax
is imported when it is called), and ``SpectralNorm`` / ``power_iteration`` live in
``jaxgen.gan.spectral``, a Flax module, imported on first attribute access (PEP 562), so
``from jaxgen.gan import SpectralNorm`` keeps working wherever Flax is installed. The trainer-facing
task is ``jaxgen.tasks.gan``.
"""

from jaxgen.gan.losses import (LOSSES, GanLoss, gan_value, get_loss, hinge_d_loss, hinge_g_loss,
                               least_squares_d_loss, least_squares_g_loss, minimax_d_loss,
                               minimax_g_loss, non_saturating_g_loss, optimal_discriminator,
                               optimal_logits, wasserstein_critic_loss, wasserstein_g_loss)
from jaxgen.gan.penalties import (gradient_penalty, input_gradients, interpolates, r1_penalty,
                                  safe_norm, weight_clipping)
from jaxgen.gan.schedules import critic_iters, critic_steps_before, generator_update_due

_FLAX_NAMES = ("SpectralNorm", "power_iteration")   # defined in jaxgen.gan.spectral (needs flax)


def __getattr__(name):
  if name in _FLAX_NAMES:
    try:
      from jaxgen.gan import spectral  # noqa: PLC0415 (flax only when spectral norm is used)
    except ModuleNotFoundError as e:
      raise ModuleNotFoundError(f"jaxgen.gan.{name} needs {e.name}: pip install 'jaxgen[models]'.",
                                name=e.name) from e
    return getattr(spectral, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_FLAX_NAMES))
