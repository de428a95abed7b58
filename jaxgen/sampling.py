"""Streamed, sharded, resumable sample sets: the chunk writer, its reader, and the sharding of draws.

  info = write_samples(sample_fn, directory, num, key, identity={...}, chunk_size=1000)
  for batch in iterate_samples(directory, batch_size=500): ...
  fid_of_directory(directory, inception_weights, fid_ref)      # FID of a finished set

A sample set is a directory of fixed-size chunk files ``chunk_<k:06d>.npy`` (chunk k holds the samples
``[k·chunk_size, min((k+1)·chunk_size, num))``) and a ``manifest.json`` saying what produced them (the
key, the chunk size, the dtype and shape, and an ``identity``: for ``--mode sample`` the checkpoint step
and the hash of the sample-relevant config). Every file is written to a temporary name and renamed,
so a chunk file that exists is complete; rerunning the same command skips the complete chunks and,
because sample i is a function of (key, i) alone (the task contract ``task.sample(state, key, n,
start_index)``, docs/design.md §2.4), the finished set equals an uninterrupted one bit for bit. A set
of another identity, key, chunk size, dtype or shape is refused (``ConfigError``), never mixed in.
Images are stored as uint8 exactly as ``jaxgen.eval.fid.quantize`` feeds them to Inception, so the FID of
a directory equals the FID of the same samples drawn in memory. The format and the API are in
docs/sampling.md.

Sharding: a task draws each chunk over every device of the ambient mesh (``jax.set_mesh``, which
``jaxgen.train`` sets around sampling). Inside its jitted draw it passes the per-sample arrays through
``shard_batch_dim`` (a ``with_sharding_constraint`` over the mesh's batch axes ``'data'``/``'fsdp'``;
a no-op without a mesh), rounds its chunk up with ``round_up`` so the batch divides the device count,
and brings the result to the host with ``to_host`` (all processes get every sample). Per-sample keys
make the sharded draw equal the one-device draw.

Paths may be local or ``gs://`` (``jaxgen.fs``): on an object store a chunk is one upload (atomic) and the
free-space check is skipped. This module imports only jax, numpy and ``jaxgen.fs`` (standard library) at
the top (tasks use its sharding helpers); the FID reader imports ``jaxgen.eval.fid`` when called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from jaxgen import fs
from jaxgen.errors import ConfigError

log = logging.getLogger("jaxgen")

FORMAT = 1
MANIFEST = "manifest.json"
GRID_PNG = "grid.png"
# Mesh axes a batch is split over (the data-parallel axis and, with FSDP, the parameter-sharding one).
BATCH_AXES = ("data", "fsdp")
# Free-space margin of the up-front check: 5 % of the bytes still to write plus 16 MiB (manifest, PNG,
# the temporary file of the chunk being renamed, file-system overhead).
_MARGIN_FRACTION, _MARGIN_BYTES = 0.05, 16 * 2**20


# ---------------------------------------------------------------------------------------------
# Sharding of a draw over the ambient mesh (used inside the tasks' jitted sample functions)
# ---------------------------------------------------------------------------------------------

def batch_axes(mesh=None) -> tuple[str, ...]:
  """The axes of ``mesh`` (default: the ambient abstract mesh) a batch is split over."""
  mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
  if mesh is None or mesh.empty:
    return ()
  return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_multiple(mesh=None) -> int:
  """How many ways a batch is split on ``mesh`` (default: the mesh set by ``jax.set_mesh``; 1 without)."""
  mesh = jax.sharding.get_mesh() if mesh is None else mesh
  if mesh is None or mesh.empty:
    return 1
  return int(np.prod([mesh.shape[a] for a in batch_axes(mesh)], dtype=np.int64))


def round_up(n: int, mesh=None) -> int:
  """``n`` rounded up to a multiple of ``batch_multiple(mesh)`` (a chunk every device gets a slice of)."""
  m = batch_multiple(mesh)
  return -(-int(n) // m) * m


def shard_batch_dim(x):
  """Inside ``jit``: ``x`` (a pytree) constrained to be split on its leading axis over the ambient mesh's
  batch axes; unchanged without a mesh or when the leading axis does not divide the device count."""
  axes = batch_axes()
  if not axes:
    return x
  mesh = jax.sharding.get_abstract_mesh()
  ways = int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64))
  spec = P(axes if len(axes) > 1 else axes[0])

  def constrain(a):
    if np.ndim(a) == 0 or a.shape[0] % ways:
      return a
    return jax.lax.with_sharding_constraint(a, spec)

  return jax.tree_util.tree_map(constrain, x)


def to_host(x) -> Any:
  """A pytree of (possibly sharded, possibly multi-host) arrays as numpy arrays on every process."""
  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.is_fully_replicated:
        return np.asarray(a.addressable_data(0))
      from jax.experimental import multihost_utils  # noqa: PLC0415
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree_util.tree_map(get, x)


@contextlib.contextmanager
def over_mesh(mesh):
  """``jax.set_mesh(mesh)`` (``None``: no change): the tasks' draws inside are split over its devices."""
  if mesh is None:
    yield
    return
  with jax.set_mesh(mesh):
    yield


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SampleSet:
  """What ``write_samples`` left in ``directory``."""

  directory: str
  num: int
  chunk_size: int
  dtype: str
  shape: tuple[int, ...]
  manifest: str            # path of manifest.json
  png: str | None          # the grid of the first samples (None: not images or points)
  written: int             # chunks drawn and written by this call
  skipped: int             # chunks already complete
  complete: bool = True    # False: ``stop`` ended the call early (rerun to finish)
  num_complete: int = 0    # samples present (all of them when complete)


