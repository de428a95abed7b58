"""Run logging: ``metrics.jsonl``, TensorBoard event files, a progress display and image writers.

Only process 0 of a multi-host run writes (the writers here are no-ops elsewhere).

- ``MetricWriter(workdir)``: ``write(step, metrics)`` appends one JSON object per call to
  ``workdir/metrics.jsonl`` (``{"step": N, ...}``; after a resume a step may appear twice and readers
  keep the last record; a file deleted or replaced mid-run is recreated, with a warning) and
  scalars to TensorBoard (``workdir/tensorboard``, tensorboardX, no TensorFlow).
  ``read_metrics(workdir)`` reads the file back, last record per step.
- ``Progress``: a tqdm bar (step, loss, img/s, ETA) on interactive terminals, plain periodic lines
  otherwise.
- ``save_image_grid(images, path)`` / ``save_scatter(points, path)``: PNGs of samples. Grids of
  small images are enlarged by nearest neighbour (``upscale``: each pixel becomes a constant k×k
  block, k the smallest integer that makes the long side at least ``min_size`` = 512 px, never below
  1), so the quickstart's 8×8 digits are visible; the raw samples are in the run's ``.npz`` files.

Every path may be a ``gs://`` URL (docs/pods.md "Workdirs on GCS"; ``jaxgen.fs``). An object store cannot
append, so there ``MetricWriter`` keeps the file's text and uploads it whole at each record (one
object upload per log step: atomic, never a half line); TensorBoard's event file is written to a local
temporary directory and uploaded whole after each flush (tensorboardX's own ``gs://`` writer would need
a second client, google-cloud-storage, and re-uploads from ``__del__``, which hangs at exit when the
store has gone away).
"""

from __future__ import annotations

import json
import logging as _pylogging
import math
import os
import sys
import time
from typing import Any, Mapping

import numpy as np

from jaxgen import fs

log = _pylogging.getLogger("jaxgen")

# TensorBoard tags: metrics without a '/' get this prefix per kind of record.
_TRAIN_PREFIX = "train/"


def _scalar(v: Any) -> float | int | bool | None:
  v = np.asarray(v)
  if v.size != 1:
    return None
  v = v.reshape(()).item()
  if isinstance(v, float) and not math.isfinite(v):
    return v  # json.dumps writes NaN/Infinity, which Python's json reads back
  return v


