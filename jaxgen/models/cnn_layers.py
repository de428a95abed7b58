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
    ``padding`` field ('same', its default, or 'symmetric'). Both give the same output size for odd
    kernels, so MAC counts agree.
  * Stochastic depth and dropout draw from the ``'dropout'`` PRNG stream.
  * Depthwise convolutions: ``depthwise='xla'`` (default) is XLA's grouped convolution
    (``feature_group_count`` = channels); ``'shift'`` computes the same conv as k·k shifted, per-channel
    scaled copies of the input (``shift_depthwise``), several times faster on XLA's CPU backend
    (docs/speed.md); ``'auto'`` is 'shift' on CPU and 'xla' elsewhere. ``ConvBN(depthwise=...)`` sets it for
    one layer; ``with depthwise_context(kind):`` for every depthwise ``nn.Conv`` called inside (a whole
    network, same modules and parameters). Traced with 'shift', ``jaxgen.flops`` sees no depthwise
    multiply-adds (it counts convolutions and dot products), so MAC counts use the default.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxgen.errors import ConfigError

Dtype = Any
DEPTHWISE_KINDS = ("xla", "shift", "auto")


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


# --- depthwise convolution as shifted copies (fast on XLA's CPU backend) --------------------------
def shift_depthwise(x: jax.Array, kernel: jax.Array, strides=(1, 1), padding=((0, 0), (0, 0))) -> jax.Array:
  """Depthwise convolution of NHWC ``x`` with ``kernel [kh, kw, 1, C]`` as a sum of kh·kw shifted copies of
  the padded input, each scaled per channel: the numbers of ``lax.conv_general_dilated`` with
  ``feature_group_count=C`` up to float32 summation order, computed as one fused elementwise loop instead of
  XLA CPU's grouped convolution (docs/speed.md). ``padding``: ((top, bottom), (left, right)) or
  'SAME'/'VALID' (TF rules: the extra row/column of a stride-2 'SAME' conv goes at the end)."""
  sh, sw = (strides, strides) if isinstance(strides, int) else tuple(strides)
  kh, kw = kernel.shape[:2]
  if kernel.shape[2] != 1 or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f"shift_depthwise: kernel {kernel.shape} is not depthwise for {x.shape[-1]} channels "
                     f"(want [kh, kw, 1, {x.shape[-1]}]).")
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), (sh, sw), padding.upper())
  (pt, pb), (pl, pr) = padding
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  oh = (xp.shape[1] - kh) // sh + 1
  ow = (xp.shape[2] - kw) // sw + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] * kernel[i, j, 0]
      out = tap if out is None else out + tap
  return out


def _unit_dilation(dilation) -> bool:
  return dilation in (None, 1) or (isinstance(dilation, (tuple, list)) and all(d == 1 for d in dilation))


def _shift_interceptor(next_fun, args, kwargs, context):
  """``nn.intercept_methods`` hook: a depthwise ``nn.Conv`` call (groups = input channels = kernel's output
  channels, no dilation, NHWC) is computed with ``shift_depthwise`` once its kernel exists (so ``init``
  still runs the ordinary conv); every other call passes through unchanged."""
  m = context.module
  if (context.method_name != "__call__" or not isinstance(m, nn.Conv) or not args
      or getattr(args[0], "ndim", 0) != 4 or m.feature_group_count == 1
      or m.feature_group_count != args[0].shape[-1] or not m.has_variable("params", "kernel")
      or not _unit_dilation(m.kernel_dilation) or not _unit_dilation(m.input_dilation)
      or (isinstance(m.padding, str) and m.padding.upper() not in ("SAME", "VALID"))
      or (not isinstance(m.padding, str) and len(m.padding) != 2)):
    return next_fun(*args, **kwargs)
  x = args[0]
  kernel = m.get_variable("params", "kernel")
  if kernel.shape[2:] != (1, x.shape[-1]):   # a channel multiplier > 1: leave it to XLA
    return next_fun(*args, **kwargs)
  dtype = m.dtype or jnp.result_type(x, kernel)
  padding = m.padding if isinstance(m.padding, str) else tuple(
      (p, p) if isinstance(p, int) else tuple(p) for p in m.padding)
  y = shift_depthwise(x.astype(dtype), jnp.asarray(kernel, dtype), m.strides or 1, padding)
  if m.use_bias:
    y = y + jnp.asarray(m.get_variable("params", "bias"), dtype)
  return y


def resolve_depthwise(kind: str) -> str:
  """'xla' or 'shift' for a ``depthwise`` option ('auto': 'shift' on the CPU backend, else 'xla')."""
  if kind not in DEPTHWISE_KINDS:
    raise ConfigError(f"depthwise={kind!r} is unknown: use one of {', '.join(map(repr, DEPTHWISE_KINDS))}.")
  if kind == "auto":
    return "shift" if jax.default_backend() == "cpu" else "xla"
  return kind


def depthwise_context(kind: str = "auto"):
  """Context under which every depthwise ``nn.Conv`` call is computed the ``kind`` way ('xla' | 'shift' |
  'auto'): ``with depthwise_context('shift'): logits = model.apply(variables, x)`` — same modules, same
  parameters, outputs equal up to float32 summation order (tests/test_cpu_speed_layers.py)."""
  if resolve_depthwise(kind) == "shift":
    return nn.intercept_methods(_shift_interceptor)
  return contextlib.nullcontext()


def with_depthwise(method: Callable) -> Callable:
  """Decorator for a network's ``__call__`` (above ``@nn.compact``): runs it under
  ``depthwise_context(self.depthwise)``, so a backbone exposes the option as one field::

      class MobileNetV2(nn.Module):
        depthwise: str = "xla"      # 'xla' | 'shift' | 'auto' (docs/speed.md)

        @with_depthwise
        @nn.compact
        def __call__(self, x, train=False): ...
  """

  @functools.wraps(method)   # keeps nn.compact's marker on the wrapper
  def wrapped(self, *args, **kwargs):
    with depthwise_context(getattr(self, "depthwise", "xla")):
      return method(self, *args, **kwargs)

  return wrapped


# --- layers --------------------------------------------------------------------------------------
class ConvBN(nn.Module):
  """Conv (no bias) → BatchNorm → activation; ``groups=-1`` means depthwise (groups = in channels), computed
  the ``depthwise`` way ('xla' | 'shift' | 'auto'; see ``depthwise_context``)."""

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
  depthwise: str = "xla"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    groups = x.shape[-1] if self.groups == -1 else self.groups
    conv = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                   padding=pad_for(self.kernel, self.stride, 1, self.padding), feature_group_count=groups,
                   use_bias=self.use_bias or not self.use_bn, dtype=self.dtype, name="conv",
                   kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    if self.depthwise == "xla":
      x = conv(x)
    else:
      with depthwise_context(self.depthwise):
        x = conv(x)
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
