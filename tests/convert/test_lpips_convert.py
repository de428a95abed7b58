"""The LPIPS converter on state dicts in torchvision's / lpips' key layout (no torch needed).

Key layout written from torchvision's vgg16 (``features`` = conv/relu pairs with max pools at indices 4, 9,
16, 23, 30; ``classifier.{0,3,6}``) and lpips' ``NetLinLayer`` (Dropout, bias-free 1×1 conv →
``lin{l}.model.1.weight``), independently of the converter's table.
"""

import numpy as np
import pytest

from jaxgen.convert import lpips as conv
from jaxgen.models import lpips as lp

WIDTHS = (2, 3, 4, 5, 6)


def _state_dicts(widths=WIDTHS, rng=np.random.default_rng(0)):
  vgg, lin, cin, i = {}, {}, 3, 0
  for width, depth in zip(widths, (2, 2, 3, 3, 3)):
    for _ in range(depth):
      vgg[f"features.{i}.weight"] = rng.normal(size=(width, cin, 3, 3)).astype(np.float32)
      vgg[f"features.{i}.bias"] = rng.normal(size=(width,)).astype(np.float32)
      cin, i = width, i + 2            # conv, relu
    i += 1                             # max pool
  vgg["classifier.0.weight"] = np.zeros((4, 7), np.float32)
  for l, width in enumerate(widths):
    lin[f"lin{l}.model.1.weight"] = rng.uniform(size=(1, width, 1, 1)).astype(np.float32)
  return vgg, lin


def test_conv_indices_are_torchvisions():
  vgg, _ = _state_dicts()
  idx = sorted({int(k.split(".")[1]) for k in vgg if k.startswith("features.")})
  assert tuple(idx) == tuple(i for block in conv.CONV_INDICES for i in block)


def test_mapping_layouts_and_round_trip():
  vgg, lin = _state_dicts()
  flat = conv.convert_state_dicts(vgg, lin, widths=WIDTHS)
  k = vgg["features.14.weight"]                                    # conv3_3: [O, I, kh, kw]
  np.testing.assert_array_equal(flat["params/vgg/conv3_3/kernel"], k.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(flat["params/vgg/conv5_1/bias"], vgg["features.24.bias"])
  np.testing.assert_array_equal(flat["params/lin2/kernel"][0, 0, :, 0],
                                lin["lin2.model.1.weight"][0, :, 0, 0])
  vgg2, lin2 = conv.to_state_dicts(flat)
  for key, v in {**vgg2, **lin2}.items():
    np.testing.assert_array_equal(v, {**vgg, **lin}[key])
  # a whole lpips LPIPS module state dict (net.slice{s}.{i}.*, scaling_layer, lin without dropout)
  slice_of = lambda i: 1 + sum(i > b for b in (3, 8, 15, 22))     # noqa: E731 (lpips' slice1..5 bounds)
  module_sd = {k.replace("features.", f"net.slice{slice_of(int(k.split('.')[1]))}."): v
               for k, v in vgg.items() if k.startswith("features.")}
  module_sd.update({k.replace("model.1", "model.0"): v for k, v in lin.items()})
  module_sd["scaling_layer.shift"] = np.asarray(lp.SHIFT, np.float32).reshape(1, 3, 1, 1)
  flat2 = conv.convert_state_dicts(module_sd, widths=WIDTHS)
  assert all(np.array_equal(flat2[k], flat[k]) for k in flat)


def test_clear_errors():
  vgg, lin = _state_dicts()
  with pytest.raises(Exception, match="missing"):
    conv.convert_state_dicts(vgg, widths=WIDTHS)                  # no lin weights
  with pytest.raises(KeyError, match="not a conv"):
    conv.convert_state_dicts({**vgg, "features.3.weight": np.zeros(1)}, lin, widths=WIDTHS)
  with pytest.raises(ValueError, match="overlap"):
    conv.convert_state_dicts(vgg, lin, lin, widths=WIDTHS)
  with pytest.raises(Exception, match="shape"):
    conv.convert_state_dicts(vgg, lin)                            # tiny weights, full-size check
  with pytest.raises(ValueError, match="constant"):
    conv.convert_state_dicts(vgg, lin, {"scaling_layer.scale": np.ones(3)}, widths=WIDTHS)


def test_cli_writes_a_file_load_lpips_reads(tmp_path, monkeypatch):
  vgg, lin = _state_dicts(widths=(1, 1, 1, 1, 1))
  np.savez(tmp_path / "vgg.npz", **vgg)
  np.savez(tmp_path / "lin.npz", **lin)
  out = tmp_path / "out.npz"
  monkeypatch.setattr(lp, "VGG16_WIDTHS", (1, 1, 1, 1, 1))        # a 1-channel VGG stands in for the real one
  assert conv.main([str(tmp_path / "vgg.npz"), str(tmp_path / "lin.npz"), str(out)]) == 0
  variables = lp.load_lpips(str(out), (1, 1, 1, 1, 1))
  assert variables["params"]["vgg"]["conv4_2"]["kernel"].shape == (3, 3, 1, 1)
  assert conv.main([]) == 2
