"""Image classification (``task.name = 'classification'``): the efficient-CNN papers' training.

Loss: softmax cross-entropy against label-smoothed targets (1 − ε)·onehot + ε/K (``task.label_smoothing``,
0.1 in EfficientNet / MobileNet recipes), averaged over the unmasked examples; networks that return
auxiliary logits in train mode (GoogLeNet) add ``task.aux_loss_weight`` (0.3, the paper) times theirs.

BatchNorm: the loss runs the network with ``train=True`` and ``mutable=['batch_stats']``; the new
statistics are the task's ``model_state``. The trainer jit-compiles ``train_step`` with the batch
sharded over the mesh axis 'data', so the batch mean and variance are reductions over the *global*
batch (XLA inserts the cross-device all-reduce): synchronized BatchNorm, identical for any device
count. (TF's TPU EfficientNet normalizes per core; for per-device statistics use the batch size of
one device.) Evaluation uses the running averages (``train=False``).

Weight decay (``optimizer.weight_decay``) is coupled L2 added to the gradient before SGD / RMSProp /
Adam, i.e. the gradient of (wd/2)·‖w‖² as TF's ``weight_decay · Σ tf.nn.l2_loss(w)``; it skips the
BatchNorm scale/offset (TF EfficientNet excludes 'batch_normalization' variables, torchvision's recipes
set norm_weight_decay 0) unless ``task.decay_norm_params``; ``task.decay_biases`` (default True, as TF)
decides the biases. AdamW / LAMB keep their decoupled decay.

RMSProp as TF1's ``RMSPropOptimizer`` (EfficientNet, MobileNet V2/V3 recipes): ms ← ρ·ms + (1 − ρ)·g²,
mom ← μ·mom + lr·g/√(ms + ε) — ε *inside* the square root (optax's ``eps_in_sqrt=True``; PyTorch puts
it outside, which is why timm has 'rmsproptf'), and ms starts at 1 (``optimizer.rms_initial_scale``,
default 1.0 here; optax's default is 0). Schedules come from ``jaxgen.optim`` (exponential decay with
staircase + linear warm-up, cosine for SGD). EMA of the weights: ``optimizer.ema_decay`` (0.9999 in
the EfficientNet recipe); evaluation uses the EMA weights when EMA is on (``task.eval_ema``).

Augmentation: data-pipeline augmentations (crops, flips, RandAugment) come from ``jaxgen.data``;
``task.random_shift`` > 0 adds an on-device random translation (for the embedded digits).

Evaluation: top-1 / top-5 accuracy and mean cross-entropy over ``data.eval_split`` (padding masked),
see ``jaxgen.eval.classification``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

import jaxgen.models as models
from jaxgen import optim
from jaxgen.eval import classification as cls_eval
from jaxgen.tasks.base import LossTask


def _get(cfg, key: str, default: Any) -> Any:
  return cfg.get(key, default) if cfg is not None and hasattr(cfg, "get") else default


def _to_dict(d) -> dict:
  if d is None:
    return {}
  return d.to_dict() if hasattr(d, "to_dict") else dict(d)


def decay_mask(params, *, decay_norm_params: bool = False, decay_biases: bool = True):
  """Pytree of bools: True where weight decay applies. BatchNorm parameters are the leaves under a
  module named like ``bn`` / ``*_bn*`` / ``BatchNorm_*``; biases are leaves named 'bias' elsewhere."""

  def keep(path, _):
    names = [str(getattr(p, "key", getattr(p, "name", p))) for p in path]
    is_norm = any(n == "bn" or "_bn" in n or n.startswith("bn") or "BatchNorm" in n or "norm" in n.lower()
                  for n in names[:-1])
    if is_norm:
      return decay_norm_params
    if names and names[-1] == "bias":
      return decay_biases
    return True

  return jax.tree_util.tree_map_with_path(keep, params)


def random_translate(images: jax.Array, shift: int, key: jax.Array) -> jax.Array:
  """Per-example random translation by (dy, dx) ∈ [−shift, shift]², edge-replicated borders
  (``task.random_shift``: on-device augmentation for small data sets such as the digits)."""
  b, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
  offsets = jax.random.randint(key, (b, 2), 0, 2 * shift + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


class Task(LossTask):
  """Supervised classification with any registered backbone (see module docstring)."""

  def __init__(self, config):
    super().__init__(config)
    t = config.task
    self.label_smoothing = float(_get(t, "label_smoothing", 0.0))
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f"task.label_smoothing must be in [0, 1), got {self.label_smoothing}.")
    self.aux_loss_weight = float(_get(t, "aux_loss_weight", 0.3))
    overrides = _to_dict(config.model.get("overrides", None))
    num_classes = int(_get(t, "num_classes", 0))
    if num_classes:
      overrides.setdefault("num_classes", num_classes)
    dtype = str(config.model.get("dtype", "float32"))
    if dtype != "float32":
      overrides["dtype"] = dtype
    if not config.model.name:
      raise ValueError("model.name is empty: set it to a classifier of jaxgen.models.names() "
                       "(e.g. 'mobilenet_v2').")
    self.model = models.create(config.model.name, **overrides)

  # --- model ------------------------------------------------------------------------------------
  def init_variables(self, key, example_batch) -> dict:
    if "image" not in example_batch or "label" not in example_batch:
      raise ValueError("the classification task needs batches with 'image' and 'label': choose a "
                       "labelled data set (digits, mnist, cifar10, imagenet2012, imagenette, image_folder with classes).")
    k_param, k_drop = jax.random.split(key)
    x = jnp.asarray(example_batch["image"][:1])
    return dict(self.model.init({"params": k_param, "dropout": k_drop}, x, train=False))

  def logits(self, params, model_state, images):
    """Inference-mode logits (float32) with the running BatchNorm statistics."""
    return self.model.apply({"params": params, **model_state}, images, train=False)

  def loss(self, params, model_state, batch, key, train: bool):
    images, labels = batch["image"], batch["label"]
    shift = int(_get(self.config.task, "random_shift", 0))
    if train and shift:
      key, k_shift = jax.random.split(key)
      images = random_translate(images, shift, k_shift)
    if train:
      out, new_state = self.model.apply({"params": params, **model_state}, images, train=True,
                                        mutable=list(model_state.keys()), rngs={"dropout": key})
      new_state = dict(new_state)
    else:
      out, new_state = self.logits(params, model_state, images), model_state
    logits, aux = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
    mask = jnp.asarray(batch["mask"], jnp.float32) if "mask" in batch else jnp.ones(labels.shape, jnp.float32)
    denom = jnp.maximum(jnp.sum(mask), 1.0)
    ce = cls_eval.cross_entropy(logits, labels, self.label_smoothing)
    loss = jnp.sum(ce * mask) / denom
    metrics = {"ce": loss, "accuracy": jnp.sum(cls_eval.topk_correct(logits, labels, 1) * mask) / denom}
    for i, a in enumerate(aux):
      aux_ce = jnp.sum(cls_eval.cross_entropy(a, labels, self.label_smoothing) * mask) / denom
      metrics[f"aux{i + 1}_ce"] = aux_ce
      loss = loss + self.aux_loss_weight * aux_ce
    return loss, metrics, new_state

  # --- optimizer: masked coupled weight decay, TF RMSProp ---------------------------------------
  @property
  def optimizer(self) -> optax.GradientTransformation:
    cfg = self.config.optimizer
    name = cfg.name
    wd = float(cfg.get("weight_decay", 0.0))
    if name in ("adamw", "lamb") or (wd == 0.0 and name != "rmsprop"):
      return optim.make_optimizer(cfg, self.config.num_train_steps)
    t = self.config.task
    mask = lambda p: decay_mask(p, decay_norm_params=bool(_get(t, "decay_norm_params", False)),
                                decay_biases=bool(_get(t, "decay_biases", True)))
    parts = []
    if float(cfg.get("clip_grad_norm", 0.0)) > 0:
      parts.append(optax.clip_by_global_norm(float(cfg.clip_grad_norm)))
    if wd:
      parts.append(optax.masked(optax.add_decayed_weights(wd), mask))
    if name == "rmsprop":
      sched = optim.make_schedule(cfg, self.config.num_train_steps)
      parts.append(optax.rmsprop(sched, decay=float(cfg.get("rms_decay", 0.9)), eps=float(cfg.eps),
                                 initial_scale=float(cfg.get("rms_initial_scale", 1.0)), eps_in_sqrt=True,
                                 centered=bool(cfg.get("centered", False)),
                                 momentum=float(cfg.momentum) or None))
    else:
      base = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
      base.update(weight_decay=0.0, clip_grad_norm=0.0)
      import ml_collections  # noqa: PLC0415 (configs are ConfigDicts; tasks may use ml_collections)
      parts.append(optim.make_optimizer(ml_collections.ConfigDict(base), self.config.num_train_steps))
    return optax.chain(*parts)

  # --- evaluation -------------------------------------------------------------------------------
  def _uses_ema(self) -> bool:
    cfg = self.config.optimizer
    ema_on = float(cfg.get("ema_decay", 0.0)) > 0 or float(cfg.get("ema_halflife_kimg", 0.0)) > 0
    return bool(_get(self.config.task, "eval_ema", True)) and ema_on

  def evaluate(self, state, key, batches) -> dict[str, float]:
    del key
    if batches is None:
      return {}
    params = state.ema_params if self._uses_ema() else state.params
    if getattr(self, "_sums_fn", None) is None:
      self._sums_fn = cls_eval.make_sums_fn(self.logits)
    return cls_eval.evaluate_classifier(self.logits, batches, args=(params, state.model_state),
                                        sums_fn=self._sums_fn)


# --- experiment helpers (used by experiments/<family>/*.py) ---------------------------------------
IMAGENET_TRAIN_IMAGES = 1_281_167


def steps_per_epoch(batch_size: int, num_images: int = IMAGENET_TRAIN_IMAGES) -> float:
  return num_images / batch_size


def imagenet_config(c, *, model: str, resolution: int, batch_size: int, epochs: float,
                    crop_padding: int = 32, augment: str = ""):
  """Fills ``c`` (a ``base_config()``) with the ImageNet pipeline of the TF efficient-CNN codebases:
  Inception-style random-resized crops + flips for training, a central crop of fraction
  resolution/(resolution + crop_padding) for evaluation (224/256 = 0.875 at 224), top-1/top-5 on the
  50k validation images."""
  c.batch_size = batch_size
  c.num_train_steps = int(round(epochs * steps_per_epoch(batch_size)))
  c.log_every_steps = 500
  c.checkpoint_every_steps = 5000
  c.eval_every_steps = int(round(5 * steps_per_epoch(batch_size)))
  c.data.name = "imagenet2012"
  c.data.split = "train"
  c.data.eval_split = "validation"
  c.data.resolution = resolution
  c.data.crop = "inception"
  c.data.crop_fraction = resolution / (resolution + crop_padding)
  c.data.random_flip = True
  c.data.augment = augment
  c.model.name = model
  c.task.name = "classification"
  c.task.num_classes = 1000
  return c


def smoke_config(c, **model_overrides):
  """The ``:smoke`` variant of an ImageNet recipe: the embedded digits at 16×16, a tiny network
  (``model_overrides``), 2 steps of batch 16, evaluation on the 297 test digits."""
  from jaxgen.configs import smoke  # noqa: PLC0415
  smoke(c)
  c.eval_batch_size = 304
  c.data.name = "digits"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.data.crop = ""
  c.data.crop_fraction = 0.0
  c.data.random_flip = False
  c.data.augment = ""
  c.task.num_classes = 10
  c.optimizer.warmup_steps = 0
  c.optimizer.decay_steps = 1
  for k, v in model_overrides.items():
    setattr(c.model.overrides, k, v)
  return c
