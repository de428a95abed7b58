"""MobileNetV2 1.0 (Sandler et al., CVPR 2018) on ImageNet.

python -m jaxgen.main --config experiments/mobilenet/imagenet_mobilenet_v2.py --workdir runs/mobilenet_v2
Variants: smoke.
Hardware: GPUs/TPUs, data-parallel, global batch 1536 (the paper: 16 asynchronous workers × 96).
Recipe (paper §6.1): RMSProp ρ 0.9, momentum 0.9, ε 1e-3 (TF TPU MnasNet code; not stated in the
paper), lr 0.045 decayed ×0.98 every epoch, weight decay 4e-5, BatchNorm average decay 0.999
(Flax momentum 0.999, ε 1e-3), label smoothing 0.1, 300 epochs (not stated); synchronous
training instead of asynchronous workers.
Expected top-1 (paper Table 4): 72.0 (300M MAdds, 3.4M params).
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  batch = 1536
  c = imagenet_config(base_config(), model="mobilenet_v2", resolution=224, batch_size=batch, epochs=300)
  # jaxgen's input convention ([-1, 1]); weights from python -m jaxgen.convert.torchvision need
  # --config.model.overrides.input_norm=imagenet and the ε it prints (docs/convert.md)
  c.model.overrides.input_norm = "none"
  c.model.overrides.bn_momentum = 0.999
  c.model.overrides.bn_eps = 1e-3
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 0.045
  c.optimizer.rms_decay = 0.9
  c.optimizer.momentum = 0.9
  c.optimizer.eps = 1e-3
  c.optimizer.rms_initial_scale = 1.0
  c.optimizer.weight_decay = 4e-5
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.98
  c.optimizer.decay_steps = int(round(steps_per_epoch(batch)))
  c.task.label_smoothing = 0.1
  if arg == "smoke":
    smoke_config(c, width=0.1, blocks=((1, 8, 1, 1), (6, 8, 2, 2)))
  return c
