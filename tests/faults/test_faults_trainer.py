"""Fault suite, trainer half (issue 16): what a run survives, each case a test that can fail.

Cases: two trainers on one workdir (the second is refused at once, naming the holder; a stale lock
file of a dead process does not block), SIGTERM (exit status 75 = EX_TEMPFAIL, the run unfinished
and resumable), a deleted ``metrics.jsonl`` (recreated, with a warning), resuming a checkpoint of
another model without config.json (refused with the differing shapes; nothing quarantined, nothing
rewritten), a full disk (one line, no stray ``config.json.tmp*``, the run still resumable) and an error
while tracing the first step (nothing written). This module is also a user task
(``task.name = 'tests.faults.test_faults_trainer'``) whose step fails to trace when ``task.fail_step``.
The tiny MLP fixture task of the trainer tests is trained throughout (tests/fixtures/mlp_task.py).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import time

import jax
import pytest

from jaxgen import checkpoint as ckpt_lib
from jaxgen import errors, train
from jaxgen import logging as log_lib
from tests.fixtures import mlp_config
from tests.fixtures.mlp_task import Task as MLPTask
from tests.fixtures.trainer_utils import (CONFIG_FILE, REPO, launcher, make_config, snapshot,
                                          subprocess_env, trees_equal)

HERE = "tests.faults.test_faults_trainer"
SMALL = dict(num_train_steps=4, checkpoint_every_steps=4, log_every_steps=4, num_grid_samples=0,
             **{"data.eval_split": ""})


class Task(MLPTask):
  """The fixture task; ``task.fail_step`` makes its train step fail while it is traced."""

  def __init__(self, config):
    super().__init__(config)
    self.fail_step = bool(config.task.get("fail_step", False))

  def train_step(self, state, batch, key):
    if self.fail_step:
      raise errors.ConfigError("task.fail_step is set: the first step cannot be traced.")
    return super().train_step(state, batch, key)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A workdir holding the 4-step run of ``SMALL`` (checkpoint 4) and its final state."""
  workdir = str(tmp_path_factory.mktemp("faults") / "run4")
  state = train.train_and_evaluate(make_config(**SMALL), workdir)
  return workdir, state


def _copy(src: str, dst) -> str:
  shutil.copytree(src, str(dst))
  return str(dst)


# ---------------------------------------------------------------------------------------------
# One trainer per workdir
# ---------------------------------------------------------------------------------------------

