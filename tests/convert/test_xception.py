"""timm legacy_xception converter against timm's own network (no torch or timm needed).

Fixture (scripts/make_xception_fixture.py): timm's ``Xception`` class with its layers rebuilt from timm's
``Block``/``SeparableConv2d`` at 1/16 width, two middle blocks (block6–11 = Identity), 10 classes, random
weights and BatchNorm statistics, a 75×75 input (entry block 2 pools an even 18×18 map), the bytes of
``torch.save(state_dict)`` and timm's eval-mode logits.

Tolerance: 1e-5 × max|logit| (float32 rounding; measured 1.3e-7). Keras' "SAME" pool padding moves the
logits by 1.5e-3 × max|logit| and ε 1e-3 by 8e-3 (asserted > 50× the tolerance).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.convert import _common
from jaxgen.convert import timm as conv
from jaxgen.convert.edm import load_into
from jaxgen.convert.torchvision import read_state_dict
from jaxgen.models.xception import TIMM_OVERRIDES
from tests.fixtures.fast_compile import jit_fast

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "xception", "tiny_xception.npz")
RTOL = 1e-5


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
  with np.load(FIXTURE) as z:
    out = {k: z[k] for k in z.files}
  path = tmp_path_factory.mktemp("xception") / "tiny.pth"
  path.write_bytes(out["pth"].tobytes())
  out["path"] = str(path)
  return out


def _logits(flat, meta, x, **overrides):
  net = models.create(meta["model"], **{**meta["overrides"], **overrides})
  variables = jax.tree_util.tree_map(jnp.asarray, _common.unflatten(flat))
  fn = jit_fast(lambda v, x: net.apply(v, x, train=False), variables, jnp.asarray(x))
  return np.asarray(fn(variables, jnp.asarray(x)))


def _rel(a, ref):
  return float(np.abs(a - ref).max() / np.abs(ref).max())


def test_default_is_keras_and_timm_overrides():
  net = models.create("xception")
  assert (net.pool_padding, net.bn_eps) == ("same", 1e-3)
  assert TIMM_OVERRIDES == {"pool_padding": "symmetric", "bn_eps": 1e-5, "bn_momentum": 0.9}


def test_legacy_xception_logits_and_variant_sensitivity(fx):
  flat, meta = conv.convert(fx["path"])
  assert meta["overrides"] == {**TIMM_OVERRIDES, "width": 1 / 16, "middle_blocks": 2, "num_classes": 10}
  x, ref = fx["x"], fx["logits"]
  assert _rel(_logits(flat, meta, x), ref) < RTOL
  assert _rel(_logits(flat, meta, x, pool_padding="same"), ref) > 50 * RTOL      # Keras' pools
  assert _rel(_logits(flat, meta, x, bn_eps=1e-3), ref) > 50 * RTOL              # Keras' ε


def test_cli_and_init_from_layout(fx, tmp_path, capsys):
  out = str(tmp_path / "x.npz")
  assert conv.main([fx["path"], out]) == 0
  assert "--config.model.init_from=" in capsys.readouterr().out
  variables, meta = conv.load(out)
  like = models.init_shapes("xception", **meta["overrides"])
  host = load_into(out, {"params": like["params"], "batch_stats": like["batch_stats"]})
  np.testing.assert_array_equal(host["params"]["middle1_sep2"]["pointwise"]["kernel"],
                                variables["params"]["middle1_sep2"]["pointwise"]["kernel"])


def test_refuses_other_layouts(fx):
  sd = read_state_dict(fx["path"])
  extra = {**sd, "block4.rep.1.bn_dw.weight": np.zeros(3, np.float32)}      # not a legacy_xception tensor
  with pytest.raises(conv.TimmConvertError, match="lacks"):
    conv.convert_xception(extra)
  missing = {k: v for k, v in sd.items() if not k.startswith("block2.")}
  with pytest.raises(conv.TimmConvertError, match="block1–block3"):
    conv.convert_xception(missing)
  with pytest.raises(conv.TimmConvertError, match="timm conversion exists for xception"):
    conv.convert(fx["path"], model="efficientnet_b0")
  wide = {**sd, "fc.weight": np.zeros((10, 7), np.float32)}
  with pytest.raises(conv.TimmConvertError, match="classifier/kernel"):
    conv.convert_xception(wide)
