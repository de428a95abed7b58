"""SNet49 / SNet146 / SNet535 (ThunderNet's backbones, Qin et al., ICCV 2019) on ImageNet: the pre-training
that the detector's backbone starts from (docs/thundernet.md).

python -m jaxgen.main --config experiments/thundernet/imagenet_snet.py:snet146 --workdir runs/snet146
Variants: snet49, snet146 (default), snet535, smoke.
Hardware: 4–8 GPUs, global batch 1024 (the released recipe uses 512 at lr 0.5; lr is kept).
Recipe (the released code's snet-training/train.py, itself Megvii's ShuffleNet V2 recipe): SGD momentum 0.9,
lr 0.5 decayed linearly to 0 over 300k iterations, weight decay 4e-5 (not on BatchNorm), label smoothing 0.1,
Inception crops at 224, random flips; evaluation central crop 224 of 256.
Expected: SNet146 top-1 error 32.2% (top-1 67.8%, top-5 error 12.0%) — the released snet-training/README.md
(github qinzheng93/ThunderNet), which also lists it as 146 MFLOPs (our count of the network: 162.5M, see
``python -m jaxgen.tables thundernet``). SNet49 and SNet535 have no released number; the paper reports their
ImageNet errors in its backbone table (Table 1/2), not restated here.
Transfer to the detector: ``jaxgen.models.snet.backbone_variables(variables)`` gives the 'features' subtree,
which is ThunderNet's ``params['snet']`` / ``batch_stats['snet']``.
"""

from jaxgen.configs import base_config
from jaxgen.models.snet import SNET_CONFIGS
from jaxgen.recipes.classification import imagenet_config, smoke_config

EXPECTED_TOP1 = {"snet146": 67.8}


def get_config(arg=None):
  variant = arg or "snet146"
  if variant not in (*SNET_CONFIGS, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(SNET_CONFIGS)} or smoke.")
  name = "snet49" if variant == "smoke" else variant
  c = imagenet_config(base_config(), model=name, resolution=224, batch_size=1024, epochs=1)
  c.num_train_steps = 300_000
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.5
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 4e-5
  c.optimizer.schedule = "linear"
  c.optimizer.end_lr_factor = 0.0
  c.task.label_smoothing = 0.1
  if variant == "smoke":
    smoke_config(c, stem_channels=8, stage_channels=(16, 32, 64), stage_repeats=(1, 1, 1), conv5_channels=32)
  return c
