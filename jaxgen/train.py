"""The one trainer: every family trains, evaluates and samples through these three functions.

  train_and_evaluate(config, workdir)   # train (resuming from workdir/checkpoints), evaluate, sample
  evaluate(config, workdir)             # restore the latest checkpoint and evaluate it
  sample(config, workdir, num)          # restore the latest checkpoint and write num samples
  summary(workdir)                      # where a run's results are and its headline numbers

A task (``jaxgen.tasks``) supplies pure ``init``/``train_step``/``evaluate``/``sample``; this module
supplies the rest: validation of the config and workdir before any work (``ConfigError``, one line
naming the cause and the fix, nothing in the workdir touched), the mesh of ``config.mesh`` (batch over
``'data'`` x ``'fsdp'``, state replicated or split by ``config.sharding.rules``: docs/pods.md "Sharded
state"; ``jax.jit`` with the state donated), the per-step key
``fold_in(wrap_key_data(state.rng), state.step)``, checkpoints and exact resume
(``jaxgen.checkpoint``), logging (``jaxgen.logging``), the non-finite guard, SIGTERM handling and
multi-host data sharding.

Errors: ``ConfigError`` (``jaxgen.errors.ConfigError``) is the user's fault and the only exception
the set-up turns into one line, besides the file-system errors on user paths (``FileNotFoundError``,
``NotADirectoryError``, ``IsADirectoryError``, ``PermissionError``). Anything else raised while
building the task or the data (a ``TypeError`` in a task's ``__init__``, ...) is a bug and keeps its
traceback.

Step rules (docs/design.md): ``step`` counts completed updates. Training is a loop of updates and
four periodic actions, each due by one rule (``Periodic(every, total).due(step)``: at the positive
multiples of ``every`` and at ``total = num_train_steps``; ``every = 0`` means only at the end):

  log         every ``log_every_steps``: metrics are means over the steps since the previous record
              (``lr`` is the learning rate of the last step; ``img_per_sec`` counts training steps
              only: the first step of a launch, which compiles, and the time spent in the other
              actions are not timed)
  checkpoint  every ``checkpoint_every_steps``, and on SIGTERM (then the run returns, or raises
              ``Preempted`` for the launcher, which exits 75; rerunning the same command resumes it)
  eval        every ``eval_every_steps``: ``task.evaluate`` (the config's evaluators)
  sample      every ``sample_every_steps`` (generative tasks, ``num_grid_samples > 0``): a grid in
              ``workdir/samples/step_<N>.png`` and in TensorBoard

The end of training runs every action once (``_finish``), also when the workdir already holds a
checkpoint at or after ``num_train_steps`` (then nothing trains: evaluation and samples only). The
metrics of one step form one record of ``metrics.jsonl``; the non-finite guard is checked before any
action, so a bad update is never saved.

Workdir layout: ``config.json`` (resolved config), ``metrics.jsonl``, ``tensorboard/``,
``checkpoints/<step>/``, ``samples/``, ``eval/step_<N>.json`` (every evaluation's metrics: training's
and ``--mode eval``'s), ``jaxgen.lock`` (one trainer per workdir: ``checkpoint.WorkdirLock``).

Order of a training launch: validate, build the state and trace the first step (nothing written
yet), lock the workdir, restore the newest readable checkpoint (a corrupt one is moved to
``checkpoints_corrupt/``; one of another model is refused, nothing moved), and only then write
``config.json``, ``metrics.jsonl`` (recreated with a warning if deleted mid-run) and the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import importlib
import json
import logging as _pylogging
import math
import os
import re
import shutil
import signal
import threading
import time
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import checkpoint as ckpt_lib
from jaxgen import config_schema
from jaxgen import fs
from jaxgen import logging as log_lib
from jaxgen import optim
from jaxgen import sharding as shd
from jaxgen import tasks as tasks_lib
from jaxgen.errors import ConfigError  # re-exported: train.ConfigError is jaxgen.errors.ConfigError
from jaxgen.tasks import base as task_base

log = _pylogging.getLogger("jaxgen")

# Keys that may change between a run and its resumption (they do not alter the computed params,
# except that schedules depending on num_train_steps are re-stretched: a warning says so): the
# cadences, the data pipeline's speed knobs and evaluation (the evaluators of evals.*).
# A prefix ending in '.' covers a whole block. (--mode eval / sample may change any key.)
RESUMABLE_KEYS = (
    "num_train_steps", "log_every_steps", "checkpoint_every_steps", "eval_every_steps",
    "sample_every_steps", "keep_checkpoints", "keep_checkpoint_every_steps", "distributed",
    "eval_batch_size", "num_grid_samples", "data.eval_split", "data.eval_size", "data.data_dir",
    "data.num_threads", "data.prefetch", "data.num_workers", "evals.",
    "model.init_from",   # read only by a fresh run (a checkpoint wins), so a resume may drop or change it
    # the device mesh and the state's sharding rules (docs/pods.md "Sharded state"): a checkpoint restores
    # onto any mesh, so a run may resume on another slice or fsdp size (config.json files written before
    # these keys existed resume too)
    "mesh.", "sharding.",
    # decoding options of the stage-2 transformer: --mode eval/sample may re-decode a finished run
    "task.temperature", "task.top_k", "task.top_p", "task.sample_batch_size",
    # Retired keys that config.json files written before the evaluators-by-config change hold:
    # task.eval.* (now evals.*) and the unused data.shuffle_buffer. Ignoring them lets those runs resume.
    "task.eval.", "data.shuffle_buffer",
)

# fold_in tags of the keys not tied to a training step (steps stay below 2**31 - 16).
_INIT_TAG, _EVAL_TAG, _SAMPLE_TAG = 2**31 - 1, 2**31 - 2, 2**31 - 3


class NonFiniteError(RuntimeError):
  """Training produced a non-finite loss or gradient; the run stopped without saving that state."""


class Preempted(RuntimeError):
  """SIGTERM stopped training after saving a checkpoint of ``step`` (``raise_on_preemption=True``)."""

  def __init__(self, step: int, workdir: str):
    super().__init__(f"received SIGTERM: saved the checkpoint of step {step} in {workdir}; the run is "
                     "unfinished: rerun the same command to resume it.")
    self.step = step


class DiskFullError(OSError):
  """No space left on the workdir's device; the checkpoints already complete stay resumable."""


def is_disk_full(e: BaseException) -> bool:
  """Whether ``e`` or an exception it was raised from or during is ENOSPC (orbax/tensorstore wrap it)."""
  seen = set()
  stack = [e]
  while stack:
    x = stack.pop()
    if x is None or id(x) in seen:
      continue
    seen.add(id(x))
    if isinstance(x, OSError) and x.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(x):
      return True
    stack += [x.__cause__, x.__context__, *getattr(x, "exceptions", ())]
  return False


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

