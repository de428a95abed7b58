"""Config builders of the ThunderNet experiments (``experiments/thundernet/{voc,coco,digits_detection}.py``).

``thundernet_config(c, backbone=..., dataset=...)`` fills a ``base_config()`` with the released ThunderNet
recipe (github qinzheng93/ThunderNet ``config/ThunderNet.py``; docs/thundernet.md): input 320 × 320
(stretched, no aspect ratio kept), multi-scale training, horizontal flips, SGD momentum 0.9 with weight
decay 1e-4 (not on BatchNorm), base lr 0.01 with a 500-step linear warm-up and ×0.1 step decays, the RPN
and R-CNN sampling of the released config, and the ``voc_map`` or ``coco_ap`` evaluator.
``tiny_detector(c)`` shrinks the network (a 3-stage SNet of one unit per stage, narrow CEM/RPN/R-CNN) for
the ``:smoke`` variants and the CPU digits run; ``smoke_config(c)`` is the ``:smoke`` variant: the embedded
``digits_detection`` set on 64-pixel canvases, the tiny network, 2 steps.
"""

from __future__ import annotations

DATA_MODULE = "jaxgen.data.detection"

# Training images of the sets (TFDS): VOC 2007 trainval 5,011 + 2012 trainval 11,540; COCO 2017 train 118,287.
TRAIN_IMAGES = {"voc/2007+2012": 16_551, "voc/2007": 5_011, "voc/2012": 11_540, "coco/2017": 118_287}


def thundernet_config(c, *, backbone: str, dataset: str, batch_size: int = 64, epochs: float = 80,
                      scales=(240, 320, 480), resolution: int = 320):
  """Fills ``c`` (a ``base_config()``) with the ThunderNet recipe on ``dataset`` (see module docstring)."""
  steps = int(round(epochs * TRAIN_IMAGES[dataset] / batch_size))
  c.batch_size = batch_size
  c.num_train_steps = steps
  c.log_every_steps = 100
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = max(steps // 8, 1)
  c.eval_batch_size = batch_size
  c.data.name = DATA_MODULE
  c.data.dataset = dataset
  c.data.split = "train+validation"
  c.data.eval_split = "test" if dataset.startswith("voc") else "validation"
  c.data.resolution = resolution
  c.data.train_resolution = max(scales) if scales else resolution
  c.data.random_flip = True
  c.data.box_resize = "stretch"
  c.data.jitter_min = 1.0
  c.data.jitter_max = 1.0
  c.data.max_boxes = 100 if dataset.startswith("coco") else 50
  c.data.use_difficult = False
  if dataset.startswith("coco"):
    c.data.split = "train"
  c.model.name = f"thundernet_{backbone}"
  c.task.name = "detection"
  c.task.scales = tuple(scales)
  c.task.rpn_samples = 256
  c.task.rcnn_samples = 512
  c.task.soft_nms = "gaussian"
  c.task.lr_decay_at = (0.5, 0.75)
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-4
  c.optimizer.warmup_steps = 500
  c.optimizer.schedule = "constant"
  if dataset.startswith("coco"):
    c.evals.coco = dict(type="coco_ap")
  else:
    c.evals.voc = dict(type="voc_map", metric="voc07")
  return c


def tiny_detector(c, *, stage_channels=(16, 32, 64), conv5_channels: int = 64, roi_size: int = 3,
                  roi_channels: int = 4, rpn_channels: int = 32, rcnn_hidden: int = 64,
                  anchor_sizes=(16, 32, 64), anchor_ratios=(0.5, 1.0, 2.0), post_nms_train: int = 64,
                  post_nms: int = 32, pre_nms: int = 256):
  """A small ThunderNet (SNet49 layout, one unit per stage) for CPU runs; returns ``c``."""
  o = c.model.overrides
  o.backbone_overrides = dict(stage_channels=tuple(stage_channels), stage_repeats=(1, 1, 1),
                              conv5_channels=conv5_channels, stem_channels=8)
  o.cem_channels = roi_size * roi_size * roi_channels
  o.roi_size = roi_size
  o.roi_channels = roi_channels
  o.rpn_channels = rpn_channels
  o.rcnn_hidden = rcnn_hidden
  o.anchor_sizes = tuple(float(s) for s in anchor_sizes)
  o.anchor_ratios = tuple(float(r) for r in anchor_ratios)
  o.pre_nms = pre_nms
  o.post_nms = post_nms
  o.post_nms_train = post_nms_train
  return c


def smoke_config(c):
  """The ``:smoke`` variant of a ThunderNet recipe: digits_detection on 64-pixel canvases, tiny network,
  2 steps of batch 16, evaluation on 32 test canvases."""
  from jaxgen.configs import smoke  # noqa: PLC0415
  smoke(c)
  c.batch_size = 8
  c.eval_batch_size = 16
  c.data.name = DATA_MODULE
  c.data.dataset = "digits_detection"
  c.data.split = "train"
  c.data.eval_split = "test"
  c.data.resolution = 64
  c.data.train_resolution = 64
  c.data.digits_canvas = 64
  c.data.digits_min_size = 16
  c.data.digits_max_size = 28
  c.data.digits_max = 2
  c.data.max_boxes = 4
  c.data.digits_test_size = 32
  c.data.num_threads = 1
  c.model.name = "thundernet_snet49"
  tiny_detector(c)
  c.task.scales = ()
  c.task.rpn_samples = 64
  c.task.rcnn_samples = 32
  c.optimizer.warmup_steps = 0
  c.evals = type(c.evals)()
  c.evals.voc = dict(type="voc_map", metric="voc07")
  return c