def chunk_path(directory: str, k: int) -> str:
  return fs.join(directory, f"chunk_{k:06d}.npy")


def _chunk_count(num: int, chunk_size: int, k: int) -> int:
  return min(chunk_size, num - k * chunk_size)


def key_to_json(key) -> dict:
  """A PRNG key as ``{"impl": name, "data": [uint32, ...]}`` (new-style typed keys and raw uint32 keys)."""
  key = jax.numpy.asarray(key) if not isinstance(key, jax.Array) else key
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    impl = str(jax.random.key_impl(key))
    data = np.asarray(jax.random.key_data(key))
  else:
    impl, data = "raw", np.asarray(key)
  return {"impl": impl, "data": [int(v) for v in data.reshape(-1)]}


def default_dtype(shape: tuple[int, ...]) -> str:
  """uint8 for NHWC images (``[H, W, 1|3]`` per sample), float32 otherwise."""
  return "uint8" if len(shape) == 3 and shape[-1] in (1, 3) else "float32"


def _encode(x: np.ndarray, dtype: str) -> np.ndarray:
  if dtype == "uint8":   # EDM's saved PNGs and jaxgen.eval.fid.quantize: clip(127.5 x + 128) truncated
    return np.clip(np.asarray(x, np.float32) * np.float32(127.5) + np.float32(128), 0, 255).astype(np.uint8)
  return np.asarray(x, np.float32)


def decode(x: np.ndarray) -> np.ndarray:
  """Stored samples as float32 (uint8 images back to [−1, 1]: (u − 127.5)/127.5, for pictures only)."""
  x = np.asarray(x)
  return (x.astype(np.float32) - 127.5) / 127.5 if x.dtype == np.uint8 else x.astype(np.float32)


def _atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
  """``write(file)`` into ``path`` atomically: a local temporary file, fsynced and renamed over ``path``
  (removed again when writing fails), or one upload to a URL (atomic on GCS)."""
  if fs.is_remote(path):
    buf = io.BytesIO() if "b" in mode else io.StringIO()
    write(buf)
    data = buf.getvalue()
    fs.write_bytes(path, data if isinstance(data, bytes) else data.encode("utf-8"))
    return
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def _write_manifest(directory: str, manifest: dict) -> None:
  text = json.dumps(manifest, indent=1, sort_keys=True)
  _atomic_write(fs.join(directory, MANIFEST), lambda f: f.write(text), mode="w")


def read_manifest(directory: str) -> dict:
  """The manifest of a sample set (``ConfigError`` when ``directory`` holds none)."""
  path = fs.join(directory, MANIFEST)
  try:
    m = json.loads(fs.read_text(path))
  except FileNotFoundError:
    raise ConfigError(f"{directory} holds no {MANIFEST}, so it is not a sample set: pass the directory "
                      "that --mode sample wrote (workdir/samples/<run-id>).") from None
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path} is unreadable ({e}): remove the directory and rerun --mode sample.") from None
  if not isinstance(m, dict) or m.get("format") != FORMAT:
    raise ConfigError(f"{path} is not a format-{FORMAT} sample manifest: remove the directory and rerun "
                      "--mode sample.")
  return m


