"""Model registry: every network in jaxgen is created by name.

    module = jaxgen.models.create("ddpmpp_cifar10", dropout=0.0)
    args = jaxgen.models.example_inputs("ddpmpp_cifar10", batch=2)
    variables = module.init(jax.random.key(0), *args)
    shapes = jaxgen.models.param_shapes("efficientnet_b0")   # no memory used

A model file in this folder registers its networks with ``@register(name, inputs=...)`` where the
decorated factory takes keyword overrides and returns a ``flax.linen.Module``, and ``inputs(batch,
**overrides)`` returns the tuple of positional arrays ``module.init`` takes (image, σ, labels, as the
model needs). Modules must accept ``train: bool = False`` as a keyword so ``init(key, *inputs)`` runs
in inference mode. The registry discovers model files itself (every module of this package is
imported on first lookup), so adding a network never means editing this file.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError

__all__ = ["register", "create", "example_inputs", "param_shapes", "count_params", "names", "ModelSpec"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  factory: Callable[..., Any]
  inputs: Callable[..., tuple]
  module: str


_REGISTRY: dict[str, ModelSpec] = {}
_DISCOVERED = False


def _image_inputs(batch: int = 1, resolution: int = 224, channels: int = 3, **_: Any) -> tuple:
  return (jnp.zeros((batch, resolution, resolution, channels), jnp.float32),)


def register(name: str, *, inputs: Callable[..., tuple] | None = None):
  """Decorator registering ``factory(**overrides) -> nn.Module`` under ``name``.

  ``inputs(batch=1, **overrides)`` returns the positional example inputs; it receives the same
  overrides as the factory (so e.g. ``resolution=`` changes both). Default: one NHWC image
  ``[batch, resolution, resolution, channels]`` with resolution 224 and 3 channels. ``inputs`` must
  accept (and may ignore) every override the factory takes.
  """

  def deco(factory):
    if name in _REGISTRY and _REGISTRY[name].module != factory.__module__:
      raise ValueError(f"model name {name!r} registered twice ({_REGISTRY[name].module} and "
                       f"{factory.__module__}); rename one of them.")
    _REGISTRY[name] = ModelSpec(name, factory, inputs or _image_inputs, factory.__module__)
    return factory

  return deco


def _discover() -> None:
  global _DISCOVERED
  if _DISCOVERED:
    return
  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
      importlib.import_module(f"{__name__}.{info.name}")
  _DISCOVERED = True


class UnknownModelError(ConfigError, KeyError):
  """``model.name`` is not registered (a ConfigError; also a KeyError, as registry lookups were)."""
  __str__ = BaseException.__str__


class BadOverridesError(ConfigError, TypeError):
  """The model's constructor refuses ``model.overrides`` (a ConfigError; also a TypeError)."""
  __str__ = BaseException.__str__


def names() -> list[str]:
  """All registered model names, sorted."""
  _discover()
  return sorted(_REGISTRY)


def _spec(name: str) -> ModelSpec:
  _discover()
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}: set model.name to one of jaxgen.models.names().{hint}")
  return _REGISTRY[name]



def create(name: str, **overrides: Any):
  """Returns the Flax module registered as ``name`` with keyword overrides applied."""
  spec = _spec(name)
  try:
    return spec.factory(**overrides)
  except TypeError as e:
    raise BadOverridesError(f"model {name!r} does not take these overrides ({e}); check the model.* keys "
                    f"of the config against {spec.module}.") from None


def example_inputs(name: str, batch: int = 1, **overrides: Any) -> tuple:
  """The positional arrays ``create(name, **overrides).init(key, *inputs)`` takes."""
  return tuple(_spec(name).inputs(batch=batch, **overrides))


def init_shapes(name: str, **overrides: Any):
  """All variable collections of the model as ``jax.ShapeDtypeStruct`` pytrees (no memory)."""
  module = create(name, **overrides)
  args = example_inputs(name, batch=1, **overrides)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *args))


def param_shapes(name: str, **overrides: Any):
  """The ``params`` collection as a pytree of ``jax.ShapeDtypeStruct``."""
  return init_shapes(name, **overrides)["params"]


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays or shape structs."""
  import math

  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
