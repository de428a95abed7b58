import numpy as np

from jaxgen.eval.frechet import frechet_distance, frechet_distance_from_features


def test_commuting_covariances_closed_form():
  # Diagonal (commuting) covariances: d² = ‖μ₁−μ₂‖² + Σ(√a − √b)².
  a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  expected = 1.0 + 4.0 + ((1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2)
  assert np.isclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10)


def test_identical_features_give_zero():
  f = np.random.default_rng(0).normal(size=(500, 8))
  assert abs(frechet_distance_from_features(f, f)) < 1e-8
