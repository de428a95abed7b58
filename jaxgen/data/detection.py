"""Detection data: TFDS ``voc/2007``, ``voc/2012``, ``coco/2017`` and the embedded ``digits_detection``.

Select it with ``data.name='jaxgen.data.detection'`` (the trainer's module-path data API) and the set with
``data.dataset``; the names ``digits_detection``, ``voc/2007``, ``voc/2012``, ``voc/2007+2012`` and
``coco/2017`` are also accepted as ``data.name`` itself where ``jaxgen.data`` dispatches them here.
See docs/thundernet.md for the conventions.

Batch (dict of numpy arrays; M = ``data.max_boxes``, R = ``data.resolution``)::

  image     float32 [B, R, R, 3] in [−1, 1]      the network input (padding is 0, mid grey)
  boxes     float32 [B, M, 4]   xyxy pixels of the network input, padded with zeros
  classes   int32   [B, M]      foreground class 0..K−1 (VOC: ``VOC_CLASSES`` order; COCO: TFDS's
                                contiguous 0..79, ``coco_category_id`` maps back; digits: the digit)
  box_mask  bool    [B, M]      real boxes (False on padding)
  difficult bool    [B, M]      VOC's difficult flag, COCO's is_crowd (ignored by training and AP)
  area      float32 [B, M]      source-pixel area (COCO: the annotation's area, used by AP_S/M/L)
  image_id  int32   [B]         COCO image id / VOC file number / digits index
  orig_hw   int32   [B, 2]      (H, W) of the source image
  scale     float32 [B, 2]      (sy, sx): network pixels = source pixels · scale + offset
  offset    float32 [B, 2]      (oy, ox)
  mask      float32 [B]         eval batches only: 0 on the padding of the last batch

Source records are turned into this by one transform: TFDS's normalized (ymin, xmin, ymax, xmax) boxes
become xyxy source pixels (x·W, y·H); then, for training, a horizontal flip (``data.random_flip``), the
resize to R × R (``data.box_resize``: ``stretch`` to R × R as ThunderNet's 320 × 320 input, or
``letterbox``: the longer side to R, padded bottom/right), scale jitter (``data.jitter_min`` ..
``data.jitter_max``: the resized image is scaled by a uniform factor and randomly cropped or padded back
to R × R; boxes are clipped and dropped below 2 pixels), and padding to M boxes (extra boxes beyond M are
dropped, in source order). Evaluation uses no flip and no jitter. Training batches may be larger than
evaluation ones:
``data.train_resolution`` (0: ``data.resolution``), e.g. the largest multi-scale side, which the detection
task then resizes on device. The augmentation randomness is the
pipeline's per-position generator, so a stream is deterministic and resumable (``jaxgen.data.pipeline``).

``digits_detection``: scikit-learn's 8×8 digits (``jaxgen.data.digits``; train canvases use the first
1500 digits, test canvases the last 297) pasted on ``data.digits_canvas``-pixel square canvases, 1 to
``data.digits_max`` digits each at sizes ``data.digits_min_size`` .. ``data.digits_max_size`` pixels
(bilinear), in random colours on a dark noisy background, non-overlapping (IoU 0 between boxes). A box is
the tight extent of the digit's ink (pixels above mid-grey after resizing). Canvas i of a split is a
function of (split, i) only: no download, identical on every machine. Sizes: ``data.digits_train_size``
(default 4096) and ``data.digits_test_size`` (default 256).
"""

from __future__ import annotations

import functools
import re

import numpy as np

from jaxgen.config_schema import lookup
from jaxgen.errors import ConfigError

__all__ = ["train_dataset", "eval_dataset", "example_batch", "SETS", "VOC_CLASSES", "COCO_CATEGORY_IDS",
           "coco_category_id", "coco_label", "num_classes", "class_names", "digits_record", "to_batch_record",
           "tfds_record"]

SETS = ("digits_detection", "voc/2007", "voc/2012", "voc/2007+2012", "coco/2017")

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")

# COCO 2017's 80 category ids in TFDS's contiguous label order (label i <-> COCO_CATEGORY_IDS[i]); the
# ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 of the 2014 list have no annotations.
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                     27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
                     52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
                     78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
_COCO_LABEL = {c: i for i, c in enumerate(COCO_CATEGORY_IDS)}

