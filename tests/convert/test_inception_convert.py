"""The pytorch-fid Inception converter on a synthetic state dict in torchvision's layout (no torch).

The layout below is written from torchvision's ``inception_v3`` (BasicConv2d = bias-free conv + BN)
with pytorch-fid's 1008-class fc, independently of ``jaxgen.models.inception_v3``.
"""

import numpy as np
import pytest

from jaxgen.convert import inception as conv
from jaxgen.models import inception_v3 as iv3


def _layout():
  convs = [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
           ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3)]
  for name, cin, pf in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)]:
    convs += [(f"{name}.branch1x1", cin, 64, 1, 1), (f"{name}.branch5x5_1", cin, 48, 1, 1),
              (f"{name}.branch5x5_2", 48, 64, 5, 5), (f"{name}.branch3x3dbl_1", cin, 64, 1, 1),
              (f"{name}.branch3x3dbl_2", 64, 96, 3, 3), (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
              (f"{name}.branch_pool", cin, pf, 1, 1)]
  convs += [("Mixed_6a.branch3x3", 288, 384, 3, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
            ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
  for name, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:
    convs += [(f"{name}.branch1x1", 768, 192, 1, 1), (f"{name}.branch7x7_1", 768, c7, 1, 1),
              (f"{name}.branch7x7_2", c7, c7, 1, 7), (f"{name}.branch7x7_3", c7, 192, 7, 1),
              (f"{name}.branch7x7dbl_1", 768, c7, 1, 1), (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
              (f"{name}.branch7x7dbl_3", c7, c7, 1, 7), (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
              (f"{name}.branch7x7dbl_5", c7, 192, 1, 7), (f"{name}.branch_pool", 768, 192, 1, 1)]
  convs += [("Mixed_7a.branch3x3_1", 768, 192, 1, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
            ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
            ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3)]
  for name, cin in [("Mixed_7b", 1280), ("Mixed_7c", 2048)]:
    convs += [(f"{name}.branch1x1", cin, 320, 1, 1), (f"{name}.branch3x3_1", cin, 384, 1, 1),
              (f"{name}.branch3x3_2a", 384, 384, 1, 3), (f"{name}.branch3x3_2b", 384, 384, 3, 1),
              (f"{name}.branch3x3dbl_1", cin, 448, 1, 1), (f"{name}.branch3x3dbl_2", 448, 384, 3, 3),
              (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3), (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
              (f"{name}.branch_pool", cin, 192, 1, 1)]
  shapes = {}
  for name, cin, cout, kh, kw in convs:
    shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
    for leaf in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{name}.bn.{leaf}"] = (cout,)
    shapes[f"{name}.bn.num_batches_tracked"] = ()
  shapes["fc.weight"], shapes["fc.bias"] = (1008, 2048), (1008,)
  return shapes


def _synthetic_state_dict(seed=0):
  rng = np.random.default_rng(seed)
  sd = {}
  for k, s in _layout().items():
    sd[k] = np.asarray(0, np.int64) if k.endswith("num_batches_tracked") else rng.standard_normal(s, np.float32)
  return sd


def test_reference_layout_has_the_reference_param_count():
  # Trainable = conv weights + BN γ, β + fc: torchvision's 27,161,264 (1000 classes, aux logits)
  # − aux 3,326,696 + 8 extra classes × 2049 = 23,850,960 (pytorch-fid's module, counted on a GPU box).
  n = sum(int(np.prod(s)) for k, s in _layout().items() if not k.endswith(("running_mean", "running_var", "tracked")))
  assert n == 23_850_960


def test_converter_maps_every_tensor_and_round_trips():
  sd = _synthetic_state_dict()
  flat = conv.convert_state_dict(sd)
  assert len(flat) == len([k for k in sd if not k.endswith("num_batches_tracked")])
  np.testing.assert_array_equal(flat["params/Conv2d_1a_3x3/conv/kernel"], sd["Conv2d_1a_3x3.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(flat["params/Mixed_6b/branch7x7_2/conv/kernel"][0, :, 3, 5],
                                sd["Mixed_6b.branch7x7_2.conv.weight"][5, 3, 0, :])
  np.testing.assert_array_equal(flat["batch_stats/Mixed_7c/branch_pool/bn/var"], sd["Mixed_7c.branch_pool.bn.running_var"])
  np.testing.assert_array_equal(flat["params/Mixed_5b/branch5x5_2/bn/scale"], sd["Mixed_5b.branch5x5_2.bn.weight"])
  np.testing.assert_array_equal(flat["params/fc/kernel"], sd["fc.weight"].T)
  back = conv.to_state_dict(flat)
  for k, v in sd.items():
    if not k.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(back[k], v, err_msg=k)
  # ... and the Flax tree accepts it with its shape checks.
  tree = iv3.unflatten_variables(flat)
  assert set(tree) == {"params", "batch_stats"}


def test_converter_rejects_incomplete_or_foreign_state_dicts():
  sd = _synthetic_state_dict(1)
  broken = dict(sd)
  del broken["Mixed_6e.branch_pool.conv.weight"]
  with pytest.raises(ValueError, match="lacks"):
    conv.convert_state_dict(broken)
  with pytest.raises(KeyError, match="unexpected tensor"):
    conv.convert_state_dict(dict(sd, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)}))
  bad = dict(sd, **{"fc.weight": np.zeros((1000, 2048), np.float32)})
  with pytest.raises(ValueError, match="shape"):
    conv.convert_state_dict(bad)


def test_cli_npz_to_npz_and_load(tmp_path):
  sd = _synthetic_state_dict(2)
  src, dst = tmp_path / "sd.npz", tmp_path / "inception.npz"
  np.savez(src, **sd)
  assert conv.main([str(src), str(dst)]) == 0
  tree = iv3.load_variables(str(dst))
  np.testing.assert_array_equal(np.asarray(tree["params"]["fc"]["bias"]), sd["fc.bias"])