# key: (type, lower bound, upper bound (exclusive) or None, what the bound means)
_INT, _FLOAT, _BOOL, _STR = "int", "float", "bool", "str"
_SCHEMA = {
    "seed": (_INT, 0, None),
    "batch_size": (_INT, 1, None),
    "num_train_steps": (_INT, 1, None),
    "log_every_steps": (_INT, 1, None),
    "checkpoint_every_steps": (_INT, 1, None),
    "eval_every_steps": (_INT, 0, None),
    "sample_every_steps": (_INT, 0, None),
    "keep_checkpoints": (_INT, 1, None),
    "keep_checkpoint_every_steps": (_INT, 0, None),
    "eval_batch_size": (_INT, 0, None),
    "num_grid_samples": (_INT, 0, None),
    "distributed": (_BOOL, None, None),
    "data.name": (_STR, None, None),
    "model.name": (_STR, None, None),
    "task.name": (_STR, None, None),
    "optimizer.name": (_STR, None, None),
    "optimizer.learning_rate": (_FLOAT, 0.0, None),
    "optimizer.b1": (_FLOAT, 0.0, 1.0),
    "optimizer.b2": (_FLOAT, 0.0, 1.0),
    "optimizer.eps": (_FLOAT, 0.0, None),
    "optimizer.momentum": (_FLOAT, 0.0, 1.0),
    "optimizer.weight_decay": (_FLOAT, 0.0, None),
    "optimizer.warmup_steps": (_INT, 0, None),
    "optimizer.clip_grad_norm": (_FLOAT, 0.0, None),
    "optimizer.grad_accum_steps": (_INT, 1, None),
    "optimizer.ema_halflife_kimg": (_FLOAT, 0.0, None),
    "optimizer.ema_rampup_ratio": (_FLOAT, 0.0, None),
    "optimizer.ema_decay": (_FLOAT, 0.0, 1.0),
    "data.resolution": (_INT, 0, None),
    "data.train_resolution": (_INT, 0, None),
    "data.crop_size": (_INT, 0, None),
    "model.dtype": (_STR, None, None),
}

# Image sides (data.resolution, ...) beyond this are refused: 4096 already aborts inside XLA on a
# 128 GiB host, and no model of jaxgen is defined above 1024.
_MAX_SIDE = 2048
_SIDE_KEYS = ("data.resolution", "data.train_resolution", "data.crop_size")
# Compute dtypes of model.dtype (params stay float32; float64 would need jax_enable_x64).
_DTYPES = ("float32", "bfloat16", "float16")
# Keys a config file may set beyond the skeleton (jaxgen.configs.base_config): read with a default.
_OPTIONAL_KEYS = ("optimizer.rms_initial_scale",)
# Blocks whose keys are not checked against the skeleton: the task's (its typed config checks them),
# the evaluations' (jaxgen.eval.evaluators checks them) and the model's constructor keywords.
_OPEN_BLOCKS = ("task.", "evals.", "model.overrides.")


def _check_value(path: str, value, kind: str, lo, hi) -> None:
  flag = f"--config.{path}"
  if kind == _INT:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
      raise ConfigError(f"config.{path}={value!r} must be an integer: set {flag}=<int>.")
  elif kind == _FLOAT:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
      raise ConfigError(f"config.{path}={value!r} must be a number: set {flag}=<float>.")
    if not math.isfinite(float(value)):
      raise ConfigError(f"config.{path}={value!r} must be finite: set {flag} to a finite number.")
  elif kind == _BOOL:
    if not isinstance(value, (bool, np.bool_)):
      raise ConfigError(f"config.{path}={value!r} must be True or False: set {flag}=true|false.")
    return
  elif kind == _STR:
    if not isinstance(value, str):
      raise ConfigError(f"config.{path}={value!r} must be a string: set {flag}=<name>.")
    return
  if lo is not None and value < lo:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be >= {lo}): set {flag} to a "
                      f"value >= {lo}.")
  if hi is not None and value >= hi:
    raise ConfigError(f"config.{path}={value!r} is impossible (it must be < {hi}): set {flag} to a "
                      f"value in [{lo}, {hi}).")


def _check_known_keys(config) -> None:
  """A key set in a config file that the skeleton does not have (``c.batch_sise = 4``) is refused with a
  did-you-mean, as ``--config.batch_sise`` is. ``data.*`` is checked for the built-in data sets only (a
  data module named by its path, ``jaxgen.data.detection``, reads keys of its own)."""
  from jaxgen import configs  # noqa: PLC0415
  from jaxgen import data as data_lib  # noqa: PLC0415
  known = set(_flatten(configs.base_config().to_dict())) | set(_OPEN_BLOCKS) | set(_OPTIONAL_KEYS)
  known |= {k.rsplit(".", 1)[0] + "." for k in known if "." in k}   # the blocks themselves
  own_data = str(config_schema.lookup(config, "data.name", "")).split("/")[0] not in data_lib.NAMES
  for key in _flatten(config_schema.to_dict(config)):
    if key in known or _matches(key, _OPEN_BLOCKS) or (own_data and key.startswith("data.")):
      continue
    block = key.rsplit(".", 1)[0] + "." if "." in key else ""
    near = sorted(k for k in known if not k.endswith(".") and k.startswith(block)
                  and "." not in k[len(block):])
    close = difflib.get_close_matches(key, near, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"config.{key} is not a key of the config skeleton (jaxgen/configs.py){hint}: fix its "
                      "spelling in the config file or remove it.")


