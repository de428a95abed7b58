"""MobileNet V1 (Howard et al. 2017) on ImageNet: width 1.0/0.75/0.5/0.25 at 224 (resolution via
--config.data.resolution=192/160/128).

python -m jaxgen.main --config experiments/mobilenet/imagenet_mobilenet_v1.py:1.0 --workdir runs/mobilenet_v1
Variants: 1.0 (default), 0.75, 0.5, 0.25, smoke.
Hardware: GPUs/TPUs, data-parallel; global batch 1600 (the Inception-v3 setting the paper follows:
50 replicas × 32).
Recipe (paper §4: "RMSprop with asynchronous gradient descent similar to Inception V3", less
regularization and augmentation): RMSProp ρ 0.9, momentum 0.9, ε 1.0, lr 0.045 ×0.94 every 2 epochs
(Inception-v3 §8); weight decay 4e-5 (TF-slim default; the paper puts little or none on depthwise
filters — ours skips only BatchNorm); label smoothing 0.1; 100 epochs (not stated in the paper);
synchronous data parallelism instead of asynchronous replicas.
Expected top-1 (paper Table 6, 224): 1.0 70.6, 0.75 68.4, 0.5 63.7, 0.25 50.6.
"""

from jaxgen.configs import base_config
from jaxgen.recipes.classification import imagenet_config, smoke_config, steps_per_epoch

NAMES = {"1.0": "mobilenet_v1", "0.75": "mobilenet_v1_075", "0.5": "mobilenet_v1_050", "0.25": "mobilenet_v1_025"}
EXPECTED_TOP1 = {"1.0": 70.6, "0.75": 68.4, "0.5": 63.7, "0.25": 50.6}


def get_config(arg=None):
  variant = arg or "1.0"
  if variant not in (*NAMES, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(NAMES)} or smoke.")
  batch = 1600
  c = imagenet_config(base_config(), model=NAMES["1.0" if variant == "smoke" else variant], resolution=224,
                      batch_size=batch, epochs=100)
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 0.045
  c.optimizer.rms_decay = 0.9
  c.optimizer.momentum = 0.9
  c.optimizer.eps = 1.0
  c.optimizer.rms_initial_scale = 1.0
  c.optimizer.weight_decay = 4e-5
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_rate = 0.94
  c.optimizer.decay_steps = int(round(2 * steps_per_epoch(batch)))
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    smoke_config(c, alpha=0.125)
  return c
