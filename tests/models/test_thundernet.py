"""ThunderNet model (jaxgen/models/thundernet.py, docs/thundernet.md): output contract of ``__call__`` for the
detection task, gradients, multiply-adds against a closed form of the paper's layers, full-size shapes.

One tiny detector (SNet widths 8/16/32/64, one unit per stage, 12-channel CEM = 3·2·2, 64×64 images) runs
every functional check in a single compiled program; the full-size networks are only traced.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as models
from jaxgen import flops
from jaxgen.detection.anchors import generate_anchors
from jaxgen.errors import ConfigError
from jaxgen.models.thundernet import nearest_resize, shift_depthwise
from jaxgen.tables.thundernet import detector_breakdown
from tests.fixtures.fast_compile import jit_fast
from tests.models.test_snet import released_counts

TINY = dict(backbone_overrides=dict(stem_channels=8, stage_channels=(16, 32, 64), stage_repeats=(1, 1, 1),
                                    conv5_channels=32),
            cem_channels=12, roi_size=2, roi_channels=3, rpn_channels=16, rcnn_hidden=32, num_classes=4,
            anchor_sizes=(16, 32), anchor_ratios=(0.5, 1.0, 2.0), pre_nms=64, post_nms=8, post_nms_train=16)
B, RES, S = 2, 64, 5           # batch, image side, sampled RoIs


def _sample(props, valid):
  """Stand-in for the task's R-CNN target sampling: the first S proposals plus one fixed box."""
  fixed = jnp.broadcast_to(jnp.array([4.0, 4.0, 40.0, 36.0]), (props.shape[0], 1, 4))
  ok = jnp.ones((props.shape[0], 1), bool)
  return jnp.concatenate([props[:, : S - 1], fixed], 1), jnp.concatenate([valid[:, : S - 1], ok], 1)


def _program(module, x, rois):
  variables = module.init(jax.random.key(0), x)
  test_out = module.apply(variables, x)
  given = module.apply(variables, x, rois=rois)
  shifted = module.clone(depthwise="shift").apply(variables, x, rois=rois)

  def loss(params):
    out, state = module.apply({**variables, "params": params}, x, train=True, sample_rois=_sample,
                              mutable=["batch_stats"])
    value = jnp.sum(out["cls_logits"] ** 2) + jnp.sum(out["box_deltas"]) + jnp.sum(out["rpn_logits"])
    return value, (out, state)

  grads, (train_out, state) = jax.grad(loss, has_aux=True)(variables["params"])
  return dict(variables=variables, test=test_out, given=given, shifted=shifted, train=train_out, state=state,
              grads=grads)


@pytest.fixture(scope="module")
def tiny():
  module = models.create("thundernet_snet49", **TINY)
  x = jax.random.normal(jax.random.key(1), (B, RES, RES, 3))
  rois = jnp.array([[[0, 0, 32, 32], [8, 8, 60, 50], [10, 20, 30, 60]]] * B, jnp.float32)
  return jit_fast(functools.partial(_program, module), x, rois)(x, rois)


def test_output_contract(tiny):
  a = (RES // 16) ** 2 * 6
  out = tiny["test"]
  assert out["rpn_logits"].shape == (B, a) and out["rpn_deltas"].shape == (B, a, 4)
  np.testing.assert_array_equal(out["anchors"], generate_anchors((4, 4), 16, (16, 32), (0.5, 1.0, 2.0)))
  # test mode: R = post_nms proposals, clipped to the image, scores in (0, 1) where valid
  assert out["rois"].shape == (B, 8, 4) and out["roi_valid"].shape == (B, 8)
  assert out["roi_valid"].dtype == bool
  np.testing.assert_array_equal(out["rois"], out["proposals"])
  assert bool(jnp.all((out["rois"] >= 0) & (out["rois"] <= RES)))
  assert bool(out["roi_valid"].any())
  assert out["cls_logits"].shape == (B, 8, 5) and out["box_deltas"].shape == (B, 8, 4)
  assert out["cls_logits"].dtype == jnp.float32
  for k in ("rpn_logits", "cls_logits", "box_deltas"):
    assert bool(jnp.all(jnp.isfinite(out[k])))
  # given RoIs: used as they are, all valid
  given = tiny["given"]
  assert given["rois"].shape == (B, 3, 4) and bool(given["roi_valid"].all()) and "proposals" not in given
  assert given["cls_logits"].shape == (B, 3, 5)
  np.testing.assert_allclose(given["rpn_logits"], out["rpn_logits"], rtol=1e-5, atol=1e-5)


def test_training_mode(tiny):
  out = tiny["train"]
  assert out["proposals"].shape == (B, 16, 4)                 # post_nms_train proposals
  assert out["rois"].shape == (B, S, 4) and out["cls_logits"].shape == (B, S, 5)   # sampled by the callable
  np.testing.assert_array_equal(out["rois"][:, -1], np.broadcast_to([4.0, 4.0, 40.0, 36.0], (B, 4)))
  old = jax.tree_util.tree_leaves(tiny["variables"]["batch_stats"])
  new = jax.tree_util.tree_leaves(tiny["state"]["batch_stats"])
  assert len(old) == len(new) > 0 and any(not np.allclose(o, n) for o, n in zip(old, new))


def test_gradients_reach_every_part(tiny):
  g = tiny["grads"]
  norms = {k: float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree_util.tree_leaves(v))) for k, v in g.items()}
  assert set(norms) == {"snet", "cem", "rpn", "sam", "head"}
  assert all(np.isfinite(v) and v > 0 for v in norms.values()), norms
  # SAM carries the R-CNN loss into the RPN's shared convs (paper §4.3)
  assert np.abs(np.asarray(g["rpn"]["pw"]["conv"]["kernel"])).sum() > 0