def _check_image_sides(config, process_count: int) -> None:
  """Image sides within ``_MAX_SIDE`` and one per-process float32 batch within half the host memory."""
  for path in _SIDE_KEYS:
    side = config_schema.lookup(config, path)
    if side is not None and side > _MAX_SIDE:
      raise ConfigError(f"config.{path}={side!r} is impossible (it must be <= {_MAX_SIDE} pixels): set "
                        f"--config.{path} to a value in [0, {_MAX_SIDE}] (0: the native size).")
  side = max(int(config_schema.lookup(config, p, 0)) for p in _SIDE_KEYS)
  try:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return
  per_process = max(int(config.batch_size) // max(process_count, 1), 1)
  need = per_process * side * side * 3 * 4
  if need > memory // 2:
    raise ConfigError(f"one batch of {per_process} float32 {side}x{side} images needs {need / 2**30:.1f} "
                      f"GiB, more than half of this host's {memory / 2**30:.0f} GiB: lower "
                      "--config.batch_size or --config.data.resolution.")


def _check_labels_fit(config) -> None:
  """An image folder's ``dataset.json`` labels lie in ``[0, num_classes)`` when the task reads labels, and
  exist when a class-conditional task needs them (reads only that file)."""
  if str(config_schema.lookup(config, "data.name", "")) != "image_folder":
    return
  data_dir = str(config_schema.lookup(config, "data.data_dir", ""))
  if not data_dir or not os.path.exists(data_dir):
    return   # the data module names the missing folder
  task = str(config_schema.lookup(config, "task.name", "")).rsplit(".", 1)[-1]
  flag = next((f for f in ("class_conditional", "conditional") if config_schema.lookup(config, f"task.{f}")),
              None)
  if task != "classification" and flag is None:
    return   # labels unused
  from jaxgen.data import image_folder  # noqa: PLC0415
  found = image_folder.label_range(data_dir)
  if found is None:
    if flag is None:
      return   # the classification task says it needs labels
    raise ConfigError(f"task.{flag}=True needs labels, but data.data_dir={data_dir!r} has no dataset.json "
                      f"labels: add one ({{\"labels\": [[file, label], ...]}}) or set "
                      f"--config.task.{flag}=false.")
  top, name = found
  which = next((k for k in ("model.overrides.num_classes", "task.num_classes")
                if config_schema.lookup(config, k)), None)
  num = config_schema.lookup(config, which) if which else None
  model_name = config_schema.lookup(config, "model.name")
  if which is None and model_name:   # the model's own default (the classification task reads it so)
    from jaxgen import models  # noqa: PLC0415
    overrides = config_schema.to_dict(config_schema.lookup(config, "model.overrides"))
    num = getattr(models.create(model_name, **overrides), "num_classes", None)
    which = "model.overrides.num_classes"
  if isinstance(num, (int, np.integer)) and not isinstance(num, bool) and num > 0 and top >= num:
    raise ConfigError(f"dataset.json in {data_dir!r} gives {name!r} the label {top}, outside [0, {num}) of the "
                      f"model's {num} classes: fix the labels or set --config.{which}={top + 1} or more.")


def validate_config(config, *, device_count: int | None = None, process_count: int | None = None,
                    mode: str = "train") -> None:
  """Raises ``ConfigError`` on wrong types, impossible values and unknown names (no side effects).

  Besides the types and bounds of ``_SCHEMA``: image sides (``data.resolution``, ...) at most
  ``_MAX_SIDE`` and one batch within half the host memory, ``model.dtype`` one of ``_DTYPES``, no key
  outside the skeleton (``_check_known_keys``) and an image folder's labels within the task's classes
  (``_check_labels_fit``; it reads only ``dataset.json``)."""
  device_count = jax.device_count() if device_count is None else device_count
  process_count = jax.process_count() if process_count is None else process_count
  for path, (kind, lo, hi) in _SCHEMA.items():
    value = config_schema.lookup(config, path)
    if value is not None:
      _check_value(path, value, kind, lo, hi)
  if not config.task.get("name"):
    raise ConfigError("config.task.name is empty: set it to a module of jaxgen.tasks "
                      f"({', '.join(tasks_lib.names()) or 'none yet'}) or a dotted module path.")
  if config.optimizer.name not in optim.OPTIMIZERS:
    raise ConfigError(f"optimizer.name={config.optimizer.name!r} is unknown: set "
                      f"--config.optimizer.name to one of {', '.join(optim.OPTIMIZERS)}.")
  sched = config.optimizer.get("schedule", "constant")
  if sched not in optim.SCHEDULES:
    raise ConfigError(f"optimizer.schedule={sched!r} is unknown: set --config.optimizer.schedule to "
                      f"one of {', '.join(optim.SCHEDULES)}.")
  accum = int(config.optimizer.get("grad_accum_steps", 1))
  batch_devices = device_count   # the batch is split over 'data' x 'fsdp'; 'model' devices share a slice
  if config.get("mesh") is not None:
    sizes = shd.mesh_shape(dict(config.mesh), device_count)
    batch_devices = sizes["data"] * sizes["fsdp"]
  unit = batch_devices * accum
  if config.batch_size % unit:
    split = (f"{device_count} devices" if batch_devices == device_count else
             f"the {batch_devices} batch devices (data x fsdp) of the mesh")
    raise ConfigError(
        f"batch_size={config.batch_size} is not divisible by {split} x "
        f"grad_accum_steps {accum} = {unit}: set --config.batch_size to a multiple of {unit}.")
  eval_bs = int(config.get("eval_batch_size", 0) or config.batch_size)
  if eval_bs % process_count:
    raise ConfigError(f"eval_batch_size={eval_bs} is not divisible by {process_count} processes: set "
                      f"--config.eval_batch_size to a multiple of {process_count}.")
  if config.get("model") is not None and config.model.get("name"):
    from jaxgen import models
    names = models.names()
    if config.model.name not in names:
      close = difflib.get_close_matches(config.model.name, names, n=3)
      hint = f" (did you mean {', '.join(close)}?)" if close else ""
      raise ConfigError(f"model.name={config.model.name!r} is not a registered model{hint}: set "
                        "--config.model.name to one of jaxgen.models.names().")
  dtype = config_schema.lookup(config, "model.dtype")
  if dtype is not None and dtype not in _DTYPES:
    close = difflib.get_close_matches(dtype, _DTYPES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"config.model.dtype={dtype!r} is not a compute dtype{hint}: set --config.model.dtype "
                      f"to one of {', '.join(_DTYPES)}.")
  _check_image_sides(config, process_count)
  _check_known_keys(config)
  if mode != "sample":   # sampling reads no data
    _check_labels_fit(config)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  if isinstance(d, dict):
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    if not d and prefix:
      out[prefix[:-1]] = {}
  else:
    out[prefix[:-1]] = d
  return out


def config_to_dict(config) -> dict:
  """The resolved config as JSON-compatible data (tuples become lists)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def _matches(key: str, patterns: Iterable[str]) -> bool:
  """Whether ``key`` is one of ``patterns``, or inside a block ``'a.'`` of them (``'a'`` itself too: an
  empty block flattens to its own name)."""
  return any(key == p or (p.endswith(".") and (key.startswith(p) or key == p[:-1])) for p in patterns)


def config_diff(old: dict, new: dict, *, ignore: Iterable[str] = (), only: Iterable[str] | None = None
                ) -> list[str]:
  """Dotted keys whose values differ between two config dicts (``ignore``d keys skipped)."""
  a, b = _flatten(old), _flatten(new)
  keys = sorted(set(a) | set(b))
  out = []
  for k in keys:
    if _matches(k, ignore) or (only is not None and not _matches(k, only)):
      continue
    if a.get(k, "<absent>") != b.get(k, "<absent>"):
      out.append(k)
  return out


def _describe(v) -> str:
  return "absent" if v is None else repr(v)


def check_workdir(workdir: str, config, mode: str) -> None:
  """Raises ``ConfigError`` when ``workdir`` cannot hold (or does not hold) this run."""
  if not workdir:
    raise ConfigError("--workdir is empty: pass the directory the run writes to.")
  path = fs.abspath(workdir)
  if fs.is_remote(path):  # gs://: the bucket exists and the credentials read it (docs/pods.md)
    fs.check_bucket(path)
    if fs.isfile(path):
      raise ConfigError(f"--workdir {workdir} is an object, not a directory: pass a directory path.")
  elif os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--workdir {workdir} is a file, not a directory: pass a directory path.")
  probe = path   # (on GCS, write permission shows at the lock, the first write: one line too)
  while not fs.is_remote(path) and not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not fs.is_remote(path) and not os.path.isdir(probe):
    raise ConfigError(f"--workdir {workdir} cannot be created ({probe} is a file): choose a path "
                      "whose parents are directories.")
  if mode == "train" and not fs.is_remote(path) and not os.access(probe, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir {workdir} is not writable ({probe} denies writing): choose a "
                      "directory you can write to.")
  if mode != "train" and not ckpt_lib.saved_steps(path):
    raise ConfigError(f"--workdir {workdir} holds no checkpoint: train first (--mode train) or point "
                      "--workdir at a trained run.")
  if mode != "train" and not fs.is_remote(path) and not os.access(probe, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir {workdir} is not writable, so --mode {mode} cannot write its "
                      "results: choose a writable copy of the run.")
  saved = fs.join(path, "config.json")
  if fs.exists(saved):
    try:
      old = json.loads(fs.read_text(saved))
    except (OSError, ValueError) as e:
      raise ConfigError(f"{saved} is unreadable ({e}): repair or remove it, or use a new --workdir.")
    new = config_to_dict(config)
    # --mode eval / sample may change any key (e.g. the sampler) as long as the checkpoint still
    # restores; when it does not, _restore_for_inference reports the differing keys.
    diff = config_diff(old, new, ignore=RESUMABLE_KEYS) if mode == "train" else []
    if diff:
      fo, fn = _flatten(old), _flatten(new)
      parts = ", ".join(f"{k} ({_describe(fo.get(k))} -> {_describe(fn.get(k))})" for k in diff[:12])
      more = f" and {len(diff) - 12} more" if len(diff) > 12 else ""
      raise ConfigError(
          f"--workdir {workdir} holds a run with an incompatible config: {parts}{more} differ from "
          f"its config.json; use a new --workdir, or pass the saved values to resume this run.")


# ---------------------------------------------------------------------------------------------
# Set-up shared by the three modes
# ---------------------------------------------------------------------------------------------

def data_api(config):
  """The module providing ``train_dataset``/``eval_dataset``/``example_batch`` for ``data.name``.

  ``jaxgen.data`` for the built-in data sets; a dotted ``data.name`` (``my_pkg.my_data``) names a
  user module with the same three functions.
  """
  name = config.data.name
  if "." in name:
    try:
      mod = importlib.import_module(name)
    except ImportError as e:
      raise ConfigError(f"data.name={name!r} cannot be imported ({e}): set --config.data.name to a "
                        "data set of jaxgen.data or an importable module path.") from None
  else:
    mod = importlib.import_module("jaxgen.data")
  for fn in ("train_dataset", "eval_dataset", "example_batch"):
    if not hasattr(mod, fn):
      raise ConfigError(f"data.name={name!r} cannot be read: the data module {mod.__name__} lacks "
                        f"{fn}() (it must provide train_dataset, eval_dataset and example_batch).")
  return mod


def is_generative(task) -> bool:
  """Whether the task overrides ``sample`` (generators get sample grids)."""
  return type(task).sample is not task_base.Task.sample


@dataclasses.dataclass
class _Run:
  config: Any
  workdir: str
  task: Any
  data: Any                      # the data module
  mesh: Any
  process_index: int
  process_count: int
  example_batch: Any
  train_ds: Any = None


# File-system errors on the user's paths (data_dir, weights, the workdir): the user's fault, one line.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _one_line(e: BaseException) -> str:
  msg = " ".join(str(e).split())
  return msg or type(e).__name__


def _prepare(config, workdir: str, mode: str) -> _Run:
  """Validation and construction that precede any write.

  ``ConfigError`` passes through; the file-system errors of ``_PATH_ERRORS`` become one-line
  ``ConfigError``s; anything else (``TypeError``, ``KeyError``, ``ImportError`` raised inside a task
  or a data module) is a bug and propagates with its traceback.
  """
  try:
    shd.maybe_initialize_distributed(config)
    pi, pc = jax.process_index(), jax.process_count()
    validate_config(config, mode=mode)
    task = tasks_lib.get(config)
    if mode == "sample" and not is_generative(task):
      raise ConfigError(f"task {config.task.name!r} does not generate samples: use --mode train or "
                        "--mode eval with it.")
    data = data_api(config)
    per_process = config.batch_size // pc
    example = data.example_batch(config.data, per_process)
    train_ds = None
    if mode == "train":
      train_ds = data.train_dataset(config.data, batch_size=per_process, seed=config.seed,
                                    process_index=pi, process_count=pc)
    if mode in ("train", "eval") and hasattr(task, "preflight"):
      task.preflight()  # local files the evaluators read (FID weights, ...) before any work
    check_workdir(workdir, config, mode)
  except ConfigError:
    raise
  except _PATH_ERRORS as e:
    raise ConfigError(_one_line(e)) from e
  return _Run(config=config, workdir=fs.abspath(workdir), task=task, data=data,
              mesh=shd.mesh_from_config(config), process_index=pi, process_count=pc, example_batch=example,
              train_ds=train_ds)


# Compiled functions of recent runs in this process, so that relaunching the same config in-process
# (notebooks, tests, repeated preemption) does not recompile. The key is the task class, the config
# without its cadence keys, the mesh and the batch shapes: everything the programs depend on.
_COMPILED: dict = {}
_COMPILED_MAX = 16
# (the mesh and the sharding rules change the compiled programs: they stay in the key)
_CADENCE_KEYS = tuple(k for k in RESUMABLE_KEYS if k not in ("num_train_steps", "mesh.", "sharding."))


def _compiled(run: _Run, kind: str, build):
  flat = {k: v for k, v in _flatten(config_to_dict(run.config)).items()
          if not _matches(k, _CADENCE_KEYS)}
  shapes = tuple((tuple(np.shape(x)), str(np.asarray(x).dtype))
                 for x in jax.tree_util.tree_leaves(run.example_batch))
  key = (kind, type(run.task).__module__, type(run.task).__qualname__,
         json.dumps(flat, sort_keys=True, default=str),
         tuple(d.id for d in run.mesh.devices.flat), shapes)
  if key not in _COMPILED:
    while len(_COMPILED) >= _COMPILED_MAX:
      _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = build()
  return _COMPILED[key]


def _base_key(run: _Run):
  return jax.random.key(int(run.config.seed))


def _init_fn(run: _Run):
  """jit-compiled ``task.init`` producing the initial state (same on every process), placed by the config's
  sharding rules (``shd.tree_shardings``: replicated unless ``config.mesh.fsdp`` > 1 or a rule says
  otherwise; the random init does not depend on the placement: threefry is partitionable)."""
  example = jax.tree_util.tree_map(np.asarray, run.example_batch)
  key = jax.random.fold_in(_base_key(run), _INIT_TAG)
  task, mesh, config = run.task, run.mesh, run.config

  def build():
    init = lambda: task.init(key, example)  # noqa: E731
    return jax.jit(init, out_shardings=shd.tree_shardings(jax.eval_shape(init), mesh, config))

  return _compiled(run, "init", build)


def _init_from(run: _Run, state):
  """``model.init_from``: converted weights (``python -m jaxgen.convert.edm|ddpm IN OUT``) replace the initial
  params, EMA params and model state (e.g. NCSN++'s ``constants/map_noise_freqs``); the optimizer state
  (zeros for Adam) stays as initialised. Only a fresh run reads it: a checkpoint in the workdir wins."""
  from jaxgen.convert.edm import load_into  # noqa: PLC0415  (any '<collection>/<path>' npz)

  path = run.config.model.init_from
  if not os.path.isfile(path):
    raise ConfigError(f"model.init_from={path!r} is not a file: convert the weights first (python -m "
                      "jaxgen.convert.edm IN OUT) and pass that OUT, or set --config.model.init_from=''.")
  if not (hasattr(state, "params") and hasattr(state, "model_state")):
    raise ConfigError(f"model.init_from: the {run.config.task.name!r} task's state has no single network; "
                      "unset --config.model.init_from (it loads diffusion and classification networks).")
  host = load_into(path, {"params": state.params, **state.model_state})
  # Each array goes where the initial state's leaf is (the config's sharding rules).
  def put(tree, like):
    return jax.tree_util.tree_map(lambda a, b: jax.device_put(a, b.sharding), tree, like)

  return state.replace(params=put(host["params"], state.params),
                       ema_params=put(host["params"], state.ema_params),
                       model_state={k: put(v, state.model_state[k]) for k, v in host.items()
                                    if k != "params"})


def _abstract_state(run: _Run, init_fn):
  """The state as ``ShapeDtypeStruct``s with the shardings of ``_init_fn`` (the checkpoint restores into
  them: a checkpoint written on another mesh is resharded by orbax on reading)."""
  return shd.abstract_tree(jax.eval_shape(init_fn), run.mesh, run.config)


def _eval_batches(run: _Run):
  cfg = run.config
  if not cfg.data.get("eval_split"):
    return None
  bs = int(cfg.get("eval_batch_size", 0) or cfg.batch_size) // run.process_count
  return run.data.eval_dataset(cfg.data, batch_size=bs, process_index=run.process_index,
                               process_count=run.process_count)


def _evaluate(run: _Run, state) -> dict[str, float]:
  key = jax.random.fold_in(_base_key(run), _EVAL_TAG)
  from jaxgen import sampling  # noqa: PLC0415

  with sampling.over_mesh(run.mesh):   # the evaluators' sample draws split over the mesh (docs/sampling.md)
    out = run.task.evaluate(state, key, _eval_batches(run))
  return {k: float(np.asarray(shd.to_host(v))) for k, v in (out or {}).items()}


def _samples(run: _Run, state, n: int) -> np.ndarray:
  """The first ``n`` samples of the run's sample key, drawn split over the run's mesh (docs/sampling.md)."""
  from jaxgen import sampling  # noqa: PLC0415

  with sampling.over_mesh(run.mesh):
    return np.asarray(sampling.to_host(run.task.sample(state, _sample_key(run), n)))


def _write_json(path: str, obj, sort_keys: bool = True) -> None:
  """Writes ``path`` atomically (a temporary file renamed over it; removed again when writing fails;
  on GCS one object upload, atomic by itself)."""
  if fs.is_remote(path):
    fs.write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys))
    return
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(obj, f, indent=2, sort_keys=sort_keys)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


# ---------------------------------------------------------------------------------------------
# The compiled step
# ---------------------------------------------------------------------------------------------

def _scalar_metric_keys(metric_shapes: dict) -> list[str]:
  return sorted(k for k, s in metric_shapes.items() if k != "nonfinite" and tuple(s.shape) == ())


def make_train_step(task, mesh, metric_keys: list[str], seed: int = 0, donate: bool = True):
  """``step(state, batch, acc) -> (state, acc)``, jit-compiled on ``mesh``.

  Key of the update from ``state.step``: ``fold_in(wrap_key_data(state.rng), state.step)``.
  ``acc`` accumulates, on device, the scalar metrics since the last log (``sum``, ``last``,
  ``count``) and ``first_bad``: the number of the first update whose ``metrics['nonfinite']`` was
  set (-1: none), so the host checks the guard only at log/checkpoint boundaries.

  Shardings: the batch over ``'data'`` (and ``'fsdp'``), ``acc`` replicated, the state where the task
  config's rules put it (``shd.tree_shardings``: replicated unless ``config.mesh.fsdp`` > 1 or a rule
  says otherwise), both on input and output, so XLA gathers a sharded tensor where it is used and the
  updated state comes back sharded like the one passed in (whose buffers are donated).
  """
  rep, dat = shd.replicated(mesh), shd.data_sharding(mesh)
  config = getattr(task, "config", None)

  def place(state):
    return jax.lax.with_sharding_constraint(state, shd.tree_shardings(state, mesh, config))

  def step(state, batch, acc):
    state = place(state)
    rng = getattr(state, "rng", None)
    base = jax.random.wrap_key_data(rng) if rng is not None else jax.random.key(seed)
    key = jax.random.fold_in(base, state.step)
    new_state, metrics = task.train_step(state, batch, key)
    bad = jnp.asarray(metrics.get("nonfinite", False), jnp.bool_)
    first_bad = jnp.where((acc["first_bad"] < 0) & bad, (state.step + 1).astype(jnp.int32),
                          acc["first_bad"])
    vals = {k: jnp.asarray(metrics[k], jnp.float32) for k in metric_keys}
    acc = dict(first_bad=first_bad, count=acc["count"] + 1,
               sum={k: acc["sum"][k] + vals[k] for k in metric_keys}, last=vals)
    return place(new_state), acc

  # The state's shardings (None) are those of the constraints above; a state placed by the same rules
  # (_init_fn, the checkpoint's restore) passes through unchanged.
  return jax.jit(step, in_shardings=(None, dat, rep), out_shardings=(None, rep),
                 donate_argnums=(0, 2) if donate else ())


def _make_acc_init(mesh, metric_keys):
  def init():
    z = {k: jnp.zeros((), jnp.float32) for k in metric_keys}
    return dict(first_bad=jnp.int32(-1), count=jnp.int32(0), sum=z, last=dict(z))
  return jax.jit(init, out_shardings=shd.replicated(mesh))


class _Preemption:
  """SIGTERM -> a flag the loop checks every step (multi-host: JAX's preemption sync point)."""

  def __init__(self, multihost: bool):
    self.flag = False
    self.multihost = multihost
    self._old = None
    if not multihost and threading.current_thread() is threading.main_thread():
      self._old = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.flag = True

  def reached(self, step: int) -> bool:
    if self.multihost:
      try:
        from jax.experimental import multihost_utils
        return bool(multihost_utils.reached_preemption_sync_point(step))
      except Exception:  # noqa: BLE001 - preemption service disabled
        return False
    return self.flag

  def restore(self):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)
      self._old = None


def _read_json(path: str) -> dict:
  """The JSON object in ``path``, or ``{}`` when the file is missing or unreadable (best-effort reads)."""
  try:
    obj = json.loads(fs.read_text(path))
  except (OSError, ValueError):
    return {}
  return obj if isinstance(obj, dict) else {}


def _resolve_lr_warning(run: _Run, old_config_path: str) -> None:
  old = _read_json(old_config_path)
  if not old:
    return
  cfg = run.config
  if old.get("num_train_steps") != cfg.num_train_steps and cfg.optimizer.get("schedule") in (
      "cosine", "linear"):
    log.warning("num_train_steps changed from %s to %s: the %s learning-rate schedule is stretched "
                "to the new length from the restored step on.", old.get("num_train_steps"),
                cfg.num_train_steps, cfg.optimizer.schedule)


# ---------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Periodic:
  """The one "is it time" rule of the training actions.

  ``due(step)`` is true at the positive multiples of ``every`` and at ``total`` (the last step);
  ``every = 0`` means only at ``total``.
  """

  every: int
  total: int

  def due(self, step: int) -> bool:
    return step == self.total or (self.every > 0 and step % self.every == 0)


def _periods(cfg, generative: bool) -> dict[str, Periodic]:
  """The actions of a training run, in the order they run at a step, and when each is due."""
  total = int(cfg.num_train_steps)
  out = {"log": Periodic(int(cfg.log_every_steps), total),
         "checkpoint": Periodic(int(cfg.checkpoint_every_steps), total),
         "eval": Periodic(int(cfg.get("eval_every_steps", 0) or 0), total)}
  if generative and int(cfg.get("num_grid_samples", 64)) > 0:
    out["sample"] = Periodic(int(cfg.get("sample_every_steps", 0) or 0), total)
  return out


def _write_eval(run: _Run, step: int, metrics: dict) -> dict:
  """``workdir/eval/step_<step>.json`` = ``{"step": step, **metrics}`` (process 0); returns that dict."""
  result = {"step": int(step), **metrics}
  if run.process_index == 0:
    fs.makedirs(fs.join(run.workdir, "eval"))
    _write_json(fs.join(run.workdir, "eval", f"step_{step}.json"), result, sort_keys=False)
  return result


class _Actions:
  """What training does besides its updates: ``log``, ``checkpoint``, ``eval``, ``sample``.

  ``actions(step, state, names)`` runs the named actions in that order and writes their metrics as
  one record. It holds what they share between updates: the on-device metric accumulator ``acc``
  (updated by the compiled step), the clock of img/s (``steps_timed`` since ``t_last``, restarted
  after every action) and the last saved step (named by the non-finite guard).
  """

  def __init__(self, run: _Run, *, writer, checkpointer, data_iter, progress, metric_keys, acc_init,
               last_saved):
    self.run, self.writer, self.checkpointer = run, writer, checkpointer
    self.data_iter, self.progress = data_iter, progress
    self.metric_keys, self.acc_init = metric_keys, acc_init
    self.acc = acc_init()
    self.last_saved = last_saved
    self.periods = _periods(run.config, is_generative(run.task))
    self.restart_clock()

  def restart_clock(self) -> None:
    self.t_last, self.steps_timed = time.monotonic(), 0

  def due(self, step: int) -> list[str]:
    return [name for name, period in self.periods.items() if period.due(step)]

  def __call__(self, step: int, state, names) -> dict[str, Any]:
    host_acc = shd.to_host(self.acc)
    self._check_finite(int(host_acc["first_bad"]))
    record: dict[str, Any] = {}
    if "log" in names and int(host_acc["count"]):  # (nothing to log when no update ran)
      record.update(self._log(step, host_acc))
    if "checkpoint" in names:
      self.checkpointer.save(step, state, self.data_iter.get_state())
      self.last_saved = step
    if "eval" in names:
      metrics = _evaluate(self.run, state)
      if metrics:
        _write_eval(self.run, step, metrics)
      record.update(metrics)
    if "sample" in names:
      self._sample(step, state)
    if record:
      self.writer.write(step, record)
    self.restart_clock()  # img/s measures training steps only
    return record

  def _check_finite(self, first_bad: int) -> None:
    if first_bad >= 0:
      where = (f"the last good checkpoint is step {self.last_saved} in {self.checkpointer.directory}"
               if self.last_saved is not None else "no checkpoint was written")
      raise NonFiniteError(
          f"training stopped: the loss or a gradient became non-finite at step {first_bad} (that "
          f"update was discarded); {where}. Lower optimizer.learning_rate, set "
          "optimizer.clip_grad_norm, or check the data.")

  def _log(self, step: int, host_acc) -> dict[str, float]:
    now = time.monotonic()
    n = int(host_acc["count"])
    metrics = {k: float(host_acc["sum"][k]) / n for k in self.metric_keys}
    if "learning_rate" in metrics:
      metrics.pop("learning_rate")
      metrics["lr"] = float(host_acc["last"]["learning_rate"])
    ips = float("nan")
    if self.steps_timed:  # (the first step of a launch, which compiles, is not timed)
      ips = self.steps_timed * self.run.config.batch_size / max(now - self.t_last, 1e-9)
      metrics["img_per_sec"] = ips
    self.progress.report(step, metrics.get("loss", float("nan")), ips)
    self.acc = self.acc_init()
    return metrics

  def _sample(self, step: int, state) -> None:
    samples = _samples(self.run, state, int(self.run.config.get("num_grid_samples", 64)))
    if self.run.process_index == 0:
      png = log_lib.save_samples_png(samples, fs.join(self.run.workdir, "samples", f"step_{step}.png"))
      self.writer.write_image(step, "samples", png)


def _finish(actions: _Actions, step: int, state) -> None:
  """The end of training: every action once at ``step``, then the checkpoint is waited for.

  The same path ends a run that reached ``num_train_steps`` and a launch on a workdir already at
  or after it (then nothing trains, nothing is logged, the checkpoint exists: eval and samples).
  """
  actions(step, state, list(actions.periods))
  actions.checkpointer.wait()


def train_and_evaluate(config, workdir: str, *, raise_on_preemption: bool = False):
  """Trains ``config`` in ``workdir`` (resuming when it holds checkpoints); returns the final state.

  Raises ``ConfigError`` on bad input (before anything is written: the state is built and the first
  step traced first; a checkpoint of another model is refused without touching it), a workdir
  another trainer holds (``checkpoint.WorkdirLock``), ``NonFiniteError`` when an update turns
  non-finite (the last good checkpoint stays the newest) and ``DiskFullError`` (one line) when the
  device fills up. On SIGTERM it saves a checkpoint and returns the state, or raises ``Preempted``
  when ``raise_on_preemption`` (the launcher: exit status 75). ``summary(workdir)`` then says where
  the results are.
  """
  fresh = not fs.exists(workdir)
  try:
    state, preempted_at = _train(config, workdir, fresh)
  except Exception as e:
    if is_disk_full(e):
      steps = ckpt_lib.saved_steps(workdir)
      last = f"step {steps[-1]}" if steps else "none yet"
      raise DiskFullError(
          errno.ENOSPC, f"no space left on the device of --workdir {workdir} (last complete checkpoint: "
          f"{last}): free space there, then rerun the same command to resume.") from e
    raise
  if preempted_at is not None and raise_on_preemption:
    raise Preempted(preempted_at, workdir)
  return state


def _remove_if_untouched(workdir: str) -> None:
  """Removes a workdir this launch created when it holds only the lock and an empty checkpoints/.

  (On GCS there are no empty directories, and the lock object is deleted when released.)"""
  if fs.is_remote(workdir):
    return
  with contextlib.suppress(OSError):
    ckpt = ckpt_lib.checkpoint_dir(workdir)
    if os.path.isdir(ckpt) and not os.listdir(ckpt):
      os.rmdir(ckpt)
    if set(os.listdir(workdir)) <= {ckpt_lib.LOCK_FILE}:
      shutil.rmtree(workdir)


def _train(config, workdir: str, fresh: bool):
  """The training loop of ``train_and_evaluate``: ``(state, step of a SIGTERM stop or None)``."""
  run = _prepare(config, workdir, "train")
  cfg, task, mesh = run.config, run.task, run.mesh
  chief = run.process_index == 0
  total = int(cfg.num_train_steps)

  init_fn = _init_fn(run)
  abstract = _abstract_state(run, init_fn)

  def build_step():
    batch_shapes = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((cfg.batch_size,) + np.shape(x)[1:], np.asarray(x).dtype,
                                       sharding=shd.data_sharding(mesh)), run.example_batch)
    key_shape = jax.eval_shape(lambda: jax.random.key(0))
    _, metric_shapes = jax.eval_shape(task.train_step, abstract, batch_shapes, key_shape)
    keys = _scalar_metric_keys(metric_shapes)
    return (keys, make_train_step(task, mesh, keys, seed=int(cfg.seed)),
            _make_acc_init(mesh, keys))

  # The state is built (abstractly) and the first step traced before anything is written: a batch or
  # a state the task cannot take fails here and leaves the workdir as it was.
  metric_keys, train_step, acc_init = _compiled(run, "train_step", build_step)

  # First writes to the workdir: the lock, then the checkpoints; config.json once the restore worked.
  lock = ckpt_lib.WorkdirLock(run.workdir).acquire() if chief else None
  checkpointer = writer = progress = None
  preempt = _Preemption(multihost=run.process_count > 1)
  started = False
  try:
    checkpointer = ckpt_lib.Checkpointer(run.workdir, keep=cfg.keep_checkpoints,
                                         keep_every=cfg.get("keep_checkpoint_every_steps", 0))
    data_iter = iter(run.train_ds)
    restored = checkpointer.restore_latest(abstract, quarantine=True)
    if restored is not None:
      step, state, data_state = restored
      data_iter.set_state(data_state)
      log.info("resumed from the checkpoint of step %d in %s.", step, checkpointer.directory)
    else:
      step, state = 0, init_fn()
      if cfg.model.get("init_from"):
        state = _init_from(run, state)
        log.info("initialised %s from %s.", cfg.model.name, cfg.model.init_from)
    if chief:
      cfg_path = fs.join(run.workdir, "config.json")
      if fs.exists(cfg_path):
        _resolve_lr_warning(run, cfg_path)
      _write_json(cfg_path, config_to_dict(cfg))
    started = True
    writer = log_lib.MetricWriter(run.workdir, enabled=chief)
    progress = log_lib.Progress(step, total, enabled=chief)
    actions = _Actions(run, writer=writer, checkpointer=checkpointer, data_iter=data_iter,
                       progress=progress, metric_keys=metric_keys, acc_init=acc_init,
                       last_saved=step if restored is not None else None)
    if step >= total:
      log.info("the run in %s is already at step %d >= num_train_steps=%d; evaluating only.",
               run.workdir, step, total)
    first = True
    while step < total:
      batch = next(data_iter)
      state, actions.acc = train_step(state, shd.shard_batch(batch, mesh), actions.acc)
      step += 1
      actions.steps_timed += 1
      progress.advance(step)
      if first:  # exclude compilation from img/s
        jax.block_until_ready(actions.acc)
        actions.restart_clock()
        first = False
      if step == total:
        break
      if lock is not None and lock.lost:   # another trainer took the workdir over: write nothing more
        raise ConfigError(f"the lock of --workdir {run.workdir} was taken over by another trainer after this "
                          f"run stalled past JAXGEN_GCS_LOCK_STALE_S: stopped at step {step} without writing "
                          "more; let that run finish (or stop it), then rerun this command.")
      stop = preempt.reached(step)
      due = actions.due(step)
      if stop and "checkpoint" not in due:
        due.append("checkpoint")
      if due:
        actions(step, state, due)
      if stop:
        checkpointer.wait()
        log.warning("received SIGTERM: saved the checkpoint of step %d; rerun the same command to "
                    "resume.", step)
        return state, step
    _finish(actions, step, state)
    return state, None
  finally:
    preempt.restore()
    if progress is not None:
      progress.close()
    if writer is not None:
      writer.close()
    if checkpointer is not None:
      checkpointer.close()
    if lock is not None:
      lock.release()
      if fresh and not started:
        _remove_if_untouched(run.workdir)