_SPLITS = {"voc": ("train", "validation", "test"), "coco": ("train", "validation", "test")}
_DEFAULT_MAX_BOXES = {"digits_detection": 8, "voc": 50, "coco": 100}
_DEFAULT_RESOLUTION = {"digits_detection": 0, "voc": 320, "coco": 320}
_DIGITS_DEFAULTS = dict(digits_canvas=128, digits_max=4, digits_min_size=24, digits_max_size=48,
                        digits_train_size=4096, digits_test_size=256)


def coco_category_id(label) -> np.ndarray:
  """COCO category id of TFDS's contiguous label (0..79); vectorized."""
  return np.asarray(COCO_CATEGORY_IDS, np.int64)[np.asarray(label, np.int64)]


def coco_label(category_id) -> np.ndarray:
  """TFDS's contiguous label (0..79) of a COCO category id; vectorized (an unused id raises KeyError)."""
  ids = np.asarray(category_id, np.int64)
  return np.asarray([_COCO_LABEL[int(c)] for c in ids.reshape(-1)], np.int64).reshape(ids.shape)


# ------------------------------------------------------------------------------------ config

def dataset_name(cfg) -> str:
  """The detection set of the data block (``data.dataset`` when ``data.name`` is this module's path)."""
  name = str(lookup(cfg, "name", ""))
  if name == __name__ or name.startswith("jaxgen.data.detection"):
    name = str(lookup(cfg, "dataset", "digits_detection"))
  if name not in SETS:
    raise ConfigError(f"Unknown detection data set {name!r}; set --config.data.dataset (with data.name="
                      f"'{__name__}') to one of {', '.join(SETS)}.")
  return name


def _family(name: str) -> str:
  return name.split("/")[0]


def num_classes(name: str) -> int:
  return {"digits_detection": 10, "voc": 20, "coco": 80}[_family(name)]


def class_names(name: str) -> tuple[str, ...]:
  fam = _family(name)
  if fam == "voc":
    return VOC_CLASSES
  if fam == "coco":
    return tuple(f"coco_{c}" for c in COCO_CATEGORY_IDS)
  return tuple(str(i) for i in range(10))


def _int(cfg, key, default, minimum=0) -> int:
  v = lookup(cfg, key, default)
  v = default if v is None else v
  if not isinstance(v, (int, np.integer)) or v < minimum:
    raise ConfigError(f"data.{key} must be an integer ≥ {minimum}, got {v!r}.")
  return int(v)


def _options(cfg, name: str, train: bool = False) -> dict:
  fam = _family(name)
  res = _int(cfg, "resolution", 0)
  if train:
    res = _int(cfg, "train_resolution", 0) or res
  o = dict(max_boxes=_int(cfg, "max_boxes", 0) or _DEFAULT_MAX_BOXES[fam], resolution=res,
           flip=bool(lookup(cfg, "random_flip", False)),
           box_resize=str(lookup(cfg, "box_resize", "") or "stretch"),
           jitter=(float(lookup(cfg, "jitter_min", 1.0) or 1.0),
                   float(lookup(cfg, "jitter_max", 1.0) or 1.0)),
           use_difficult=bool(lookup(cfg, "use_difficult", False)))
  if o["box_resize"] not in ("stretch", "letterbox"):
    raise ConfigError(f"data.box_resize={o['box_resize']!r}: use 'stretch' or 'letterbox'.")
  if not 0 < o["jitter"][0] <= o["jitter"][1]:
    raise ConfigError(f"data.jitter_min/jitter_max={o['jitter']}: need 0 < jitter_min ≤ jitter_max.")
  if fam == "digits_detection":
    for k, d in _DIGITS_DEFAULTS.items():
      o[k] = _int(cfg, k, d, 1)
    if not o["digits_min_size"] <= o["digits_max_size"] <= o["digits_canvas"]:
      raise ConfigError("data.digits_min_size ≤ data.digits_max_size ≤ data.digits_canvas is required.")
    o["resolution"] = o["resolution"] or o["digits_canvas"]
  o["resolution"] = o["resolution"] or _DEFAULT_RESOLUTION[fam]
  return o


# ------------------------------------------------------------------------- digits_detection

_SPLIT_TAG = {"train": 1, "test": 2}


@functools.cache
def _digit_glyphs(split: str):
  from jaxgen.data import digits  # noqa: PLC0415
  images, labels = digits.load("train" if split == "train" else "test")
  return np.asarray(images[..., 0]), np.asarray(labels)


