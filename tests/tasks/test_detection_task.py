"""The detection task (``jaxgen.tasks.detection``) and its evaluators (``voc_map``, ``coco_ap``).

One tiny ThunderNet (``jaxgen.recipes.detection.smoke_config``: digits_detection on 64-pixel canvases) is
built once per module; its eval-mode loss and ``detect`` are compiled once and shared. The full training
step (and its multi-scale ``lax.switch``) is compiled by the experiment smoke run
(tests/test_experiments.py, experiments/thundernet/digits_detection.py:smoke); here multi-scale training
is checked by tracing only (``jax.eval_shape``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import tasks
from jaxgen.configs import base_config
from jaxgen.data import detection as det_data
from jaxgen.errors import ConfigError
from jaxgen.eval import evaluators
from jaxgen.recipes.detection import smoke_config
from jaxgen.tasks import detection as det_task


def _config(**task):
  c = smoke_config(base_config())
  c.model.name = "thundernet_snet49"
  c.task.name = "detection"
  for k, v in task.items():
    setattr(c.task, k, v)
  return c


@pytest.fixture(scope="module")
def setup():
  c = _config()
  task = tasks.get(c)
  batch = next(iter(det_data.eval_dataset(c.data, batch_size=4)))
  state = jax.jit(task.init)(jax.random.key(0), det_data.example_batch(c.data, 2))
  return c, task, state, batch


def test_initial_losses_are_chance_level(setup):
  """At initialization the objectness logits and class logits are ≈ 0 (N(0, 0.01) heads): the RPN's
  binary cross-entropy is log 2 and the R-CNN's softmax cross-entropy is log(K + 1), K = 10 digits."""
  _, task, state, batch = setup
  fns = task.eval_functions(state)
  per_image = fns["loss"](batch, jax.random.key(1))
  assert per_image.shape == (4,) and np.all(np.isfinite(per_image))
  b = {k: batch[k] for k in ("image", "boxes", "classes", "box_mask", "difficult")}
  _, metrics, _ = task._eval_loss(state.params, state.model_state, b,  # pylint: disable=protected-access
                                  jax.random.key(1))
  np.testing.assert_allclose(metrics["rpn_cls"], math.log(2), atol=0.02)
  np.testing.assert_allclose(metrics["rcnn_cls"], math.log(11), atol=0.05)
  assert np.all(metrics["rcnn_fg_fraction"] > 0)     # the ground truth is appended to the proposals


def test_detect_contract(setup):
  _, task, state, batch = setup
  out = task.eval_functions(state)["detect"](batch)
  b, n = out["scores"].shape
  assert b == 4 and out["boxes"].shape == (4, n, 4) and out["classes"].shape == (4, n)
  assert out["mask"].dtype == bool
  live = out["boxes"][out["mask"]]
  assert np.all(live >= 0) and np.all(live <= 64) and np.all(live[:, 2:] >= live[:, :2])
  assert np.all((out["classes"][out["mask"]] >= 0) & (out["classes"][out["mask"]] < 10))
  assert np.all(out["scores"][out["mask"]] >= 0.05 - 1e-6)


def test_multiscale_loss_traces_every_scale(setup):
  c = _config(scales=(32, 64))
  task = tasks.get(c)
  _, _, state, batch = setup
  b = {k: batch[k] for k in ("image", "boxes", "classes", "box_mask", "difficult")}
  loss, metrics, model_state = jax.eval_shape(
      lambda p, s, x, k: task.loss(p, s, x, k, True), state.params, state.model_state, b, jax.random.key(0))
  assert loss.shape == () and set(metrics) >= {"rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box"}
  assert jax.tree_util.tree_structure(model_state) == jax.tree_util.tree_structure(state.model_state)


def test_resize_batch_scales_boxes():
  images = jnp.zeros((2, 64, 64, 3))
  boxes = jnp.asarray([[[8.0, 16.0, 32.0, 48.0]]] * 2)
  out, scaled = det_task.resize_batch(images, boxes, 96)
  assert out.shape == (2, 96, 96, 3)
  np.testing.assert_allclose(scaled[0, 0], [12, 24, 48, 72])