# ---------------------------------------------------------------------------------------------
# What a person sees at the end of a run
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Summary:
  """Where a run's results are and its headline numbers (``summary(workdir)``).

  ``str(summary)`` is the few lines the launcher prints at the end of every mode.
  """

  workdir: str
  step: int | None = None                 # the latest checkpoint's step
  num_train_steps: int | None = None      # from the run's config.json
  eval_step: int | None = None
  eval_metrics: dict = dataclasses.field(default_factory=dict)    # the last evaluation's metrics
  eval_file: str | None = None            # workdir/eval/step_<eval_step>.json
  train_step: int | None = None
  train_metrics: dict = dataclasses.field(default_factory=dict)   # the last training record's
  metrics_file: str | None = None         # workdir/metrics.jsonl
  checkpoint: str | None = None           # workdir/checkpoints/<step>
  samples: tuple[str, ...] = ()           # the newest sample grid (or the files of --mode sample)

  def lines(self) -> list[str]:
    def fmt(metrics):
      return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

    head = f"run in {self.workdir}"
    if self.step is not None:
      head += f": step {self.step}"
      if self.num_train_steps:
        head += f" of {self.num_train_steps}"
        if self.step < self.num_train_steps:
          head += " (unfinished: rerun the training command to resume)"
    out = [head]
    if self.eval_metrics:
      out.append(f"  evaluation at step {self.eval_step}: {fmt(self.eval_metrics)}")
    if self.train_metrics:
      first = {k: self.train_metrics[k] for k in ("loss",) if k in self.train_metrics}
      out.append(f"  training at step {self.train_step}: {fmt({**first, **self.train_metrics})}")
    for name, path in (("metrics", self.metrics_file), ("evaluation", self.eval_file),
                       ("checkpoint", self.checkpoint)):
      if path:
        out.append(f"  {name + ':':<12}{path}")
    for path in self.samples:
      out.append(f"  {'samples:':<12}{path}")
    return out

  def __str__(self) -> str:
    return "\n".join(self.lines())


