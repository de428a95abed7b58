"""Checkpoints of a run with orbax: the train state plus the data iterator's position.

Layout: ``workdir/checkpoints/<step>/state`` (the ``TrainState`` pytree: params, opt_state, EMA,
step, rng, model_state; orbax ``StandardSave``, written asynchronously) and
``workdir/checkpoints/<step>/data/process_<i>-of-<n>.json`` (each process's grain iterator state,
``get_state()``, as JSON). Orbax writes a step into a temporary directory and renames it when
complete, so a run killed mid-save leaves the previous checkpoints untouched.

Retention: the newest ``keep`` checkpoints, plus every multiple of ``keep_every`` (0: none).

``restore_latest`` walks the steps newest first; a checkpoint that cannot be read (truncated or
corrupted files) is skipped with a warning naming the step and the error, and, when
``quarantine=True`` (training), moved to ``workdir/checkpoints_corrupt/<step>`` so the resumed run
can write that step again. A checkpoint whose tree structure or shapes differ from the state the config
builds (a changed model) is not corrupt: ``restore_latest`` raises ``ConfigError`` naming the differing
leaves and leaves every file in place.

One run per workdir: ``WorkdirLock`` is an exclusive ``flock`` on ``workdir/jaxgen.lock`` (holding the
holder's pid, host and start time for the message), taken by training before its first write. The
operating system releases it when the process ends, however it ends, so a stale lock file of a dead
process never blocks a new run. On GCS (``gs://`` workdirs, docs/pods.md) there is no flock: the lock is
the object ``workdir/jaxgen.lock`` created under a generation precondition and kept alive by a
heartbeat (``jaxgen.fs.ObjectLock``); a dead holder's lock turns stale after ``JAXGEN_GCS_LOCK_STALE_S``
seconds (default 120; at once for a dead process on the same machine).

Paths go through ``jaxgen.fs``, so a ``gs://bucket/run`` workdir takes the same code as a local one
(orbax writes there through etils.epath and tensorstore). On GCS, orbax writes a step in place and marks
it complete with ``<step>/commit_success.txt`` instead of renaming a temporary directory; a step
without that file is unfinished and is not listed.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging as _pylogging
import os
import socket
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxgen import fs
from jaxgen import sharding as shd
from jaxgen.errors import ConfigError

log = _pylogging.getLogger("jaxgen")

LOCK_FILE = "jaxgen.lock"


class WorkdirLock:
  """Exclusive lock of a workdir for one training process (``acquire`` / ``release``).

  ``fcntl.flock`` on an open file of ``workdir/jaxgen.lock``: a second holder (another process, or
  another ``WorkdirLock`` in this one) is refused at once with ``ConfigError`` naming the holder. The
  lock dies with its process, so a lock file left by a killed run does not block; the file itself
  stays (deleting it would race with a process about to lock it). A ``gs://`` workdir gets a
  ``jaxgen.fs.ObjectLock`` instead (heartbeat ``JAXGEN_GCS_LOCK_HEARTBEAT_S`` = 30 s, stale after
  ``JAXGEN_GCS_LOCK_STALE_S`` = 120 s), with the same messages.
  """

  def __init__(self, workdir: str):
    self.path = fs.join(fs.abspath(workdir), LOCK_FILE)
    self._fd: int | None = None
    self._object: fs.ObjectLock | None = None
    if fs.is_remote(self.path):
      self._object = fs.ObjectLock(
          self.path, heartbeat_s=float(os.environ.get("JAXGEN_GCS_LOCK_HEARTBEAT_S", 30)),
          stale_s=float(os.environ.get("JAXGEN_GCS_LOCK_STALE_S", 120)))

  def acquire(self) -> "WorkdirLock":
    if self._object is not None:
      self._object.acquire()
      return self
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      raise ConfigError(f"--workdir {os.path.dirname(self.path)} is in use by {holder}: wait for that run "
                        "to end (or stop it), or pass another --workdir.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f"pid {os.getpid()} on host {socket.gethostname()} (since "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')})\n").encode(), 0)
    self._fd = fd
    return self

  @property
  def lost(self) -> bool:
    """True once another trainer has taken this lock over (GCS only: a holder stalled past the stale
    timeout); an ``flock`` cannot be lost while its process lives."""
    return self._object is not None and self._object.lost

  def release(self) -> None:
    if self._object is not None:
      self._object.release()
    if self._fd is not None:
      try:
        os.ftruncate(self._fd, 0)
      except OSError:
        pass
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _leaf_path(path) -> str:
  """A tree path as dotted names, the same for a dataclass/namedtuple state and orbax's dict/list tree."""
  return shd.path_name(path, ".")


