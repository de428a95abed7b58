"""Xception (Chollet, CVPR 2017) on ImageNet at 299×299.

python -m jaxgen.main --config experiments/xception/imagenet_xception.py --workdir runs/xception
Variants: smoke.
Hardware: the paper used 60 NVIDIA K80 GPUs (data-parallel, synchronous); global batch 1920 here (32
per GPU; the paper does not state it).
Recipe (paper §4.3, ImageNet): SGD momentum 0.9, lr 0.045 decayed ×0.94 every 2 epochs, weight decay
1e-5, dropout 0.5 before the classifier, no auxiliary tower, Inception crops; 100 epochs (not stated).
Expected (paper Table 1): top-1 79.0, top-5 94.5.
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  batch = 1920
  c = imagenet_config(base_config(), model="xception", resolution=299, batch_size=batch, epochs=100,
                      crop_padding=0)
  c.data.crop_fraction = 0.875
  c.model.overrides.dropout = 0.5
  # Keras' Xception (the default); timm's legacy_xception weights need pool_padding='symmetric', bn_eps=1e-5
  c.model.overrides.pool_padding = "same"
  c.model.overrides.bn_eps = 1e-3
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.045
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-5
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.94
  c.optimizer.decay_steps = int(round(2 * steps_per_epoch(batch)))
  if arg == "smoke":
    smoke_config(c, width=0.0625, middle_blocks=1)
  return c
