"""GCS workdirs (jaxgen/fs.py, docs/pods.md): the same trainer code on ``gs://bucket/run`` as on disk.

Everything runs against a local GCS emulator (``gcp-storage-emulator`` from PyPI, started by this
module, with GCS's generation preconditions added: tests/fixtures/gcs_emulator.py): path helpers,
one-line errors for a missing bucket or missing credentials before any write, the object lock (created
under ``ifGenerationMatch=0``, heartbeat, stale takeover, a race of two acquirers), and a run on a bucket
that is SIGKILLed after its first checkpoint and resumed: it ends bit for bit as an uninterrupted run,
with its checkpoints (orbax over tensorstore's gcs driver), metrics.jsonl, TensorBoard events,
config.json, eval files and sample grid in the bucket; ``--mode eval`` and ``--mode sample`` then read it
and write there, and a corrupted latest checkpoint is moved aside and the previous one resumed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

for _module, _why in (("gcp_storage_emulator", "pip install gcp-storage-emulator (the test extra)"),
                     ("gcsfs", "pip install 'jaxgen[gcs]'"), ("google.cloud.storage", "pip install 'jaxgen[gcs]'")):
  if importlib.util.find_spec(_module.split(".")[0]) is None:  # (not imported: gcsfs reads its settings then)
    pytest.skip(_why, allow_module_level=True)

from jaxgen import checkpoint as ckpt_lib  # noqa: E402
from jaxgen import errors, fs, train  # noqa: E402
from jaxgen import logging as log_lib  # noqa: E402
from tests.fixtures.gcs_emulator import emulator  # noqa: E402
from tests.fixtures.trainer_utils import (CONFIG_FILE, REPO, launcher, make_config,  # noqa: E402
                                          subprocess_env, trees_equal)

BUCKET = "jaxgen-test"


@pytest.fixture(scope="module")
def gcs():
  """The emulator's environment, set in this process for the module (gcsfs, google-cloud-storage and
  tensorstore read it on first use)."""
  with emulator(BUCKET) as env, pytest.MonkeyPatch.context() as mp:
    for k, v in env.items():
      mp.setenv(k, v)
    yield env


def _objects(url: str) -> list[str]:
  return [p[len(url) + 1:] for p in fs.walk_files(url)]


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

def test_path_helpers_treat_urls_and_local_paths_alike(gcs, tmp_path):
  assert fs.is_remote("gs://b/x") and not fs.is_remote("/tmp/x") and not fs.is_remote("runs/x")
  assert fs.abspath("GS://b/run/") == "gs://b/run" and fs.abspath("runs/x") == os.path.abspath("runs/x")
  assert fs.join("gs://b/run/", "eval", "step_1.json") == "gs://b/run/eval/step_1.json"
  assert fs.dirname("gs://b/run/jaxgen.lock") == "gs://b/run"
  assert fs.split_bucket("gs://b/a/b/") == ("b", "a/b")
  for root in (f"gs://{BUCKET}/paths", str(tmp_path / "paths")):
    assert not fs.exists(root) and fs.listdir(root) == []
    fs.write_text(fs.join(root, "a", "x.json"), '{"k": 1}')
    fs.write_bytes(fs.join(root, "b.bin"), b"\x00\x01")
    assert fs.listdir(root) == ["a", "b.bin"] and fs.isdir(fs.join(root, "a"))
    assert fs.isfile(fs.join(root, "b.bin")) and not fs.isfile(fs.join(root, "a"))
    assert json.loads(fs.read_text(fs.join(root, "a", "x.json"))) == {"k": 1}
    assert [p.rsplit("/", 2)[-2:] for p in fs.walk_files(root)] == [["a", "x.json"], ["paths", "b.bin"]]
    fs.move(fs.join(root, "a"), fs.join(root, "c"))
    assert fs.listdir(root) == ["b.bin", "c"] and fs.read_bytes(fs.join(root, "b.bin")) == b"\x00\x01"
    fs.remove(fs.join(root, "b.bin"))
    fs.rmtree(fs.join(root, "c"))
    assert fs.listdir(root) == []
  assert not [f for f in os.listdir(tmp_path / "paths") if ".tmp" in f]


def test_metrics_writer_rewrites_the_object_whole_and_notices_a_deleted_file(gcs, caplog):
  workdir = f"gs://{BUCKET}/metrics"
  w = log_lib.MetricWriter(workdir)
  w.write(1, {"loss": 1.0})
  w.write(2, {"loss": 2.0})
  w.close()
  w = log_lib.MetricWriter(workdir)  # a resumed run appends to the existing records
  w.write(3, {"loss": 3.0})
  assert sorted(log_lib.read_metrics(workdir)) == [1, 2, 3]
  fs.remove(fs.join(workdir, "metrics.jsonl"))
  with caplog.at_level(logging.WARNING, logger="jaxgen"):
    w.write(4, {"loss": 4.0})
  w.close()
  assert sorted(log_lib.read_metrics(workdir)) == [4]
  assert sum("metrics.jsonl was deleted" in r.getMessage() for r in caplog.records) == 1
  events = fs.listdir(fs.join(workdir, "tensorboard"))
  assert len(events) == 2 and all(e.startswith("events.out.tfevents.") for e in events)


# ---------------------------------------------------------------------------------------------
# One-line errors before any work
# ---------------------------------------------------------------------------------------------

def test_a_missing_bucket_or_missing_credentials_is_one_line_before_any_write(gcs, monkeypatch):
  config = make_config(num_train_steps=2)
  with pytest.raises(errors.ConfigError, match=r"^--workdir gs://no-such-bucket/run: bucket "
                                               r"gs://no-such-bucket does not exist: create it"):
    train.train_and_evaluate(config, "gs://no-such-bucket/run")
  with pytest.raises(errors.ConfigError, match="names no bucket"):
    train.check_workdir("gs:///run", config, "train")

  import google.auth.exceptions
  from google.cloud import storage

  def no_credentials(*a, **k):
    raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were not found.")

  monkeypatch.setattr(storage, "Client", no_credentials)
  with pytest.raises(errors.ConfigError, match=r"^no Google Cloud credentials were found .*gcloud auth "
                                               "application-default login"):
    train.train_and_evaluate(config, f"gs://{BUCKET}/nocreds")
  assert not fs.exists(f"gs://{BUCKET}/nocreds")
  with pytest.raises(errors.ConfigError, match="holds no checkpoint"):
    monkeypatch.undo()
    train.evaluate(config, f"gs://{BUCKET}/nocreds")


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------

def _write_holder(url: str, **holder) -> None:
  fs.gcs_client().bucket(BUCKET).blob(fs.split_bucket(url)[1]).upload_from_string(json.dumps(holder))


def _dead_pid() -> int:
  p = subprocess.Popen(["true"])
  p.wait()
  return p.pid


def test_object_lock_refuses_a_second_holder_heartbeats_and_takes_over_stale_locks(gcs, caplog):
  url = f"gs://{BUCKET}/lock/jaxgen.lock"
  first = fs.ObjectLock(url, heartbeat_s=0.1, stale_s=0.6).acquire()
  time.sleep(1.0)  # beyond stale_s, but the heartbeat kept it fresh
  holder = rf"in use by pid {os.getpid()} on host {socket.gethostname()} .*last heartbeat 0 s ago"
  with pytest.raises(errors.ConfigError, match=holder):
    fs.ObjectLock(url, stale_s=0.6).acquire()
  assert not first.lost and first.holder()["pid"] == os.getpid()
  first.release()
  assert first.holder() == {} and not fs.exists(url)

  # A holder on another machine that stopped beating: refused until stale_s, then taken over.
  _write_holder(url, pid=1, host="elsewhere", boot_id="x", since="then")
  with pytest.raises(errors.ConfigError, match=r"pid 1 on host elsewhere .*turns stale in"):
    fs.ObjectLock(url, stale_s=30).acquire()
  time.sleep(0.7)
  with caplog.at_level(logging.WARNING, logger="jaxgen"):
    lock = fs.ObjectLock(url, heartbeat_s=0.1, stale_s=0.6).acquire()
  assert any("took over the stale lock" in r.getMessage() for r in caplog.records)
  # Stolen behind its back (as a takeover after a stall would): the next heartbeat notices.
  _write_holder(url, pid=2, host="thief")
  deadline = time.monotonic() + 5
  while not lock.lost and time.monotonic() < deadline:
    time.sleep(0.05)
  assert lock.lost
  lock.release()
  assert fs.ObjectLock(url).holder()["host"] == "thief"  # release never deletes another's lock
  fs.remove(url)

  # The lock of a dead process on this same machine (a SIGKILLed run restarted at once): taken at once.
  _write_holder(url, pid=_dead_pid(), host=socket.gethostname(), boot_id=fs._boot_id(), since="then")
  fs.ObjectLock(url, stale_s=3600).acquire().release()

  # A create that landed although its response was lost, then retried (GCS answers 412): still ours.
  lock = fs.ObjectLock(url, stale_s=3600)
  lock._write(0)
  lock.acquire()
  with pytest.raises(errors.ConfigError, match="in use by"):
    fs.ObjectLock(url, stale_s=3600).acquire()
  lock.release()
  assert not fs.exists(url)


def test_two_racing_acquirers_get_the_lock_exactly_once(gcs):
  url = f"gs://{BUCKET}/race/jaxgen.lock"
  results, barrier = [], threading.Barrier(4)

  def try_lock():
    lock = fs.ObjectLock(url, heartbeat_s=60)
    barrier.wait()
    try:
      results.append(lock.acquire())
    except errors.ConfigError:
      results.append(None)

  threads = [threading.Thread(target=try_lock) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  winners = [r for r in results if r is not None]
  assert len(results) == 4 and len(winners) == 1
  winners[0].release()


# ---------------------------------------------------------------------------------------------
# Train, SIGKILL, resume, on a bucket
# ---------------------------------------------------------------------------------------------

def test_a_run_on_a_bucket_killed_after_a_checkpoint_resumes_bit_for_bit(gcs, tmp_path):
  steps = {"num_train_steps": 12, "checkpoint_every_steps": 4, "log_every_steps": 4,
           "num_grid_samples": 4, "data.delay_s": 0.1}   # (delay_s: the kill lands before the end)
  reference = train.train_and_evaluate(make_config(**steps), str(tmp_path / "local"))

  workdir = f"gs://{BUCKET}/killed"
  flags = [f"--config.{k}={v}" for k, v in steps.items()]
  env = subprocess_env(8)
  env.update(gcs)
  proc = subprocess.Popen(launcher("--config", CONFIG_FILE, "--workdir", workdir, *flags), cwd=REPO,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not ckpt_lib.saved_steps(workdir):
      time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert fs.ObjectLock(fs.join(workdir, "jaxgen.lock")).holder()["pid"] == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  killed_at = ckpt_lib.saved_steps(workdir)
  assert killed_at and killed_at[-1] < 12, killed_at

  # The dead process's lock object is still there; it died on this host, so the resume takes it at once.
  assert fs.exists(fs.join(workdir, "jaxgen.lock"))
  resumed = train.train_and_evaluate(make_config(**steps), workdir)
  assert int(resumed.step) == 12 and trees_equal(resumed, reference)

  objects = _objects(workdir)
  assert "jaxgen.lock" not in objects  # released
  for name in ("config.json", "metrics.jsonl", "eval/step_12.json", "samples/step_12.png",
               "checkpoints/12/commit_success.txt"):
    assert name in objects, objects
  assert any(o.startswith("tensorboard/events.out.tfevents.") for o in objects)
  assert sorted(log_lib.read_metrics(workdir))[-1] == 12
  summary = train.summary(workdir)
  assert summary.step == 12 and summary.num_train_steps == 12
  assert summary.checkpoint == f"{workdir}/checkpoints/12" and "loss" in summary.train_metrics
  assert train.evaluate(make_config(**steps), workdir)["step"] == 12
  streamed = train.sample(make_config(**steps), workdir, 8, progress=False)  # (docs/sampling.md)
  assert streamed["dir"].startswith(f"{workdir}/samples/") and fs.isfile(streamed["manifest"])

  # A corrupted latest checkpoint in the bucket: moved to checkpoints_corrupt/ (copy + delete on GCS),
  # the one before it resumed, and the rerun steps end where they did.
  for path in fs.walk_files(f"{workdir}/checkpoints/12/state"):
    if "/d/" in path:
      fs.write_bytes(path, b"garbage")
  again = train.train_and_evaluate(make_config(**steps), workdir)
  assert trees_equal(again, reference) and ckpt_lib.saved_steps(workdir)[-1] == 12
  assert fs.listdir(f"{workdir}/checkpoints_corrupt")[0].startswith("12.")
