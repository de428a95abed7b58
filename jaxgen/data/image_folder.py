"""Image folder / zip source (FFHQ, AFHQv2, … as EDM's ``dataset_tool.py`` writes them).

``data.data_dir`` is a folder (searched recursively) or a ``.zip`` of images (png, jpg, jpeg, bmp,
webp, ppm, tif, tiff). Images are ordered by their relative path with '/' separators (EDM's order),
so index i means the same file on every machine. An optional ``dataset.json`` at the top level,
``{"labels": [[relative_path, int_label], ...]}`` (or ``"labels": null``), gives ``'label'`` int32.
The channel count is that of the first image (grey 'L' → 1, anything else → RGB 3); every image is
converted to it (a colour image in a folder whose first image is grey is refused: it would lose its
colour silently). ``data.split`` / ``data.eval_split`` select all images (``'train'``, ``'all'``) or,
with TFDS-like slicing, a part: ``'train[:90%]'``, ``'train[90%:]'``, ``'train[:1000]'``.
Crop/resize/flip work as for every image set (``jaxgen.data.images``); default crop ``none`` and,
when ``data.resolution`` asks for a resize, PIL's Lanczos filter (EDM's ``dataset_tool.py``).

Bad files are the user's to fix, so each is one ``ConfigError`` naming the file: an image PIL cannot
decode (zero bytes, truncated, not an image), one with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``
(a decompression bomb: refused from its header, before decoding), and labels that are not integers in
``[0, ∞)``; ``label_range`` lets the trainer check them against the model's number of classes
(``jaxgen.train.validate_config``). The first image is decoded when the source is built (before a run
writes anything); a bad image met later stops the run with the file named (the checkpoints stay).
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import zipfile
from typing import Optional

import numpy as np

from jaxgen.config_schema import lookup
from jaxgen.data import images
from jaxgen.errors import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
LABELS_FILE = "dataset.json"
_GREY = ("L", "I;16", "1")   # PIL modes read as one channel


class ImageFolderSource:
  """Random-access source: record i = {'image': uint8 HWC, 'label': int32 (if labelled)}."""

  def __init__(self, path: str, channels: Optional[int] = None):
    if not path:
      raise ConfigError("data.name='image_folder' needs data.data_dir = a folder or .zip of images.")
    if not os.path.exists(path):
      raise ConfigError(f"data.data_dir={path!r} does not exist; set it to a folder or .zip of PNG/JPEG "
                        "images.")
    self._path = path
    self._local = threading.local()
    self._is_zip = os.path.isfile(path)
    if self._is_zip and not zipfile.is_zipfile(path):
      raise ConfigError(f"data.data_dir={path!r} is a file but not a zip archive; use a folder or a .zip of "
                        "images.")
    all_names = self._list()
    self._names = sorted(n for n in all_names if os.path.splitext(n)[1].lower() in EXTENSIONS)
    if not self._names:
      raise ConfigError(f"data.data_dir={path!r} holds no images ({', '.join(EXTENSIONS)}).")
    self._labels = self._read_labels() if LABELS_FILE in all_names else None
    first = self._open_pil(0)
    self.channels = channels or (1 if first.mode in _GREY else 3)
    self._grey_from_first = not channels and self.channels == 1
    self._decode(0, first)   # a corrupt first image fails here, before the run writes anything

  # -- file access --------------------------------------------------------------------------------
  def _list(self) -> list[str]:
    if self._is_zip:
      with zipfile.ZipFile(self._path) as z:
        return [n for n in z.namelist() if not n.endswith("/")]
    out = []
    for root, _, files in os.walk(self._path):
      for f in files:
        out.append(os.path.relpath(os.path.join(root, f), self._path).replace(os.sep, "/"))
    return out

  def _read(self, name: str) -> bytes:
    if not self._is_zip:
      with open(os.path.join(self._path, name), "rb") as f:
        return f.read()
    z = getattr(self._local, "zip", None)   # one handle per thread: ZipFile reads are not thread-safe
    if z is None:
      z = self._local.zip = zipfile.ZipFile(self._path)
    return z.read(name)

  def _read_labels(self) -> Optional[np.ndarray]:
    try:
      labels = json.loads(self._read(LABELS_FILE))["labels"]
      table = None if labels is None else dict(labels)
    except (ValueError, KeyError, TypeError) as e:
      raise ConfigError(f"{LABELS_FILE} in {self._path!r} is not {{\"labels\": [[file, label], ...]}} "
                        f"({e}).") from None
    if table is None:
      return None
    missing = [n for n in self._names if n not in table]
    if missing:
      raise ConfigError(f"{LABELS_FILE} in {self._path!r} lacks labels for {len(missing)} images "
                        f"(first: {missing[0]!r}); list every image or set \"labels\": null.")
    values = [table[n] for n in self._names]
    return _check_labels(values, self._names, f"{LABELS_FILE} in {self._path!r}")

  def _where(self, i: int) -> str:
    return f"{self._path}!{self._names[i]}" if self._is_zip else os.path.join(self._path, self._names[i])

  def _bad(self, i: int, why: str) -> ConfigError:
    return ConfigError(f"image {self._where(i)!r} of data.data_dir cannot be used ({why}): replace or delete "
                       "that file.")

  def _open_pil(self, i: int):
    """PIL image i from its header (not decoded yet); a file PIL refuses or a bomb is a ConfigError."""
    from PIL import Image  # noqa: PLC0415
    data = self._read(self._names[i])
    if not data:
      raise self._bad(i, "the file is empty")
    try:
      img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
      raise self._bad(i, f"decompression bomb: {_one_line(e)}") from None
    except Image.UnidentifiedImageError:
      raise self._bad(i, f"not an image PIL can identify, {len(data)} bytes") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse a user's file is the file's fault
      raise self._bad(i, f"not a readable image: {type(e).__name__}: {_one_line(e)}") from None
    limit = Image.MAX_IMAGE_PIXELS
    w, h = img.size
    if limit and w * h > limit:
      raise self._bad(i, f"{w}x{h} = {w * h} pixels is more than PIL.Image.MAX_IMAGE_PIXELS = {limit}: a "
                         "decompression bomb, or raise that limit if the image is genuine")
    return img

  def _decode(self, i: int, img) -> np.ndarray:
    """The uint8 pixels of image i in this source's channels; a truncated file is a ConfigError."""
    try:
      return np.asarray(img.convert("L" if self.channels == 1 else "RGB"), np.uint8)
    except Exception as e:  # noqa: BLE001 - decoding errors of a user's file (truncated, bad chunks, ...)
      raise self._bad(i, f"decoding failed: {type(e).__name__}: {_one_line(e)}") from None

  # -- source protocol ----------------------------------------------------------------------------
  @property
  def labelled(self) -> bool:
    return self._labels is not None

  @property
  def names(self) -> list[str]:
    return list(self._names)

  def image_size(self, i: int = 0) -> tuple[int, int]:
    """(H, W) of image i from its header only."""
    w, h = self._open_pil(i).size
    return h, w

  def __len__(self) -> int:
    return len(self._names)

  def __getitem__(self, i: int) -> dict:
    i = int(i)
    img = self._open_pil(i)
    if self._grey_from_first and img.mode not in _GREY and img.mode not in ("LA", "I", "F"):
      raise self._bad(i, f"a {img.mode} colour image in a folder whose first image {self._names[0]!r} is "
                         "greyscale, so every image would be read as grey; make all images the same mode")
    out = {"image": self._decode(i, img)}
    if self._labels is not None:
      out["label"] = self._labels[int(i)]
    return out

  def __getstate__(self):
    state = dict(self.__dict__)
    state.pop("_local")
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._local = threading.local()


