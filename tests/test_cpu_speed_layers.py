"""The CPU fast paths of jaxgen.models.cnn_layers compute the same numbers as the layers they replace
(docs/speed.md). Equality only: speed is measured by benchmarks/cpu_vs_torch.py, never asserted here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

import jaxgen.models as M
from jaxgen.errors import ConfigError
from jaxgen.models.cnn_layers import ConvBN, depthwise_context, resolve_depthwise, shift_depthwise, with_depthwise
from jaxgen.models.mobilenet import V3_SMALL

# float32: the shifted sum adds the k·k taps in another order than XLA's convolution; measured max
# relative error ≈ 3e-7 on unit-scale inputs (k ≤ 5), so 2e-5 leaves room and still catches a wrong tap.
RTOL, ATOL = 2e-5, 2e-5


def _conv(x, kernel, strides, padding):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=x.shape[-1],
                                      precision=jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("k,stride,size,padding", [
    (3, 1, 9, ((1, 1), (1, 1))), (3, 2, 9, ((1, 1), (1, 1))), (5, 2, 10, ((2, 2), (2, 2))),
    (3, 2, 10, "SAME"), (5, 2, 9, "SAME"), (5, 1, 8, "SAME"), (3, 2, 9, "VALID"), (3, 1, 7, ((0, 2), (1, 0))),
])
def test_shift_depthwise_equals_grouped_conv(k, stride, size, padding):
  kx, kk = jax.random.split(jax.random.key(k * 100 + stride * 10 + size))
  x = jax.random.normal(kx, (2, size, size + 1, 6))
  kernel = jax.random.normal(kk, (k, k, 1, 6))
  want = jax.jit(_conv, static_argnums=(2, 3))(x, kernel, (stride, stride), padding)
  got = jax.jit(shift_depthwise, static_argnums=(2, 3))(x, kernel, stride, padding)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_shift_depthwise_gradients_equal_grouped_conv():
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, 11, 11, 4))
  kernel = jax.random.normal(kk, (3, 3, 1, 4))
  cot = jax.random.normal(kc, (2, 6, 6, 4))
  pad = ((1, 1), (1, 1))
  f = lambda fn: jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w) * cot), argnums=(0, 1)))(x, kernel)
  got = f(lambda x, w: shift_depthwise(x, w, 2, pad))
  want = f(lambda x, w: _conv(x, w, (2, 2), pad))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=RTOL, atol=1e-4)


def test_shift_depthwise_rejects_a_non_depthwise_kernel():
  with pytest.raises(ValueError, match="not depthwise"):
    shift_depthwise(jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 2, 4)))


@pytest.mark.parametrize("padding,use_bias", [("symmetric", False), ("same", True)])
def test_convbn_depthwise_shift_equals_xla(padding, use_bias):
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, 8))
  kw = dict(features=8, kernel=5, stride=2, groups=-1, act="relu6", padding=padding, use_bias=use_bias)
  ref = ConvBN(**kw)
  v = _noisy(ref.init(jax.random.key(2), x), 3)
  want = jax.jit(ref.apply)(v, x)
  for kind in ("shift", "auto"):   # 'auto' is 'shift' on the CPU backend the tests run on
    out = jax.jit(ConvBN(**kw, depthwise=kind).apply)(v, x)
    np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL)
  # train mode (batch statistics) and the updated running averages agree too
  train = lambda m: jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
  got, su = train(ConvBN(**kw, depthwise="shift"))
  want, wu = train(ref)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), su, wu)


def test_context_leaves_other_convs_to_xla():
  """Grouped (groups < channels), channel-multiplier and dilated convs are not depthwise-with-one-filter:
  the context computes them exactly as without it (same compiled program, bit-equal)."""
  x = jax.random.normal(jax.random.key(4), (1, 8, 8, 4))
  for conv in (nn.Conv(4, (3, 3), feature_group_count=2, padding=((1, 1), (1, 1))),
               nn.Conv(8, (3, 3), feature_group_count=4, padding="SAME"),
               nn.Conv(4, (3, 3), feature_group_count=4, kernel_dilation=2, padding=((2, 2), (2, 2)))):
    v = jax.jit(conv.init)(jax.random.key(5), x)

    def shifted(v, x, conv=conv):
      with depthwise_context("shift"):
        return conv.apply(v, x)

    np.testing.assert_array_equal(jax.jit(shifted)(v, x), jax.jit(conv.apply)(v, x))


class _Sep(nn.Module):
  """A depthwise-separable block exposing the option the way a backbone does (``with_depthwise``)."""
  depthwise: str = "xla"

  @with_depthwise
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(x.shape[-1], (3, 3), strides=2, feature_group_count=x.shape[-1], padding="SAME", name="dw")(x)
    return nn.Conv(5, (1, 1), name="pw")(nn.relu(x))


def test_with_depthwise_field_switches_a_whole_module():
  x = jax.random.normal(jax.random.key(9), (2, 9, 9, 4))
  v = _Sep().init(jax.random.key(10), x)
  assert set(v["params"]) == {"dw", "pw"}            # same parameter tree whatever the option
  want = _Sep().apply(v, x)
  got = _Sep(depthwise="shift").apply(v, x)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  jaxpr = str(jax.make_jaxpr(lambda v, x: _Sep(depthwise="shift").apply(v, x))(v, x))
  assert jaxpr.count("conv_general_dilated") == 1   # only the 1×1 conv is left to XLA's convolution
  assert str(jax.make_jaxpr(lambda v, x: _Sep().apply(v, x))(v, x)).count("conv_general_dilated") == 2


def test_depthwise_kind_is_checked():
  assert resolve_depthwise("auto") == ("shift" if jax.default_backend() == "cpu" else "xla")
  assert resolve_depthwise("xla") == "xla"
  with pytest.raises(ConfigError, match="depthwise='fast' is unknown"):
    depthwise_context("fast")


def _noisy(variables, seed):
  """Perturbs every parameter and BatchNorm statistic so no path hides behind zeros/ones (variances > 0);
  drawn with numpy (no per-shape compilation)."""
  rng = np.random.default_rng(seed)

  def f(path, a):
    n = rng.normal(size=a.shape).astype(np.float32)
    return np.asarray(a) * np.exp(0.2 * n) if "var" in jax.tree_util.keystr(path) else np.asarray(a) + 0.2 * n

  return jax.tree_util.tree_map_with_path(f, variables)


@pytest.mark.parametrize("name,overrides", [
    # MobileNetV3-Small's first four blocks: 3×3 and 5×5 depthwise, strides 1 and 2, SE, hard-swish
    ("mobilenet_v3_small", dict(blocks=V3_SMALL[:4])),
    # ShuffleNet V2 units: both branches' depthwise convs of a down-sampling unit and a stride-1 unit
    ("shufflenet_v2_x0_5", dict(stage_repeats=(2, 1, 1))),
])
def test_whole_network_under_shift_equals_xla(name, overrides):
  model = M.create(name, num_classes=10, **overrides)
  x = jax.random.normal(jax.random.key(6), (2, 32, 32, 3))
  v = _noisy(jax.jit(model.init)(jax.random.key(7), x), 8)

  if "depthwise" in getattr(type(model), "__dataclass_fields__", {}):   # the backbone's own field
    got = jax.jit(M.create(name, num_classes=10, depthwise="shift", **overrides).apply)(v, x)
  else:                                                                   # the context around any network
    def run(v, x):
      with depthwise_context("shift"):
        return model.apply(v, x)

    got = jax.jit(run)(v, x)
  want = jax.jit(model.apply)(v, x)
  scale = float(jnp.max(jnp.abs(want)))
  assert scale > 1e-2                                # a signal that a wrong tap would change
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
