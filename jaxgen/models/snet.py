"""SNet: ThunderNet's ShuffleNet V2 backbones (Qin et al., ICCV 2019; docs/thundernet.md, reference.md §5).

SNet is ShuffleNet V2 (Megvii units, ``jaxgen.models.shufflenet``) with every 3×3 depthwise conv replaced
by a 5×5 one and re-balanced widths (paper Table 1; input 224 for ImageNet, 320 in the detector):

  ========  =====  ===========================  =======  =======  =================
  model     conv1  stage2 / stage3 / stage4     repeats  conv5    paper MFLOPs@224
  ========  =====  ===========================  =======  =======  =================
  SNet49    24     60 / 120 / 240               4/8/4    512      49
  SNet146   24     132 / 264 / 528              4/8/4    none     146
  SNet535   48     248 / 496 / 992              4/8/4    none     535
  ========  =====  ===========================  =======  =======  =================

SNet49 keeps a 1×1 conv5, compressed to 512 channels; SNet146/535 drop it. The detector reads
``C4`` = the output of stage 3 (stride 16) and ``C5`` = the output of stage 4 (stride 32), or of conv5 for
SNet49 (paper §3.1). The released code (github qinzheng93/ThunderNet, ``thundernet/ShuffleNetV2.py`` and
``snet-training/network.py``) builds SNet146 with exactly these widths and Megvii's units (down-sampling
unit: shortcut branch 5×5 dw s2 → 1×1 keeping the input width, main branch 1×1 to out/2 → 5×5 dw s2 →
1×1 to out − in; stride-1 units split even/odd channels) and reports 146 MFLOPs and 32.2% top-1 error
(``snet-training/README.md``); our count of the same network is in ``python -m jaxgen.tables thundernet``.

Registered as ImageNet classifiers ``snet49``, ``snet146``, ``snet535`` (1000 classes, classifier without
bias as Megvii's). ``SNet(...)(x, return_features=True)`` returns ``(logits, {'c4', 'c5'})``;
``snet_backbone(name)`` gives the bare feature extractor (a ``ShuffleNetV2Features``, the module ThunderNet
uses) whose variables are the classifier's ``'features'`` subtree, so ImageNet-pretrained SNet weights move
into the detector by copying that subtree (``backbone_variables``).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from jaxgen.errors import ConfigError
from jaxgen.models import register
from jaxgen.models.cnn_layers import classifier_head, image_inputs, to_dtype
from jaxgen.models.shufflenet import ShuffleNetV2Features

# name -> (stem channels, stage channels, conv5 channels (0: none)); repeats 4/8/4, 5×5 depthwise convs
SNET_CONFIGS: dict[str, tuple[int, tuple[int, int, int], int]] = {
    "snet49": (24, (60, 120, 240), 512),
    "snet146": (24, (132, 264, 528), 0),
    "snet535": (48, (248, 496, 992), 0),
}
PAPER_MFLOPS = {"snet49": 49, "snet146": 146, "snet535": 535}   # paper Table 1, at 224×224
STAGE_REPEATS = (4, 8, 4)
KERNEL = 5


def snet_config(name: str) -> dict[str, Any]:
  """Constructor keywords of ``ShuffleNetV2Features`` for SNet ``name`` ('snet49' | 'snet146' | 'snet535')."""
  key = name.lower().replace("-", "")
  if not key.startswith("snet"):
    key = "snet" + key
  if key not in SNET_CONFIGS:
    raise ConfigError(f"unknown SNet {name!r}: use one of {', '.join(SNET_CONFIGS)}.")
  stem, stages, conv5 = SNET_CONFIGS[key]
  return dict(stem_channels=stem, stage_channels=stages, conv5_channels=conv5, stage_repeats=STAGE_REPEATS,
              kernel=KERNEL)


def snet_backbone(name: str, dtype: Any = jnp.float32, **overrides) -> ShuffleNetV2Features:
  """The SNet feature extractor (stem, stages, conv5 for SNet49); its output dict has 'stage3' (C4) and
  'conv5' (C5: conv5 for SNet49, else stage 4)."""
  return ShuffleNetV2Features(**{**snet_config(name), "dtype": dtype, **overrides})


def c4_c5(feats: dict) -> tuple:
  """(C4, C5) of a ``ShuffleNetV2Features`` output dict (paper §3.1)."""
  return feats["stage3"], feats["conv5"]


class SNet(nn.Module):
  """SNet ImageNet classifier: features (submodule 'features') → global average pool → Dense (no bias)."""

  stem_channels: int = 24
  stage_channels: Sequence[int] = (132, 264, 528)
  conv5_channels: int = 0
  stage_repeats: Sequence[int] = STAGE_REPEATS
  kernel: int = KERNEL
  num_classes: int = 1000
  dropout: float = 0.0
  classifier_bias: bool = False
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, return_features: bool = False):
    dtype = to_dtype(self.dtype)
    feats = ShuffleNetV2Features(self.stage_channels, self.stage_repeats, self.conv5_channels,
                                 self.stem_channels, self.kernel, "megvii", self.bn_momentum, self.bn_eps, dtype,
                                 name="features")(x, train)
    logits = classifier_head(feats["conv5"], self.num_classes, self.dropout, train, dtype,
                             use_bias=self.classifier_bias)
    if return_features:
      c4, c5 = c4_c5(feats)
      return logits, {"c4": c4, "c5": c5}
    return logits


def backbone_variables(classifier_variables: dict) -> dict:
  """The variables of ``snet_backbone(name)`` taken from an ``SNet`` classifier's variables (ImageNet
  pre-training → detector backbone): the 'features' subtree of every collection."""
  return {col: tree["features"] for col, tree in classifier_variables.items() if "features" in tree}


def _snet(name: str):
  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> SNet:
    del resolution, channels  # input-shape overrides (used by the registry inputs)
    cfg = snet_config(name)
    return SNet(**{**{k: cfg[k] for k in ("stem_channels", "stage_channels", "conv5_channels")}, **overrides})

  make.__module__ = __name__
  make.__name__ = name
  return make


for _n in SNET_CONFIGS:
  register(_n, inputs=image_inputs(224))(_snet(_n))