def _resize_float(img: np.ndarray, h: int, w: int) -> np.ndarray:
  from PIL import Image  # noqa: PLC0415
  image = Image.fromarray(img.astype(np.float32), mode="F")
  return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))


def digits_record(split: str, index: int, *, digits_canvas: int = 128, digits_max: int = 4,
                  digits_min_size: int = 24, digits_max_size: int = 48, **_) -> dict:
  """Canvas ``index`` of ``split`` ('train' | 'test') as a source record (see the module docstring)."""
  if split not in _SPLIT_TAG:
    raise ConfigError(f"Unknown digits_detection split {split!r}; use 'train' or 'test'.")
  glyphs, labels = _digit_glyphs(split)
  rng = np.random.default_rng([0xD16, _SPLIT_TAG[split], int(index)])
  c = digits_canvas
  canvas = rng.uniform(0.0, 0.25, size=(c, c, 3)).astype(np.float32)
  canvas += rng.uniform(0.0, 0.15, size=(1, 1, 3)).astype(np.float32)
  boxes, classes = [], []
  n = int(rng.integers(1, digits_max + 1))
  for _ in range(n):
    for _attempt in range(20):
      s = int(rng.integers(digits_min_size, digits_max_size + 1))
      y, x = int(rng.integers(0, c - s + 1)), int(rng.integers(0, c - s + 1))
      if all(x >= b[2] or x + s <= b[0] or y >= b[3] or y + s <= b[1] for b in boxes):
        break
    else:
      continue
    k = int(rng.integers(len(glyphs)))
    ink = (_resize_float(glyphs[k], s, s) + 1.0) / 2.0           # [0, 1], 1 = ink
    colour = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    patch = canvas[y:y + s, x:x + s]
    alpha = np.clip(ink, 0.0, 1.0)[..., None]
    canvas[y:y + s, x:x + s] = patch * (1 - alpha) + colour * alpha
    ys, xs = np.nonzero(ink > 0.5)
    if len(ys) == 0:
      continue
    boxes.append((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1))
    classes.append(int(labels[k]))
  image = np.clip(np.round(canvas * 255.0), 0, 255).astype(np.uint8)
  return dict(image=image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
              classes=np.asarray(classes, np.int32), difficult=np.zeros(len(classes), bool),
              image_id=np.int32(index))


class DigitsSource:
  """Random-access source of ``digits_detection`` canvases (generated on read)."""

  def __init__(self, split: str, size: int, options: dict):
    if split not in _SPLIT_TAG:
      raise ConfigError(f"Unknown digits_detection split {split!r}; use 'train' or 'test'.")
    self._split, self._n, self._o = split, size, options

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, i: int) -> dict:
    return digits_record(self._split, int(i), **self._o)


# ------------------------------------------------------------------------------------- TFDS

def tfds_record(example: dict, family: str) -> dict:
  """A decoded TFDS voc/coco example -> source record (image, xyxy source-pixel boxes, ...)."""
  image = np.asarray(example["image"])
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, -1)
  elif image.shape[-1] == 1:
    image = np.repeat(image, 3, -1)
  h, w = image.shape[:2]
  obj = example["objects"]
  bbox = np.asarray(obj["bbox"], np.float32).reshape(-1, 4)
  label = np.asarray(obj["label"], np.int64).reshape(-1)
  flag = np.asarray(obj["is_difficult"] if family == "voc" else obj["is_crowd"], bool).reshape(-1)
  n = min(len(bbox), len(label), len(flag))
  bbox, label, flag = bbox[:n], label[:n], flag[:n]
  y0, y1 = np.minimum(bbox[:, 0], bbox[:, 2]), np.maximum(bbox[:, 0], bbox[:, 2])
  x0, x1 = np.minimum(bbox[:, 1], bbox[:, 3]), np.maximum(bbox[:, 1], bbox[:, 3])
  boxes = np.stack([x0 * w, y0 * h, x1 * w, y1 * h], -1).astype(np.float32)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  if family == "coco":
    given = np.asarray(obj.get("area", ()), np.float32).reshape(-1)
    if len(given) >= n:
      area = given[:n]
    image_id = int(example.get("image/id", 0))
  else:
    digits = re.sub(r"\D", "", _text(example.get("image/filename", "")))
    image_id = int(digits[-9:]) if digits else 0
  return dict(image=image, boxes=boxes, classes=label.astype(np.int32), difficult=flag,
              area=np.asarray(area, np.float32), image_id=np.int32(image_id))