def test_a_second_trainer_is_refused_naming_the_holder_and_a_stale_lock_does_not_block(trained, tmp_path):
  workdir = _copy(trained[0], tmp_path / "run")
  config = make_config(**SMALL)
  with ckpt_lib.WorkdirLock(workdir):  # another holder (flock conflicts between open files, too)
    before = snapshot(workdir)
    holder = rf"in use by pid {os.getpid()} on host \S+ .*another --workdir"
    with pytest.raises(errors.ConfigError, match=holder):
      train.train_and_evaluate(config, workdir)
    assert snapshot(workdir) == before  # refused before its first write
  # The lock of a killed process: the file (and its text) stay, the flock is gone with the process.
  with open(os.path.join(workdir, ckpt_lib.LOCK_FILE), "w") as f:
    f.write("pid 999999 on host gone (since 2020-01-01 00:00:00 UTC)\n")
  state = train.train_and_evaluate(config, workdir)  # (at its last step already: evaluates only)
  assert int(state.step) == 4 and os.path.exists(os.path.join(workdir, "config.json"))
  with open(os.path.join(workdir, ckpt_lib.LOCK_FILE)) as f:
    assert f.read() == ""  # released


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
def test_a_launcher_holding_the_workdir_refuses_a_second_trainer_and_exits_75_on_sigterm(tmp_path):
  workdir = str(tmp_path / "run")
  steps = 400
  flags = [f"--config.num_train_steps={steps}", "--config.checkpoint_every_steps=4",
           "--config.log_every_steps=4", "--config.num_grid_samples=0", "--config.data.eval_split=",
           "--config.data.delay_s=0.02"]
  proc = subprocess.Popen(launcher("--config", CONFIG_FILE, "--workdir", workdir, *flags), cwd=REPO,
                          env=subprocess_env(jax.device_count()), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not (
        os.path.exists(metrics) and os.path.getsize(metrics)):
      time.sleep(0.05)  # until the launcher logs a record: it holds the lock and trains
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    config = make_config(**dict(SMALL, num_train_steps=steps), **{"data.delay_s": 0.02})
    with pytest.raises(errors.ConfigError, match=rf"in use by pid {proc.pid} on host"):
      train.train_and_evaluate(config, workdir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert proc.returncode == 75, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("jaxgen: stopped: received SIGTERM: saved the checkpoint of step ")
  assert "rerun" in last
  stopped = ckpt_lib.saved_steps(workdir)[-1]
  assert 4 < stopped < steps and f"step {stopped} " in last
  # The lock died with the process (resuming after SIGTERM is tests/test_train.py's sigterm test).
  ckpt_lib.WorkdirLock(workdir).acquire().release()


# ---------------------------------------------------------------------------------------------
# Files that disappear or do not fit
# ---------------------------------------------------------------------------------------------

def test_a_lost_workdir_lock_stops_the_run_before_it_writes_again(tmp_path, monkeypatch):
  # A GCS lock is lost when this run stalled past the stale timeout and another trainer took the workdir
  # over (tests/test_gcs.py covers the object lock itself). Simulated here: the lock reports itself lost
  # from the start, so the run stops at its first step boundary, before any checkpoint or metrics record.
  monkeypatch.setattr(ckpt_lib.WorkdirLock, "lost", property(lambda self: True))
  workdir = str(tmp_path / "run")
  with pytest.raises(errors.ConfigError, match=r"was taken over by another trainer .* stopped at step 1") as e:
    train.train_and_evaluate(make_config(**SMALL), workdir)
  assert "\n" not in str(e.value)
  assert ckpt_lib.saved_steps(workdir) == []
  assert not log_lib.read_metrics(workdir)


def test_a_deleted_metrics_file_is_recreated_with_a_warning(tmp_path, caplog):
  writer = log_lib.MetricWriter(str(tmp_path))
  writer.write(1, {"loss": 1.0})
  os.remove(os.path.join(tmp_path, "metrics.jsonl"))
  with caplog.at_level(logging.WARNING, logger="jaxgen"):
    writer.write(2, {"loss": 2.0})
    writer.write(3, {"loss": 3.0})
  writer.close()
  assert sorted(log_lib.read_metrics(str(tmp_path))) == [2, 3]
  assert sum("metrics.jsonl was deleted" in r.getMessage() for r in caplog.records) == 1


def test_a_checkpoint_of_another_model_is_refused_with_the_shapes_and_left_in_place(trained, tmp_path):
  workdir = _copy(trained[0], tmp_path / "run")
  os.remove(os.path.join(workdir, "config.json"))
  before = snapshot(workdir)
  other = make_config(**SMALL, **{"task.hidden": 32})
  with pytest.raises(errors.ConfigError,
                     match=r"checkpoint of step 4 .* does not fit .*params\.Dense_0\.kernel: \(3, 16\) in "
                           r"the checkpoint, \(3, 32\) here.*the config that wrote it") as e:
    train.train_and_evaluate(other, workdir)
  with pytest.raises(errors.ConfigError, match=r"does not fit .*\(3, 32\) here"):
    train.evaluate(other, workdir)  # --mode eval / sample: the same refusal
  assert "\n" not in str(e.value)
  after = snapshot(workdir)
  after.pop(ckpt_lib.LOCK_FILE)  # (the lock file is rewritten by each holder)
  before.pop(ckpt_lib.LOCK_FILE)
  assert after == before  # no checkpoints_corrupt/, no config.json, the checkpoint untouched
  # The original command still resumes (nothing to train: evaluating only) and writes config.json.
  state = train.train_and_evaluate(make_config(**SMALL), workdir)
  assert trees_equal(state.params, trained[1].params)
  assert os.path.exists(os.path.join(workdir, "config.json"))


def test_a_full_disk_is_one_line_leaves_no_tmp_file_and_stays_resumable(trained, tmp_path, monkeypatch):
  workdir = _copy(trained[0], tmp_path / "run")
  config = make_config(**dict(SMALL, num_train_steps=8))
  real_dump = train.json.dump

  def dump_then_enospc(obj, f, **kw):  # half a file, then the device is full
    f.write("{")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(train.json, "dump", dump_then_enospc)
  with pytest.raises(train.DiskFullError, match=r"no space left .*last complete checkpoint: step 4\).*rerun"):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(train.json, "dump", real_dump)
  assert not [f for f in os.listdir(workdir) if ".tmp" in f]

  # Orbax's asynchronous save fails the way it does on a full tmpfs (a ValueError naming errno 28).
  real_save = ckpt_lib.Checkpointer.save

  def save_fails_after_4(self, step, state, data_state):
    if step > 4:
      raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "x": Failed to write 6349 bytes to '
                       "file 6: No space left on device [os_error_code='28']")
    return real_save(self, step, state, data_state)

  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", save_fails_after_4)
  with pytest.raises(train.DiskFullError, match=r"last complete checkpoint: step 4\)") as e:
    train.train_and_evaluate(config, workdir)
  assert "\n" not in e.value.strerror
  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", real_save)
  assert int(train.train_and_evaluate(config, workdir).step) == 8


def test_the_first_step_is_traced_before_anything_is_written(tmp_path):
  config = mlp_config.get_config()
  config.update_from_flattened_dict(SMALL)
  config.task.name = HERE
  config.task.fail_step = True
  config.lock()
  workdir = tmp_path / "run"
  with pytest.raises(errors.ConfigError, match="cannot be traced"):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
