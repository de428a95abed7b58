"""LPIPS-VGG: equals the lpips package's formula rebuilt in PyTorch (tests/fixtures/lpips, made by
scripts/make_lpips_fixture.py on a tiny random VGG), metric invariants, parameter count,
and weight loading."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.convert import lpips as conv
from jaxgen.errors import ConfigError
from jaxgen.models import lpips as lp

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "lpips" / "tiny_lpips.npz"


@pytest.fixture(scope="module")
def tiny():
  with np.load(FIXTURE) as f:
    data = {k: f[k] for k in f.files}
  widths = tuple(int(w) for w in data["widths"])
  vgg = {k[4:]: v for k, v in data.items() if k.startswith("vgg/")}
  lin = {k[4:]: v for k, v in data.items() if k.startswith("lin/")}
  variables = lp.unflatten(conv.convert_state_dicts(vgg, lin, widths=widths), widths)
  net = lp.LPIPS(widths)
  fn = jax.jit(lambda v, x, y: net.apply(v, x, y, per_layer=True))
  return data, variables, fn


def test_matches_the_torch_reference(tiny):
  data, variables, fn = tiny
  d, per_layer = fn(variables, data["x"], data["y"])
  np.testing.assert_allclose(np.asarray(per_layer), data["per_layer"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(d), data["d"], rtol=1e-4)
  assert d.shape == (2,)


def test_metric_invariants(tiny):
  data, variables, fn = tiny
  x, y = data["x"], data["y"]
  np.testing.assert_allclose(np.asarray(fn(variables, x, x)[0]), 0.0, atol=1e-7)
  np.testing.assert_allclose(np.asarray(fn(variables, y, x)[0]), np.asarray(fn(variables, x, y)[0]),
                             rtol=1e-5)


def test_gradient_is_finite_where_features_vanish():
  # a ReLU tap can be all zero at a position; lpips' f / (sqrt(Σf²) + eps) has an infinite sqrt derivative
  # there (NaN gradient in torch); ours keeps the value (0) and a finite gradient
  f = jnp.zeros((1, 2, 2, 8)).at[0, 0, 0].set(jnp.arange(8.0))
  value_and_grad = jax.jit(jax.value_and_grad(lambda f: jnp.sum(lp._unit_normalize(f) * jnp.arange(8.0))))
  value, g = value_and_grad(f)
  np.testing.assert_allclose(value, np.sum(np.arange(8.0) ** 2) / np.sqrt(140), rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(g)))


def test_full_size_parameter_count():
  shapes = lp.variable_shapes()
  n = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(shapes))
  # torchvision vgg16: 138,357,544 params in all, classifier 123,642,856 → features 14,714,688;
  # lpips lin layers: 64 + 128 + 256 + 512 + 512 = 1,472
  assert n == 14_714_688 + 1_472
  assert shapes["params"]["lin3"]["kernel"].shape == (1, 1, 512, 1)


def test_load_lpips_round_trip_and_errors(tiny, tmp_path):
  data, variables, _ = tiny
  widths = tuple(int(w) for w in data["widths"])
  path = tmp_path / "w.npz"
  np.savez(path, **{k: np.asarray(v) for k, v in lp.flatten(variables).items()})
  loaded = lp.load_lpips(str(path), widths)
  for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(ConfigError, match="not found"):
    lp.load_lpips(str(tmp_path / "missing.npz"))
  with pytest.raises(ConfigError, match="no LPIPS weights"):
    lp.load_lpips("")
  with pytest.raises(ConfigError, match="shape"):
    lp.load_lpips(str(path))                      # tiny weights, full-size network
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip")
  with pytest.raises(ConfigError, match="readable"):
    lp.load_lpips(str(bad), widths)