def _text(v) -> str:
  return v.decode() if isinstance(v, bytes) else str(v)


class _Concat:
  def __init__(self, sources):
    self._s = list(sources)
    self._ends = np.cumsum([len(s) for s in self._s])

  def __len__(self) -> int:
    return int(self._ends[-1]) if len(self._ends) else 0

  def __getitem__(self, i: int):
    k = int(np.searchsorted(self._ends, i, side="right"))
    return self._s[k][int(i) - (int(self._ends[k - 1]) if k else 0)]


class _Mapped:
  def __init__(self, source, fn):
    self._source, self._fn = source, fn

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int):
    return self._fn(self._source[i])


def _check_split(name: str, split: str, key: str) -> None:
  valid = _SPLITS[_family(name)]
  for part in split.split("+"):
    m = re.match(r"\s*([A-Za-z_]+)", part)
    if m is None or m.group(1) not in valid:
      raise ConfigError(f"Unknown split {key}={split!r} for {name}; use one of {', '.join(valid)} "
                        "(joined with '+', e.g. 'train+validation' = VOC trainval).")


def _tfds_source(cfg, name: str, split: str, key: str, train: bool):
  import tensorflow_datasets as tfds  # noqa: PLC0415

  from jaxgen.data import tfds_sets  # noqa: PLC0415
  _check_split(name, split, key)
  data_dir = str(lookup(cfg, "data_dir", ""))
  fam = _family(name)
  if name == "voc/2007+2012":
    # The paper's VOC protocol: train on 2007+2012 trainval, test on 2007 test (2012 test has no boxes).
    builders = ["voc/2007", "voc/2012"] if train else ["voc/2007"]
  else:
    builders = [name]
  sources = []
  for b in builders:
    tfds_sets.check_prepared(b, data_dir)
    sources.append(tfds.data_source(b, split=split, data_dir=data_dir or None, download=False))
  source = sources[0] if len(sources) == 1 else _Concat(sources)
  return _Mapped(source, lambda ex: tfds_record(ex, fam))


# -------------------------------------------------------------------------------- transform

def _resize_uint8(image: np.ndarray, h: int, w: int) -> np.ndarray:
  from jaxgen.data import images  # noqa: PLC0415
  if image.shape[:2] == (h, w):
    return image
  return images.resize(image, h, w, "bilinear")


def to_batch_record(rec: dict, o: dict, rng: np.random.Generator | None) -> dict:
  """Source record -> one example of a batch (module docstring); ``rng`` None: evaluation."""
  image = np.asarray(rec["image"])
  boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4).copy()
  classes = np.asarray(rec["classes"], np.int32).reshape(-1)
  difficult = np.asarray(rec["difficult"], bool).reshape(-1)
  area = rec.get("area")
  area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if area is None
          else np.asarray(area, np.float32).reshape(-1))
  h, w = image.shape[:2]
  r, m = o["resolution"], o["max_boxes"]
  if rng is not None and o["flip"] and rng.random() < 0.5:
    image = image[:, ::-1]
    boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
  if o["box_resize"] == "stretch":
    sy, sx = r / h, r / w
  else:
    sy = sx = r / max(h, w)
  lo, hi = o["jitter"]
  j = float(rng.uniform(lo, hi)) if (rng is not None and hi > lo) else (lo if rng is not None else 1.0)
  sy, sx = sy * j, sx * j
  nh, nw = max(1, int(round(h * sy))), max(1, int(round(w * sx)))
  resized = _resize_uint8(image, nh, nw)

  def place(n):   # offset of the resized image in the R-canvas: random crop (n > r) or pad (n < r)
    if rng is None or n == r:
      return 0
    return -int(rng.integers(0, n - r + 1)) if n > r else int(rng.integers(0, r - n + 1))

  if rng is not None and j == 1.0 and o["box_resize"] == "letterbox":
    oy = ox = 0
  else:
    oy, ox = place(nh), place(nw)
  canvas = np.zeros((r, r, 3), np.float32)
  src = resized.astype(np.float32) / np.float32(127.5) - 1.0
  ys, xs = max(oy, 0), max(ox, 0)
  sy0, sx0 = max(-oy, 0), max(-ox, 0)
  hh, ww = min(r - ys, nh - sy0), min(r - xs, nw - sx0)
  canvas[ys:ys + hh, xs:xs + ww] = src[sy0:sy0 + hh, sx0:sx0 + ww]
  boxes = boxes * np.asarray([sx, sy, sx, sy], np.float32) + np.asarray([ox, oy, ox, oy], np.float32)
  boxes = np.clip(boxes, 0.0, float(r))
  keep = ((boxes[:, 2] - boxes[:, 0]) >= 2.0) & ((boxes[:, 3] - boxes[:, 1]) >= 2.0)
  boxes, classes, difficult, area = boxes[keep][:m], classes[keep][:m], difficult[keep][:m], area[keep][:m]
  n = len(boxes)
  out_boxes = np.zeros((m, 4), np.float32)
  out_boxes[:n] = boxes
  out_classes = np.zeros((m,), np.int32)
  out_classes[:n] = classes
  box_mask = np.zeros((m,), bool)
  box_mask[:n] = True
  out_diff = np.zeros((m,), bool)
  out_diff[:n] = difficult
  out_area = np.zeros((m,), np.float32)
  out_area[:n] = area
  if rng is not None and not o["use_difficult"]:
    box_mask &= ~out_diff    # training drops difficult / crowd boxes (py-faster-rcnn's use_diff=False)
    out_diff[:] = False
  return dict(image=canvas, boxes=out_boxes, classes=out_classes, box_mask=box_mask, difficult=out_diff,
              area=out_area, image_id=np.int32(rec.get("image_id", 0)),
              orig_hw=np.asarray([h, w], np.int32), scale=np.asarray([sy, sx], np.float32),
              offset=np.asarray([oy, ox], np.float32))