def _step_files(directory: str, prefix: str, suffix: str) -> dict[int, str]:
  """``{N: path}`` of the files ``<prefix><N><suffix>`` in ``directory``."""
  pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
  return {int(m.group(1)): fs.join(directory, n) for n in fs.listdir(directory)
          if (m := pattern.fullmatch(n))}


def summary(workdir: str, samples: Iterable[str] = ()) -> Summary:
  """Reads ``workdir``: its latest checkpoint, last evaluation, last training record, newest grid.

  The last evaluation is the newest ``eval/step_<N>.json`` (written by every evaluation, in training
  and by ``--mode eval``); the training record is the newest record of ``metrics.jsonl`` without the
  evaluation's keys. ``samples`` replaces the newest ``samples/step_<N>.png`` (``--mode sample``).
  """
  workdir = fs.abspath(workdir)
  steps = ckpt_lib.saved_steps(workdir)
  step = steps[-1] if steps else None
  total = _read_json(fs.join(workdir, "config.json")).get("num_train_steps")
  total = total if isinstance(total, int) else None
  evals = _step_files(fs.join(workdir, "eval"), "step_", ".json")

  def read_eval(path):
    return {k: v for k, v in _read_json(path).items() if k != "step"}

  eval_step = max(evals) if evals else None
  eval_metrics = read_eval(evals[eval_step]) if evals else {}
  records = log_lib.read_metrics(workdir)
  train_step, train_metrics = None, {}
  for s in sorted(records, reverse=True):
    eval_keys = set(read_eval(evals[s]) if s in evals else eval_metrics)
    rest = {k: v for k, v in records[s].items() if k != "step" and k not in eval_keys}
    if rest:
      train_step, train_metrics = s, rest
      break
  samples = tuple(samples)
  if not samples:
    grids = _step_files(fs.join(workdir, "samples"), "step_", ".png")
    samples = (grids[max(grids)],) if grids else ()
  metrics_file = fs.join(workdir, "metrics.jsonl")
  return Summary(workdir=workdir, step=step, num_train_steps=total, eval_step=eval_step,
                 eval_metrics=eval_metrics, eval_file=evals.get(eval_step), train_step=train_step,
                 train_metrics=train_metrics,
                 metrics_file=metrics_file if fs.exists(metrics_file) else None,
                 checkpoint=fs.join(ckpt_lib.checkpoint_dir(workdir), str(step)) if steps else None,
                 samples=samples)