def _one_line(e: BaseException) -> str:
  return " ".join(str(e).split()) or type(e).__name__


def _check_labels(values, names, where: str) -> np.ndarray:
  """int32 labels, refusing non-integers and negative values with the first offending file named."""
  for n, v in zip(names, values):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
      raise ConfigError(f"{where} gives {n!r} the label {v!r}: labels must be integer class indices "
                        "0, 1, ...; fix that entry.")
    if v < 0 or v >= 2**31:
      raise ConfigError(f"{where} gives {n!r} the label {v}, outside [0, num_classes): labels must be class "
                        "indices 0, 1, ...; fix that entry.")
  return np.asarray(values, np.int32)


def label_range(path: str) -> Optional[tuple[int, str]]:
  """(largest label, a file holding it) of the ``dataset.json`` of folder/zip ``path``; None when the
  folder has no such file or ``"labels": null`` (reads only that file; negative labels are refused)."""
  try:
    if os.path.isdir(path):
      with open(os.path.join(path, LABELS_FILE), "rb") as f:
        raw = f.read()
    else:
      with zipfile.ZipFile(path) as z:
        raw = z.read(LABELS_FILE)
  except (OSError, KeyError, zipfile.BadZipFile):
    return None
  where = f"{LABELS_FILE} in {path!r}"
  try:
    labels = json.loads(raw)["labels"]
    if labels is None:
      return None
    names, values = zip(*labels) if labels else ((), ())
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f"{where} is not {{\"labels\": [[file, label], ...]}} ({e}).") from None
  if not values:
    return None
  arr = _check_labels(list(values), list(names), where)
  k = int(np.argmax(arr))
  return int(arr[k]), str(names[k])


class _Subset:
  """Indices [start, stop) of a source."""

  def __init__(self, source, start: int, stop: int):
    self._source, self._start, self._n = source, start, max(stop - start, 0)

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, i: int):
    return self._source[self._start + int(i)]


def split_range(split: str, n: int, key: str) -> tuple[int, int]:
  """[start, stop) of ``'train'`` / ``'all'`` with an optional ``[a:b]`` slice (ints or percents)."""
  m = re.fullmatch(r"\s*(train|all)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*", split)
  if m is None:
    raise ConfigError(f"Unknown {key}={split!r} for image_folder; use 'train' (all images) or a slice such "
                      "as 'train[:90%]' / 'train[90%:]' / 'train[:1000]'.")

  def bound(s, default):
    if s is None:
      return default
    v = round(n * int(s[:-1]) / 100) if s.endswith("%") else int(s)
    return max(0, min(n, v + n if v < 0 else v))

  return bound(m.group(2), 0), bound(m.group(3), n)


def _source(cfg, split: str, key: str):
  src = ImageFolderSource(str(lookup(cfg, "data_dir", "")))
  start, stop = split_range(split, len(src), key)
  return src, _Subset(src, start, stop)


def _spec(cfg, src: ImageFolderSource):
  from jaxgen.data.tfds_sets import image_spec  # noqa: PLC0415
  return image_spec(cfg, src.image_size(0), src.channels, src.labelled, default_resize="lanczos",
                    name="image_folder")


def build(cfg, *, train: bool):
  key = "data.split" if train else "data.eval_split"
  split = str(lookup(cfg, "split" if train else "eval_split", "train"))
  src, subset = _source(cfg, split, key)
  train_fn, eval_fn = images.make_transforms(_spec(cfg, src))
  return subset, (train_fn if train else eval_fn)


def output_spec(cfg) -> tuple[tuple[int, int, int], bool]:
  """((H, W, C) of a training image, has labels), from the first image's header."""
  src = ImageFolderSource(str(lookup(cfg, "data_dir", "")))
  spec = _spec(cfg, src)
  return (*spec.output_side(*src.image_size(0)), src.channels), src.labelled
