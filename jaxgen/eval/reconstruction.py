"""Reconstruction metrics: PSNR and SSIM per image, as pure jnp (jit-able, batched).

    psnr(x, x_rec)            # [B] dB, images [B, H, W, C] in [−1, 1] (data_range 2)
    ssim(x, x_rec)            # [B], 1 for identical images

- PSNR = 10 log10(R² / MSE), MSE over all pixels and channels of an image, R = ``data_range`` (the
  difference between the largest and smallest possible value: 2 for [−1, 1], 255 for uint8 pictures).
  Identical images give +inf.
- SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to
  structural similarity"): local statistics under an 11×11 Gaussian window with σ = 1.5 (separable,
  exp(−x²/2σ²) normalised, radius 5 = int(3.5σ + 0.5) as scipy's ``gaussian_filter`` with truncate 3.5),
    μ_x = w∗x,  σ_x² = w∗x² − μ_x²,  σ_xy = w∗(xy) − μ_x μ_y,
    S = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),
    C1 = (0.01 R)², C2 = (0.03 R)²,
  averaged over the positions where the window lies inside the image ('valid') and over channels (each
  channel on its own). This is scikit-image's ``structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False, data_range=R, channel_axis=-1)``, which its documentation gives as the
  setting that matches Wang et al.; ``sample_covariance=True`` multiplies the (co)variances by
  121/120 as scikit-image's default ``use_sample_covariance=True`` does.

Computed in float32 at full precision. Images smaller than the window (11 pixels) are an error.
"""

from __future__ import annotations

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["psnr", "mse", "ssim", "gaussian_window"]

_SIGMA, _TRUNCATE = 1.5, 3.5


def _pair(x, y):
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  if x.shape != y.shape or x.ndim != 4:
    raise ValueError(f"expected two image batches [B, H, W, C] of one shape, got {x.shape} and {y.shape}.")
  return x, y


def mse(x, y) -> jax.Array:
  """Mean squared error per image → [B]."""
  x, y = _pair(x, y)
  return jnp.mean(jnp.square(x - y), axis=(1, 2, 3))


def psnr(x, y, data_range: float = 2.0) -> jax.Array:
  """Peak signal-to-noise ratio in dB per image → [B] (+inf where the images are equal)."""
  err = mse(x, y)
  return 10.0 * jnp.log10(data_range ** 2 / err)


def gaussian_window(sigma: float = _SIGMA, truncate: float = _TRUNCATE) -> np.ndarray:
  """The normalised 1-D Gaussian taps (11 for σ 1.5), float64."""
  radius = int(truncate * sigma + 0.5)
  t = np.arange(-radius, radius + 1, dtype=np.float64)
  g = np.exp(-0.5 * t * t / sigma ** 2)
  return g / g.sum()


def _filter(x, taps):
  """Valid separable filtering of [N, H, W, 1] with the 1-D taps along H then W."""
  k = len(taps)
  dn = ("NHWC", "HWIO", "NHWC")
  t = jnp.asarray(taps, jnp.float32)
  x = lax.conv_general_dilated(x, t.reshape(k, 1, 1, 1), (1, 1), "VALID", dimension_numbers=dn,
                               precision=lax.Precision.HIGHEST)
  return lax.conv_general_dilated(x, t.reshape(1, k, 1, 1), (1, 1), "VALID", dimension_numbers=dn,
                                  precision=lax.Precision.HIGHEST)


def ssim(x, y, data_range: float = 2.0, *, k1: float = 0.01, k2: float = 0.03,
         sample_covariance: bool = False) -> jax.Array:
  """Mean structural similarity per image → [B] (module docstring for the definition)."""
  x, y = _pair(x, y)
  taps = gaussian_window()
  b, h, w, c = x.shape
  if min(h, w) < len(taps):
    raise ValueError(f"SSIM needs images of at least {len(taps)}×{len(taps)} pixels, got {h}×{w}.")
  # every channel on its own: [B, H, W, C] → [B·C, H, W, 1]; the five maps filtered in one call
  to_planes = lambda a: a.transpose(0, 3, 1, 2).reshape(b * c, h, w, 1)   # noqa: E731
  xs, ys = to_planes(x), to_planes(y)
  stack = jnp.concatenate([xs, ys, xs * xs, ys * ys, xs * ys], axis=0)
  mu_x, mu_y, xx, yy, xy = jnp.split(_filter(stack, taps), 5, axis=0)
  norm = (len(taps) ** 2 / (len(taps) ** 2 - 1)) if sample_covariance else 1.0
  var_x = norm * (xx - mu_x * mu_x)
  var_y = norm * (yy - mu_y * mu_y)
  cov = norm * (xy - mu_x * mu_y)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
  return jnp.mean(s.reshape(b, -1), axis=1)
