"""Fréchet distance between Gaussians fitted to feature sets (the FID formula), in float64.

    d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{½})

This is the squared 2-Wasserstein distance between N(μ₁, Σ₁) and N(μ₂, Σ₂); its one implementation
is ``jaxgen.ot.gaussian_w2`` (host float64, the trace of the square root from the eigenvalues of
Σ₂^½ Σ₁ Σ₂^½, which equals the trace of ``scipy.linalg.sqrtm(Σ₁ Σ₂)`` that the TTUR / pytorch-fid
reference code takes: tests/eval/test_frechet.py). Statistics follow the reference code too: the
mean and the unbiased (ddof = 1) covariance of the features.
"""

from __future__ import annotations

import numpy as np

from jaxgen.ot import gaussian_w2


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance (``np.cov`` convention, ddof=1) of ``features[N, D]`` in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"features must be [N>=2, D], got shape {f.shape}.")
  return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Fréchet distance d² between N(mu1, sigma1) and N(mu2, sigma2): ``ot.gaussian_w2(..., squared=True)``."""
  return gaussian_w2(mu1, sigma1, mu2, sigma2, squared=True)


def frechet_distance_from_features(f1, f2) -> float:
  return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
