"""FID / IS / KID against float64 references and analytic values; the sampling protocol end to end
with a stand-in feature extractor (the real Inception is covered in tests/models/test_inception.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxgen.eval import fid


def _scipy_fid(f1, f2):
  """Independent float64 reference: the TTUR formula with scipy.linalg.sqrtm."""
  m1, m2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_scipy_reference_on_random_features():
  rng = np.random.default_rng(0)
  f1 = rng.normal(size=(500, 16))
  f2 = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
  np.testing.assert_allclose(fid.fid_from_features(f1, f2), _scipy_fid(f1, f2), rtol=1e-8)
  # Gaussians with known moments: FID(N(a, I), N(b, 4I)) = ‖a − b‖² + d(1 + 4 − 2·2) = ‖a − b‖² + d.
  mu = np.zeros(8)
  assert fid.fid_from_stats(mu, np.eye(8), mu + 1, 4 * np.eye(8)) == pytest.approx(8 + 8, rel=1e-10)


def test_inception_score_uniform_and_one_hot():
  assert fid.inception_score(np.zeros((100, 1008)))[0] == pytest.approx(1.0, abs=1e-12)
  # Confident predictions spread evenly over K classes: IS = K (KL = log K for every sample).
  k = 10
  logits = np.full((100, 1008), -1e4)
  logits[np.arange(100), np.arange(100) % k] = 0.0
  assert fid.inception_score(logits, splits=10)[0] == pytest.approx(k, rel=1e-9)


def _poly_k(x, y):
  return (x @ y.T / x.shape[1] + 1) ** 3


def test_kid_is_unbiased():
  """Features drawn i.i.d. from two finite populations P, Q: the exact MMD² is
  mean K_PP + mean K_QQ − 2 mean K_PQ (independent draws may coincide, so diagonals count)."""
  rng = np.random.default_rng(1)
  d = 4
  P = rng.normal(size=(60, d))
  Q = rng.normal(size=(60, d)) * 1.2 + 0.2
  population = _poly_k(P, P).mean() + _poly_k(Q, Q).mean() - 2 * _poly_k(P, Q).mean()
  m, trials = 10, 2000
  est, biased = [], []
  for t in range(trials):
    x = P[rng.integers(0, len(P), m)]
    y = Q[rng.integers(0, len(Q), m)]
    est.append(fid.kid(x, y, num_subsets=1, subset_size=m, seed=t)[0])
    biased.append(_poly_k(x, x).mean() + _poly_k(y, y).mean() - 2 * _poly_k(x, y).mean())
  est, biased = np.array(est), np.array(biased)
  se = est.std() / np.sqrt(trials)
  assert abs(est.mean() - population) < 4 * se, (est.mean(), population, se)
  assert abs(biased.mean() - population) > 4 * se   # the V-statistic is biased; the test can tell


def test_quantize_matches_edm_png_conversion():
  x = jnp.array([-1.0, -0.999, 0.0, 0.5, 1.0, 1.5])
  expect = np.clip(np.asarray(x) * 127.5 + 128, 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(np.asarray(fid.quantize(x)), expect)
  assert list(expect) == [0, 0, 128, 191, 255, 255]


def test_stats_roundtrip_and_missing_file(tmp_path):
  rng = np.random.default_rng(2)
  f = rng.normal(size=(50, 6))
  mu, sigma = fid.gaussian_stats(f)
  p = str(tmp_path / "ref.npz")
  fid.save_stats(p, mu, sigma, 50, f)
  r = fid.load_stats(p)
  np.testing.assert_array_equal(r["mu"], mu)
  np.testing.assert_array_equal(r["sigma"], sigma)
  assert int(r["num_images"]) == 50 and r["features"].shape == (50, 6)
  with pytest.raises(FileNotFoundError, match="reference statistics"):
    fid.load_stats(str(tmp_path / "nope.npz"))


def test_missing_inception_weights_is_one_clear_error():
  with pytest.raises(FileNotFoundError, match="inception_weights"):
    fid.InceptionFeatures(None)


class _FakeExtractor:
  """Stand-in for InceptionFeatures: mean colour per channel as '2048-d' features, logits from pixels."""

  def __call__(self, images):
    x = np.asarray(fid.quantize(images), np.float64) / 255.0
    feats = np.concatenate([x.mean((1, 2)), x.std((1, 2))], 1)
    return feats, np.tile(feats[:, :1], (1, 4))


def test_protocol_three_seed_sets_minimum_and_batch_independence():
  def sample_fn(key, n, start):   # sample i depends only on (key, start + i)
    idx = start + jnp.arange(n)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)
    return jax.vmap(lambda k: jnp.tanh(jax.random.normal(k, (4, 4, 3))))(keys)

  ext = _FakeExtractor()
  ref_feats = ext(sample_fn(jax.random.key(99), 64, 0))[0]
  ref = dict(zip(("mu", "sigma"), fid.gaussian_stats(ref_feats)), features=ref_feats)
  a = fid.evaluate_protocol(sample_fn, ref, ext, num_samples=40, batch_size=16, progress=False)
  b = fid.evaluate_protocol(sample_fn, ref, ext, num_samples=40, batch_size=40, progress=False)
  assert len(a["fid_per_seed"]) == 3 and a["fid"] == min(a["fid_per_seed"])
  np.testing.assert_allclose(a["fid_per_seed"], b["fid_per_seed"], rtol=1e-6)
  assert {"is", "kid"} <= set(a)


def test_compute_fid_names_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="reference statistics"):
    fid.compute_fid(lambda k, n, s: None, 10, inception_weights="", fid_ref="")
  p = str(tmp_path / "ref.npz")
  fid.save_stats(p, np.zeros(3), np.eye(3))
  with pytest.raises(FileNotFoundError, match="inception_weights"):
    fid.compute_fid(lambda k, n, s: None, 10, inception_weights="", fid_ref=p)
