"""Data API: grain pipelines over TFDS, image folders/zips and embedded data sets.

``train_dataset(data_cfg, *, batch_size, seed, process_index=0, process_count=1) -> grain.IterDataset``
  Infinite stream of per-process batches (``batch_size`` is the per-process batch; the global batch
  is batch_size × process_count). Deterministic given the seed, reshuffled every epoch, augmentation
  randomness a function of (seed, stream position); ``iter(ds).get_state()`` / ``set_state()``
  checkpoint the exact position. The global batch k is the same set of examples for any
  process_count, thread count or worker count (see ``jaxgen.data.pipeline``).
``eval_dataset(data_cfg, *, batch_size, process_index=0, process_count=1)``
  One pass over ``data_cfg.eval_split`` (None when it is ''), no augmentation, a float32 ``'mask'``
  [B] (0 on the padding of the last global batch); every process yields the same number of batches.
``example_batch(data_cfg, batch_size)``
  Zeros with the shapes/dtypes of a training batch, without reading the data set.

Batches are dicts of numpy arrays: ``'image'`` float32 NHWC in [−1, 1] (uint8/127.5 − 1) and
``'label'`` int32 [B] where the data set has labels; 2-D toys give ``'x'`` float32 [B, 2].

Data sets (``data_cfg.name``): ``digits`` (scikit-learn 8×8, see ``jaxgen.data.digits``), ``toy2d``
(``data_cfg.toy``, see ``jaxgen.data.toy2d``), TFDS ``mnist``, ``cifar10``, ``celeb_a``,
``imagenet2012``, ``imagenette`` (``jaxgen.data.tfds_sets``; prepared array_record sets only, never
downloaded), ``image_folder`` (``data_cfg.data_dir`` = folder or .zip, ``jaxgen.data.image_folder``).
The config keys are documented in ``jaxgen.configs.base_config``; optional keys are read with
``jaxgen.config_schema.lookup`` (a missing key or None is the default). A wrong name, path, split or
value raises ``jaxgen.errors.ConfigError`` naming the key to fix.
"""

from __future__ import annotations

import numpy as np

from jaxgen.config_schema import lookup
from jaxgen.errors import ConfigError

# grain, tfds and scikit-learn are imported on first use, so ``import jaxgen.data.toy2d`` (pure JAX)
# works where they are not installed (accelerator images).

TFDS_NAMES = ("mnist", "cifar10", "celeb_a", "imagenet2012", "imagenette")
NAMES = ("digits", "toy2d", *TFDS_NAMES, "image_folder")
TOY_EVAL_SIZE = 10_000          # fixed toy2d evaluation sample when data.eval_size is 0
_TOY_EVAL_SEED = 0x7E57         # toy2d evaluation samples come from this stream, whatever the run seed

__all__ = ["train_dataset", "eval_dataset", "example_batch", "NAMES", "TFDS_NAMES"]


def _name(cfg) -> str:
  name = str(lookup(cfg, "name", ""))
  if name.split("/")[0] not in NAMES:
    raise ConfigError(f"Unknown data set data.name={name!r}; valid names: {', '.join(NAMES)}.")
  return name


def _base(name: str) -> str:
  return name.split("/")[0]


def read_config(cfg):
  """The ``pipeline.ReadConfig`` of the data block."""
  from jaxgen.data.pipeline import ReadConfig  # noqa: PLC0415
  r = ReadConfig(num_threads=int(lookup(cfg, "num_threads", 4)), prefetch=int(lookup(cfg, "prefetch", 8)),
                 num_workers=int(lookup(cfg, "num_workers", 0)))
  if r.num_threads < 0 or r.prefetch < 0 or r.num_workers < 0:
    raise ConfigError(f"data.num_threads/prefetch/num_workers must be ≥ 0, got {r}.")
  return r


def _toy(cfg) -> str:
  from jaxgen.data import toy2d  # noqa: PLC0415
  name = str(lookup(cfg, "toy", "8gaussians"))
  toy2d._check(name)  # pylint: disable=protected-access
  return name


def _seed(seed) -> int:
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")
  return int(seed)


# ------------------------------------------------------------------------------------ digits

def _digits(cfg, split: str):
  from jaxgen.data import digits  # noqa: PLC0415
  from jaxgen.data.pipeline import ArraySource  # noqa: PLC0415
  res = int(lookup(cfg, "resolution", 0))
  if res < 0:
    raise ConfigError(f"data.resolution must be ≥ 0 (0: native 8×8), got {res}.")
  images, labels = digits.load(split, res)
  return ArraySource({"image": images, "label": labels})