def _chunk_ok(path: str, count: int, shape: tuple[int, ...] | None, dtype: str | None) -> bool:
  """Whether ``path`` is a readable .npy of at least ``count`` samples of ``shape``/``dtype`` (a set that
  was later asked for fewer samples keeps its longer last chunk; the reader takes the first ``count``)."""
  try:
    with fs.open_file(path, "rb") as f:   # the .npy header and the file size: no data read
      version = np.lib.format.read_magic(f)
      read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
      a_shape, _, a_dtype = read(f)
      start = f.tell()
      size = f.seek(0, 2)
  except (OSError, ValueError, EOFError):
    return False
  if not a_shape or a_shape[0] < count or (shape is not None and tuple(a_shape[1:]) != tuple(shape)):
    return False
  if dtype is not None and a_dtype != np.dtype(dtype):
    return False
  return size - start >= a_dtype.itemsize * int(np.prod(a_shape, dtype=np.int64))   # (not truncated)


def _mismatch(old: dict, new: dict) -> list[str]:
  """Fields of a manifest that differ (``identity.<key>`` for the identity's keys)."""
  out = []
  for k in ("key", "chunk_size", "dtype", "shape"):
    if new.get(k) is not None and old.get(k) is not None and old[k] != new[k]:
      out.append(k)
  oi, ni = old.get("identity", {}), new.get("identity", {})
  for k in sorted(set(oi) | set(ni)):
    if k != "config" and oi.get(k) != ni.get(k):
      out.append(f"identity.{k} ({oi.get(k)!r} -> {ni.get(k)!r})")
  if oi.get("config_hash") != ni.get("config_hash") and isinstance(oi.get("config"), dict):
    a, b = _flat(oi["config"]), _flat(ni.get("config") or {})
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
    if keys:
      out.append("config keys " + ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else ""))
  return out


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _check_disk(directory: str, need: int) -> None:
  if need <= 0:
    return
  if fs.is_remote(directory):
    return   # (an object store has no free space to ask for)
  probe = directory
  while not os.path.exists(probe) and os.path.dirname(probe) != probe:   # (not created yet)
    probe = os.path.dirname(probe)
  free = shutil.disk_usage(probe).free
  want = int(need * (1 + _MARGIN_FRACTION)) + _MARGIN_BYTES
  if want > free:
    raise ConfigError(
        f"the samples still to write need {need / 2**30:.2f} GiB (+ margin: {want / 2**30:.2f} GiB) but "
        f"{directory} has {free / 2**30:.2f} GiB free: free space there, write elsewhere (another "
        "--workdir copy of the run), or lower --num_samples.")


def _progress(total: int, initial: int, enabled: bool):
  from tqdm import tqdm  # noqa: PLC0415

  return tqdm(total=total, initial=initial, desc="samples", unit="img", dynamic_ncols=True,
              disable=not enabled)


