"""ThunderNet (Qin et al., ICCV 2019) on PASCAL VOC: train 2007+2012 trainval, test VOC2007 test.

python -m jaxgen.main --config experiments/thundernet/voc.py:snet146 --workdir runs/thundernet_voc_snet146
Variants: snet49, snet146 (default), snet535, smoke. Pretrained backbone (paper: ImageNet-pretrained SNet):
--config.task.backbone_weights=SNET.npz (variables of experiments/thundernet/imagenet_snet.py's network).
Data: TFDS voc/2007 and voc/2012 prepared as array_record (``tfds build voc/2007 voc/2012
--file_format=array_record``; ``jaxgen.data.detection``), 320 × 320 input stretched without keeping the
aspect ratio, horizontal flips, multi-scale training on 240 / 320 / 480 (paper §5.1).
Hardware: 1–8 GPUs, global batch 64 (the released config's batch on one GPU).
Recipe: the released code (github qinzheng93/ThunderNet, config/ThunderNet.py, written for COCO; the
release has no VOC config, so the same recipe is used here): SGD momentum 0.9, weight decay 1e-4 (not on
BatchNorm), lr 0.01 with a 500-step linear warm-up, ×0.1 at 50% and 75% of training; RPN 256 anchors per
image (½ positive), 1000 training / 200 test proposals after NMS 0.7; R-CNN 512 RoIs per image (¼
foreground); Soft-NMS at test, 100 detections per image. The length (80 epochs of 5 × the training set,
the released RepeatDataset(times=5) × 80) is the COCO recipe's; set --config.num_train_steps to change it.
Expected (paper Table 3, VOC2007 test mAP, 11-point VOC07 metric): SNet49 70.1, SNet146 75.1, SNet535 78.6.
Not measured here (no VOC copy on this machine).
"""

from jaxgen.configs import base_config
from jaxgen.recipes.detection import smoke_config, thundernet_config

EXPECTED_MAP = {"snet49": 70.1, "snet146": 75.1, "snet535": 78.6}


def get_config(arg=None):
  variant = arg or "snet146"
  if variant not in (*EXPECTED_MAP, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(EXPECTED_MAP)} or smoke.")
  backbone = "snet49" if variant == "smoke" else variant
  c = thundernet_config(base_config(), backbone=backbone, dataset="voc/2007+2012", batch_size=64, epochs=400)
  if variant == "smoke":
    smoke_config(c)
  return c
