"""EfficientNet converters against the official libraries' own networks and files (no torch or keras needed).

Fixture (scripts/make_efficientnet_fixture.py): torchvision's and Keras 3's EfficientNet classes at width
0.1, depth 0.5 (B0's block table), 10 classes, random weights and BatchNorm statistics, 32×32 inputs, saved
as ``torch.save``/``.safetensors`` bytes and Keras 3 ``.weights.h5``/Keras 2 ``.h5`` bytes, with the
libraries' eval-mode logits.

Tolerance: 5e-5 × max|logit| — float32 rounding through ~30 conv/BN layers in two different libraries
(measured 4e-7 for torchvision, 5e-6 for Keras on its torch backend). The other variant's padding/ε moves
the logits by ≥ 6e-3 × max|logit| (asserted), so the tolerance cannot hide a variant mix-up.
"""

import json
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.convert import _common
from jaxgen.convert import efficientnet as conv
from jaxgen.convert.edm import load_into
from jaxgen.convert.torchvision import check_network
from jaxgen.errors import ConfigError
from jaxgen.models.efficientnet import TF_OVERRIDES, torchvision_overrides
from jaxgen.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD
from tests.fixtures.fast_compile import jit_fast

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "efficientnet", "tiny_efficientnet.npz")
TINY = {"width": 0.1, "depth": 0.5}
RTOL = 5e-5


@pytest.fixture(scope="module")
def fx():
  with np.load(FIXTURE) as z:
    return {k: z[k] for k in z.files}


def _write(tmp_path, fx, entry, name):
  path = tmp_path / name
  path.write_bytes(fx[entry].tobytes())
  return str(path)


def _logits(flat, meta, x, **overrides):
  net = models.create(meta["model"], **{**meta["overrides"], **overrides})
  variables = jax.tree_util.tree_map(jnp.asarray, _common.unflatten(flat))
  fn = jit_fast(lambda v, x: net.apply(v, x, train=False), variables, jnp.asarray(x))
  return np.asarray(fn(variables, jnp.asarray(x)))


def _rel(a, ref):
  return float(np.abs(a - ref).max() / np.abs(ref).max())


def _same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_default_is_the_tf_keras_variant_and_torchvision_eps_per_model():
  net = models.create("efficientnet_b0")
  assert (net.padding, net.bn_eps, net.bn_momentum) == ("same", 1e-3, 0.99) == tuple(TF_OVERRIDES.values())
  # torchvision: B0–B4 use nn.BatchNorm2d (ε 1e-5), B5–B7 partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
  assert [torchvision_overrides(f"b{i}")["bn_eps"] for i in range(8)] == [1e-5] * 5 + [1e-3] * 3
  assert all(torchvision_overrides(f"b{i}")["padding"] == "symmetric" for i in range(8))
  with pytest.raises(ValueError, match="padding"):
    models.param_shapes("efficientnet_b0", padding="valid", width=0.1, depth=0.1)


def test_torchvision_pth_and_safetensors(fx, tmp_path):
  flat, meta = conv.convert(_write(tmp_path, fx, "tv_pth", "w.pth"), overrides=TINY)
  flat2, meta2 = conv.convert(_write(tmp_path, fx, "tv_safetensors", "w.safetensors"), overrides=TINY)
  _same(flat, flat2)
  assert meta == meta2 and meta["source"] == "torchvision"
  assert meta["overrides"] == {**torchvision_overrides("b0"), "num_classes": 10, **TINY}
  assert meta["overrides"]["input_norm"] == "imagenet" and "preprocess" not in meta
  # the network takes jaxgen's [−1, 1] images: the image whose Normalize(mean, std) is torchvision's input
  x = 2 * (fx["tv_x"] * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)) - 1
  ref = fx["tv_logits"]
  assert _rel(_logits(flat, meta, x), ref) < RTOL
  # the TF/Keras variant (SAME padding, ε 1e-3) is a different network
  assert _rel(_logits(flat, meta, x, **TF_OVERRIDES), ref) > 100 * RTOL