def write_samples(sample_fn: Callable, directory: str, num: int, key, *, identity: dict | None = None,
                  chunk_size: int = 1000, dtype: str | None = None, grid: int = 64, progress: bool = True,
                  sample_shape: tuple[int, ...] | None = None, process_index: int | None = None,
                  process_count: int | None = None, stop: Callable[[int], bool] | None = None) -> SampleSet:
  """Draws samples ``[0, num)`` with ``sample_fn(key, n, start_index)`` into ``directory`` in chunks,
  skipping the chunks already complete there; returns the ``SampleSet``. See docs/sampling.md.

  ``sample_shape`` (per sample) lets the free-space check run before the first draw of a new set;
  without it the check runs after the first chunk is drawn and before anything is written.
  ``stop(i)``, asked after the i-th chunk drawn by this call is written (the trainer passes its SIGTERM
  flag; on several processes it must answer alike on all), ends the call early: the returned set has
  ``complete=False`` and a rerun finishes it.
  """
  num, chunk_size = int(num), int(chunk_size)
  if num < 1:
    raise ConfigError(f"--num_samples={num} is impossible: pass a positive number.")
  if chunk_size < 1:
    raise ConfigError(f"the sample chunk size {chunk_size} is impossible: pass a positive "
                      "--sample_chunk_size.")
  if dtype is not None and dtype not in ("uint8", "float32"):
    raise ConfigError(f"sample dtype {dtype!r} is unknown: use 'uint8' (images) or 'float32'.")
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  chief = pi == 0
  directory = fs.abspath(directory)
  num_chunks = -(-num // chunk_size)
  new = {"format": FORMAT, "num": num, "chunk_size": chunk_size, "num_chunks": num_chunks,
         "dtype": dtype, "shape": list(sample_shape) if sample_shape is not None else None,
         "key": key_to_json(key), "identity": json.loads(json.dumps(identity or {})),
         "device_count": jax.device_count(), "complete": False, "num_complete": 0}

  # Up front, before any draw or write: the directory's own set must be this one.
  old = None
  names = fs.listdir(directory)
  if MANIFEST in names:
    old = read_manifest(directory)
    diff = _mismatch(old, new)
    if diff:
      raise ConfigError(
          f"{directory} holds samples of another run ({'; '.join(diff)} differ from its {MANIFEST}): pass "
          "another --sample_run name for a new set, or remove that directory.")
    new["dtype"] = new["dtype"] or old.get("dtype")
    new["shape"] = new["shape"] or old.get("shape")
    if old.get("device_count") not in (None, new["device_count"]) and chief:
      log.warning("%s was begun on %s devices, this run has %d: its new chunks agree with those to float "
                  "round-off, not bit for bit (docs/sampling.md).", directory, old["device_count"],
                  new["device_count"])
  elif any(n.startswith("chunk_") and n.endswith(".npy") for n in names):
    raise ConfigError(f"{directory} holds chunk files but no {MANIFEST}: remove the directory (its samples "
                      "cannot be attributed to a run) and rerun.")
  shape = tuple(new["shape"]) if new["shape"] is not None else None
  if chief:
    for stale in (n for n in names if ".tmp" in n):   # left by a killed writer
      with contextlib.suppress(OSError):
        fs.remove(fs.join(directory, stale))

  # Which chunks are complete: process 0 decides, the others follow (one shared list).
  done = np.zeros((num_chunks,), np.int32)
  if chief:
    for k in range(num_chunks):
      done[k] = _chunk_ok(chunk_path(directory, k), _chunk_count(num, chunk_size, k), shape, new["dtype"])
  if pc > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    done = np.asarray(multihost_utils.broadcast_one_to_all(done))
  todo = [k for k in range(num_chunks) if not done[k]]
  complete = sum(_chunk_count(num, chunk_size, k) for k in range(num_chunks) if done[k])

  def bytes_to_write(shape, dtype):
    per = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return per * sum(_chunk_count(num, chunk_size, k) for k in todo)

  checked = False
  if chief and todo and shape is not None:
    _check_disk(directory, bytes_to_write(shape, new["dtype"] or default_dtype(shape)))
    checked = True
  if chief and todo and old is not None:   # a larger num or chunks to redo: the manifest says so first
    _write_manifest(directory, dict(new, dtype=new["dtype"] or default_dtype(shape), shape=list(shape)))

  bar = _progress(num, complete, progress and chief)
  t0 = time.monotonic()
  try:
    for i, k in enumerate(todo):
      lo, count = k * chunk_size, _chunk_count(num, chunk_size, k)
      x = np.asarray(sample_fn(key, count, lo))
      if x.shape[0] != count:
        raise ValueError(f"sample_fn returned {x.shape[0]} samples for n={count}.")
      got = tuple(x.shape[1:])
      if shape is not None and got != shape:
        raise ConfigError(f"the samples have shape {got}, the set in {directory} {shape}: pass another "
                          "--sample_run name for a new set, or remove that directory.")
      if shape is None:
        shape = got
        new["shape"] = list(shape)
      new["dtype"] = new["dtype"] or default_dtype(shape)
      if chief:
        if not checked:
          _check_disk(directory, bytes_to_write(shape, new["dtype"]))
          checked = True
        if i == 0 and old is None:   # the first write of a new set
          fs.makedirs(directory)
          _write_manifest(directory, new)
        enc = _encode(x, new["dtype"])
        _atomic_write(chunk_path(directory, k), lambda f, enc=enc: np.save(f, enc, allow_pickle=False))
      complete += count
      bar.update(count)
      if not progress and chief:
        log.info("samples: %d of %d (%.1f s)", complete, num, time.monotonic() - t0)
      if stop is not None and i + 1 < len(todo) and stop(i + 1):
        return SampleSet(directory=directory, num=num, chunk_size=chunk_size, dtype=new["dtype"],
                         shape=shape, manifest=fs.join(directory, MANIFEST), png=None, written=i + 1,
                         skipped=num_chunks - len(todo), complete=False, num_complete=complete)
  finally:
    bar.close()
  if shape is None:   # nothing drawn: every chunk was complete
    shape = tuple(new["shape"] or _load_chunk(chunk_path(directory, 0)).shape[1:])
    new["shape"] = list(shape)
  new["dtype"] = new["dtype"] or default_dtype(shape)
  new.update(complete=True, num_complete=num)
  png = None
  if chief:
    _write_manifest(directory, new)
    png = _write_grid(directory, min(int(grid), num))
  return SampleSet(directory=directory, num=num, chunk_size=chunk_size, dtype=new["dtype"], shape=shape,
                   manifest=fs.join(directory, MANIFEST), png=png, written=len(todo),
                   skipped=num_chunks - len(todo), complete=True, num_complete=num)


def _write_grid(directory: str, n: int) -> str | None:
  if n <= 0:
    return None
  from jaxgen import logging as log_lib  # noqa: PLC0415 (PIL/matplotlib only when a grid is drawn)

  first = decode(load_samples(directory, limit=n))
  path = fs.join(directory, GRID_PNG)
  if fs.is_remote(path):   # one upload: atomic
    return log_lib.save_samples_png(first, path)
  tmp = os.path.join(directory, f"grid{os.getpid()}.tmp.png")
  try:
    out = log_lib.save_samples_png(first, tmp)
    if out is None:
      return None
    os.replace(tmp, path)
  finally:
    with contextlib.suppress(OSError):
      os.remove(tmp)
  return path


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------

def num_complete(directory: str) -> int:
  """How many samples from index 0 on are present and complete (the leading run of complete chunks)."""
  m = read_manifest(directory)
  num, c = int(m["num"]), int(m["chunk_size"])
  shape, dtype = m.get("shape"), m.get("dtype")
  n = 0
  for k in range(-(-num // c)):
    count = _chunk_count(num, c, k)
    if not _chunk_ok(chunk_path(directory, k), count, shape, dtype):
      break
    n += count
  return n


def iterate_samples(directory: str, batch_size: int = 500, limit: int | None = None) -> Iterator[np.ndarray]:
  """Batches ``[b, ...]`` of the stored samples ``[0, limit)`` in index order (as stored: uint8 images or
  float32), one chunk in memory at a time. ``ConfigError`` when a chunk up to ``limit`` is missing."""
  m = read_manifest(directory)
  num, c = int(m["num"]), int(m["chunk_size"])
  limit = num if limit is None else int(limit)
  if not 0 < limit <= num:
    raise ConfigError(f"limit={limit} is outside the {num} samples of {directory}: pass 1..{num}.")
  if int(batch_size) < 1:
    raise ConfigError(f"batch_size={batch_size} is impossible: pass a positive batch size.")
  shape, dtype = m.get("shape"), m.get("dtype")
  pending: list[np.ndarray] = []
  have = 0
  for k in range(-(-limit // c)):
    path = chunk_path(directory, k)
    if not _chunk_ok(path, _chunk_count(num, c, k), shape, dtype):
      raise ConfigError(f"{path} is missing or incomplete ({k * c} of {limit} samples readable): rerun the "
                        "--mode sample command that wrote this set to complete it.")
    x = _load_chunk(path)[:min(_chunk_count(num, c, k), limit - k * c)]
    pending.append(x)
    have += x.shape[0]
    while have >= batch_size:
      cat = np.concatenate(pending) if len(pending) > 1 else pending[0]
      yield cat[:batch_size]
      pending, have = [cat[batch_size:]], have - batch_size
  if have:
    yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _load_chunk(path: str) -> np.ndarray:
  if fs.is_remote(path):
    return np.load(io.BytesIO(fs.read_bytes(path)), allow_pickle=False)
  return np.load(path, allow_pickle=False)


def load_samples(directory: str, limit: int | None = None) -> np.ndarray:
  """Every stored sample ``[0, limit)`` as one array (as stored); for small sets and tests."""
  m = read_manifest(directory)
  limit = int(m["num"]) if limit is None else int(limit)
  return np.concatenate(list(iterate_samples(directory, batch_size=max(limit, 1), limit=limit)))


def fid_of_directory(directory: str, inception_weights: str, fid_ref: str, *, batch_size: int = 500,
                     limit: int | None = None, kid_subsets: int = 0, progress: bool = True) -> dict:
  """FID (and IS; KID when ``kid_subsets`` and the reference holds features) of a stored sample set
  against ``fid_ref`` (``jaxgen.eval.fid`` statistics) with the TF-FID Inception ``inception_weights``.

  The same computation as ``jaxgen.eval.fid.evaluate_samples`` on the same samples (uint8 images are
  what its ``quantize`` gives Inception); returns ``dict(fid, is, is_std, num_samples[, kid, kid_std])``.
  """
  from jaxgen.eval import fid as fid_lib  # noqa: PLC0415

  m = read_manifest(directory)
  shape = tuple(m.get("shape") or ())
  if len(shape) != 3 or shape[-1] not in (1, 3):
    raise ConfigError(f"the samples in {directory} have shape {list(shape)}, not [H, W, 1|3] images: FID "
                      "needs image samples.")
  n = int(m["num"]) if limit is None else int(limit)
  ref = fid_lib.load_stats(fid_ref)
  if not inception_weights or not os.path.isfile(inception_weights):
    raise ConfigError(f"Inception weights {inception_weights!r} not found: make them with `python -m "
                      "jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth OUT.npz` and pass OUT.")
  ext = fid_lib.cached_extractor(str(inception_weights), int(batch_size))
  chunks = iter(iterate_samples(directory, batch_size=batch_size, limit=n))

  def sample_fn(key, count, start):   # the stored batches, in order, as evaluate_samples asks for them
    del key, start
    x = next(chunks)
    if x.shape[0] != count:
      raise ValueError(f"stored batch of {x.shape[0]} samples for a request of {count}.")
    return x   # (grey images are tiled to RGB by the Inception preprocessing, as in memory)

  out = fid_lib.evaluate_samples(sample_fn, None, n, ext, ref, batch_size=batch_size, progress=progress,
                                 kid_subsets=kid_subsets)
  out["num_samples"] = n
  return out


def main(argv=None) -> int:
  """``python -m jaxgen.sampling fid DIR --inception_weights W --fid_ref REF`` | ``info DIR``."""
  import argparse  # noqa: PLC0415

  p = argparse.ArgumentParser(prog="python -m jaxgen.sampling", description=__doc__.split("\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  f = sub.add_parser("fid", help="FID/IS of a finished sample set")
  f.add_argument("directory")
  f.add_argument("--inception_weights", required=True, help=".npz from python -m jaxgen.convert.inception")
  f.add_argument("--fid_ref", required=True, help="statistics from python -m jaxgen.eval.fid")
  f.add_argument("--batch_size", type=int, default=500)
  f.add_argument("--limit", type=int, default=None)
  f.add_argument("--kid_subsets", type=int, default=0)
  i = sub.add_parser("info", help="the manifest and the number of complete samples")
  i.add_argument("directory")
  a = p.parse_args(argv)
  try:
    if a.cmd == "fid":
      r = fid_of_directory(a.directory, a.inception_weights, a.fid_ref, batch_size=a.batch_size,
                           limit=a.limit, kid_subsets=a.kid_subsets)
      print(json.dumps({k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}))
    else:
      m = read_manifest(a.directory)
      m.get("identity", {}).pop("config", None)
      print(json.dumps(dict(m, present=num_complete(a.directory)), sort_keys=True))
  except (ConfigError, FileNotFoundError) as e:
    print(f"jaxgen.sampling: error: {' '.join(str(e).split())}", flush=True)
    return 2
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