# ---------------------------------------------------------------------------------------------
# Eval / sample modes
# ---------------------------------------------------------------------------------------------

def _restore_for_inference(run: _Run):
  init_fn = _init_fn(run)
  abstract = _abstract_state(run, init_fn)
  checkpointer = ckpt_lib.Checkpointer(run.workdir, read_only=True)
  try:
    latest = checkpointer.latest_step()
    try:
      if checkpointer.mismatch(latest, abstract, shapes_only=True):  # (no futile read of the arrays)
        raise ValueError("the checkpoint's shapes differ from the state this config builds")
      state, _ = checkpointer.restore(latest, abstract)
      jax.block_until_ready(state)
      return latest, state
    except Exception as e:  # noqa: BLE001 - a config that does not fit, or a corrupted checkpoint
      diff = _saved_config_diff(run)
      if diff:
        raise ConfigError(
            f"the checkpoint of step {latest} in --workdir {run.workdir} does not fit this config "
            f"({type(e).__name__}); it differs from the run's config.json in {', '.join(diff[:12])}: "
            "use the run's own values for those keys.") from e
    restored = checkpointer.restore_latest(abstract, quarantine=False)
  finally:
    checkpointer.close()
  if restored is None:
    raise ConfigError(f"--workdir {run.workdir} holds no readable checkpoint: train first.")
  step, state, _ = restored
  return step, state