def test_full_size_shapes():
  name = "thundernet_snet146"
  module = models.create(name, num_classes=80, class_agnostic_boxes=False)
  variables = models.init_shapes(name, num_classes=80, class_agnostic_boxes=False)
  x = jax.ShapeDtypeStruct((1, 320, 320, 3), jnp.float32)
  out = jax.eval_shape(module.apply, variables, x)
  assert out["rpn_logits"].shape == (1, 20 * 20 * 25) and out["anchors"].shape == (10_000, 4)
  assert out["rois"].shape == (1, 200, 4) and out["cls_logits"].shape == (1, 200, 81)
  assert out["box_deltas"].shape == (1, 200, 81, 4)
  p = variables["params"]
  assert p["cem"]["c4"]["kernel"].shape == (1, 1, 264, 245)
  assert p["cem"]["glb"]["kernel"].shape == (1, 1, 528, 245)
  assert p["rpn"]["dw"]["conv"]["kernel"].shape == (5, 5, 1, 245)
  assert p["rpn"]["cls"]["kernel"].shape[-1] == 25
  assert p["head"]["fc1"]["kernel"].shape == (245, 1024) and "fc2" not in p["head"]


def head_macs(c4, c5, classes, rois=200, f=20):
  """The paper's detection part at 320 (f×f stride-16 map, 245 = 5·7·7 channels, 25 anchors, RPN 256)."""
  cem = f * f * c4 * 245 + (f // 2) ** 2 * c5 * 245 + c5 * 245
  rpn = f * f * (25 * 245 + 245 * 256 + 256 * 25 + 256 * 100)
  sam = f * f * 256 * 245
  rcnn = rois * (245 * 1024 + 1024 * (classes + 1) + 1024 * 4)
  return cem + rpn + sam + rcnn


def test_macs_equal_the_closed_form():
  backbone = released_counts("snet49", 320)[1] - 512 * 1000        # SNet49 at 320 without its classifier
  voc, coco = detector_breakdown("snet49", 20), detector_breakdown("snet49", 80)
  assert round(voc["total"] * 1e6) == backbone + head_macs(120, 512, 20) == 248_665_840  # paper: 250 MFLOPs
  assert round(voc["snet"] * 1e6) == backbone
  # COCO head: 60 more class logits for each of the 200 RoIs (paper: 262 − 250 = 12 MFLOPs)
  assert round((coco["total"] - voc["total"]) * 1e6) == 200 * 1024 * 60
  # count_macs also sees PSRoI align's sampling contractions (not layers; reported apart by the table)
  assert flops.count_macs("thundernet_snet49", 320) == round((voc["total"] + voc["psroi"]) * 1e6)


def test_nearest_resize_matches_pytorch_rule():
  x = np.arange(2 * 5 * 3 * 1, dtype=np.float32).reshape(2, 5, 3, 1)
  up2, up = jax.jit(lambda x: (nearest_resize(x, (10, 6)), nearest_resize(x, (9, 7))))(x)
  np.testing.assert_array_equal(up2, np.repeat(np.repeat(x, 2, 1), 2, 2))
  iy, ix = (np.arange(9) * 5) // 9, (np.arange(7) * 3) // 7   # F.interpolate 'nearest': floor(i·in/out)
  np.testing.assert_array_equal(up, x[:, iy][:, :, ix])


def test_shift_depthwise_equals_the_grouped_convolution(tiny):
  x = np.random.default_rng(0).normal(size=(2, 9, 11, 6)).astype(np.float32)
  k = np.random.default_rng(1).normal(size=(5, 5, 1, 6)).astype(np.float32)

  def both(x, k, s):
    ref = jax.lax.conv_general_dilated(x, k, (s, s), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=6)
    return shift_depthwise(x, k, (s, s), ((2, 2), (2, 2))), ref
  for s in (1, 2):
    np.testing.assert_allclose(*jax.jit(both, static_argnums=2)(x, k, s), rtol=1e-5, atol=1e-5)
  # the whole detector with depthwise='shift' (same variables) gives the same outputs
  for key in ("rpn_logits", "rpn_deltas", "cls_logits", "box_deltas"):
    np.testing.assert_allclose(tiny["shifted"][key], tiny["given"][key], rtol=1e-4, atol=1e-5)


def test_configuration_errors():
  with pytest.raises(ConfigError, match="divisible by 32"):
    models.example_inputs("thundernet_snet49", resolution=300)
  with pytest.raises(ConfigError, match="depthwise"):
    models.init_shapes("thundernet_snet49", depthwise="fast", resolution=64)
  with pytest.raises(ConfigError, match="cem_channels"):
    models.init_shapes("thundernet_snet49", cem_channels=256, resolution=64)
