"""Reading config blocks: one lookup rule and typed, validated task configs (standard library only).

``lookup(cfg, "a.b", default)``
  The value at a dotted path of an ``ml_collections.ConfigDict``, a plain dict (or any mapping with
  ``get``), a dataclass instance or ``None``; a missing key, a missing parent or a ``None`` value give
  ``default`` (configs written before a key existed keep working).
``to_dict(block)``
  A new plain ``dict`` of a block (nested blocks converted too); ``None`` gives ``{}``.
``from_block(Cls, block, *, where="task", ignore=("name",))``
  A frozen dataclass instance built from a config block, each default stated once, on the dataclass::

    @dataclasses.dataclass(frozen=True)
    class ClassificationConfig:
      label_smoothing: float = dataclasses.field(default=0.0, metadata=dict(min=0.0, below=1.0))
      loss: Literal["ce", "bce"] = "ce"

    cfg = from_block(ClassificationConfig, config.task)

  Keys of the block that are not fields raise ``ConfigError`` with a did-you-mean suggestion and the
  list of valid keys (keys in ``ignore`` are skipped: ``task.name`` selects the task and is not one of
  its options). A missing key, or ``None`` for a field whose annotation is not ``Optional``, gives the
  field's default. Values are checked and coerced by the field's annotation:

  ``int``     an integer (not a bool; a float is refused, as ``jaxgen.train`` does);
  ``float``   a finite number (ints become floats);
  ``bool``    True or False;
  ``str``     a string;
  ``tuple``   a list or tuple (``tuple[T, ...]`` / ``tuple[T1, T2]`` check each element);
  ``dict``    a mapping (ConfigDicts become plain dicts);
  ``Optional[T]`` / ``T | None``  None or a T;
  ``Literal[a, b]``  one of the listed values;
  a dataclass  a nested block, read with ``from_block`` at ``where.<field>``.

  Per-field bounds go in ``dataclasses.field(metadata=...)``: ``min`` (≥), ``max`` (≤), ``above`` (>),
  ``below`` (<), ``choices`` (a collection of allowed values); ``option(default, min=..., below=...)``
  is the short spelling of such a field.

Every error is one ``jaxgen.errors.ConfigError`` sentence naming the value, the rule and the flag that
fixes it, in the style of ``jaxgen.train``'s checks:
``config.task.label_smoothing=1.5 is impossible (it must be < 1.0): set --config.task.label_smoothing to a
value < 1.0.``
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from jaxgen.errors import ConfigError

T = TypeVar("T")

__all__ = ["lookup", "to_dict", "from_block", "option", "ConfigError"]

_MISSING = object()


# ------------------------------------------------------------------------------------ reading

def _child(node, key: str):
  if node is None:
    return None
  if hasattr(node, "get") and not isinstance(node, type):
    try:
      return node.get(key, None)
    except (AttributeError, KeyError, TypeError):
      return None
  if dataclasses.is_dataclass(node) and not isinstance(node, type):
    return getattr(node, key, None)
  return None


def lookup(cfg, path: str, default: Any = None) -> Any:
  """``cfg.a.b`` for ``path='a.b'``, or ``default`` when a key is missing or the value is None."""
  node = cfg
  for part in path.split("."):
    node = _child(node, part)
    if node is None:
      return default
  return node


def _is_block(value) -> bool:
  return isinstance(value, Mapping) or hasattr(value, "to_dict")


def to_dict(block) -> dict:
  """A new plain dict of ``block`` (ConfigDict, mapping or None), nested blocks converted too."""
  if block is None:
    return {}
  if hasattr(block, "to_dict"):
    block = block.to_dict()
  if not isinstance(block, Mapping):
    raise TypeError(f"to_dict expects a ConfigDict, a mapping or None, got {type(block).__name__}.")
  return {k: to_dict(v) if _is_block(v) else v for k, v in block.items()}


def _keys(block) -> list[str]:
  if block is None:
    return []
  if hasattr(block, "keys"):
    return [str(k) for k in block.keys()]
  raise ConfigError(f"a config block must be a ConfigDict or a dict, got {type(block).__name__}.")


# ------------------------------------------------------------------------------------ checking

def _is_np_bool(value) -> bool:
  return type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")


def _is_bool(value) -> bool:
  return isinstance(value, bool) or _is_np_bool(value)


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not _is_bool(value)


def _same_kind(value, choice) -> bool:
  """Whether ``value`` may equal the Literal ``choice`` (1 is not True, '1' is not 1)."""
  if _is_bool(choice):
    return _is_bool(value)
  if _is_int(choice):
    return _is_int(value)
  if _is_real(choice):
    return _is_real(value)
  return type(value) is type(choice)


class _Bad(Exception):
  """A value that does not fit an annotation: ``what`` completes 'must be ...', ``hint`` the flag."""

  def __init__(self, what: str, hint: str):
    super().__init__(what)
    self.what, self.hint = what, hint


def _union_args(tp) -> tuple | None:
  origin = typing.get_origin(tp)
  if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
    return typing.get_args(tp)
  return None


def _describe(tp) -> str:
  """A short human name of an annotation (for 'must be ...')."""
  if tp is int:
    return "an integer"
  if tp is float:
    return "a number"
  if tp is bool:
    return "True or False"
  if tp is str:
    return "a string"
  if tp is type(None):
    return "None"
  args = _union_args(tp)
  if args is not None:
    return " or ".join(_describe(a) for a in args)
  origin = typing.get_origin(tp)
  if origin is Literal:
    return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
  if tp is tuple or origin is tuple:
    return "a list or tuple"
  if tp is dict or origin in (dict, Mapping):
    return "a dict"
  if dataclasses.is_dataclass(tp):
    return "a config block"
  return getattr(tp, "__name__", str(tp))


def _hint(tp) -> str:
  """The ``<...>`` of 'set --config.x=<...>' for an annotation."""
  if tp is int:
    return "=<int>"
  if tp is float:
    return "=<float>"
  if tp is bool:
    return "=true|false"
  if tp is str:
    return "=<name>"
  args = _union_args(tp)
  if args is not None:
    real = [a for a in args if a is not type(None)]
    return _hint(real[0]) if len(real) == 1 else "=<value>"
  origin = typing.get_origin(tp)
  if origin is Literal:
    return " to one of " + ", ".join(repr(a) for a in typing.get_args(tp))
  if tp is tuple or origin is tuple:
    return "='(a, b, ...)'"
  return " in the experiment file"


def _coerce(tp, value, path: str):
  """``value`` checked against annotation ``tp`` and converted (int→float, list→tuple, block→dict)."""
  if tp is Any or tp is object:
    return value
  if tp is type(None):
    if value is None:
      return None
    raise _Bad("None", "=None")
  args = _union_args(tp)
  if args is not None:
    if value is None and type(None) in args:
      return None
    for a in args:
      if a is type(None):
        continue
      try:
        return _coerce(a, value, path)
      except (_Bad, ConfigError):
        continue
    raise _Bad(_describe(tp), _hint(tp))
  origin = typing.get_origin(tp)
  if origin is Literal:
    choices = typing.get_args(tp)
    for c in choices:
      if _same_kind(value, c) and value == c:
        return c
    raise _Bad(_describe(tp), _hint(tp))
  if tp is bool:
    if not _is_bool(value):
      raise _Bad("True or False", "=true|false")
    return bool(value)
  if tp is int:
    if not _is_int(value):
      raise _Bad("an integer", "=<int>")
    return int(value)
  if tp is float:
    if not _is_real(value):
      raise _Bad("a number", "=<float>")
    if not math.isfinite(float(value)):
      raise _Bad("finite", " to a finite number")
    return float(value)
  if tp is str:
    if not isinstance(value, str):
      raise _Bad("a string", "=<name>")
    return value
  if tp is tuple or origin is tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
      raise _Bad("a list or tuple", "='(a, b, ...)'")
    elems = typing.get_args(tp)
    if not elems:
      return tuple(value)
    if len(elems) == 2 and elems[1] is Ellipsis:
      return tuple(_coerce(elems[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(elems) != len(value):
      raise _Bad(f"a tuple of {len(elems)} values", "='(" + ", ".join("..." for _ in elems) + ")'")
    return tuple(_coerce(e, v, f"{path}[{i}]") for i, (e, v) in enumerate(zip(elems, value)))
  if tp is dict or origin in (dict, Mapping):
    if not _is_block(value):
      raise _Bad("a dict", " in the experiment file")
    return to_dict(value)
  if dataclasses.is_dataclass(tp) and isinstance(tp, type):
    if not _is_block(value):
      raise _Bad("a config block", " in the experiment file")
    return from_block(tp, value, where=path, ignore=())
  if isinstance(tp, type):
    if not isinstance(value, tp):
      raise _Bad(_describe(tp), _hint(tp))
    return value
  return value  # an annotation this helper does not interpret: accepted as is


def _suggest(word: str, options, *, n: int = 1) -> str:
  close = difflib.get_close_matches(str(word), [str(o) for o in options], n=n, cutoff=0.6)
  return f" (did you mean {close[0]!r}?)" if close else ""


def _check_bounds(path: str, value, meta: Mapping) -> None:
  flag = f"--config.{path}"
  choices = meta.get("choices")
  if choices is not None and value not in choices:
    listed = ", ".join(repr(c) for c in choices)
    guess = _suggest(value, choices) if isinstance(value, str) else ""
    raise ConfigError(f"config.{path}={value!r} is unknown{guess}: set {flag} to one of {listed}.")
  lo, hi = meta.get("min"), meta.get("max")
  above, below = meta.get("above"), meta.get("below")
  if not _is_real(value):
    return
  if lo is not None and value < lo:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be >= {lo}): set {flag} to a "
                      f"value >= {lo}.")
  if above is not None and value <= above:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be > {above}): set {flag} to a "
                      f"value > {above}.")
  if hi is not None and value > hi:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be <= {hi}): set {flag} to a "
                      f"value <= {hi}.")
  if below is not None and value >= below:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be < {below}): set {flag} to a "
                      f"value < {below}.")


def option(default: Any = _MISSING, *, min=None, max=None, above=None, below=None, choices=None,
           help: str = "") -> Any:  # pylint: disable=redefined-builtin
  """``dataclasses.field`` with bounds in its metadata (list/dict/set defaults become factories)::

    label_smoothing: float = option(0.0, min=0.0, below=1.0, help="ε of the smoothed targets")
  """
  meta = {k: v for k, v in dict(min=min, max=max, above=above, below=below, choices=choices).items()
          if v is not None}
  if help:
    meta["help"] = help
  if default is _MISSING:
    return dataclasses.field(metadata=meta)
  if isinstance(default, (list, dict, set)):
    return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
  return dataclasses.field(default=default, metadata=meta)


def _field_default(f: dataclasses.Field):
  if f.default is not dataclasses.MISSING:
    return f.default
  if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
    return f.default_factory()  # type: ignore[misc]
  return _MISSING


def _accepts_none(tp) -> bool:
  args = _union_args(tp)
  return tp is type(None) or tp is Any or (args is not None and type(None) in args)


def from_block(cls: type[T], block, *, where: str = "task", ignore=("name",)) -> T:
  """An instance of the dataclass ``cls`` from config block ``block`` (see the module docstring)."""
  if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
    raise TypeError(f"from_block needs a dataclass type, got {cls!r}.")
  prefix = f"{where}." if where else ""
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  keys = _keys(block)
  unknown = [k for k in keys if k not in fields and k not in ignore]
  if unknown:
    key = unknown[0]
    valid = ", ".join(sorted(fields)) or "none"
    raise ConfigError(f"config.{prefix}{key} is not an option of {cls.__name__}{_suggest(key, fields)}: "
                      f"remove it or use one of {valid}.")
  values = {}
  for name, f in fields.items():
    path = f"{prefix}{name}"
    tp = hints.get(name, Any)
    raw = lookup(block, name, None) if name in keys else None
    present = name in keys and (raw is not None or _accepts_none(tp))
    if not present:
      default = _field_default(f)
      if default is _MISSING:
        raise ConfigError(f"config.{path} is missing: set --config.{path}{_hint(tp)}.")
      values[name] = default
      continue
    try:
      value = _coerce(tp, raw, path)
    except _Bad as e:
      raise ConfigError(f"config.{path}={raw!r} must be {e.what}: set --config.{path}{e.hint}.") from None
    if value is not None:
      _check_bounds(path, value, f.metadata)
    values[name] = value
  return cls(**values)
