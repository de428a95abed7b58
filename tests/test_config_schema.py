"""jaxgen.config_schema: lookup / to_dict on every kind of block, typed dataclass configs, one-line errors."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

import ml_collections
import numpy as np
import pytest

from jaxgen import config_schema as cs
from jaxgen.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
  width: int = 8


@dataclasses.dataclass(frozen=True)
class Cfg:
  num_classes: int = dataclasses.field(default=0, metadata=dict(min=0))
  label_smoothing: float = cs.option(0.0, min=0.0, below=1.0)
  eval_ema: bool = True
  mode: Literal["a", "bb"] = "a"
  loss: str = cs.option("ce", choices=("ce", "bce"))
  sizes: tuple[int, ...] = (1, 2)
  pair: tuple[float, float] = (0.0, 1.0)
  extra: dict = dataclasses.field(default_factory=dict)
  seed: Optional[int] = None
  scale: int | None = 3
  inner: Inner = Inner()


def _block(**kw):
  c = ml_collections.ConfigDict()
  c.name = "classification"
  for k, v in kw.items():
    setattr(c, k, v)
  return c


# ------------------------------------------------------------------------------------ lookup / to_dict

def test_lookup_reads_dotted_paths_of_configdicts_dicts_and_none():
  c = ml_collections.ConfigDict({"task": {"lr": 0.5, "off": None, "sub": {"k": 2}}})
  assert cs.lookup(c, "task.lr", 1.0) == 0.5
  assert cs.lookup(c, "task.sub.k") == 2
  assert cs.lookup(c, "task.missing", 7) == 7
  assert cs.lookup(c, "task.off", 7) == 7                  # None means the default (train.py's _get)
  assert cs.lookup(c, "nope.deeper", "d") == "d"
  assert cs.lookup(c, "task.lr.deeper", "d") == "d"        # a scalar has no children
  assert cs.lookup({"a": {"b": 0}}, "a.b", 5) == 0         # falsy values are values
  assert cs.lookup(None, "a", 3) == 3
  assert cs.lookup(Inner(width=4), "width") == 4


def test_to_dict_converts_nested_blocks_and_copies():
  c = ml_collections.ConfigDict({"a": 1, "b": {"c": 2}})
  d = cs.to_dict(c)
  assert d == {"a": 1, "b": {"c": 2}} and type(d) is dict and type(d["b"]) is dict
  src = {"x": {"y": 1}}
  out = cs.to_dict(src)
  out["x"]["y"] = 2
  assert src["x"]["y"] == 1
  assert cs.to_dict(None) == {}


# ------------------------------------------------------------------------------------ from_block

def test_defaults_come_from_the_dataclass():
  cfg = cs.from_block(Cfg, _block())
  assert cfg == Cfg()
  assert cs.from_block(Cfg, None) == Cfg()
  assert cs.from_block(Cfg, {"label_smoothing": None}).label_smoothing == 0.0   # None: the default


def test_values_are_coerced_by_annotation():
  cfg = cs.from_block(Cfg, _block(num_classes=np.int64(10), label_smoothing=0, eval_ema=np.bool_(False),
                                  sizes=[3, 4], pair=[1, 2.5], extra=ml_collections.ConfigDict({"k": 1}),
                                  seed=5, scale=None, mode="bb", inner={"width": 2}))
  assert cfg.num_classes == 10 and type(cfg.num_classes) is int
  assert cfg.label_smoothing == 0.0 and type(cfg.label_smoothing) is float
  assert cfg.eval_ema is False
  assert cfg.sizes == (3, 4) and cfg.pair == (1.0, 2.5) and type(cfg.pair[0]) is float
  assert cfg.extra == {"k": 1} and type(cfg.extra) is dict
  assert cfg.seed == 5 and cfg.scale is None                # Optional keeps an explicit None
  assert cfg.mode == "bb" and cfg.inner == Inner(width=2)


def test_the_instance_is_frozen():
  cfg = cs.from_block(Cfg, _block())
  with pytest.raises(dataclasses.FrozenInstanceError):
    cfg.num_classes = 3  # type: ignore[misc]


@pytest.mark.parametrize("key,value,match", [
    ("num_classes", 2.5,
     r"^config\.task\.num_classes=2\.5 must be an integer: set --config\.task\.num_classes=<int>\.$"),
    ("num_classes", True, r"must be an integer"),
    ("label_smoothing", "x", r"^config\.task\.label_smoothing='x' must be a number: set "
                             r"--config\.task\.label_smoothing=<float>\.$"),
    ("label_smoothing", float("nan"), r"must be finite"),
    ("eval_ema", 1,
     r"^config\.task\.eval_ema=1 must be True or False: set --config\.task\.eval_ema=true\|false\.$"),
    ("loss", 3, r"must be a string"),
    ("sizes", "1,2", r"must be a list or tuple"),
    ("sizes", [1, "a"], r"config\.task\.sizes=\[1, 'a'\] must be"),
    ("pair", [1.0], r"must be a tuple of 2 values"),
    ("extra", 3, r"must be a dict"),
    ("seed", "s", r"must be an integer or None"),
    ("mode", "c",
     r"config\.task\.mode='c' must be one of 'a', 'bb': set --config\.task\.mode to one of"),
    ("inner", {"widht": 1},
     r"config\.task\.inner\.widht is not an option of Inner \(did you mean 'width'\?\)"),
])
def test_wrong_types_are_one_line_config_errors(key, value, match):
  with pytest.raises(ConfigError, match=match) as e:
    cs.from_block(Cfg, _block(**{key: value}))
  assert "\n" not in str(e.value)


def test_bounds_and_choices_from_field_metadata():
  with pytest.raises(ConfigError, match=r"^config\.task\.label_smoothing=1\.0 is impossible "
                                        r"\(it must be < 1\.0\): set --config\.task\.label_smoothing to a "
                                        r"value < 1\.0\.$"):
    cs.from_block(Cfg, _block(label_smoothing=1.0))
  with pytest.raises(ConfigError, match=r"num_classes=-1 is impossible \(it must be >= 0\)"):
    cs.from_block(Cfg, _block(num_classes=-1))
  with pytest.raises(ConfigError, match=r"^config\.task\.loss='bc' is unknown \(did you mean 'bce'\?\): "
                                        r"set --config\.task\.loss to one of 'ce', 'bce'\.$"):
    cs.from_block(Cfg, _block(loss="bc"))
  assert cs.from_block(Cfg, _block(label_smoothing=0.999, loss="bce")).loss == "bce"

  @dataclasses.dataclass(frozen=True)
  class Bounded:
    x: float = cs.option(1.0, above=0.0, max=2.0)
  assert cs.from_block(Bounded, {"x": 2.0}).x == 2.0
  with pytest.raises(ConfigError, match=r"must be > 0\.0"):
    cs.from_block(Bounded, {"x": 0.0})
  with pytest.raises(ConfigError, match=r"must be <= 2\.0"):
    cs.from_block(Bounded, {"x": 2.5})


def test_unknown_key_suggests_the_closest_and_lists_valid_keys():
  with pytest.raises(ConfigError) as e:
    cs.from_block(Cfg, _block(label_smothing=0.1))
  msg = str(e.value)
  assert msg.startswith("config.task.label_smothing is not an option of Cfg "
                        "(did you mean 'label_smoothing'?)")
  assert "eval_ema" in msg and "num_classes" in msg and "\n" not in msg
  with pytest.raises(ConfigError, match=r"config\.model\.zzz is not an option of Cfg: remove it"):
    cs.from_block(Cfg, {"zzz": 1}, where="model")
  with pytest.raises(ConfigError, match=r"config\.name is not an option"):   # ignore=() checks every key
    cs.from_block(Cfg, {"name": "x"}, where="", ignore=())


def test_required_fields_without_default():
  @dataclasses.dataclass(frozen=True)
  class Req:
    steps: int
  assert cs.from_block(Req, {"steps": 3}).steps == 3
  with pytest.raises(ConfigError,
                     match=r"^config\.task\.steps is missing: set --config\.task\.steps=<int>\.$"):
    cs.from_block(Req, {})


def test_option_defaults_of_mutable_types_are_not_shared():
  @dataclasses.dataclass(frozen=True)
  class M:
    d: dict = cs.option({"a": 1})
  a, b = M(), M()
  assert a.d == {"a": 1} and a.d is not b.d


def test_config_errors_are_value_errors():
  with pytest.raises(ValueError):
    cs.from_block(Cfg, _block(num_classes="ten"))