def _saved_config_diff(run: _Run) -> list[str]:
  old = _read_json(os.path.join(run.workdir, "config.json"))
  if not old:
    return []
  return config_diff(old, config_to_dict(run.config), ignore=RESUMABLE_KEYS)


def evaluate(config, workdir: str) -> dict[str, float]:
  """Restores the latest checkpoint, evaluates it and writes ``workdir/eval/step_<N>.json``."""
  run = _prepare(config, workdir, "eval")
  step, state = _restore_for_inference(run)
  return _write_eval(run, step, _evaluate(run, state))


def sample(config, workdir: str, num: int = 64, *, run_id: str | None = None, chunk_size: int = 1000,
           dtype: str | None = None, progress: bool = True) -> dict[str, str]:
  """Restores the latest checkpoint and streams ``num`` samples (EMA params) into a sample set.

  The set is ``workdir/samples/<run_id>/`` (default ``step<N>_seed<S>``): chunk files of ``chunk_size``
  samples, ``manifest.json`` (step, num, chunk size, key, config hash) and ``grid.png`` of the first 64
  (``jaxgen.sampling.write_samples``; docs/sampling.md). Each chunk is drawn split over every device of the
  mesh. Rerunning the same command skips the complete chunks, and the finished set equals an
  uninterrupted one bit for bit; a set of another checkpoint step, config or key in that directory is
  refused, as is a ``num`` that does not fit the free disk space. Returns the paths ``dir``,
  ``manifest`` and ``png`` (when a grid was drawn).
  """
  from jaxgen import sampling  # noqa: PLC0415

  if int(num) < 1:
    raise ConfigError(f"--num_samples={num} is impossible: pass a positive number.")
  if int(chunk_size) < 1:
    raise ConfigError(f"--sample_chunk_size={chunk_size} is impossible: pass a positive number.")
  if run_id is not None and not _RUN_ID.fullmatch(run_id):
    raise ConfigError(f"--sample_run={run_id!r} is not a directory name: use letters, digits, '.', '_' "
                      "and '-' only.")
  run = _prepare(config, workdir, "sample")
  step, state = _restore_for_inference(run)
  run_id = run_id or f"step{step}_seed{int(run.config.seed)}"
  directory = fs.join(run.workdir, "samples", run_id)
  identity = _sample_identity(run, step)
  task = run.task
  # The shape of one sample, when the task can say it without drawing: the free-space check then runs
  # before the first draw (else after the first chunk, still before any write).
  shape = task.sample_shape(state) if hasattr(task, "sample_shape") else None
  preempt = _Preemption(multihost=run.process_count > 1)
  try:
    with sampling.over_mesh(run.mesh):
      info = sampling.write_samples(
          lambda key, n, start: task.sample(state, key, n, start), directory, int(num), _sample_key(run),
          identity=identity, chunk_size=int(chunk_size), dtype=dtype, progress=progress, sample_shape=shape,
          process_index=run.process_index, process_count=run.process_count, stop=preempt.reached)
  except Exception as e:
    if is_disk_full(e):
      try:
        done = sampling.num_complete(directory)
      except (ConfigError, OSError):   # (no manifest yet)
        done = 0
      raise DiskFullError(
          errno.ENOSPC, f"no space left on the device of {directory} ({done} of {num} samples complete): "
          "free space there, then rerun the same command to resume.") from e
    raise
  finally:
    preempt.restore()
  if not info.complete:
    raise SamplingPreempted(info.num_complete, int(num), info.directory)
  out = {"dir": info.directory, "manifest": info.manifest}
  if info.png:
    out["png"] = info.png
  if run.process_index == 0:
    log.info("samples: %d in %s (%d chunks drawn now, %d were complete).", info.num, info.directory,
             info.written, info.skipped)
  return out