def _source(cfg, name: str, split: str, key: str, train: bool, o: dict):
  if name == "digits_detection":
    size = o["digits_train_size"] if split == "train" else o["digits_test_size"]
    return DigitsSource(split, size, o)
  return _tfds_source(cfg, name, split, key, train)


# --------------------------------------------------------------------------------------- API

def train_dataset(data_cfg, *, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1):
  """Infinite, resumable stream of training batches (``jaxgen.data.pipeline.train_stream``)."""
  from jaxgen.data import _seed, pipeline, read_config  # noqa: PLC0415
  name = dataset_name(data_cfg)
  o = _options(data_cfg, name, train=True)
  split = str(lookup(data_cfg, "split", "train"))
  source = _source(data_cfg, name, split, "data.split", True, o)
  return pipeline.train_stream(source, lambda rec, rng: to_batch_record(rec, o, rng), batch_size=batch_size,
                               seed=_seed(seed), process_index=process_index, process_count=process_count,
                               read=read_config(data_cfg))


def eval_dataset(data_cfg, *, batch_size: int, process_index: int = 0, process_count: int = 1):
  """One padded pass over ``data.eval_split`` (None when it is ''), with ``mask``."""
  from jaxgen.data import pipeline, read_config  # noqa: PLC0415
  name = dataset_name(data_cfg)
  split = str(lookup(data_cfg, "eval_split", ""))
  if not split:
    return None
  o = _options(data_cfg, name)
  limit = _int(data_cfg, "eval_size", 0)
  source = _source(data_cfg, name, split, "data.eval_split", False, o)
  return pipeline.eval_stream(source, lambda rec: to_batch_record(rec, o, None), batch_size=batch_size,
                              process_index=process_index, process_count=process_count,
                              read=read_config(data_cfg), limit=limit)


def example_batch(data_cfg, batch_size: int) -> dict[str, np.ndarray]:
  """Zeros shaped like a training batch (reads nothing)."""
  name = dataset_name(data_cfg)
  o = _options(data_cfg, name, train=True)
  r, m, b = o["resolution"], o["max_boxes"], batch_size
  return dict(image=np.zeros((b, r, r, 3), np.float32), boxes=np.zeros((b, m, 4), np.float32),
              classes=np.zeros((b, m), np.int32), box_mask=np.zeros((b, m), bool),
              difficult=np.zeros((b, m), bool), area=np.zeros((b, m), np.float32),
              image_id=np.zeros((b,), np.int32),
              orig_hw=np.zeros((b, 2), np.int32), scale=np.zeros((b, 2), np.float32),
              offset=np.zeros((b, 2), np.float32))


def facts(data_cfg) -> dict:
  """The data facts a detection task hands to evaluators: set name, classes, resolution."""
  name = dataset_name(data_cfg)
  o = _options(data_cfg, name)
  return dict(name=name, family=_family(name), num_classes=num_classes(name), resolution=o["resolution"],
              class_names=class_names(name))
