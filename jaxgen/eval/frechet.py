"""Fréchet distance between Gaussians fitted to feature sets (the FID formula), in float64.

    d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{½})

computed with scipy's ``sqrtm`` on host arrays, as the reference TF/pytorch-fid implementations do
(a tiny diagonal offset is added when the product is singular; imaginary round-off is dropped).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance (``np.cov`` convention, ddof=1) of ``features[N, D]`` in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"features must be [N>=2, D], got shape {f.shape}.")
  return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or s1.shape != s2.shape:
    raise ValueError(f"statistics do not match: means {mu1.shape} vs {mu2.shape}, covariances {s1.shape} vs {s2.shape}.")
  diff = mu1 - mu2
  with warnings.catch_warnings():  # a singular product is handled below, not worth a warning
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
  if not np.isfinite(covmean).all():
    offset = np.eye(s1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  covmean = np.real(covmean)
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(f1, f2) -> float:
  return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
