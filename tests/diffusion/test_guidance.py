"""Classifier-free guidance wrapper (Ho & Salimans 2022) against exact identities."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import cfg_denoiser, karras_sigmas, sample_heun
from tests.diffusion import mixtures as M

COND = M.gaussian_denoiser(1.5, 0.5)
UNCOND = M.gaussian_denoiser(-0.5, 0.5)


def test_scale_one_is_cond_and_zero_is_uncond_exactly():
  x = jax.random.normal(jax.random.key(0), (5, 3)) * 3
  sigma = jnp.array([0.01, 0.3, 1.0, 7.0, 80.0])
  np.testing.assert_array_equal(np.asarray(cfg_denoiser(COND, UNCOND, 1.0)(x, sigma)),
                                np.asarray(COND(x, sigma)))
  np.testing.assert_array_equal(np.asarray(cfg_denoiser(COND, UNCOND, 0.0)(x, sigma)),
                                np.asarray(UNCOND(x, sigma)))
  w = 3.0
  np.testing.assert_allclose(np.asarray(cfg_denoiser(COND, UNCOND, w)(x, sigma)),
                             np.asarray(UNCOND(x, sigma) + w * (COND(x, sigma) - UNCOND(x, sigma))),
                             rtol=1e-6, atol=1e-6)
  out = cfg_denoiser(COND, UNCOND, 2.0)(x.astype(jnp.bfloat16), sigma)
  assert out.dtype == jnp.bfloat16


def test_guided_gaussians_sample_the_extrapolated_gaussian():
  # Two Gaussians N(μ_c, s²), N(μ_u, s²) with the same s: (1−w)D_u + wD_c is exactly the ideal
  # denoiser of N(μ_u + w(μ_c − μ_u), s²) (D is affine in μ), so Heun with the guided denoiser equals
  # Heun with that Gaussian's denoiser. Setup: w = 2.5 traced under jit, 16 steps, 4 samples.
  sig = karras_sigmas(16)
  x = jax.random.normal(jax.random.key(1), (4, 2)) * sig[0]
  guided = jax.jit(lambda x, w: sample_heun(cfg_denoiser(COND, UNCOND, w), x, sig))(x, 2.5)
  target = sample_heun(M.gaussian_denoiser(-0.5 + 2.5 * 2.0, 0.5), x, sig)
  np.testing.assert_allclose(np.asarray(guided), np.asarray(target), rtol=1e-5, atol=1e-5)
