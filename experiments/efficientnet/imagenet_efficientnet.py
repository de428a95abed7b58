"""EfficientNet-B0…B7 on ImageNet with the paper's recipe (Tan & Le, ICML 2019, §5; TPU reference code).

python -m jaxgen.main --config experiments/efficientnet/imagenet_efficientnet.py:b0 --workdir runs/efficientnet_b0
Variants: b0 (default) … b7, smoke.
Hardware: written for a TPU v3 pod slice (global batch 4096, data-parallel, synchronized BatchNorm);
on fewer chips raise optimizer.grad_accum_steps so that batch_size/accum fits in memory.
Recipe: RMSProp (ρ 0.9, momentum 0.9, ε 1e-3 inside the square root, mean-square accumulator
started at 1 as TF1's RMSPropOptimizer), lr 0.016·batch/256 = 0.256 with 5 warm-up epochs, then
×0.97 every 2.4 epochs (staircase); weight decay 1e-5 (not on BatchNorm); BatchNorm momentum 0.99,
ε 1e-3; EMA of the weights 0.9999 (evaluated); label smoothing 0.1; stochastic depth 0.2; dropout
0.2…0.5 (per model); AutoAugment; 350 epochs; input = the model's resolution (224…600), evaluation
central crop res/(res+32).
Expected top-1 (paper Table 2): B0 77.1, B1 79.1, B2 80.1, B3 81.6, B4 82.9, B5 83.6, B6 84.0, B7 84.3.
"""

from jaxgen.configs import base_config
from jaxgen.models.efficientnet import COEFFICIENTS
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch

EXPECTED_TOP1 = {"b0": 77.1, "b1": 79.1, "b2": 80.1, "b3": 81.6, "b4": 82.9, "b5": 83.6, "b6": 84.0, "b7": 84.3}


def get_config(arg=None):
  variant = arg or "b0"
  if variant not in (*COEFFICIENTS, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(COEFFICIENTS)} or smoke.")
  model = "b0" if variant == "smoke" else variant
  batch = 4096
  c = imagenet_config(base_config(), model=f"efficientnet_{model}", resolution=COEFFICIENTS[model][2],
                      batch_size=batch, epochs=350, augment="autoaugment")
  c.model.overrides.drop_connect_rate = 0.2
  # TF/Keras EfficientNet (the default); weights converted from torchvision need padding='symmetric',
  # bn_eps=1e-5 (B0–B4) and input_norm='imagenet' (docs/convert.md "EfficientNet and Xception")
  c.model.overrides.padding = "same"
  c.model.overrides.bn_eps = 1e-3
  c.model.overrides.input_norm = "none"
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 0.016 * batch / 256
  c.optimizer.rms_decay = 0.9
  c.optimizer.momentum = 0.9
  c.optimizer.eps = 1e-3
  c.optimizer.rms_initial_scale = 1.0
  c.optimizer.weight_decay = 1e-5
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.97
  c.optimizer.decay_steps = int(round(2.4 * steps_per_epoch(batch)))
  c.optimizer.staircase = True
  c.optimizer.warmup_steps = int(round(5 * steps_per_epoch(batch)))
  c.optimizer.ema_decay = 0.9999
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    smoke_config(c, width=0.1, depth=0.1, head_channels=32)
  return c