def test_keras_weights_h5_legacy_h5_and_unnamed_groups(fx, tmp_path):
  new = _write(tmp_path, fx, "keras_weights_h5", "w.weights.h5")
  flat, meta = conv.convert(new, overrides=TINY)
  flat_legacy, meta_legacy = conv.convert(_write(tmp_path, fx, "keras_legacy_h5", "w.h5"), overrides=TINY)
  _same(flat, flat_legacy)
  # the fixture's Normalization is random, not ImageNet's: the network takes meta['preprocess'] inputs
  assert meta == meta_legacy and meta["overrides"] == {**TF_OVERRIDES, "num_classes": 10, **TINY, "input_norm": "none"}
  # without the 'name' attributes the layers follow from Keras' per-class naming in layer order
  with h5py.File(new, "r+") as f:
    for key in f["layers"]:
      if "vars" in f["layers"][key]:
        f["layers"][key]["vars"].attrs.pop("name", None)
  flat_unnamed, _ = conv.convert(new, overrides=TINY)
  _same(flat, flat_unnamed)
  x = conv.preprocess(fx["keras_x"] / 255.0, meta)       # Keras' Rescaling(1/255) + Normalization
  ref = fx["keras_logits"]
  assert _rel(_logits(flat, meta, x), ref) < RTOL
  assert _rel(_logits(flat, meta, x, **{**torchvision_overrides("b0"), "input_norm": "none"}), ref) > 100 * RTOL
  std = np.asarray(meta["preprocess"]["std"])
  _, meta_rescaled = conv.convert(new, overrides=TINY, keras_imagenet_rescale=True)
  np.testing.assert_allclose(meta_rescaled["preprocess"]["std"], std * np.sqrt([0.229, 0.224, 0.225]), rtol=1e-6)


def test_keras_imagenet_normalization_becomes_input_norm(fx, tmp_path):
  # keras.applications' released files store the ImageNet *std* as the Normalization "variance" and add
  # Rescaling(1/sqrt(std)) when built with weights='imagenet': (x - mean)/sqrt(std)/sqrt(std) = ImageNet's
  path = _write(tmp_path, fx, "keras_legacy_h5", "w.h5")
  with h5py.File(path, "r+") as f:
    f["normalization"]["normalization"]["mean"][...] = IMAGENET_MEAN
    f["normalization"]["normalization"]["variance"][...] = IMAGENET_STD
  _, meta = conv.convert(path, overrides=TINY, keras_imagenet_rescale=True)
  assert meta["overrides"]["input_norm"] == "imagenet" and "preprocess" not in meta
  _, meta = conv.convert(path, overrides=TINY)
  assert meta["overrides"]["input_norm"] == "none"
  np.testing.assert_allclose(meta["preprocess"]["std"], np.sqrt(IMAGENET_STD), rtol=1e-6)


def test_cli_output_loads_into_the_classification_variables(fx, tmp_path, capsys):
  src, out = _write(tmp_path, fx, "tv_pth", "w.pth"), str(tmp_path / "out.npz")
  assert conv.main([src, out, "--overrides", json.dumps(TINY)]) == 0
  assert "--config.model.init_from=" in capsys.readouterr().out
  variables, meta = conv.load(out)
  like = models.init_shapes("efficientnet_b0", **meta["overrides"])
  host = load_into(out, {"params": like["params"], "batch_stats": like["batch_stats"]})
  np.testing.assert_array_equal(host["batch_stats"]["stem"]["bn"]["var"], variables["batch_stats"]["stem"]["bn"]["var"])
  # a configured network of the other variant is refused although every shape fits
  check_network(meta, "efficientnet_b0", meta["overrides"])
  with pytest.raises(ConfigError, match="padding='same'"):
    check_network(meta, "efficientnet_b0", {**meta["overrides"], "padding": "same"})
  # the wrong network: a full-width B0 does not take the tiny weights, naming the tensor
  assert conv.main([src, str(tmp_path / "bad.npz")]) == 1
  assert "efficientnet_b0" in capsys.readouterr().err


def test_keras_layer_naming_variants_and_notop(fx, tmp_path):
  path = _write(tmp_path, fx, "keras_legacy_h5", "w.h5")
  flat, _ = conv.convert(path, overrides=TINY)
  with h5py.File(path, "r+") as f:        # Keras numbers auto-named layers per session
    f.move("normalization", "normalization_3")
  renamed, _ = conv.convert(path, overrides=TINY)
  _same(flat, renamed)
  with h5py.File(path, "r+") as f:
    del f["predictions"]
  with pytest.raises(conv.EfficientNetConvertError, match="include_top=False"):
    conv.convert(path, overrides=TINY)
  with pytest.raises(conv.EfficientNetConvertError, match="block2b_expand_conv"):
    conv.convert(_write(tmp_path, fx, "keras_weights_h5", "w.weights.h5"), overrides={"width": 0.1, "depth": 1.0})