def _shapes(tree) -> dict[str, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
  return {_leaf_path(p): tuple(getattr(x, "shape", ()) or ()) for p, x in leaves if x is not None}


def _json_default(o):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, bytes):
    return o.decode()
  raise TypeError(f"data iterator state holds a {type(o).__name__}, which JSON cannot store.")


class DataStateHandler(ocp.CheckpointHandler):
  """Per-process JSON file holding one data iterator state (a dict captured at save time)."""

  def save(self, directory: epath.Path, args: "DataStateSave"):
    name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    (epath.Path(directory) / name).write_text(json.dumps(args.state, default=_json_default))

  def restore(self, directory: epath.Path, args: "DataStateRestore | None" = None) -> Any:
    path = epath.Path(directory) / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    if not path.exists():
      raise FileNotFoundError(f"{path} is missing (was the run saved with another process count?)")
    return json.loads(path.read_text())

  def metadata(self, directory):
    return None

  def finalize(self, directory):
    pass

  def close(self):
    pass


@ocp.args.register_with_handler(DataStateHandler, for_save=True)
@dataclasses.dataclass
class DataStateSave(ocp.args.CheckpointArgs):
  state: Any


@ocp.args.register_with_handler(DataStateHandler, for_restore=True)
@dataclasses.dataclass
class DataStateRestore(ocp.args.CheckpointArgs):
  pass


def checkpoint_dir(workdir: str) -> str:
  return fs.join(fs.abspath(workdir), "checkpoints")


