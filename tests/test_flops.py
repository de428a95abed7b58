"""Multiply-add counter: hand-computed single layers and the papers' network counts."""

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn

from jaxgen import flops


def _module_macs(module, x):
  variables = jax.eval_shape(module.init, jax.random.key(0), x)
  return flops.count_macs_fn(module.apply, variables, x)


def test_single_conv_counts_padded_taps():
  x = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32)
  # 3×3 SAME conv 3→16: every output (8·8·16) uses all 3·3·3 taps, border taps on padding included
  assert _module_macs(nn.Conv(16, (3, 3), padding="SAME"), x) == 8 * 8 * 16 * 27
  # stride 2 VALID: out 3×3
  assert _module_macs(nn.Conv(16, (3, 3), (2, 2), padding="VALID"), x) == 3 * 3 * 16 * 27
  # batch 2 doubles the count
  assert _module_macs(nn.Conv(16, (1, 1)), jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)) == 2 * 64 * 16 * 3
  # depthwise 5×5 on 12 channels: 25 taps per output, 1 input channel per group
  x12 = jax.ShapeDtypeStruct((1, 8, 8, 12), jnp.float32)
  assert _module_macs(nn.Conv(12, (5, 5), padding="SAME", feature_group_count=12), x12) == 8 * 8 * 12 * 25
  # grouped 1×1 (3 groups): 4 input channels per output
  assert _module_macs(nn.Conv(6, (1, 1), feature_group_count=3), x12) == 8 * 8 * 6 * 4


def test_dense_and_attention_matmuls():
  assert _module_macs(nn.Dense(7), jax.ShapeDtypeStruct((1, 10), jnp.float32)) == 70
  q, k, v = (jax.ShapeDtypeStruct(s, jnp.float32) for s in ((2, 5, 4), (2, 6, 4), (2, 6, 3)))

  def attention(q, k, v):
    w = jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", q, k))
    return jnp.einsum("bqk,bkd->bqd", w, v)

  assert flops.count_macs_fn(attention, q, k, v) == 2 * 5 * 6 * 4 + 2 * 5 * 6 * 3


def test_nested_jaxprs_and_scan_multiplicity():
  w = jax.ShapeDtypeStruct((4, 4), jnp.float32)
  x = jax.ShapeDtypeStruct((1, 4), jnp.float32)

  def f(w, x):
    inner = jax.jit(lambda a: a @ w)                      # counted inside the nested jit
    y, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), inner(x), None, length=3)
    return jax.checkpoint(lambda a: a @ w)(y)             # and inside remat

  assert flops.count_macs_fn(f, w, x) == 16 * (1 + 3 + 1)


# Paper / reference multiply-adds at 224×224 (docs/reference.md §4): MobileNetV2 300.8M, EfficientNet-B0
# 385.8M, ShuffleNetV2 (Megvii unit) 40.5/145.8/299.0/590.8M (paper Table 8: 41/146/299/591M)
@pytest.mark.parametrize("name,expected_m", [
    ("mobilenet_v2", 300.8), ("efficientnet_b0", 385.8),
    ("shufflenet_v2_x0_5", 40.5), ("shufflenet_v2_x1_0", 145.8), ("shufflenet_v2_x1_5", 299.0),
    ("shufflenet_v2_x2_0", 590.8),
])
def test_reference_network_macs(name, expected_m):
  assert round(flops.count_macs(name, 224) / 1e6, 1) == expected_m


def test_breakdown_sums_to_total_and_names_layers():
  total = flops.count_macs("mobilenet_v2", 224)
  parts = flops.macs_breakdown("mobilenet_v2", 224, depth=1)
  assert sum(parts.values()) == total
  # the stem: 3×3 stride-2 conv 3→32 on 224² → 112·112·32·27 MACs (hand count)
  assert parts["MobileNetV2/stem"] == 112 * 112 * 32 * 27
  # the classifier: 1280 × 1000
  assert parts["MobileNetV2/classifier"] == 1280 * 1000


def test_mobilenet_v1_resolution_scaling():
  # every layer's MACs scale with the number of output positions: (112² at 224) vs (96² at 192)
  # except the classifier (1024·1000), so (M(224) − fc)/(M(192) − fc) = (224/192)²
  fc = 1024 * 1000
  a, b = flops.count_macs("mobilenet_v1", 224) - fc, flops.count_macs("mobilenet_v1", 192) - fc
  assert a * 192 ** 2 == b * 224 ** 2
