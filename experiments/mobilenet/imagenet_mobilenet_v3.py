"""MobileNetV3-Large / -Small 1.0 (Howard et al., ICCV 2019) on ImageNet.

python -m jaxgen.main --config experiments/mobilenet/imagenet_mobilenet_v3.py:large --workdir runs/mobilenet_v3_large
Variants: large (default), small, smoke.
Hardware: a 4×4 TPU pod (the paper), global batch 4096 (128 per chip), synchronous.
Recipe (paper §6.1): TF RMSPropOptimizer with momentum 0.9 (ρ 0.9, ε 1e-3 as the TPU MnasNet code),
lr 0.1, decayed ×0.99 every 3 epochs (the paper's "decay rate of 0.01 every 3 epochs"), dropout 0.2
(keep 0.8), L2 weight decay 1e-5, Inception preprocessing, EMA 0.9999, BatchNorm average decay 0.99;
label smoothing 0.1 and 5 warm-up epochs as the MnasNet code; 350 epochs (not stated in the paper).
Expected top-1 (paper Table 3): Large 75.2, Small 67.4.
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch

EXPECTED_TOP1 = {"large": 75.2, "small": 67.4}


def get_config(arg=None):
  variant = arg or "large"
  if variant not in ("large", "small", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use large, small or smoke.")
  batch = 4096
  size = "small" if variant == "smoke" else variant
  c = imagenet_config(base_config(), model=f"mobilenet_v3_{size}", resolution=224, batch_size=batch, epochs=350)
  # jaxgen's input convention ([-1, 1]); weights from python -m jaxgen.convert.torchvision need
  # --config.model.overrides.input_norm=imagenet and the ε it prints (docs/convert.md)
  c.model.overrides.input_norm = "none"
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 0.1
  c.optimizer.rms_decay = 0.9
  c.optimizer.momentum = 0.9
  c.optimizer.eps = 1e-3
  c.optimizer.rms_initial_scale = 1.0
  c.optimizer.weight_decay = 1e-5
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.99
  c.optimizer.decay_steps = int(round(3 * steps_per_epoch(batch)))
  c.optimizer.warmup_steps = int(round(5 * steps_per_epoch(batch)))
  c.optimizer.ema_decay = 0.9999
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    from jaxgen.models.mobilenet import V3_SMALL
    smoke_config(c, width=0.25, blocks=V3_SMALL[:3])
  return c
