"""Classification task: label-smoothed loss, top-k evaluation with masks, masked weight decay, TF
RMSProp, BatchNorm statistics through train_step, RandAugment/AutoAugment ops."""

import functools
import importlib.util
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen.configs import base_config
from jaxgen.data import randaugment as ra
from jaxgen.errors import ConfigError
from jaxgen.eval import classification as ce
from jaxgen.tasks import classification


def test_label_smoothed_cross_entropy_closed_form():
  logits = jnp.array([[2.0, 0.0, -1.0, 0.5]])
  logp = jax.nn.log_softmax(logits)[0]
  eps = 0.1
  expected = -(1 - eps) * logp[2] - eps / 4 * jnp.sum(logp)
  np.testing.assert_allclose(ce.cross_entropy(logits, jnp.array([2]), eps)[0], expected, rtol=1e-6)
  # uniform logits: log K whatever the smoothing
  np.testing.assert_allclose(ce.cross_entropy(jnp.zeros((3, 10)), jnp.array([0, 4, 9]), 0.3), [math.log(10)] * 3,
                             rtol=1e-6)


def test_topk_and_masked_evaluation():
  logits = jnp.array([[0.1, 0.5, 0.4, 0.0, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(ce.topk_correct(logits, jnp.array([2, 5]), 1), [0, 0])
  np.testing.assert_array_equal(ce.topk_correct(logits, jnp.array([2, 5]), 2), [1, 0])
  # logits_fn = the image itself; 3 real examples in two batches plus one padded (mask 0, wrong label)
  b1 = {"image": np.eye(4, dtype=np.float32)[[0, 1]], "label": np.array([0, 2], np.int32),
        "mask": np.ones(2, np.float32)}
  b2 = {"image": np.eye(4, dtype=np.float32)[[3, 3]], "label": np.array([3, 0], np.int32),
        "mask": np.array([1, 0], np.float32)}
  out = ce.evaluate_classifier(lambda x: x * 10.0, [b1, b2], ks=(1, 2))
  assert out["count"] == 3 and out["top1"] == pytest.approx(2 / 3)
  # label 2 of image e1: logits (0, 10, 0, 0) → ties broken by index, the top-2 set is {1, 0}
  assert out["top2"] == pytest.approx(2 / 3)


def _config(**opt):
  c = base_config()
  c.model.name = "mobilenet_v2"
  c.model.overrides = ml_collections.ConfigDict(
      dict(width=0.1, num_classes=10, blocks=((1, 8, 1, 1), (6, 8, 2, 2)), stem_stride=1))
  c.task.name = "classification"
  c.task.label_smoothing = 0.1
  c.evals.accuracy = dict(type="accuracy")
  c.batch_size = 16
  c.num_train_steps = 10
  for k, v in opt.items():
    setattr(c.optimizer, k, v)
  return c


def test_decay_mask_skips_batchnorm_and_optionally_biases():
  params = {"stem": {"conv": {"kernel": 1.0}, "bn": {"scale": 1.0, "bias": 1.0}},
            "classifier": {"kernel": 1.0, "bias": 1.0}, "entry1_bn1": {"scale": 1.0}}
  m = classification.decay_mask(params)
  assert m["stem"]["conv"]["kernel"] and m["classifier"]["kernel"] and m["classifier"]["bias"]
  assert not m["stem"]["bn"]["scale"] and not m["stem"]["bn"]["bias"] and not m["entry1_bn1"]["scale"]
  assert not classification.decay_mask(params, decay_biases=False)["classifier"]["bias"]


def test_tf_rmsprop_first_update_and_masked_weight_decay():
  # TF1 RMSProp: ms0 = 1, ms1 = ρ + (1−ρ)(g + wd·w)², mom1 = lr·(g + wd·w)/√(ms1 + ε), Δw = −mom1;
  # BatchNorm parameters get no weight decay.
  lr, rho, eps, wd = 0.016, 0.9, 1e-3, 1e-2
  task = classification.Task(_config(name="rmsprop", learning_rate=lr, rms_decay=rho, eps=eps, momentum=0.9,
                                     weight_decay=wd))
  params = {"head": {"conv": {"kernel": jnp.array([2.0])}, "bn": {"scale": jnp.array([2.0])}}}
  grads = {"head": {"conv": {"kernel": jnp.array([0.5])}, "bn": {"scale": jnp.array([0.5])}}}
  opt = task.optimizer
  upd, _ = opt.update(grads, opt.init(params), params)
  g_k = 0.5 + wd * 2.0
  for got, g in ((upd["head"]["conv"]["kernel"], g_k), (upd["head"]["bn"]["scale"], 0.5)):
    ms = rho + (1 - rho) * g ** 2
    np.testing.assert_allclose(got, [-lr * g / math.sqrt(ms + eps)], rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run():
  jax.jit(lambda: 0)()   # defines the compiler flags
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  c = _config(name="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4)
  c.optimizer.ema_decay = 0.5
  task = classification.Task(c)
  rng = np.random.default_rng(0)
  labels = np.arange(16, dtype=np.int32) % 10
  images = rng.normal(size=(16, 8, 8, 1)).astype(np.float32) * 0.1 + labels[:, None, None, None] / 10.0
  batch = {"image": images, "label": labels}
  state0 = task.init(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  state, losses = state0, []
  for i in range(4):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  yield task, state0, state, batch, losses, metrics
  jax.config.update("jax_disable_most_optimizations", old)


def test_train_step_updates_batchnorm_and_learns(tiny_run):
  task, state0, state, batch, losses, metrics = tiny_run
  assert int(state.step) == 4 and not bool(metrics["nonfinite"])
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]
  old = jax.tree_util.tree_leaves(state0.model_state["batch_stats"])
  new = jax.tree_util.tree_leaves(state.model_state["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(old, new))
  assert {"ce", "accuracy", "grad_norm", "learning_rate"} <= set(metrics)


def test_evaluate_uses_ema_and_masks(tiny_run):
  task, _, state, batch, _, _ = tiny_run
  padded = dict(batch, mask=np.r_[np.ones(12), np.zeros(4)].astype(np.float32))
  out = task.evaluate(state, jax.random.key(0), [padded])
  assert out["count"] == 12 and 0.0 <= out["top1"] <= out["top5"] <= 1.0
  logits = task.logits(state.ema_params, state.model_state, batch["image"][:12])
  expected = float(jnp.mean(jnp.argmax(logits, -1) == batch["label"][:12]))
  assert out["top1"] == pytest.approx(expected, abs=1e-6)


def test_bad_input_names_the_fix():
  c = _config(name="sgd")
  c.task.label_smoothing = 1.0
  with pytest.raises(ValueError, match="label_smoothing"):
    classification.Task(c)
  task = classification.Task(_config(name="sgd"))
  with pytest.raises(ValueError, match="labelled data set"):
    task.init_variables(jax.random.key(0), {"x": np.zeros((2, 2), np.float32)})


def test_task_keys_are_typed_and_unknown_keys_are_errors():
  task = classification.Task(_config(name="sgd"))
  assert task.cfg == classification.ClassificationConfig(label_smoothing=0.1)
  assert task.cfg.aux_loss_weight == 0.3 and task.cfg.decay_biases and task.cfg.eval_ema
  c = _config(name="sgd")
  c.task.label_smothing = 0.2
  with pytest.raises(ConfigError, match=r"config\.task\.label_smothing is not an option of "
                                        r"ClassificationConfig \(did you mean 'label_smoothing'\?\)"):
    classification.Task(c)
  c = _config(name="sgd")
  c.task.random_shift = 1.5
  with pytest.raises(ConfigError, match=r"config\.task\.random_shift=1\.5 must be an integer"):
    classification.Task(c)
  c = _config(name="sgd")
  c.model.name = ""
  with pytest.raises(ConfigError, match=r"config\.model\.name is empty"):
    classification.Task(c)


# Every variant of every classification experiment (the variants their docstrings list).
VARIANTS = {
    "classification/digits_mobilenet_v2.py": (None, "smoke"),
    "efficientnet/imagenet_efficientnet.py": ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "smoke"),
    "googlenet/imagenet_googlenet.py": (None, "paper", "smoke"),
    "mobilenet/imagenet_mobilenet_v1.py": ("1.0", "0.75", "0.5", "0.25", "smoke"),
    "mobilenet/imagenet_mobilenet_v2.py": (None, "smoke"),
    "mobilenet/imagenet_mobilenet_v3.py": ("large", "small", "smoke"),
    "shufflenet/imagenet_shufflenet_v1.py": ("g1", "g2", "g3", "g4", "g8", "smoke"),
    "shufflenet/imagenet_shufflenet_v2.py": ("x0_5", "x1_0", "x1_5", "x2_0", "smoke"),
    "xception/imagenet_xception.py": (None, "smoke"),
}
EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("relpath,variant", [(f, v) for f, vs in VARIANTS.items() for v in vs])
def test_every_classification_experiment_builds_its_task(relpath, variant):
  name = "_exp_" + relpath.replace("/", "_")[:-3]
  spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / relpath)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config(variant)
  c.lock()
  task = classification.Task(c)       # typed task keys (an unknown key raises), config.evals checked
  assert task.cfg.num_classes == c.task.num_classes
  assert c.evals.accuracy.to_dict() == {"type": "accuracy"}


def test_random_translate_is_an_edge_padded_shift():
  x = jnp.arange(2 * 5 * 5, dtype=jnp.float32).reshape(2, 5, 5, 1)
  y = classification.random_translate(x, 2, jax.random.key(3))
  assert y.shape == x.shape
  padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  for i in range(2):   # every output is some 5×5 window of the edge-padded input
    assert any(np.array_equal(y[i], padded[i, a:a + 5, b:b + 5]) for a in range(5) for b in range(5))


# --- RandAugment / AutoAugment --------------------------------------------------------------------
def test_pixel_ops_closed_form():
  img = np.array([[[0], [100], [200], [255]]], np.uint8)
  np.testing.assert_array_equal(ra.posterize(img, 2)[..., 0], [[0, 64, 192, 192]])
  np.testing.assert_array_equal(ra.solarize(img, 128)[..., 0], [[0, 100, 55, 0]])
  np.testing.assert_array_equal(ra.solarize_add(img, 110)[..., 0], [[110, 210, 200, 255]])
  # TranslateX at level 10 by 2 px (translate_const 2): content moves, uncovered pixels are gray
  row = np.arange(1, 9, dtype=np.uint8).reshape(1, 8, 1)
  rng = np.random.default_rng(1)
  out = ra.apply_op(row, "TranslateX", 10, rng, translate_const=2)
  f = ra.FILL
  assert out[0, :, 0].tolist() in ([f, f, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, f, f])


@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_and_policies_keep_shape_dtype_and_are_deterministic(channels):
  rng0 = np.random.default_rng(0)
  img = rng0.integers(0, 256, size=(12, 10, channels), dtype=np.uint8)
  for name in ra.RANDAUGMENT_OPS:
    out = ra.apply_op(img, name, 9, np.random.default_rng(3))
    assert out.shape == img.shape and out.dtype == np.uint8, name
  a = ra.randaugment(img, np.random.default_rng(7), num_layers=3, magnitude=15)
  b = ra.randaugment(img, np.random.default_rng(7), num_layers=3, magnitude=15)
  np.testing.assert_array_equal(a, b)
  c = ra.autoaugment(img, np.random.default_rng(7))
  assert c.shape == img.shape and c.dtype == np.uint8
  with pytest.raises(ValueError, match="uint8 HWC"):
    ra.randaugment(img.astype(np.float32), np.random.default_rng(0))
