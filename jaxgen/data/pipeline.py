"""Grain pipelines shared by every data set: train stream, eval pass, index-addressed streams.

Layout of the training stream (one random-access source of N examples, per-process batch B,
P processes, global batch G = B·P):

1. ``MapDataset.source(src).shuffle(s).repeat()``: the global stream; position g reads example
   ``perm_e[g mod N]`` with e = ⌊g/N⌋ and ``perm_e`` grain's index shuffle seeded with s + e, so every
   epoch is a different permutation and the stream is identical across runs (s derives from the seed).
2. ``random_map(transform)``: augmentation randomness is a Philox stream keyed by (seed, g), so it is a
   function of (seed, epoch, position in the epoch) only.
3. ``[p::P]``: process p reads global positions g = i·P + p, i = 0, 1, …. Global batch k is positions
   [kG, (k+1)G) whatever P is, and the processes' slices are disjoint and cover it.
4. ``batch(B)`` on the map-style data set, so batch k is fixed before any thread or worker reads it,
   then ``to_iter_dataset`` with ``num_threads`` prefetch threads (and ``mp_prefetch`` when
   ``num_workers`` > 0). The iterator's ``get_state()`` is ``{'next_index': k}``, the index of the
   next batch, for any thread/worker count; ``set_state()`` restores it exactly (``PositionedStream``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import grain

from jaxgen.errors import ConfigError

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class ReadConfig:
  num_threads: int = 4     # grain prefetch threads per process
  prefetch: int = 8        # batches buffered ahead per process
  num_workers: int = 0     # grain worker processes (0: read in the main process)


class ArraySource:
  """Random-access source over equal-length arrays: record i = {key: array[i]}."""

  def __init__(self, arrays: dict[str, np.ndarray]):
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
      raise ValueError(f"ArraySource arrays have different lengths {sorted(lengths)}.")
    self._arrays = arrays
    self._n = lengths.pop()

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in self._arrays.items()}


def derive_seed(seed: int, tag: int) -> int:
  """A 32-bit seed for one use (``tag``) of the user's seed; unrelated across seeds and tags."""
  return int(np.random.SeedSequence([int(seed), int(tag)]).generate_state(1)[0])


def check_layout(batch_size: int, process_index: int, process_count: int) -> None:
  if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
    raise ConfigError(f"batch_size must be a positive integer (the per-process batch), got {batch_size!r}.")
  if not (isinstance(process_count, (int, np.integer)) and process_count >= 1
          and 0 <= process_index < process_count):
    raise ValueError(f"process_index={process_index!r} must lie in [0, process_count={process_count!r}); "
                     "pass jax.process_index() and jax.process_count().")


def _iterate(ds: "grain.MapDataset", read: ReadConfig) -> "grain.IterDataset":
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=read.num_threads,
                                            prefetch_buffer_size=max(read.prefetch, 1)))
  if read.num_workers > 0:
    from absl import flags  # noqa: PLC0415
    if not flags.FLAGS.is_parsed():   # grain's workers read absl flags; outside an absl app use defaults
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=read.num_workers))
  return it


class PositionedStream(grain.IterDataset):
  """``IterDataset`` over a map-style data set of batches whose state is only the next batch index.

  ``iter(ds).get_state()`` is ``{'next_index': k}`` whatever the thread or worker counts, so a
  checkpoint restores the same position after ``data.num_threads`` / ``data.num_workers`` change
  (grain's own ``mp_prefetch`` state records per-worker positions). ``set_state`` restarts reading at
  batch k: ``batches[k:]`` through ``to_iter_dataset`` (and ``mp_prefetch``).
  """

  def __init__(self, batches: "grain.MapDataset", read: ReadConfig):
    super().__init__()
    self._batches, self._read = batches, read

  def __iter__(self) -> "grain.DatasetIterator":
    return _PositionedIterator(self._batches, self._read)

  def __str__(self) -> str:
    return f"PositionedStream({self._read})"