class MetricWriter:
  """JSONL + TensorBoard writer for one workdir; ``enabled=False`` (processes > 0) writes nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._tb = None
    self._tb_local: str | None = None   # remote: the local directory the event file is staged in
    self._file = None
    self._remote = fs.is_remote(workdir)
    self._text: str | None = None   # remote: the file's content, uploaded whole at each record
    self.path = fs.join(workdir, "metrics.jsonl")
    if enabled and self._remote:
      self._text = fs.read_text(self.path) if fs.exists(self.path) else ""
      if self._text and not self._text.endswith("\n"):
        self._text += "\n"  # a line cut short: readers skip it, the next record starts a new line
    elif enabled:
      os.makedirs(workdir, exist_ok=True)
      self._file = open(self.path, "a", encoding="utf-8")

  def _append(self, line: str) -> None:
    if not self._remote:
      self._reopen_if_gone()
      self._file.write(line)
      self._file.flush()
      return
    if self._text and not fs.exists(self.path):
      log.warning("%s was deleted or replaced during the run: writing the following records to a new "
                  "file there (the earlier ones are lost).", self.path)
      self._text = ""
    self._text += line
    fs.write_text(self.path, self._text)

  def _reopen_if_gone(self) -> None:
    """Reopens ``metrics.jsonl`` (with a warning) when it was deleted or replaced since it was opened."""
    try:
      st = os.stat(self.path)
      mine = os.fstat(self._file.fileno())
      if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
        return
    except FileNotFoundError:
      pass
    log.warning("%s was deleted or replaced during the run: writing the following records to a new "
                "file there (the earlier ones are lost).", self.path)
    self._file.close()
    os.makedirs(self.workdir, exist_ok=True)
    self._file = open(self.path, "a", encoding="utf-8")

  def _writer(self):
    if self._tb is None:
      from tensorboardX import SummaryWriter  # imported lazily: it is slow to import
      logdir, suffix = fs.join(self.workdir, "tensorboard"), ""
      if self._remote:  # (the pid keeps two launches within one second from overwriting one object)
        import tempfile

        logdir = self._tb_local = tempfile.mkdtemp(prefix="jaxgen_tensorboard_")
        suffix = f".{os.getpid()}.{id(self)}"
      self._tb = SummaryWriter(logdir=logdir, flush_secs=30, filename_suffix=suffix)
    return self._tb

  def _flush_tb(self) -> None:
    self._tb.flush()
    if self._tb_local:  # upload the staged event file(s) whole
      for name in os.listdir(self._tb_local):
        with open(os.path.join(self._tb_local, name), "rb") as f:
          fs.write_bytes(fs.join(self.workdir, "tensorboard", name), f.read())

  def write(self, step: int, metrics: Mapping[str, Any], prefix: str = _TRAIN_PREFIX) -> dict:
    """Appends ``{"step": step, **metrics}`` (scalars only) and returns that record."""
    record: dict[str, Any] = {"step": int(step)}
    for k, v in metrics.items():
      s = _scalar(v)
      if s is not None:
        record[k] = s
    if not self.enabled:
      return record
    self._append(json.dumps(record) + "\n")
    tb = self._writer()
    for k, v in record.items():
      if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
        tb.add_scalar(k if "/" in k else prefix + k, v, int(step))
    self._flush_tb()
    return record

  def write_image(self, step: int, tag: str, png_path: str) -> None:
    """Adds a PNG written by ``save_samples_png`` to TensorBoard (as RGB/grey HWC uint8)."""
    if not self.enabled or not png_path:
      return
    import io

    from PIL import Image

    with Image.open(io.BytesIO(fs.read_bytes(png_path))) as im:
      img = np.asarray(im.convert("RGB"))
    tb = self._writer()
    tb.add_image(tag, img, int(step), dataformats="HWC")
    self._flush_tb()

  def close(self):
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._flush_tb()
      self._tb.close()
      self._tb = None
    if self._tb_local:
      import shutil

      shutil.rmtree(self._tb_local, ignore_errors=True)
      self._tb_local = None


def read_metrics(workdir: str) -> dict[int, dict]:
  """``{step: record}`` from ``workdir/metrics.jsonl``, the last record of each step winning."""
  out: dict[int, dict] = {}
  path = fs.join(workdir, "metrics.jsonl")
  if not fs.exists(path):
    return out
  with fs.open_file(path, "r") as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
          continue
        out[int(rec["step"])] = rec
  return out


def _fmt_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}"


class Progress:
  """Training progress: tqdm on a TTY, else one plain line per ``report`` call.

  ``advance(step)`` is called every step (no host sync: it only moves the bar);
  ``report(step, loss, img_per_sec)`` at log boundaries updates the postfix / prints a line with the
  ETA extrapolated from the measured step rate.
  """

  def __init__(self, start_step: int, total_steps: int, enabled: bool = True, stream=None,
               interactive: bool | None = None):
    self.total = int(total_steps)
    self.step = int(start_step)
    self.enabled = enabled
    self.stream = stream or sys.stderr
    if interactive is None:
      interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._bar = None
    self._t0 = time.monotonic()
    self._s0 = self.step
    if enabled and interactive:
      from tqdm import tqdm
      self._bar = tqdm(total=self.total, initial=self.step, file=self.stream, unit="step",
                       dynamic_ncols=True, smoothing=0.1)

  def advance(self, step: int):
    if self._bar is not None and step > self.step:
      self._bar.update(step - self.step)
    self.step = step

  def eta(self) -> float:
    done = self.step - self._s0
    if done <= 0:
      return float("inf")
    rate = (time.monotonic() - self._t0) / done
    return rate * (self.total - self.step)

  def report(self, step: int, loss: float, img_per_sec: float):
    self.advance(step)
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.set_postfix(loss=f"{loss:.4g}", img_s=f"{img_per_sec:.1f}" if math.isfinite(
          img_per_sec) else "-", refresh=True)
    else:
      width = len(str(self.total))
      ips = f"{img_per_sec:.1f}" if math.isfinite(img_per_sec) else "-"
      print(f"step {step:>{width}}/{self.total}  loss {loss:.5g}  img/s {ips}  "
            f"eta {_fmt_duration(self.eta())}", file=self.stream, flush=True)

  def close(self):
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def images_to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8 with round((x + 1)·127.5), clipped (the EDM/ADM convention)."""
  x = np.asarray(images, np.float32)
  return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
  """[N, H, W, C] images in [-1, 1] -> one uint8 [rows·(H+pad)+pad, cols·(W+pad)+pad, C] grid.

  ``ncols`` defaults to ceil(sqrt(N)); missing cells and the padding are black.
  """
  x = images_to_uint8(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ValueError(f"image_grid takes [N, H, W, C] images, got shape {x.shape}.")
  n, h, w, c = x.shape
  ncols = ncols or max(1, math.ceil(math.sqrt(n)))
  nrows = max(1, math.ceil(n / ncols))
  grid = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
    grid[y0:y0 + h, x0:x0 + w] = x[i]
  return grid


# Long side, in pixels, below which save_image_grid enlarges a grid (by an integer factor).
MIN_GRID_SIZE = 512


def upscale(image: np.ndarray, min_size: int = MIN_GRID_SIZE) -> np.ndarray:
  """[H, W, ...] -> [k·H, k·W, ...], each pixel a constant k×k block (nearest neighbour).

  k = max(1, ceil(min_size / max(H, W))): the smallest integer factor that makes the long side at
  least ``min_size`` pixels; an image already that large (or ``min_size <= 0``) is returned as is.
  """
  x = np.asarray(image)
  k = max(1, math.ceil(min_size / max(x.shape[0], x.shape[1]))) if min_size > 0 else 1
  if k == 1:
    return x
  return np.repeat(np.repeat(x, k, axis=0), k, axis=1)


def save_image_grid(images: np.ndarray, path: str, ncols: int | None = None, pad: int = 2,
                    min_size: int = MIN_GRID_SIZE) -> str:
  """Writes ``upscale(image_grid(images), min_size)`` as a PNG (grey for 1 channel, RGB for 3).

  Returns the path. ``min_size=0`` writes the grid at its own size.
  """
  from PIL import Image

  grid = upscale(image_grid(images, ncols, pad), min_size)
  if grid.shape[-1] == 1:
    img = Image.fromarray(grid[..., 0], mode="L")
  elif grid.shape[-1] == 3:
    img = Image.fromarray(grid, mode="RGB")
  else:
    raise ValueError(f"save_image_grid writes 1- or 3-channel images, got {grid.shape[-1]} channels.")
  _save_png(path, img.save)
  return path


def _save_png(path: str, save) -> None:
  """``save(file)`` into ``path``: a local file (its directory created), or one upload to a URL."""
  if fs.is_remote(path):
    import io

    buf = io.BytesIO()
    save(buf, format="png")
    fs.write_bytes(path, buf.getvalue())
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  save(path)


def save_scatter(points: np.ndarray, path: str, title: str | None = None, lim: float | None = None) -> str:
  """Scatter plot PNG of [n, 2] points (2-D toy generators); returns the path."""
  import matplotlib
  matplotlib.use("Agg", force=False)
  from matplotlib.figure import Figure

  p = np.asarray(points, np.float32)
  if p.ndim != 2 or p.shape[1] != 2:
    raise ValueError(f"save_scatter takes [n, 2] points, got shape {p.shape}.")
  fig = Figure(figsize=(4, 4), dpi=100)
  ax = fig.add_subplot(1, 1, 1)
  ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.6, linewidths=0)
  ax.set_aspect("equal")
  if lim is not None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
  if title:
    ax.set_title(title)
  _save_png(path, fig.savefig)
  return path


def save_samples_png(samples: np.ndarray, path: str, min_size: int = MIN_GRID_SIZE) -> str | None:
  """An image grid for NHWC samples (enlarged to ``min_size``, see ``upscale``), a scatter plot for
  [n, 2] points; None for other shapes."""
  s = np.asarray(samples)
  if s.ndim == 4 and s.shape[-1] in (1, 3):
    return save_image_grid(s, path, min_size=min_size)
  if s.ndim == 2 and s.shape[1] == 2:
    return save_scatter(s, path)
  log.warning("samples of shape %s are neither NHWC images nor [n, 2] points; no PNG written.", s.shape)
  return None
