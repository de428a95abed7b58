"""PSNR and SSIM: analytic values, and SSIM against scikit-image's algorithm rebuilt with scipy.

The reference follows skimage.metrics.structural_similarity (gaussian_weights=True, sigma 1.5, truncate 3.5
→ 11 taps, K1 0.01, K2 0.03, per channel, map cropped by (win−1)/2 = 5 before the mean), in float64 with
``scipy.ndimage.gaussian_filter``; use_sample_covariance False (Wang et al.) and True (skimage's default).
"""

import jax
import numpy as np
import pytest

from jaxgen.eval import reconstruction as rec

_ssim = jax.jit(rec.ssim, static_argnames=("sample_covariance",))


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(2, 24, 19, 3))
  # a smooth image and a noisy copy: SSIM well inside (0, 1)
  t = np.linspace(0, 3, 24)[:, None, None] + np.linspace(0, 2, 19)[None, :, None] * np.arange(1, 4)
  x[1] = np.sin(t)
  y = np.clip(x + rng.normal(scale=0.2, size=x.shape), -1, 1)
  return x.astype(np.float32), y.astype(np.float32)


def _ssim_reference(x, y, data_range, sample_cov):
  from scipy.ndimage import gaussian_filter

  out = []
  for xi, yi in zip(x.astype(np.float64), y.astype(np.float64)):
    per_channel = []
    for c in range(xi.shape[-1]):
      a, b = xi[..., c], yi[..., c]
      f = lambda im: gaussian_filter(im, sigma=1.5, truncate=3.5)   # noqa: E731
      ux, uy = f(a), f(b)
      norm = 121 / 120 if sample_cov else 1.0
      vx, vy, vxy = norm * (f(a * a) - ux * ux), norm * (f(b * b) - uy * uy), norm * (f(a * b) - ux * uy)
      c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
      s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
      per_channel.append(s[5:-5, 5:-5].mean())
    out.append(np.mean(per_channel))
  return np.array(out)


def test_gaussian_window_has_11_taps_summing_to_one():
  g = rec.gaussian_window()
  assert g.shape == (11,) and np.isclose(g.sum(), 1.0) and np.argmax(g) == 5


@pytest.mark.parametrize("sample_cov", [False, True])
def test_ssim_matches_scikit_image_algorithm(images, sample_cov):
  x, y = images
  got = np.asarray(_ssim(x, y, sample_covariance=sample_cov))
  ref = _ssim_reference(x, y, 2.0, sample_cov)
  np.testing.assert_allclose(got, ref, atol=2e-5)
  assert 0.05 < ref.min() < ref.max() < 0.99


def test_ssim_analytic_values(images):
  x, _ = images
  np.testing.assert_allclose(_ssim(x, x), 1.0, atol=1e-5)
  # constant images a, b: σ = 0, so SSIM = (2ab + C1) / (a² + b² + C1) with C1 = (0.01·2)²
  a, b = 0.5, -0.25
  c1 = 0.02 ** 2
  got = _ssim(np.full((1, 12, 12, 1), a, np.float32), np.full((1, 12, 12, 1), b, np.float32))
  np.testing.assert_allclose(got, (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-5)
  with pytest.raises(ValueError, match="11×11"):
    rec.ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


def test_psnr_analytic_values(images):
  x, y = images
  err = np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(rec.psnr(x, y), 10 * np.log10(4.0 / err), rtol=1e-5)
  # a uniform offset of 0.02 in [−1, 1]: MSE 4e-4 → 10·log10(4 / 4e-4) = 40 dB
  np.testing.assert_allclose(rec.psnr(x, x + 0.02), 40.0, rtol=1e-4)
  np.testing.assert_allclose(rec.psnr(x * 127.5, (x + 0.02) * 127.5, data_range=255.0), 40.0, rtol=1e-4)
  assert np.all(np.isinf(np.asarray(rec.psnr(x, x))))
  with pytest.raises(ValueError, match="one shape"):
    rec.psnr(x, y[:1])
