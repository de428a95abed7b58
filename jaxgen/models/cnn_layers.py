"""Building blocks shared by the efficient CNN backbones (EfficientNet, MobileNet, ShuffleNet, ...).

Conventions (every backbone file follows them):
  * NHWC activations, float32 params, compute dtype ``dtype``; BatchNorm statistics live in the
    ``batch_stats`` collection and are updated only with ``train=True`` (``mutable=['batch_stats']``).
    Under ``jit`` with the batch sharded over devices the batch mean/variance are reductions over the
    *global* batch (XLA inserts the cross-device reduction), i.e. synchronized BatchNorm for free.
  * Flax's BatchNorm momentum is the weight of the *old* running average:
    ``ra ← momentum·ra + (1 − momentum)·batch``. TF/Keras' momentum means the same (0.99);
    PyTorch's ``momentum=0.1`` is Flax's 0.9.
  * Padding: ``'symmetric'`` pads (k−1)/2·d on every side (PyTorch / timm / torchvision); ``'same'`` is
    TF "SAME" (for stride 2 the extra row/column goes at the end), selected by EfficientNet's
    ``tf_padding`` switch. Both give the same output size for odd kernels, so MAC counts agree.
  * Stochastic depth and dropout draw from the ``'dropout'`` PRNG stream.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

Dtype = Any


# --- activations ---------------------------------------------------------------------------------
def relu6(x):
  return jnp.minimum(jnp.maximum(x, 0.0), 6.0)


def hard_sigmoid(x):
  """relu6(x + 3)/6 (MobileNetV3 eq. 2)."""
  return relu6(x + 3.0) / 6.0


def hard_swish(x):
  """x·relu6(x + 3)/6 (MobileNetV3)."""
  return x * hard_sigmoid(x)


ACTIVATIONS: dict[str, Callable | None] = {
    "relu": nn.relu, "relu6": relu6, "swish": nn.swish, "silu": nn.swish, "hard_swish": hard_swish,
    "hard_sigmoid": hard_sigmoid, "sigmoid": nn.sigmoid, "none": None, None: None,
}


def activation(name: str | None) -> Callable | None:
  if name not in ACTIVATIONS:
    raise ValueError(f"activation {name!r} is unknown: use one of {', '.join(str(k) for k in ACTIVATIONS if k)}.")
  return ACTIVATIONS[name]


# --- channel arithmetic --------------------------------------------------------------------------
def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
  """Round ``v`` to the nearest multiple of ``divisor``, never below ``min_value`` (default divisor)
  and never more than 10% below ``v`` (TF EfficientNet ``round_filters`` / MobileNet ``_make_divisible``)."""
  min_value = divisor if min_value is None else min_value
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return int(new_v)


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet channel shuffle: view channels as [groups, C/groups], transpose, flatten."""
  b, h, w, c = x.shape
  if c % groups:
    raise ValueError(f"channel_shuffle: {c} channels are not divisible by {groups} groups.")
  return x.reshape(b, h, w, groups, c // groups).swapaxes(3, 4).reshape(b, h, w, c)


def pad_for(kernel: int, stride: int, dilation: int, padding: str):
  """Flax ``padding`` argument for a square kernel: symmetric (PyTorch) or TF 'SAME'."""
  if padding == "same":
    return "SAME"
  if padding == "valid":
    return "VALID"
  if padding != "symmetric":
    raise ValueError(f"padding={padding!r} is unknown: use 'symmetric', 'same' or 'valid'.")
  p = (kernel - 1) // 2 * dilation
  return ((p, p), (p, p))


# --- layers --------------------------------------------------------------------------------------
class ConvBN(nn.Module):
  """Conv (no bias) → BatchNorm → activation; ``groups=-1`` means depthwise (groups = in channels)."""

  features: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  act: str | None = "relu"
  padding: str = "symmetric"
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  use_bn: bool = True
  use_bias: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    groups = x.shape[-1] if self.groups == -1 else self.groups
    x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                padding=pad_for(self.kernel, self.stride, 1, self.padding), feature_group_count=groups,
                use_bias=self.use_bias or not self.use_bn, dtype=self.dtype, name="conv",
                kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))(x)
    if self.use_bn:
      x = batch_norm(train, self.bn_momentum, self.bn_eps, name="bn")(x)
    fn = activation(self.act)
    return fn(x) if fn is not None else x


def batch_norm(train: bool, momentum: float, eps: float, name: str | None = None, **kw) -> nn.BatchNorm:
  """BatchNorm in float32 with the given (Flax-convention) momentum and ε."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=eps, dtype=jnp.float32,
                      name=name, **kw)


class SqueezeExcite(nn.Module):
  """x · gate(W2 act(W1 avgpool(x) + b1) + b2), both 1×1 convs with bias (Hu et al. 2018)."""

  reduced: int
  act: str = "swish"
  gate: str = "sigmoid"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.Conv(self.reduced, (1, 1), dtype=self.dtype, name="reduce")(s)
    s = activation(self.act)(s)
    s = nn.Conv(x.shape[-1], (1, 1), dtype=self.dtype, name="expand")(s)
    return x * activation(self.gate)(s).astype(x.dtype)


def drop_path(x: jax.Array, rate: float, train: bool, module: nn.Module) -> jax.Array:
  """Stochastic depth (Huang et al. 2016): zero whole examples with probability ``rate`` and scale
  survivors by 1/(1 − rate) (TF EfficientNet ``drop_connect``). Identity at inference."""
  if not train or rate <= 0.0:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(module.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


def max_pool_ceil(x: jax.Array, window: int, stride: int, pad: int = 0) -> jax.Array:
  """Max pooling with PyTorch ``ceil_mode=True`` output size ceil((n + 2p − k)/s) + 1."""
  n = x.shape[1]
  out = -(-(n + 2 * pad - window) // stride) + 1
  if (out - 1) * stride >= n + pad:     # PyTorch: the last window must start inside the input
    out -= 1
  extra = (out - 1) * stride + window - (n + 2 * pad)
  pads = ((pad, pad + max(extra, 0)), (pad, pad + max(extra, 0)))
  return nn.max_pool(x, (window, window), (stride, stride), padding=pads)


def classifier_head(x, num_classes: int, dropout: float, train: bool, dtype, name="classifier",
                    use_bias: bool = True):
  """Global average pool → dropout → Dense (logits in float32)."""
  x = jnp.mean(x, axis=(1, 2))
  if dropout > 0:
    x = nn.Dropout(dropout, deterministic=not train)(x)
  return nn.Dense(num_classes, use_bias=use_bias, dtype=dtype, name=name)(x).astype(jnp.float32)


def image_inputs(default_resolution: int) -> Callable[..., tuple]:
  """Registry ``inputs`` function: one NHWC zero image at ``resolution`` (default per model)."""

  def inputs(batch: int = 1, resolution: int | None = None, channels: int = 3, **_: Any) -> tuple:
    r = default_resolution if resolution is None else int(resolution)
    return (jnp.zeros((batch, r, r, channels), jnp.float32),)

  return inputs


def to_dtype(name: Any) -> Dtype:
  return jnp.dtype(name) if isinstance(name, str) else name
