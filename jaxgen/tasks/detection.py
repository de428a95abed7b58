"""Two-stage object detection (``task.name = 'detection'``): ThunderNet (Qin et al. 2019) in the one trainer.

Model: any registered detector with ThunderNet's module API (``jaxgen.models.thundernet``: ``rpn_logits``,
``rpn_deltas``, ``anchors``, ``rois``, ``roi_valid``, ``cls_logits`` (background at column 0), ``box_deltas``
and the ``sample_rois`` hook). Data: ``jaxgen.data.detection`` (padded boxes with ``box_mask``; difficult /
crowd boxes are neither trained on nor counted by the AP). docs/thundernet.md describes the whole pipeline.

Loss (Faster R-CNN's approximate joint training, Ren et al. 2015, with the library ``jaxgen.detection``):

* RPN: ``rpn_targets`` samples ``task.rpn_samples`` (256) anchors per image, at most half positive (IoU ≥
  0.7 or the best anchor of a box), negatives below 0.3; sigmoid cross-entropy over the sampled anchors plus
  smooth-L1 (β ``task.rpn_box_beta``; 0 = the released code's L1) on the positives' deltas, both averaged
  over the sampled anchors.
* R-CNN: the model's proposals (top 2000 by objectness, NMS 0.7, 1000 kept when training; 200 at test) go
  through ``rcnn_targets`` inside the model's ``sample_rois`` hook: the ground-truth boxes are appended,
  ``task.rcnn_samples`` (512, the released config) RoIs are drawn with at most ¼ foreground (IoU ≥ 0.5),
  and the head is run on them only: softmax cross-entropy over the valid RoIs plus smooth-L1 (β
  ``task.rcnn_box_beta``) on the foreground's deltas (weights (10, 10, 5, 5)).
* loss per image = rpn_cls + rpn_box + rcnn_cls + rcnn_box (``task.rpn_weight``, ``task.rcnn_weight``);
  the batch loss is the mean over images.

Multi-scale training (``task.scales``, the paper's {240, 320, 480}): every step draws one side s from the
list (the step key: the same for the whole global batch) and resizes the batch on device (bilinear, boxes
scaled alike) before the network; each side is a branch of one ``lax.switch``, so the step is one compiled
program with static shapes per branch (compile time grows with the number of scales, run time does not).

BatchNorm statistics are reductions over the global batch: the trainer jit-compiles the step with the
batch sharded over the mesh axis 'data', as in the classification task (synchronized / cross-GPU BN, which
ThunderNet trains with). Evaluation uses the running averages.

Optimizer: ``jaxgen.optim.make_optimizer`` (SGD momentum 0.9, coupled weight decay 1e-4 masked off the
BatchNorm parameters in the experiments) with a step decay on top: the learning rate is multiplied by
``task.lr_decay_factor`` (0.1) at each fraction ``task.lr_decay_at`` of ``num_train_steps`` (the released
config decays at epochs 40 and 60 of 80: ``(0.5, 0.75)``); the logged ``learning_rate`` includes it.

Evaluation (``config.evals``): ``'detect'`` (batch -> dict(boxes [B, N, 4] xyxy pixels of the network
input, scores, classes (0-based), mask); ``jaxgen.detection.detections``: score threshold 0.05, per-class
NMS 0.5 or Soft-NMS (``task.soft_nms``), 100 per image), ``'loss'`` (per-image eval-mode loss) and
``'data'`` (set name, number of classes, class names). Evaluators: ``voc_map``, ``coco_ap``
(``jaxgen.eval.evaluators_detection``) and ``eval_loss``.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgen.models as models
from jaxgen import config_schema, detection, optim
from jaxgen.config_schema import lookup, option
from jaxgen.errors import ConfigError
from jaxgen.optim import decay_mask
from jaxgen.tasks.base import LossTask


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
  """The ``task.*`` keys of the detection task (``task.name`` selects the task)."""

  num_classes: int = option(0, min=0, help="0: the data set's number of classes")
  scales: tuple[int, ...] = option((), help="multi-scale training sides (one per step); (): data resolution")
  rpn_samples: int = option(256, min=1, help="anchors sampled per image for the RPN loss")
  rpn_pos_fraction: float = option(0.5, above=0.0, max=1.0)
  rpn_pos_iou: float = option(0.7, above=0.0, max=1.0)
  rpn_neg_iou: float = option(0.3, min=0.0, max=1.0)
  rpn_allowed_border: float = option(-1.0, help="< 0: every anchor trains (released: allowed_border=-1)")
  rpn_box_beta: float = option(1.0 / 9, min=0.0, help="smooth-L1 β of the RPN (0: L1)")
  rcnn_samples: int = option(512, min=1, help="RoIs sampled per image for the R-CNN loss")
  rcnn_pos_fraction: float = option(0.25, above=0.0, max=1.0)
  rcnn_fg_iou: float = option(0.5, above=0.0, max=1.0)
  rcnn_bg_iou_low: float = option(0.0, min=0.0, max=1.0)
  rcnn_box_beta: float = option(1.0, min=0.0, help="smooth-L1 β of the R-CNN head (0: L1)")
  rpn_weight: float = option(1.0, min=0.0)
  rcnn_weight: float = option(1.0, min=0.0)
  score_threshold: float = option(0.05, min=0.0, max=1.0)
  nms_iou: float = option(0.5, above=0.0, max=1.0)
  max_detections: int = option(100, min=1)
  soft_nms: str = option("", choices=("", "gaussian", "linear"), help="'' : greedy per-class NMS")
  lr_decay_at: tuple[float, ...] = option((), help="fractions of num_train_steps where the lr is decayed")
  lr_decay_factor: float = option(0.1, above=0.0)
  decay_norm_params: bool = option(False, help="weight decay on BatchNorm parameters too")
  eval_ema: bool = option(True, help="evaluate the EMA weights when optimizer EMA is on")
  backbone_weights: str = option("", help=".npz of ImageNet-pretrained SNet variables for the backbone")


def resize_batch(images, boxes, side: int):
  """Bilinear resize of ``images [B, H, W, C]`` to side × side, boxes scaled alike (multi-scale step)."""
  b, h, w, c = images.shape
  if (h, w) == (side, side):
    return images, boxes
  scale = jnp.asarray([side / w, side / h, side / w, side / h], jnp.float32)
  return jax.image.resize(images, (b, side, side, c), "bilinear"), boxes * scale


def load_backbone(variables: dict, path: str, module: str = "snet") -> dict:
  """``variables`` with the backbone subtree (``<collection>/snet/...``) replaced by the arrays of the
  .npz ``path``: keys ``<collection>/<path>`` of an SNet classifier (``params/features/stage2/...``, as
  ``jaxgen.models.snet.backbone_variables`` reads it) or of the bare backbone (``params/stage2/...``).
  Every backbone leaf must be present with its shape (ImageNet pre-training, paper §5)."""
  if not os.path.isfile(path):
    raise ConfigError(f"task.backbone_weights={path!r} does not exist: pass an .npz of SNet variables.")
  with np.load(path) as f:
    stored = {k: np.asarray(f[k]) for k in f.files}
  out = {}
  for col, tree in variables.items():
    if module not in tree:
      out[col] = tree
      continue

    def pick(kp, leaf, col=col):
      rel = "/".join(str(getattr(k, "key", k)) for k in kp)
      for key in (f"{col}/{rel}", f"{col}/features/{rel}"):
        if key in stored:
          if stored[key].shape != leaf.shape:
            raise ConfigError(f"task.backbone_weights: {key} has shape {stored[key].shape}, the backbone "
                              f"needs {tuple(leaf.shape)}: export the SNet that model.name uses.")
          return jnp.asarray(stored[key], leaf.dtype)
      raise ConfigError(f"task.backbone_weights={path!r} lacks {col}/{rel}: export all SNet variables "
                        "(params and batch_stats).")

    out[col] = {**tree, module: jax.tree_util.tree_map_with_path(pick, tree[module])}
  return out


class Task(LossTask):
  """ThunderNet-style detector training (see module docstring)."""

  EVAL_FUNCTIONS = ("detect", "loss", "data")

  def __init__(self, config):
    super().__init__(config)
    from jaxgen.data import detection as det_data  # noqa: PLC0415
    self.cfg = config_schema.from_block(DetectionConfig, config.task)
    self.facts = det_data.facts(config.data)
    overrides = config_schema.to_dict(lookup(config, "model.overrides", None))
    overrides.setdefault("num_classes", self.cfg.num_classes or self.facts["num_classes"])
    dtype = str(lookup(config, "model.dtype", "float32"))
    if dtype != "float32":
      overrides["dtype"] = dtype
    name = lookup(config, "model.name", "")
    if not name:
      raise ConfigError("config.model.name is empty: set --config.model.name to a detector of "
                        "jaxgen.models.names() (e.g. 'thundernet_snet49').")
    self.model = models.create(name, **overrides)
    self.num_classes = int(overrides["num_classes"])
    for f in self.cfg.lr_decay_at:
      if not 0.0 < f < 1.0:
        raise ConfigError(f"task.lr_decay_at={self.cfg.lr_decay_at}: every entry must lie in (0, 1).")
    for s in self.cfg.scales:
      if s <= 0 or s % 16:
        raise ConfigError(f"task.scales={self.cfg.scales}: every side must be a positive multiple of 16.")
    self._detect = jax.jit(self.detect)
    self._eval_loss = jax.jit(functools.partial(self.per_image_loss, train=False))

  # --- model ------------------------------------------------------------------------------------
  def init_variables(self, key, example_batch) -> dict:
    if "image" not in example_batch or "boxes" not in example_batch:
      raise ConfigError("the detection task needs batches with 'image', 'boxes', 'classes' and 'box_mask': "
                        "set --config.data.name='jaxgen.data.detection' and data.dataset.")
    x = jnp.asarray(example_batch["image"][:1])
    # Given RoIs skip the RPN's proposals (NMS): the same variables, a smaller program to compile.
    variables = dict(self.model.init(key, x, train=False, rois=jnp.zeros((1, 1, 4), jnp.float32)))
    if self.cfg.backbone_weights:
      variables = load_backbone(variables, self.cfg.backbone_weights)
    return variables

  def preflight(self) -> None:
    super().preflight()
    path = self.cfg.backbone_weights
    if path and not os.path.isfile(path):
      raise ConfigError(f"task.backbone_weights={path!r} does not exist: pass an .npz of SNet variables "
                        "(keys 'params/...', 'batch_stats/...') or '' to train the backbone from scratch.")

  def per_image_loss(self, params, model_state, batch, key, train: bool, side: int | None = None):
    """(per-image loss [B], per-image metrics dict, new model_state) at input side ``side``."""
    cfg = self.cfg
    images = jnp.asarray(batch["image"], jnp.float32)
    boxes = jnp.asarray(batch["boxes"], jnp.float32)
    if side:
      images, boxes = resize_batch(images, boxes, side)
    classes = jnp.asarray(batch["classes"], jnp.int32)
    gt_mask = jnp.asarray(batch["box_mask"], bool) & ~jnp.asarray(batch["difficult"], bool)
    bsz, hw = images.shape[0], images.shape[1:3]
    k_rpn, k_rcnn = jax.random.split(key)
    captured = {}

    def sample_rois(props, pvalid):
      s = min(cfg.rcnn_samples, props.shape[1] + boxes.shape[1])
      fn = functools.partial(detection.rcnn_targets, num_samples=s, pos_fraction=cfg.rcnn_pos_fraction,
                             fg_iou=cfg.rcnn_fg_iou, bg_iou=(cfg.rcnn_bg_iou_low, cfg.rcnn_fg_iou))
      rois, labels, targets, valid = jax.vmap(fn)(props, boxes, classes, gt_mask,
                                                  jax.random.split(k_rcnn, bsz), proposal_valid=pvalid)
      captured.update(labels=labels, targets=targets, valid=valid)
      return rois, valid

    variables = {"params": params, **model_state}
    if train:
      out, new_state = self.model.apply(variables, images, train=True, sample_rois=sample_rois,
                                        mutable=list(model_state.keys()))
      new_state = dict(new_state)
    else:
      out, new_state = self.model.apply(variables, images, train=False, sample_rois=sample_rois), model_state
    anchors = out["anchors"]
    valid = None
    if cfg.rpn_allowed_border >= 0:
      valid = detection.inside_image(anchors, hw, cfg.rpn_allowed_border)
    rpn_fn = functools.partial(detection.rpn_targets, num_samples=cfg.rpn_samples,
                               pos_fraction=cfg.rpn_pos_fraction, pos_iou=cfg.rpn_pos_iou,
                               neg_iou=cfg.rpn_neg_iou, valid=valid)
    labels, targets, weights = jax.vmap(rpn_fn, in_axes=(None, 0, 0, 0))(
        anchors, boxes, gt_mask, jax.random.split(k_rpn, bsz))
    rpn_cls, rpn_box = jax.vmap(functools.partial(detection.rpn_loss, beta=cfg.rpn_box_beta))(
        out["rpn_logits"], out["rpn_deltas"], labels, targets, weights)
    rcnn_cls, rcnn_box = jax.vmap(functools.partial(detection.rcnn_loss, beta=cfg.rcnn_box_beta))(
        out["cls_logits"], out["box_deltas"], captured["labels"], captured["targets"], captured["valid"])
    per_image = cfg.rpn_weight * (rpn_cls + rpn_box) + cfg.rcnn_weight * (rcnn_cls + rcnn_box)
    valid_rois = jnp.maximum(captured["valid"].sum(-1), 1).astype(jnp.float32)
    metrics = dict(rpn_cls=rpn_cls, rpn_box=rpn_box, rcnn_cls=rcnn_cls, rcnn_box=rcnn_box,
                   rpn_positives=(labels == 1).sum(-1).astype(jnp.float32),
                   rcnn_fg_fraction=((captured["labels"] > 0) & captured["valid"]).sum(-1) / valid_rois)
    return per_image, metrics, new_state

  def _loss_at(self, params, model_state, batch, key, train: bool, side: int | None):
    per_image, metrics, new_state = self.per_image_loss(params, model_state, batch, key, train, side)
    if "mask" in batch:
      mask = jnp.asarray(batch["mask"], jnp.float32)
    else:
      mask = jnp.ones(per_image.shape, jnp.float32)
    denom = jnp.maximum(mask.sum(), 1.0)
    mean = lambda v: jnp.sum(v * mask) / denom
    return mean(per_image), {k: mean(v) for k, v in metrics.items()}, new_state

  def loss(self, params, model_state, batch, key, train: bool):
    scales = tuple(self.cfg.scales)
    if not train or not scales:
      return self._loss_at(params, model_state, batch, key, train, None)
    if len(scales) == 1:
      return self._loss_at(params, model_state, batch, key, train, scales[0])
    k_scale, key = jax.random.split(key)
    index = jax.random.randint(k_scale, (), 0, len(scales))
    branches = [functools.partial(self._loss_at, train=True, side=s) for s in scales]
    return jax.lax.switch(index, branches, params, model_state, batch, key)

  # --- optimizer: masked coupled weight decay + step decay --------------------------------------
  def lr_multiplier(self, step):
    """The step-decay factor of the learning rate after ``step`` completed updates."""
    n = int(self.config.num_train_steps)
    bounds = [int(round(f * n)) for f in self.cfg.lr_decay_at]
    passed = sum((jnp.asarray(step) >= b).astype(jnp.float32) for b in bounds) if bounds else 0.0
    return jnp.asarray(self.cfg.lr_decay_factor, jnp.float32) ** passed

  @property
  def optimizer(self) -> optax.GradientTransformation:
    mask = functools.partial(decay_mask, decay_norm_params=self.cfg.decay_norm_params)
    base = optim.make_optimizer(self.config.optimizer, self.config.num_train_steps, decay_mask=mask)
    if not self.cfg.lr_decay_at:
      return base
    return optax.chain(base, optax.scale_by_schedule(self.lr_multiplier))

  def train_step(self, state, batch, key):
    new, metrics = super().train_step(state, batch, key)
    if self.cfg.lr_decay_at:
      metrics["learning_rate"] = metrics["learning_rate"] * self.lr_multiplier(state.step)
    return new, metrics

  # --- evaluation -------------------------------------------------------------------------------
  def detect(self, params, model_state, images):
    """Final detections of ``images [B, H, W, 3]``: the task vocabulary's ``'detect'`` dict."""
    out = self.model.apply({"params": params, **model_state}, images, train=False)
    hw = images.shape[1:3]
    cfg = self.cfg
    fn = lambda c, b, r, v: detection.detections(
        c, b, r, hw, roi_valid=v, score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou,
        max_detections=cfg.max_detections, soft_nms=cfg.soft_nms or False)
    return jax.vmap(fn)(out["cls_logits"], out["box_deltas"], out["rois"], out["roi_valid"])

  def _uses_ema(self) -> bool:
    ema_on = (float(lookup(self.config, "optimizer.ema_decay", 0.0)) > 0
              or float(lookup(self.config, "optimizer.ema_halflife_kimg", 0.0)) > 0)
    return self.cfg.eval_ema and ema_on

  def eval_functions(self, state) -> dict:
    params = state.ema_params if self._uses_ema() else state.params
    model_state = state.model_state
    detect_fn, loss_fn = self._detect, self._eval_loss

    def detect(batch):
      out = detect_fn(params, model_state, jnp.asarray(batch["image"]))
      return {k: np.asarray(v) for k, v in out.items()}

    def loss(batch, key):
      b = {k: batch[k] for k in ("image", "boxes", "classes", "box_mask", "difficult")}
      return np.asarray(loss_fn(params, model_state, b, key)[0])

    data = dict(self.facts, num_classes=self.num_classes)
    return {"detect": detect, "loss": loss, "data": data}