# ---------------------------------------------------------------------------------------------
# Sample sets (--mode sample): the key and what identifies a set
# ---------------------------------------------------------------------------------------------

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SamplingPreempted(Preempted):
  """SIGTERM stopped ``--mode sample`` after a complete chunk; the launcher exits 75 and a rerun resumes."""

  def __init__(self, done: int, num: int, directory: str):
    RuntimeError.__init__(self, f"received SIGTERM: {done} of {num} samples are complete in {directory}; "
                                "rerun the same command to finish the set.")
    self.step = done

# Keys that cannot change a sample of a given checkpoint: the training cadences and length, the
# optimizer, the data pipeline's reader knobs and location, the evaluators and the launch. Every other
# key (model, task, sampler, seed, data set and resolution, ...) is in the set's config hash.
SAMPLE_IRRELEVANT_KEYS = (
    "num_train_steps", "log_every_steps", "checkpoint_every_steps", "eval_every_steps",
    "sample_every_steps", "keep_checkpoints", "keep_checkpoint_every_steps", "num_grid_samples",
    "eval_batch_size", "distributed", "optimizer.", "evals.", "model.init_from", "data.data_dir",
    "data.num_threads", "data.prefetch", "data.num_workers", "data.shuffle_buffer", "task.eval.",
    "mesh", "mesh.", "sharding.", "sharding_rules",
)


def _sample_key(run: _Run):
  """The key of every sample of a run: ``fold_in(key(seed), _SAMPLE_TAG)`` (grids, --mode sample)."""
  return jax.random.fold_in(_base_key(run), _SAMPLE_TAG)


def _sample_identity(run: _Run, step: int) -> dict:
  """``{"step", "config_hash", "config"}``: what a sample set of this run at ``step`` is a function of
  (the config without ``SAMPLE_IRRELEVANT_KEYS``; the hash is the first 16 hex digits of its SHA-256)."""
  import hashlib  # noqa: PLC0415

  flat = {k: v for k, v in _flatten(config_to_dict(run.config)).items()
          if not _matches(k, SAMPLE_IRRELEVANT_KEYS)}
  text = json.dumps(flat, sort_keys=True, default=str)
  nested: dict = {}
  for k, v in flat.items():   # back to a nested dict (config_diff flattens it again)
    d = nested
    *head, last = k.split(".")
    for part in head:
      d = d.setdefault(part, {})
    d[last] = v
  return {"step": int(step), "config_hash": hashlib.sha256(text.encode()).hexdigest()[:16], "config": nested}
