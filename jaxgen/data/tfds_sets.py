"""TFDS data sets read through grain from prepared array_record files (never downloaded here).

``tfds.data_source(name, split, data_dir, download=False)`` gives a random-access source of decoded
examples; ``jaxgen.data.pipeline`` shuffles, shards and batches it. Before reading, the builder must be
prepared in array_record format; otherwise one error line gives the command that prepares it.

Defaults per data set (overridden by ``data.crop`` / ``data.crop_size`` / ``data.crop_fraction``):

* ``mnist`` (28×28×1), ``cifar10`` (32×32×3): the whole image, resized (bicubic) only if
  ``data.resolution`` differs.
* ``celeb_a`` (218×178×3, unlabelled): central 140×140 crop (top-left (39, 19)), then an antialiased
  bilinear resize to ``data.resolution``: score_sde's CelebA pipeline (``central_crop(img, 140)`` then
  ``resize_small``, i.e. ``tf.image.resize(antialias=True)``), also NCSN/NCSNv2's ``CenterCrop(140)``.
  score_sde resizes in float, we in uint8 (PIL): differences of about one grey level. Set
  ``data.crop_size=178`` for the largest central square instead.
* ``imagenet2012``, ``imagenette`` (variable sizes; ``data.resolution`` required): training uses the
  Inception random-resized crop (scale (0.08, 1), ratio (3/4, 4/3)), evaluation the central crop of
  0.875·min(H, W); both resized bicubic (the EfficientNet preprocessing) to ``data.resolution``
  (see ``jaxgen.data.images``).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Optional

from jaxgen.config_schema import lookup
from jaxgen.data import images
from jaxgen.data.images import ImageSpec
from jaxgen.errors import ConfigError


@dataclass(frozen=True)
class TfdsInfo:
  splits: tuple[str, ...]
  shape: Optional[tuple[int, int]]   # native (H, W); None: variable
  channels: int
  labelled: bool
  crop: str = "none"
  crop_size: int = 0
  resize: str = "bicubic"


INFO = {
    "mnist": TfdsInfo(("train", "test"), (28, 28), 1, True),
    "cifar10": TfdsInfo(("train", "test"), (32, 32), 3, True),
    "celeb_a": TfdsInfo(("train", "validation", "test"), (218, 178), 3, False, "center", 140, "bilinear"),
    "imagenet2012": TfdsInfo(("train", "validation"), None, 3, True, "inception"),
    "imagenette": TfdsInfo(("train", "validation"), None, 3, True, "inception"),
}


class NotPreparedError(ConfigError):
  """A TFDS data set is not prepared (in array_record format) under the data directory."""


def prepare_command(name: str, data_dir: str = "") -> str:
  cmd = f"pip install tensorflow-cpu && tfds build {name} --file_format=array_record"
  if data_dir:
    cmd += f" --data_dir={data_dir}"
  return cmd


def _manual_note(name: str) -> str:
  if name.startswith("imagenet2012"):
    return (" (first put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual"
            " or pass --manual_dir)")
  return ""


def check_prepared(name: str, data_dir: str = "") -> None:
  """Raises NotPreparedError (one line, with the preparation command) unless ``name`` is readable."""
  import tensorflow_datasets as tfds  # noqa: PLC0415
  from tensorflow_datasets.core import file_adapters  # noqa: PLC0415
  where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:  # noqa: BLE001 (a bad config/version name)
    raise NotPreparedError(f"Cannot open TFDS data set {name!r} in {where} ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}); prepare it with: "
                           f"{prepare_command(name, data_dir)}") from None
  if not builder.is_prepared():
    raise NotPreparedError(f"TFDS data set {name!r} is not prepared in {where}; prepare it once with: "
                           f"{prepare_command(name, data_dir)}{_manual_note(name)}")
  if builder.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
    raise NotPreparedError(f"TFDS data set {name!r} in {where} is stored as "
                           f"{builder.info.file_format.value}, but random access needs array_record; rebuild "
                           f"it with: "
                           f"{prepare_command(name, data_dir)}")


def _check_split(name: str, split: str, info: TfdsInfo, key: str) -> None:
  for part in split.split("+"):
    base = re.match(r"\s*([A-Za-z_]+)", part)
    if base is None or base.group(1) not in info.splits:
      raise ConfigError(f"Unknown split {key}={split!r} for {name}; use one of {', '.join(info.splits)} "
                        "(TFDS slicing such as 'train[:90%]' is allowed).")


def _augment_fn(cfg):
  policy = str(lookup(cfg, "augment", ""))
  if not policy:
    return None
  if policy not in ("randaugment", "autoaugment"):
    raise ConfigError(f"Unknown data.augment={policy!r}; use '', 'randaugment' or 'autoaugment'.")
  try:
    module = importlib.import_module("jaxgen.data.randaugment")
  except ModuleNotFoundError as e:
    if e.name != "jaxgen.data.randaugment":
      raise
    raise ConfigError(f"data.augment={policy!r} needs jaxgen/data/randaugment.py, which this checkout lacks; "
                      "set data.augment='' or add that module.") from None
  fn = getattr(module, policy, None)
  if fn is None:
    raise ConfigError(f"jaxgen.data.randaugment has no function {policy}(image, rng, ...); "
                      f"set data.augment='' or implement it.")
  if policy == "randaugment":
    layers, magnitude = int(lookup(cfg, "augment_layers", 2)), int(lookup(cfg, "augment_magnitude", 9))
    return lambda image, rng: fn(image, rng, num_layers=layers, magnitude=magnitude)
  return fn


def image_spec(cfg, info_shape, channels: int, labelled: bool, default_crop: str = "none",
               default_crop_size: int = 0, default_resize: str = "bicubic", label_key: str = "label",
               name: str = "") -> ImageSpec:
  """The ImageSpec of ``cfg`` (data block) over a data set's defaults; checks the output size is fixed."""
  crop = str(lookup(cfg, "crop", "")) or default_crop
  crop_size = int(lookup(cfg, "crop_size", 0))
  fraction = float(lookup(cfg, "crop_fraction", 0.0))
  if not crop_size and not fraction:
    crop_size = default_crop_size
  spec = ImageSpec(crop=crop, crop_size=crop_size, crop_fraction=fraction or 1.0,
                   crop_padding=int(lookup(cfg, "crop_padding", 0)),
                   resolution=int(lookup(cfg, "resolution", 0)),
                   resize_method=str(lookup(cfg, "resize_method", "")) or default_resize,
                   flip=bool(lookup(cfg, "random_flip", False)), channels=channels,
                   label_key=label_key if labelled else None, augment=_augment_fn(cfg))
  spec.validate()
  if info_shape is None and not spec.resolution and not (crop in ("center", "random") and crop_size):
    raise ConfigError(f"{name or 'This data set'} has images of different sizes; set data.resolution "
                      "(e.g. --config.data.resolution=224).")
  return spec


def _info(name: str) -> TfdsInfo:
  return INFO[name.split("/")[0]]


def spec_for(cfg, name: str) -> ImageSpec:
  info = _info(name)
  return image_spec(cfg, info.shape, info.channels, info.labelled, info.crop, info.crop_size, info.resize,
                    name=name)


def output_spec(cfg, name: str) -> tuple[tuple[int, int, int], bool]:
  """((H, W, C) of a training image, has labels) without touching the files."""
  info = _info(name)
  spec = spec_for(cfg, name)
  if info.shape is None:
    side = spec.resolution or spec.crop_size
    return (side, side, info.channels), info.labelled
  return (*spec.output_side(*info.shape), info.channels), info.labelled


def build(cfg, name: str, split: str, *, train: bool):
  """(grain-compatible source, transform) for ``split`` of the TFDS set ``name``."""
  import tensorflow_datasets as tfds  # noqa: PLC0415
  info = _info(name)
  _check_split(name, split, info, "data.split" if train else "data.eval_split")
  spec = spec_for(cfg, name)
  data_dir = str(lookup(cfg, "data_dir", ""))
  check_prepared(name, data_dir)
  source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  train_fn, eval_fn = images.make_transforms(spec)
  return source, (train_fn if train else eval_fn)
