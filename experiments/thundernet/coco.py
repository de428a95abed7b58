"""ThunderNet (Qin et al., ICCV 2019) on COCO 2017: train on train2017, test on val2017.

python -m jaxgen.main --config experiments/thundernet/coco.py:snet146 --workdir runs/thundernet_coco_snet146
Variants: snet49, snet146 (default), snet535, smoke. Pretrained backbone (paper: ImageNet-pretrained SNet):
--config.task.backbone_weights=SNET.npz (variables of experiments/thundernet/imagenet_snet.py's network).
Data: TFDS coco/2017 prepared as array_record (``tfds build coco/2017 --file_format=array_record``;
``jaxgen.data.detection``); 320 × 320 input stretched, horizontal flips, multi-scale training on
240 / 320 / 480 (paper §5.1; the released config uses 240 / 360 / 480); crowd boxes are not trained on.
Hardware: 1–8 GPUs, global batch 64 (the released config: 64 images on one GPU).
Recipe (released code github qinzheng93/ThunderNet, config/ThunderNet.py): SGD momentum 0.9, weight decay
1e-4, lr 0.01, 500-step linear warm-up, ×0.1 at epochs 40 and 60 of 80 (each epoch 5 passes over
train2017: 80 · 5 · 118,287 / 64 ≈ 739k steps); RPN 256 anchors (½ positive), 1000 / 200 proposals
after NMS 0.7; R-CNN 512 RoIs (¼ foreground); Soft-NMS at test, 100 detections per image; the released
config's photometric distortion, Expand and MinIoURandomCrop augmentations are not reproduced.
Expected (paper Table 4, COCO test-dev AP@[.5:.95]): SNet49 19.1, SNet146 23.6, SNet535 28.0; the
``coco_ap`` evaluator reports val2017 (pycocotools). Not measured here (no COCO copy on this machine).
"""

from jaxgen.configs import base_config
from jaxgen.recipes.detection import smoke_config, thundernet_config

EXPECTED_AP = {"snet49": 19.1, "snet146": 23.6, "snet535": 28.0}


def get_config(arg=None):
  variant = arg or "snet146"
  if variant not in (*EXPECTED_AP, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(EXPECTED_AP)} or smoke.")
  backbone = "snet49" if variant == "smoke" else variant
  c = thundernet_config(base_config(), backbone=backbone, dataset="coco/2017", batch_size=64, epochs=400)
  if variant == "smoke":
    smoke_config(c)
    c.evals = type(c.evals)()
    c.evals.coco = dict(type="coco_ap")
  return c
