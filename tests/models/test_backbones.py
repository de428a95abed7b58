"""Efficient CNN backbones: exact parameter counts against the reference implementations, and one tiny
forward per family (32×32 or 64×64, width-reduced) checking shapes, finiteness and BatchNorm updates.

Counts use ``jaxgen.models.param_shapes`` (``jax.eval_shape``: no memory, tracing only).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as models
from jaxgen.models.cnn_layers import channel_shuffle, make_divisible
from jaxgen.models.efficientnet import block_args, round_filters, round_repeats
from tests.fixtures.fast_compile import jit_fast

REFERENCE_COUNTS = {
    # torchvision EfficientNet_B*_Weights.IMAGENET1K_V1 meta "num_params" (timm's efficientnet_b0 agrees)
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    # torchvision MobileNet_V2_Weights num_params; Keras MobileNetV2 trainable params (3,538,984 total)
    "mobilenet_v2": 3_504_872,
    # torchvision MobileNet_V3_Large_Weights / MobileNet_V3_Small_Weights num_params
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    # Keras MobileNet (alpha=1) trainable params (4,253,864 total, 21,888 non-trainable BN stats);
    # widths 0.75/0.5/0.25: osmr/imgclsmob README (Gluon model zoo mobilenet_w3d4 / wd2 / wd4)
    "mobilenet_v1": 4_231_976,
    "mobilenet_v1_075": 2_585_560,
    "mobilenet_v1_050": 1_331_592,
    "mobilenet_v1_025": 470_072,
    # torchvision GoogLeNet_Weights num_params (aux heads removed, as in the released model)
    "googlenet": 6_624_904,
    # Keras Xception trainable params (22,910,480 total, 54,528 BN stats); Chollet 2017 Table 3
    "xception": 22_855_952,
}

# osmr/imgclsmob README, "ShuffleNet x1.0 (g=1..8)": the Megvii V1 network with a biased classifier
SHUFFLENET_V1_OSMR = {1: 1_531_936, 2: 1_733_848, 3: 1_865_728, 4: 1_968_344, 8: 2_434_768}
# torchvision ShuffleNet_V2_X*_Weights num_params (torchvision's down-sampling unit, biased classifier)
SHUFFLENET_V2_TORCHVISION = {"x0_5": 1_366_792, "x1_0": 2_278_604, "x1_5": 3_503_624, "x2_0": 7_393_996}
# osmr/imgclsmob README "ShuffleNetV2c" (converted from tensorpack, the paper's/Megvii's unit) with a
# biased classifier: x0.5 1,366,792, x1.0 2,279,760
SHUFFLENET_V2_TENSORPACK = {"x0_5": 1_366_792, "x1_0": 2_279_760}


@functools.cache
def count(name, **overrides):
  return models.count_params(models.param_shapes(name, **overrides))


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_parameter_counts(name):
  assert count(name) == REFERENCE_COUNTS[name]


@pytest.mark.parametrize("groups", sorted(SHUFFLENET_V1_OSMR))
def test_shufflenet_v1_counts(groups):
  name = f"shufflenet_v1_g{groups}"
  assert count(name, classifier_bias=True) == SHUFFLENET_V1_OSMR[groups]
  assert count(name) == SHUFFLENET_V1_OSMR[groups] - 1000   # Megvii's classifier has no bias


def megvii_v2_count(stages, conv5, num_classes=1000, stem=24, k=3):
  """Parameters of Megvii's ShuffleNetV2 (network.py/blocks.py), counted by hand from its layers:
  conv weight + BN (γ, β) per conv; down-sampling unit with a shortcut that keeps `inp` channels."""
  conv_bn = lambda cin, cout, kk=1, groups=1: cin // groups * cout * kk * kk + 2 * cout
  n = conv_bn(3, stem, 3)
  cin = stem
  for c, reps in zip(stages, (4, 8, 4)):
    mid = c // 2
    n += conv_bn(cin, mid) + conv_bn(mid, mid, k, mid) + conv_bn(mid, c - cin)   # main branch
    n += conv_bn(cin, cin, k, cin) + conv_bn(cin, cin)                          # projection branch
    for _ in range(reps - 1):
      n += conv_bn(c // 2, mid) + conv_bn(mid, mid, k, mid) + conv_bn(mid, c // 2)
    cin = c
  return n + conv_bn(cin, conv5) + conv5 * num_classes


@pytest.mark.parametrize("size", ["x0_5", "x1_0", "x1_5", "x2_0"])
def test_shufflenet_v2_counts(size):
  from jaxgen.models.shufflenet import V2_CONFIGS

  name = f"shufflenet_v2_{size}"
  assert count(name) == megvii_v2_count(*V2_CONFIGS[size])
  assert count(name, downsample="torchvision") == SHUFFLENET_V2_TORCHVISION[size]
  if size in SHUFFLENET_V2_TENSORPACK:
    assert count(name, classifier_bias=True) == SHUFFLENET_V2_TENSORPACK[size]


def test_every_backbone_has_a_reference_count():
  ours = {n for n in models.names() if n.split("_")[0] in
          ("efficientnet", "mobilenet", "shufflenet", "googlenet", "xception")}
  covered = set(REFERENCE_COUNTS) | {f"shufflenet_v1_g{g}" for g in SHUFFLENET_V1_OSMR} | {
      f"shufflenet_v2_{s}" for s in SHUFFLENET_V2_TORCHVISION}
  assert ours == covered


def test_snet_configuration_for_thundernet():
  # ThunderNet SNet49 (docs/reference.md §5): 5×5 depthwise convs, stages 24/60/120/240, conv5 512
  shapes = models.param_shapes("shufflenet_v2_x1_0", kernel=5, stage_channels=(60, 120, 240), conv5_channels=512)
  dw = shapes["features"]["stage3_1"]["main_dw"]["conv"]["kernel"]
  assert dw.shape == (5, 5, 1, 60)
  assert shapes["features"]["conv5"]["conv"]["kernel"].shape == (1, 1, 240, 512)
  assert megvii_v2_count((60, 120, 240), 512, k=5) == count("shufflenet_v2_x1_0", kernel=5,
                                                             stage_channels=(60, 120, 240), conv5_channels=512)


def test_compound_scaling_helpers():
  # TF efficientnet_model.round_filters: never more than 10% below c·width, multiples of 8
  assert round_filters(32, 1.1) == 32 and round_filters(1280, 1.1) == 1408 and round_filters(16, 1.4) == 24
  assert round_filters(40, 2.0) == 80 and round_filters(24, 1.2) == 32
  assert make_divisible(36.8, 8) == 40 and make_divisible(10, 8) == 16 and make_divisible(4, 8) == 8
  assert round_repeats(2, 3.1) == 7 and round_repeats(1, 1.1) == 2 and round_repeats(4, 1.0) == 4
  assert len(block_args(1.0, 1.0)) == 16 and len(block_args(2.0, 3.1)) == 55   # B0: 16 blocks, B7: 55
  # SE width comes from the block *input* channels: B0 block 1 (16 → 24, expand 6) has int(16·0.25) = 4
  se = models.param_shapes("efficientnet_b0")["block1"]["se"]["reduce"]["kernel"]
  assert se.shape == (1, 1, 96, 4)


def test_channel_shuffle_is_the_transpose_permutation():
  x = jnp.arange(6.0).reshape(1, 1, 1, 6)
  np.testing.assert_array_equal(channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])
  np.testing.assert_array_equal(channel_shuffle(x, 3)[0, 0, 0], [0, 2, 4, 1, 3, 5])


TINY = {  # one small configuration per family; (name, overrides, resolution)
    "efficientnet": ("efficientnet_b0", dict(width=0.25, depth=0.3, num_classes=5, head_channels=64, padding="same"), 32),
    "mobilenet_v1": ("mobilenet_v1_025", dict(num_classes=5), 32),
    "mobilenet_v2": ("mobilenet_v2", dict(width=0.25, num_classes=5), 32),
    "mobilenet_v3": ("mobilenet_v3_small", dict(width=0.25, num_classes=5), 32),
    "shufflenet_v1": ("shufflenet_v1_g3", dict(stage_channels=(48, 96, 192), stage_repeats=(1, 2, 1), num_classes=5), 32),
    "shufflenet_v2": ("shufflenet_v2_x0_5", dict(stage_repeats=(1, 2, 1), conv5_channels=64, num_classes=5), 32),
    "googlenet": ("googlenet", dict(num_classes=5, aux_logits=True), 64),
    "xception": ("xception", dict(num_classes=5, middle_blocks=1), 32),
}


# Tiny programs compile with tests.fixtures.fast_compile.jit_fast (LLVM -O0, per program).


def _tiny_run(module, x):
  """init (with the inference-mode output) + a train-mode apply, compiled as one program."""
  logits, variables = module.init_with_output(jax.random.key(1), x)
  out, new_state = module.apply(variables, x, train=True, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.key(2)})
  return logits, out, variables["batch_stats"], new_state["batch_stats"]


@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_forward_and_batchnorm_updates(family):
  name, ov, res = TINY[family]
  module = models.create(name, **ov)
  x = jax.random.normal(jax.random.key(0), (4, res, res, 3))
  logits, out, old, new = jit_fast(functools.partial(_tiny_run, module), x)(x)
  assert logits.shape == (4, 5) and bool(jnp.all(jnp.isfinite(logits)))
  main = out[0] if isinstance(out, tuple) else out
  assert main.shape == (4, 5) and bool(jnp.all(jnp.isfinite(main)))
  if family == "googlenet":        # train mode returns (logits, aux1, aux2)
    assert len(out) == 3 and all(o.shape == (4, 5) for o in out)
  old, new = jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new)
  assert len(old) == len(new) > 0
  assert any(not np.allclose(a, b) for a, b in zip(old, new)), "train mode must update BatchNorm statistics"
  assert all(bool(jnp.all(jnp.isfinite(b))) for b in new)


def test_googlenet_block_subset_for_smoke_networks():
  # The smoke knob keeps the named Inception modules (and the aux heads after 4a/4d); the default
  # network (counted above) is all nine.
  shapes = models.param_shapes("googlenet", blocks=("3a", "4a", "4d", "5a"), aux_logits=True, width=0.0625,
                               resolution=64)
  assert {k for k in shapes if k.startswith("inception")} == {"inception3a", "inception4a", "inception4d",
                                                              "inception5a"}
  assert "aux1" in shapes and "aux2" in shapes
  with pytest.raises(ValueError, match="in that order"):
    models.param_shapes("googlenet", blocks=("4a", "3a"), resolution=64)
