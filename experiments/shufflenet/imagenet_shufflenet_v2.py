"""ShuffleNet V2 0.5×/1×/1.5×/2× (Ma et al., ECCV 2018) on ImageNet, Megvii's down-sampling unit.

python -m jaxgen.main --config experiments/shufflenet/imagenet_shufflenet_v2.py:x1_0 --workdir runs/shufflenet_v2_x1_0
Variants: x0_5, x1_0 (default), x1_5, x2_0, smoke.
Hardware: 4–8 GPUs, global batch 1024.
Recipe (Megvii ShuffleNet-Series ShuffleNetV2/train.py): SGD momentum 0.9, lr 0.5 decayed linearly to 0
over 300k iterations, weight decay 4e-5 (not on BatchNorm), batch 1024, label smoothing 0.1, Inception
crops; 2× adds dropout 0.2.
Expected top-1 (Megvii README): 0.5× 61.1, 1× 69.4, 1.5× 72.6, 2× 75.0 (top-1 errors 38.9/30.6/27.4/25.0;
paper Table 8 FLOPs 41/146/299/591M).
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config

EXPECTED_TOP1 = {"x0_5": 61.1, "x1_0": 69.4, "x1_5": 72.6, "x2_0": 75.0}


def get_config(arg=None):
  variant = arg or "x1_0"
  if variant not in (*EXPECTED_TOP1, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(EXPECTED_TOP1)} or smoke.")
  size = "x0_5" if variant == "smoke" else variant
  c = imagenet_config(base_config(), model=f"shufflenet_v2_{size}", resolution=224, batch_size=1024, epochs=1)
  # jaxgen's input convention ([-1, 1]); weights from python -m jaxgen.convert.torchvision need
  # --config.model.overrides.input_norm=imagenet and the ε it prints (docs/convert.md)
  c.model.overrides.input_norm = "none"
  c.num_train_steps = 300_000
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.5
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 4e-5
  c.optimizer.schedule = "linear"
  c.optimizer.end_lr_factor = 0.0
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    smoke_config(c, stage_repeats=(1, 1, 1), conv5_channels=32)
  return c
