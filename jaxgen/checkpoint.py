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
can write that step again.
"""

from __future__ import annotations

import dataclasses
import json
import logging as _pylogging
import os
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

log = _pylogging.getLogger("jaxgen")


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
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def saved_steps(workdir: str) -> list[int]:
  """Finalized checkpoint steps in ``workdir`` (ascending), without creating anything."""
  d = checkpoint_dir(workdir)
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
    self.workdir = os.path.abspath(workdir)
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
      try:
        state, data_state = self.restore(step, abstract_state)
        # Reading is lazy in places: touch every leaf so corrupt bytes surface here.
        jax.block_until_ready(state)
      except Exception as e:  # noqa: BLE001 - any failure to read means: try an older step
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

  def _quarantine(self, step: int) -> None:
    if jax.process_index() == 0:
      src = os.path.join(self.directory, str(step))
      dst_root = os.path.join(self.workdir, "checkpoints_corrupt")
      os.makedirs(dst_root, exist_ok=True)
      dst = os.path.join(dst_root, f"{step}.{int(time.time())}")
      if os.path.exists(src):
        shutil.move(src, dst)
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
