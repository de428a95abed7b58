"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015) on ImageNet, with the auxiliary classifiers.

python -m jaxgen.main --config experiments/googlenet/imagenet_googlenet.py --workdir runs/googlenet
Variants: paper (the paper's network: LRN, biased convs, 5×5 branches; default is torchvision's
BatchNorm variant), smoke.
Hardware: GPUs, data-parallel, global batch 256.
Recipe (paper §6): SGD momentum 0.9, learning rate decreased by 4% every 8 epochs (lr 0.01, the BVLC
reference's base_lr; not stated in the paper), auxiliary losses weighted 0.3 (dropout 0.7), main
dropout 0.4 (paper) / 0.2 (torchvision), Inception crops of 8%–100% area and 3/4–4/3 aspect, 250
epochs (not stated). Polyak averaging (the paper's inference model): optimizer.ema_decay 0.9999.
Expected (paper Table 3, 1 model, 1 crop): top-5 error 10.07% (top-5 accuracy 89.93%); torchvision's
BatchNorm model reaches top-1 69.78 / top-5 89.53.
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch


def get_config(arg=None):
  if arg not in (None, "", "paper", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use paper, smoke or nothing.")
  batch = 256
  c = imagenet_config(base_config(), model="googlenet", resolution=224, batch_size=batch, epochs=250)
  c.model.overrides.aux_logits = True
  if arg == "paper":
    c.model.overrides.variant = "paper"
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 2e-4
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.96
  c.optimizer.decay_steps = int(round(8 * steps_per_epoch(batch)))
  c.optimizer.ema_decay = 0.9999
  c.task.aux_loss_weight = 0.3
  if arg == "smoke":
    smoke_config(c, width=0.0625, blocks=("3a", "4a", "4d", "5a"))   # one module per stage + 4d's aux head
    c.data.resolution = 64          # the auxiliary heads need ≥ 4×4 maps at 4a/4d
  return c
