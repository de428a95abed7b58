"""Fault suite, sampling half (docs/sampling.md): what a streamed sample set survives, each case a test.

Cases: SIGTERM during ``--mode sample`` (stops after a complete chunk, ``Preempted`` = exit 75; the rerun
finishes the set equal to an uninterrupted one), a full disk while a chunk is written (one line naming
the complete samples, no temporary file left, the rerun completes the set), a truncated or foreign
chunk file (redrawn), chunk files without a manifest or an unreadable manifest (refused, one line), and
the launcher: ``--mode sample`` twice (the second draws nothing).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from jaxgen import sampling, train
from tests.fixtures import mlp_task
from tests.fixtures.trainer_utils import CONFIG_FILE, REPO, launcher, make_config, subprocess_env

SMALL = dict(num_train_steps=4, checkpoint_every_steps=4, log_every_steps=4, num_grid_samples=0,
             **{"data.eval_split": ""})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("faults_sampling") / "run4")
  train.train_and_evaluate(make_config(**SMALL), workdir)
  return workdir


def _copy(src, dst) -> str:
  shutil.copytree(src, str(dst))
  return str(dst)


def _chunks(directory):
  out = {}
  for name in sorted(os.listdir(directory)):
    if name.startswith("chunk_"):
      with open(os.path.join(directory, name), "rb") as f:
        out[name] = f.read()
  return out


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory):
  """The uninterrupted set of 10 samples in chunks of 3 (its chunk files' bytes)."""
  ref = _copy(trained, tmp_path_factory.mktemp("faults_sampling_ref") / "ref")
  return _chunks(train.sample(make_config(**SMALL), ref, num=10, chunk_size=3, progress=False)["dir"])


def test_sigterm_stops_after_a_complete_chunk_and_the_rerun_finishes_the_set(trained, reference, tmp_path, monkeypatch):
  want = reference
  workdir = _copy(trained, tmp_path / "run")
  original, calls = mlp_task.Task.sample, []

  def sample(self, state, key, n, start_index=0):
    calls.append(start_index)
    if len(calls) == 2:   # the scheduler preempts while the second chunk is drawn
      os.kill(os.getpid(), signal.SIGTERM)
    return original(self, state, key, n, start_index)

  monkeypatch.setattr(mlp_task.Task, "sample", sample)
  with pytest.raises(train.Preempted, match=r"received SIGTERM: 6 of 10 samples are complete in .*rerun"):
    train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)
  assert signal.getsignal(signal.SIGTERM) is not None   # the handler was restored (no crash on the next one)
  d = os.path.join(workdir, "samples", "step4_seed7")
  assert sorted(_chunks(d)) == ["chunk_000000.npy", "chunk_000001.npy"]
  assert not sampling.read_manifest(d)["complete"]
  calls.clear()
  train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)
  assert calls == [6, 9] and _chunks(d) == want


def test_a_full_disk_is_one_line_leaves_no_temporary_file_and_resumes(trained, reference, tmp_path, monkeypatch):
  want = reference
  workdir = _copy(trained, tmp_path / "run")
  real_save, saves = np.save, []

  def save(f, arr, **kw):
    saves.append(1)
    if len(saves) == 3:
      f.write(b"\x93NUMPY partial")
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(f, arr, **kw)

  monkeypatch.setattr(sampling.np, "save", save)
  with pytest.raises(train.DiskFullError) as e:
    train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)
  msg = e.value.strerror
  assert "\n" not in msg and "(6 of 10 samples complete): free space there, then rerun" in msg
  d = os.path.join(workdir, "samples", "step4_seed7")
  assert not [f for f in os.listdir(d) if ".tmp" in f] and sorted(_chunks(d)) == [
      "chunk_000000.npy", "chunk_000001.npy"]
  monkeypatch.setattr(sampling.np, "save", real_save)
  train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)
  assert _chunks(d) == want


def test_truncated_or_foreign_chunks_are_redrawn(trained, reference, tmp_path):
  want = reference
  workdir = _copy(trained, tmp_path / "run")
  d = train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)["dir"]
  with open(sampling.chunk_path(d, 0), "r+b") as f:   # cut short (a copy interrupted, a bad disk)
    f.truncate(100)
  np.save(sampling.chunk_path(d, 2), np.zeros((3, 5), np.float32))   # another set's chunk
  assert sampling.num_complete(d) == 0
  train.sample(make_config(**SMALL), workdir, num=10, chunk_size=3, progress=False)
  assert _chunks(d) == want


def test_chunks_without_a_manifest_or_an_unreadable_manifest_are_refused(tmp_path):
  d = tmp_path / "set"
  d.mkdir()
  np.save(d / "chunk_000000.npy", np.zeros((2, 2), np.float32))
  fn = lambda key, n, start: np.zeros((n, 2), np.float32)   # noqa: E731
  with pytest.raises(train.ConfigError, match=r"holds chunk files but no manifest.json: remove the directory"):
    sampling.write_samples(fn, str(d), 4, np.zeros(2, np.uint32), chunk_size=2, progress=False)
  (d / "manifest.json").write_text("{not json")
  for call in (lambda: sampling.write_samples(fn, str(d), 4, np.zeros(2, np.uint32), chunk_size=2),
               lambda: list(sampling.iterate_samples(str(d)))):
    with pytest.raises(train.ConfigError, match=r"manifest.json is unreadable .*: remove the directory") as e:
      call()
    assert "\n" not in str(e.value)


def test_launcher_samples_and_resumes(trained, tmp_path):
  workdir = _copy(trained, tmp_path / "run")
  args = ["--config", CONFIG_FILE, "--workdir", workdir, "--mode", "sample", "--num_samples", "6",
          "--sample_chunk_size", "4", "--sample_run", "fid", "--config.num_train_steps=4",
          "--config.checkpoint_every_steps=4", "--config.log_every_steps=4", "--config.num_grid_samples=0",
          "--config.data.eval_split="]

  def cli(*extra):
    return subprocess.run(launcher(*args, *extra), cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)

  r = cli()
  assert r.returncode == 0, r.stderr
  d = os.path.join(workdir, "samples", "fid")
  assert any(line.split() == ["samples:", d] for line in r.stdout.splitlines())
  assert sampling.num_complete(d) == 6 and "(2 chunks drawn now, 0 were complete)" in r.stderr
  before = _chunks(d)
  r = cli()   # the same command again: nothing left to draw
  assert r.returncode == 0 and "(0 chunks drawn now, 2 were complete)" in r.stderr and _chunks(d) == before
