"""A small ThunderNet on the embedded ``digits_detection`` set: the whole detection pipeline on 2 CPU cores.

python -m jaxgen.main --config experiments/thundernet/digits_detection.py --workdir runs/thundernet_digits
Variants: default (the CPU run), smoke.
Hardware: 2 CPU cores, minutes; no download (scikit-learn's 8×8 digits pasted on 128-pixel canvases,
``jaxgen.data.detection``).
Model: ThunderNet's layout (SNet units with 5×5 depthwise convs, CEM, light RPN, SAM, PSRoI align, R-CNN
FC) shrunk by ``jaxgen.recipes.detection.tiny_detector``: one unit per stage, 3×3 PSRoI bins × 8 channels,
anchors 16/32/64 × ratios 1:2, 1:1, 2:1 (the digits are 20–44 pixels).
Training: Adam, batch 32, 1200 steps, 128 × 128 canvases with scale jitter 0.8–1.2 (no flips: digits are
not mirror-symmetric), the RPN / R-CNN losses and samplers of the detection task. Evaluation: VOC07
11-point mAP@0.5 on 256 test canvases (digits the training canvases never show).
Expected: VOC07 mAP@0.5 ≥ 0.8; measured 0.871 after 1200 steps (≈ 42 min on the shared 2-core machine;
docs/thundernet.md, picture docs/thundernet_digits.png).
"""

from jaxgen.configs import base_config
from jaxgen.recipes.detection import DATA_MODULE, smoke_config, thundernet_config, tiny_detector


def get_config(arg=None):
  variant = arg or "cpu"
  if variant not in ("cpu", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use cpu (default) or smoke.")
  if variant == "smoke":   # the same program as voc.py:smoke / coco.py:smoke (shared compilations)
    return smoke_config(thundernet_config(base_config(), backbone="snet49", dataset="voc/2007+2012"))
  c = base_config()
  c.model.name = "thundernet_snet49"
  c.task.name = "detection"
  c.seed = 0
  c.batch_size = 32
  c.num_train_steps = 1200
  c.log_every_steps = 50
  c.checkpoint_every_steps = 200
  c.eval_every_steps = 0
  c.eval_batch_size = 64
  c.data.name = DATA_MODULE
  c.data.dataset = "digits_detection"
  c.data.split = "train"
  c.data.eval_split = "test"
  c.data.resolution = 128
  c.data.digits_canvas = 128
  c.data.digits_min_size = 20
  c.data.digits_max_size = 44
  c.data.digits_max = 4
  c.data.max_boxes = 8
  c.data.random_flip = False          # digits are not mirror-symmetric
  c.data.jitter_min = 0.8
  c.data.jitter_max = 1.2
  c.data.num_threads = 1
  tiny_detector(c, stage_channels=(32, 64, 128), conv5_channels=128, roi_size=3, roi_channels=8,
                rpn_channels=64, rcnn_hidden=256, anchor_sizes=(16, 32, 64), post_nms_train=128,
                post_nms=50, pre_nms=512)
  c.task.rpn_samples = 128
  c.task.rcnn_samples = 64
  c.task.score_threshold = 0.05
  c.task.lr_decay_at = (0.7, 0.9)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.optimizer.schedule = "constant"
  # --config.evals.voc.picture=docs/thundernet_digits.png draws the first 8 test canvases' detections
  c.evals.voc = dict(type="voc_map", metric="voc07", picture="", picture_images=8, picture_threshold=0.5)
  return c