def _digits_train_transform(flip: bool):
  def transform(record, rng):
    image = record["image"]
    if flip and rng.random() < 0.5:
      image = image[:, ::-1]
    return {"image": np.array(image, np.float32), "label": np.int32(record["label"])}
  return transform


def _digits_eval_transform(record):
  return {"image": np.array(record["image"], np.float32), "label": np.int32(record["label"])}


# --------------------------------------------------------------------------------------- API

def train_dataset(data_cfg, *, batch_size: int, seed: int, process_index: int = 0,
                  process_count: int = 1):
  """Infinite, resumable ``grain.IterDataset`` of per-process training batches (see module doc)."""
  from jaxgen.data import pipeline  # noqa: PLC0415
  from jaxgen.data.pipeline import ReadConfig  # noqa: PLC0415
  name = _name(data_cfg)
  seed = _seed(seed)
  read = read_config(data_cfg)
  split = str(lookup(data_cfg, "split", "train"))
  base = _base(name)
  if base == "toy2d":
    from jaxgen.data import toy2d  # noqa: PLC0415
    toy = _toy(data_cfg)
    stream_seed = pipeline.derive_seed(seed, 3)
    return pipeline.indexed_stream(
        lambda idx: {"x": toy2d.sample_indexed(toy, stream_seed, idx)}, batch_size=batch_size,
        process_index=process_index, process_count=process_count,
        read=ReadConfig(min(read.num_threads, 1), read.prefetch, 0))
  if base == "digits":
    source = _digits(data_cfg, split)
    transform = _digits_train_transform(bool(lookup(data_cfg, "random_flip", False)))
  elif base == "image_folder":
    from jaxgen.data import image_folder  # noqa: PLC0415
    source, transform = image_folder.build(data_cfg, train=True)
  else:
    from jaxgen.data import tfds_sets  # noqa: PLC0415
    source, transform = tfds_sets.build(data_cfg, name, split, train=True)
  return pipeline.train_stream(source, transform, batch_size=batch_size, seed=seed,
                               process_index=process_index, process_count=process_count, read=read)


def eval_dataset(data_cfg, *, batch_size: int, process_index: int = 0, process_count: int = 1):
  """One padded pass over ``data_cfg.eval_split`` as a re-iterable ``grain.IterDataset``; None if ''."""
  from jaxgen.data import pipeline  # noqa: PLC0415
  from jaxgen.data.pipeline import ArraySource  # noqa: PLC0415
  name = _name(data_cfg)
  split = str(lookup(data_cfg, "eval_split", ""))
  if not split:
    return None
  read = read_config(data_cfg)
  limit = int(lookup(data_cfg, "eval_size", 0))
  if limit < 0:
    raise ConfigError(f"data.eval_size must be ≥ 0 (0: the whole split), got {limit}.")
  base = _base(name)
  if base == "toy2d":
    from jaxgen.data import toy2d  # noqa: PLC0415
    n = limit or TOY_EVAL_SIZE
    x = toy2d.sample_indexed(_toy(data_cfg), _TOY_EVAL_SEED, np.arange(n))
    source, transform, limit = ArraySource({"x": x}), dict, 0
  elif base == "digits":
    source, transform = _digits(data_cfg, split), _digits_eval_transform
  elif base == "image_folder":
    from jaxgen.data import image_folder  # noqa: PLC0415
    source, transform = image_folder.build(data_cfg, train=False)
  else:
    from jaxgen.data import tfds_sets  # noqa: PLC0415
    source, transform = tfds_sets.build(data_cfg, name, split, train=False)
  return pipeline.eval_stream(source, transform, batch_size=batch_size, process_index=process_index,
                              process_count=process_count, read=read, limit=limit)


def example_batch(data_cfg, batch_size: int) -> dict[str, np.ndarray]:
  """Zeros shaped like a training batch of ``batch_size`` (cheap: reads at most one image header)."""
  name = _name(data_cfg)
  base = _base(name)
  if base == "toy2d":
    _toy(data_cfg)
    return {"x": np.zeros((batch_size, 2), np.float32)}
  if base == "digits":
    r = int(lookup(data_cfg, "resolution", 0)) or 8
    return {"image": np.zeros((batch_size, r, r, 1), np.float32),
            "label": np.zeros((batch_size,), np.int32)}
  if base == "image_folder":
    from jaxgen.data import image_folder  # noqa: PLC0415
    shape, has_label = image_folder.output_spec(data_cfg)
  else:
    from jaxgen.data import tfds_sets  # noqa: PLC0415
    shape, has_label = tfds_sets.output_spec(data_cfg, name)
  batch = {"image": np.zeros((batch_size, *shape), np.float32)}
  if has_label:
    batch["label"] = np.zeros((batch_size,), np.int32)
  return batch