class _PositionedIterator(grain.DatasetIterator):

  def __init__(self, batches, read: ReadConfig):
    super().__init__()
    self._batches, self._read = batches, read
    self._next = 0
    self._inner = None

  def _open(self):
    if self._inner is None:
      self._inner = iter(_iterate(self._batches[self._next:], self._read))
    return self._inner

  def __next__(self):
    self._assert_not_closed()
    batch = next(self._open())
    self._next += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"next_index": self._next}

  def set_state(self, state: dict[str, Any]) -> None:
    if self._inner is not None:
      self._inner.close()
      self._inner = None
    self._next = int(state["next_index"])

  def start_prefetch(self) -> None:
    self._open().start_prefetch()

  def close(self) -> None:
    if self._inner is not None:
      self._inner.close()
      self._inner = None
    super().close()


def stack(records: list[dict[str, Any]]) -> Batch:
  out = {}
  for k in records[0]:
    shapes = {np.shape(r[k]) for r in records}
    if len(shapes) > 1:
      raise ConfigError(f"Examples of one batch have different {k!r} shapes {sorted(shapes)}; set "
                        "data.resolution (and data.crop='center') so every image gets the same size.")
    out[k] = np.stack([r[k] for r in records])
  return out


def train_stream(source, transform: Callable[[dict, np.random.Generator], dict], *, batch_size: int,
                 seed: int, process_index: int, process_count: int, read: ReadConfig) -> "grain.IterDataset":
  """Infinite, per-epoch reshuffled, per-process batches of ``transform(source[...], rng)``."""
  check_layout(batch_size, process_index, process_count)
  if len(source) == 0:
    raise ConfigError("The training split is empty; check data.split.")
  ds = grain.MapDataset.source(source).shuffle(seed=derive_seed(seed, 1)).repeat()
  ds = ds.random_map(transform, seed=derive_seed(seed, 2))
  ds = ds[process_index::process_count]
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=stack)
  return PositionedStream(ds, read)


def eval_stream(source, transform: Callable[[dict], dict], *, batch_size: int, process_index: int,
                process_count: int, read: ReadConfig, limit: int = 0) -> "grain.IterDataset":
  """One pass over ``source`` (its first ``limit`` examples if ``limit`` > 0), padded to whole batches.

  Process p gets global positions g = i·P + p of the padded pass of ⌈N/G⌉·G positions; positions
  g ≥ N hold zeros with ``mask`` 0 (real examples have ``mask`` 1). Every process yields the same
  number of batches.
  """
  check_layout(batch_size, process_index, process_count)
  n = len(source) if limit <= 0 else min(limit, len(source))
  if n == 0:
    raise ConfigError("The evaluation split is empty; check data.eval_split.")
  g = batch_size * process_count
  total = math.ceil(n / g) * g
  first = transform(source[0])
  pad = {k: np.zeros_like(np.asarray(v)) for k, v in first.items()}
  pad["mask"] = np.float32(0.0)

  def fetch(i: int) -> dict:
    if i >= n:
      return pad
    return {**transform(source[i]), "mask": np.float32(1.0)}

  ds = grain.MapDataset.range(total)[process_index::process_count].map(fetch)
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=stack)
  return _iterate(ds, read)


def indexed_stream(batch_fn: Callable[[np.ndarray], Batch], *, batch_size: int, process_index: int,
                   process_count: int, read: ReadConfig) -> "grain.IterDataset":
  """Infinite stream whose batch k is ``batch_fn(global positions)``, positions (kB + j)·P + p.

  For generated data (2-D toys): batch k of process p is a function of (k, p, P) and whatever
  ``batch_fn`` closes over (the seed), so the stream needs no source and still resumes exactly.
  """
  check_layout(batch_size, process_index, process_count)
  offsets = np.arange(batch_size, dtype=np.int64)
  limit = (sys.maxsize // (batch_size * process_count)) - 1

  def make(k: int) -> Batch:
    return batch_fn((k * batch_size + offsets) * process_count + process_index)

  return PositionedStream(grain.MapDataset.range(limit).map(make), read)
