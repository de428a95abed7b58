"""FID Inception-v3: parameter count, a tiny-input forward pass, the TF1 resize and the pooling quirks.

Agreement with pytorch-fid's torch module was checked on a GPU box (random weights through the
converter: pool3 / logits relative error 4e-7 / 5e-7); that check needs torch and is not run here.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as M
from jaxgen.models import inception_v3 as iv3


def test_param_count_equals_reference():
  # 23,850,960 = torchvision inception_v3's 27,161,264 − AuxLogits 3,326,696 + 8 × 2049 (1008 classes);
  # pytorch-fid's FID module reported the same sum(p.numel()).
  shapes = iv3.variable_shapes()
  assert M.count_params(shapes["params"]) == 23_850_960
  assert M.count_params(M.param_shapes("inception_v3_fid")) == 23_850_960


@functools.cache
def _random_variables():
  rng = np.random.default_rng(0)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      return jnp.asarray(rng.normal(size=s.shape) * np.sqrt(2 / np.prod(s.shape[:-1])), jnp.float32)
    if "var" in name:
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), jnp.float32)
    if "scale" in name:
      return jnp.ones(s.shape, jnp.float32)
    return jnp.asarray(0.1 * rng.normal(size=s.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, iv3.variable_shapes())


def test_forward_on_one_75px_image():
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (1, 75, 75, 3)), jnp.float32)
  out = jax.jit(iv3.InceptionV3().apply)(_random_variables(), x)
  assert out["pool3"].shape == (1, 2048) and out["logits"].shape == (1, 1008)
  assert bool(jnp.isfinite(out["logits"]).all()) and bool((out["pool3"] >= 0).all())   # pool of ReLUs


def test_too_small_input_is_a_clear_error():
  with pytest.raises(ValueError, match="75"):
    jax.eval_shape(lambda: iv3.InceptionV3().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))


def test_tf1_bilinear_matrix():
  # TF1 resize_bilinear (align_corners=False, no half-pixel centres): source = i · in/out, clamped.
  np.testing.assert_allclose(iv3._tf1_bilinear_matrix(2, 4), [[1, 0], [.5, .5], [0, 1], [0, 1]])
  np.testing.assert_allclose(iv3._tf1_bilinear_matrix(5, 5), np.eye(5))
  m = iv3._tf1_bilinear_matrix(32, 299)
  np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)


def test_preprocess_matches_the_graph_normalisation():
  # The graph computes (p − 128)/128 on 0..255 pixels p.
  for p, expect in [(0, -1.0), (255, 127 / 128)]:
    out = iv3.preprocess(jnp.full((1, 299, 299, 3), p, jnp.uint8))
    np.testing.assert_allclose(np.asarray(out), expect, atol=1e-6)
  const = iv3.preprocess(jnp.full((1, 32, 32, 3), 128, jnp.uint8))
  assert const.shape == (1, 299, 299, 3)
  np.testing.assert_allclose(np.asarray(const), 0.0, atol=1e-5)


def test_average_pool_excludes_padding():
  x = jnp.full((1, 5, 5, 2), 3.0)
  np.testing.assert_allclose(np.asarray(iv3.avg_pool_exclude_pad(x)), 3.0, rtol=1e-6)


def test_missing_weights_file_is_one_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="inception_weights"):
    iv3.load_variables("")
  with pytest.raises(FileNotFoundError, match="not found"):
    iv3.load_variables(str(tmp_path / "none.npz"))
