"""ShuffleNet V1 1× (Zhang et al., CVPR 2018) on ImageNet, groups g = 1, 2, 3, 4, 8.

python -m jaxgen.main --config experiments/shufflenet/imagenet_shufflenet_v1.py:g3 --workdir runs/shufflenet_v1_g3
Variants: g1, g2, g3 (default), g4, g8, smoke. Width: --config.model.overrides.scale=0.5|1.5|2.0.
Hardware: 4–8 GPUs, global batch 1024.
Recipe (paper §4; Megvii ShuffleNet-Series train.py): SGD momentum 0.9, lr 0.5 decayed linearly to 0
over 300k iterations (≈ 240 epochs), weight decay 4e-5, batch 1024, label smoothing 0.1 (Megvii),
Inception crops (the paper uses less aggressive scale augmentation for small networks).
Expected top-1 (Megvii README, 1.0×): g3 67.8 (32.2% error), g8 68.0 (32.0%); the paper's Table 2
lists the other group numbers.
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config

EXPECTED_TOP1 = {"g3": 67.8, "g8": 68.0}


def get_config(arg=None):
  variant = arg or "g3"
  if variant not in ("g1", "g2", "g3", "g4", "g8", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use g1, g2, g3, g4, g8 or smoke.")
  batch = 1024
  g = "g3" if variant == "smoke" else variant
  c = imagenet_config(base_config(), model=f"shufflenet_v1_{g}", resolution=224, batch_size=batch, epochs=1)
  c.num_train_steps = 300_000
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.5
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 4e-5
  c.optimizer.schedule = "linear"
  c.optimizer.end_lr_factor = 0.0
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    smoke_config(c, stage_channels=(48, 96, 192), stage_repeats=(1, 1, 1))
  return c
