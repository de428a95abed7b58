"""The Fréchet distance (FID's formula): closed forms, the scipy.linalg.sqrtm reference, singular cases."""

import numpy as np
import pytest

from jaxgen.eval.frechet import frechet_distance, frechet_distance_from_features, gaussian_stats


def test_commuting_covariances_closed_form():
  # Diagonal (commuting) covariances: d² = ‖μ₁−μ₂‖² + Σ(√a − √b)².
  a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  expected = 1.0 + 4.0 + ((1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2)
  assert np.isclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10)


def test_identical_features_give_zero():
  f = np.random.default_rng(0).normal(size=(500, 8))
  assert abs(frechet_distance_from_features(f, f)) < 1e-8


def _ttur_reference(mu1, s1, mu2, s2):
  """The TTUR / pytorch-fid formula: the trace of scipy.linalg.sqrtm(Σ₁Σ₂), imaginary round-off dropped."""
  import scipy.linalg
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean.real))


def test_equals_the_scipy_sqrtm_reference_on_full_rank_features():
  # jaxgen.ot.gaussian_w2 takes tr((Σ₂^½Σ₁Σ₂^½)^½) from eigenvalues; equal to the sqrtm form
  # (the same eigenvalues). At d = 2048 with 6000 ReLU features the two agreed to 9e-15 relative.
  r = np.random.default_rng(1)
  f1 = r.normal(size=(600, 48))
  f2 = np.maximum(r.normal(size=(500, 48)) @ r.normal(size=(48, 48)) * 0.4 + 0.2, 0.0)
  expected = _ttur_reference(*gaussian_stats(f1), *gaussian_stats(f2))
  np.testing.assert_allclose(frechet_distance_from_features(f1, f2), expected, rtol=1e-9)
  # symmetric in its two arguments, as W2 is
  np.testing.assert_allclose(frechet_distance_from_features(f2, f1), expected, rtol=1e-9)


def test_rank_deficient_covariances_need_no_offset():
  # Fewer samples than dimensions (a quick FID): singular covariances. Commuting case in closed form.
  a, b = np.array([4.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 9.0, 0.0])
  expected = (2 - 1) ** 2 + 1 + 9
  d = frechet_distance(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b))
  assert d == pytest.approx(expected, rel=1e-12)
  f = np.random.default_rng(2).normal(size=(20, 64)) * 3.0
  mu, s = gaussian_stats(f)
  assert 0.0 <= frechet_distance(mu, s, mu, s) <= 1e-9 * np.trace(s)


def test_mismatched_statistics_are_refused():
  with pytest.raises(ValueError, match="one d"):
    frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