def test_step_decay_multiplier():
  c = _config(lr_decay_at=(0.5, 0.75), lr_decay_factor=0.1)
  c.num_train_steps = 100
  task = tasks.get(c)
  got = [float(task.lr_multiplier(s)) for s in (0, 49, 50, 74, 75, 99)]
  np.testing.assert_allclose(got, [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)


def test_config_errors():
  with pytest.raises(ConfigError, match="scales"):
    tasks.get(_config(scales=(100,)))
  with pytest.raises(ConfigError, match="lr_decay_at"):
    tasks.get(_config(lr_decay_at=(1.5,)))
  c = _config()
  c.evals.bad = dict(type="voc_map", metric="voc12")
  with pytest.raises(ConfigError, match="metric"):
    tasks.get(c)


# ------------------------------------------------------------------------------- evaluators

def _gt_batches(n_images=6, seed=0):
  """Eval batches of known boxes (3 classes, some difficult) in 2 batches of 4 with padding."""
  rng = np.random.default_rng(seed)
  batches = []
  for start in range(0, n_images, 4):
    size = 4
    boxes = np.zeros((size, 3, 4), np.float32)
    xy = rng.uniform(0, 40, (size, 3, 2))
    wh = rng.uniform(8, 20, (size, 3, 2))
    boxes[..., :2], boxes[..., 2:] = xy, xy + wh
    mask = (np.arange(start, start + size) < n_images).astype(np.float32)
    batches.append(dict(
        image=np.zeros((size, 64, 64, 3), np.float32), boxes=boxes,
        classes=rng.integers(0, 3, (size, 3)).astype(np.int32),
        box_mask=np.tile([True, True, False], (size, 1)), difficult=np.tile([False, True, False], (size, 1)),
        area=(wh[..., 0] * wh[..., 1] / 4).astype(np.float32), image_id=np.arange(start, start + size) + 1,
        orig_hw=np.tile([128, 128], (size, 1)).astype(np.int32), scale=np.full((size, 2), 0.5, np.float32),
        offset=np.zeros((size, 2), np.float32), mask=mask))
  return batches


def _perfect(batch, drop_class=None):
  keep = batch["box_mask"].copy()
  if drop_class is not None:
    keep &= batch["classes"] != drop_class
  return dict(boxes=batch["boxes"], scores=np.where(keep, 0.9, 0.0), classes=batch["classes"], mask=keep)


def _run(evals, detect, num_classes=3):
  import ml_collections  # noqa: PLC0415
  cfg = ml_collections.ConfigDict({"x": evals})
  fns = {"detect": detect, "data": dict(num_classes=num_classes, family="digits_detection",
                                        class_names=("a", "b", "c"))}
  return evaluators.run(cfg, fns, jax.random.key(0), _gt_batches())


def test_voc_map_of_perfect_and_partial_detectors():
  out = _run(dict(type="voc_map"), _perfect)
  assert out["map"] == pytest.approx(1.0) and out["num_images"] == 6
  # class 'a' never detected: its AP is 0, the others 1 -> mAP 2/3 (classes with ground truth)
  out = _run(dict(type="voc_map", metric="voc10"), lambda b: _perfect(b, drop_class=0))
  present = [k for k in ("ap_a", "ap_b", "ap_c") if k in out]
  assert out["ap_a"] == 0.0 and all(out[k] == 1.0 for k in present if k != "ap_a")
  assert out["map"] == pytest.approx((len(present) - 1) / len(present))


def test_coco_ap_of_perfect_detector():
  out = _run(dict(type="coco_ap"), _perfect)
  assert out["ap"] == pytest.approx(1.0) and out["ap50"] == pytest.approx(1.0)
  assert out["num_images"] == 6


def test_collect_maps_boxes_to_source_pixels():
  from jaxgen.eval.evaluators_detection import collect  # noqa: PLC0415
  batches = _gt_batches()
  res = collect(_perfect, batches)
  assert len(res) == 6 and res[0].hw == (128, 128)
  np.testing.assert_allclose(res[0].gt_boxes, batches[0]["boxes"][0, :2] / 0.5, rtol=1e-6)
  np.testing.assert_allclose(res[0].det_boxes, res[0].gt_boxes)


def test_backbone_weights_are_loaded(setup, tmp_path):
  c, task, state, _ = setup
  flat = {}
  for col, tree in [("params", state.params), *state.model_state.items()]:
    for kp, leaf in jax.tree_util.tree_flatten_with_path(tree["snet"])[0]:
      rel = "/".join(str(getattr(k, "key", k)) for k in kp)
      flat[f"{col}/features/{rel}"] = np.full(leaf.shape, 0.5, np.float32)
  np.savez(tmp_path / "snet.npz", **flat)
  variables = det_task.load_backbone({"params": state.params, **state.model_state},
                                     str(tmp_path / "snet.npz"))
  leaves = jax.tree_util.tree_leaves(variables["params"]["snet"])
  assert all(np.all(np.asarray(x) == 0.5) for x in leaves)
  head = jax.tree_util.tree_leaves(variables["params"]["head"])
  assert not all(np.all(np.asarray(x) == 0.5) for x in head)
  flat.pop(next(iter(flat)))
  np.savez(tmp_path / "partial.npz", **flat)
  with pytest.raises(ConfigError, match="lacks"):
    det_task.load_backbone({"params": state.params, **state.model_state}, str(tmp_path / "partial.npz"))


def test_voc_map_picture(tmp_path):
  path = tmp_path / "dets.png"
  out = _run(dict(type="voc_map", picture=str(path), picture_images=3), _perfect)
  from PIL import Image  # noqa: PLC0415
  with Image.open(path) as im:
    assert im.size == (4 * 64 * 2, 64 * 2)      # one row of 4 tiles (3 images), zoom 2
  assert out["map"] == pytest.approx(1.0)