def saved_steps(workdir: str) -> list[int]:
  """Finalized checkpoint steps in ``workdir`` (ascending), without creating anything.

  Locally a step is final once orbax renamed its temporary directory to ``<step>``; on an object store
  (no rename) once ``<step>/commit_success.txt`` exists."""
  d = checkpoint_dir(workdir)
  if fs.is_remote(d):
    return sorted(int(n) for n in fs.listdir(d)
                  if n.isdigit() and fs.exists(fs.join(d, n, "commit_success.txt")))
  if not os.path.isdir(d):
    return []
  return sorted(int(n) for n in os.listdir(d) if n.isdigit() and os.path.isdir(os.path.join(d, n)))


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for the trainer.

  ``save(step, state, data_state)`` is asynchronous (the arrays are copied to host before it
  returns, so the caller may donate ``state`` to the next step); ``wait()`` blocks until every
  pending save is on disk.
  """

  def __init__(self, workdir: str, *, keep: int = 3, keep_every: int = 0, read_only: bool = False,
               async_save: bool = True):
    self.workdir = fs.abspath(workdir)
    self.directory = checkpoint_dir(workdir)
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=0 if read_only else 1,
        max_to_keep=None if read_only else max(int(keep), 1),
        keep_period=None if read_only else (int(keep_every) or None),
        create=not read_only,
        read_only=read_only,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=not read_only,
    )
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: Any, data_state: Any) -> None:
    if step in self.manager.all_steps():
      return  # e.g. the final save of a run resumed at its last step
    self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=DataStateSave(data_state)), force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, Any]:
    out = self.manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=DataStateRestore()))
    return out["state"], out["data"]

  def restore_latest(self, abstract_state: Any, *, quarantine: bool = False
                     ) -> tuple[int, Any, Any] | None:
    """(step, state, data_state) of the newest readable checkpoint, or None when there is none.

    Unreadable checkpoints are skipped newest first with a warning (and moved aside when
    ``quarantine``). Raises when checkpoints exist but none can be read.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    skipped = []
    for step in steps:
      # Leaves of differing shapes are certain from the metadata alone: refuse before reading arrays.
      self._refuse_mismatch(step, self.mismatch(step, abstract_state, shapes_only=True))
      try:
        state, data_state = self.restore(step, abstract_state)
        # Reading is lazy in places: touch every leaf so corrupt bytes surface here.
        jax.block_until_ready(state)
      except Exception as e:  # noqa: BLE001 - any failure to read means: try an older step
        self._refuse_mismatch(step, self.mismatch(step, abstract_state), e)
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        log.warning("checkpoint at step %d in %s is unreadable (%s); skipping it and falling back "
                    "to an older checkpoint.", step, self.directory, reason)
        skipped.append(step)
        if quarantine:
          self._quarantine(step)
        continue
      if skipped:
        log.warning("resumed from step %d; skipped unreadable checkpoint(s) at step(s) %s.", step,
                    ", ".join(map(str, skipped)))
      return step, state, data_state
    if skipped:
      raise RuntimeError(f"every checkpoint in {self.directory} is unreadable (steps "
                         f"{', '.join(map(str, skipped))}); move that folder away to start afresh.")
    return None

  def _refuse_mismatch(self, step: int, mismatch: str, cause: BaseException | None = None) -> None:
    if mismatch:  # a different model, not a corrupt file: refuse, move nothing
      raise ConfigError(
          f"the checkpoint of step {step} in {self.directory} does not fit the state this config "
          f"builds ({mismatch}); resume with the config that wrote it, or pass another --workdir.") from cause

  def mismatch(self, step: int, abstract_state: Any, most: int = 6, shapes_only: bool = False) -> str:
    """The leaves whose presence or shape differ between checkpoint ``step`` and ``abstract_state``,
    as text ('' when they agree, or when the checkpoint's metadata is unreadable: then it is corrupt).
    ``shapes_only``: only leaves present in both with different shapes. Parameters (``params.``)
    are named first."""
    try:
      meta = ocp.StandardCheckpointHandler().metadata(epath.Path(self.directory) / str(step) / "state")
      saved = _shapes(getattr(meta, "tree", meta))
    except Exception:  # noqa: BLE001 - unreadable metadata: a corrupt checkpoint, not a mismatch
      return ""
    if not saved:
      return ""
    want = _shapes(abstract_state)
    order = lambda keys: sorted(keys, key=lambda k: (not k.startswith("params."), k))  # noqa: E731
    diffs = [f"{k}: {saved[k]} in the checkpoint, {want[k]} here" for k in order(saved.keys() & want.keys())
             if saved[k] != want[k]]
    if not shapes_only:
      diffs += [f"{k} only in the checkpoint" for k in order(saved.keys() - want.keys())]
      diffs += [f"{k} only in this config's state" for k in order(want.keys() - saved.keys())]
    more = f" and {len(diffs) - most} more" if len(diffs) > most else ""
    return "; ".join(diffs[:most]) + more

  def _quarantine(self, step: int) -> None:
    if jax.process_index() == 0:
      src = fs.join(self.directory, str(step))
      dst_root = fs.join(self.workdir, "checkpoints_corrupt")
      fs.makedirs(dst_root)
      dst = fs.join(dst_root, f"{step}.{int(time.time())}")
      if fs.exists(src):
        fs.move(src, dst)
        log.warning("moved the unreadable checkpoint of step %d to %s.", step, dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"jaxgen_quarantine_{step}")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
