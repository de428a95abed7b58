"""Pod launch scripts (docs/pods.md): scripts/run_until_done.sh and scripts/launch_tpu_pod.sh.

run_until_done.sh restarts a command while it exits 75 (the launcher's status after SIGTERM saved a
checkpoint, ``jaxgen.main.EXIT_PREEMPTED``), passes any other status through, gives up after
``--max-restarts``, and forwards SIGTERM to the command without restarting it. launch_tpu_pod.sh
prints the gcloud commands of a launch (``--dry-run`` runs none of them; without it each printed
command is the one run: a fake ``gcloud`` on PATH records them), with the hosts and devices of the
slice, and refuses a local workdir or a batch the devices do not divide, in one line.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_UNTIL_DONE = os.path.join(REPO, "scripts", "run_until_done.sh")
LAUNCH = os.path.join(REPO, "scripts", "launch_tpu_pod.sh")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")

# A command that exits with the statuses listed in its file, one per run, and counts its runs.
FLAKY = """import sys
path, log = sys.argv[1], sys.argv[2]
statuses = open(path).read().split()
n = len(open(log).read().splitlines()) if __import__("os").path.exists(log) else 0
open(log, "a").write(" ".join(sys.argv[3:]) + "\\n")
sys.exit(int(statuses[min(n, len(statuses) - 1)]))
"""


def _flaky(tmp_path, statuses):
  (tmp_path / "statuses").write_text(" ".join(map(str, statuses)))
  (tmp_path / "flaky.py").write_text(FLAKY)
  return [sys.executable, str(tmp_path / "flaky.py"), str(tmp_path / "statuses"), str(tmp_path / "runs")]


def _runs(tmp_path) -> list[str]:
  p = tmp_path / "runs"
  return p.read_text().splitlines() if p.exists() else []


def test_the_exit_status_75_is_the_launchers_preempted_status():
  text = open(RUN_UNTIL_DONE).read()
  from jaxgen import main

  assert main.EXIT_PREEMPTED == 75 and "EX_TEMPFAIL=75" in text


@pytest.mark.parametrize("statuses, max_restarts, status, runs", [
    ([75, 75, 0], 100, 0, 3),      # preempted twice, then done
    ([75, 75, 75, 0], 1, 75, 2),   # gives up after --max-restarts, still resumable (75)
    ([2, 0], 100, 2, 1),           # a user error is not retried
    ([1], 100, 1, 1),              # neither is a non-finite loss
])
def test_run_until_done_restarts_only_on_75(tmp_path, statuses, max_restarts, status, runs):
  cmd = [RUN_UNTIL_DONE, "--delay", "0", "--max-restarts", str(max_restarts), "--",
         *_flaky(tmp_path, statuses), "--config.x=a b"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
  assert proc.returncode == status, proc.stderr
  assert _runs(tmp_path) == ["--config.x=a b"] * runs  # the same arguments every time
  assert proc.stderr.count("exit status 75 (preempted, resumable): restart") == min(
      runs - 1, max_restarts)


def test_run_until_done_forwards_sigterm_and_does_not_restart(tmp_path):
  # The child saves and exits 75 on SIGTERM, as the launcher does.
  child = tmp_path / "child.py"
  child.write_text("import signal, sys, time\n"
                   "signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))\n"
                   f"open({str(tmp_path / 'started')!r}, 'a').write('x')\n"
                   "time.sleep(60)\n")
  proc = subprocess.Popen([RUN_UNTIL_DONE, "--delay", "0", sys.executable, str(child)],
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 30
  while not (tmp_path / "started").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=30)
  assert proc.returncode == 75 and "stopped by a signal" in err
  assert (tmp_path / "started").read_text() == "x"  # started once, never restarted


def test_run_until_done_without_a_command_is_one_line(tmp_path):
  proc = subprocess.run([RUN_UNTIL_DONE], capture_output=True, text=True, timeout=30)
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no command given" in proc.stderr


# ---------------------------------------------------------------------------------------------
# launch_tpu_pod.sh
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def fake_gcloud(tmp_path):
  """A ``gcloud`` on PATH that records its argv (one JSON list per line) and does nothing."""
  bindir = tmp_path / "bin"
  bindir.mkdir()
  record = tmp_path / "gcloud_calls"
  gcloud = bindir / "gcloud"
  gcloud.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
  gcloud.chmod(0o755)
  env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp_path))

  def calls():
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

  return env, calls


BASE = ["--name", "pod", "--zone", "us-central2-b", "--config", "experiments/edm/cifar10_baseline_ve.py",
        "--workdir", "gs://bucket/edm"]


def _launch(env, *args):
  return subprocess.run([LAUNCH, *args], capture_output=True, text=True, env=env, timeout=60)


def test_dry_run_prints_the_slice_and_every_command_and_runs_none(fake_gcloud):
  env, calls = fake_gcloud
  out = _launch(env, *BASE, "--accelerator", "v4-32", "--batch-size", "512", "--create", "--spot",
                "--data-dir", "gs://bucket/tfds", "--dry-run", "--", "--config.mesh.fsdp=4")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0] == "# v4-32: 16 chips = 16 JAX devices on 4 host(s) (4 per host)"
  assert lines[1] == "# global batch 512 = 128 per host = 32 per device"
  commands = [shlex.split(line) for line in lines if not line.startswith("#")]
  assert commands[0] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod", "--zone=us-central2-b",
                         "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"]
  assert commands[1][:3] == ["git", "-C", REPO] and commands[1][3] == "archive"
  assert commands[2][:4] == ["gcloud", "compute", "tpus", "tpu-vm"] and "--worker=all" in commands[2]
  run = commands[-1]
  assert run[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in run
  remote = shlex.split(run[-1].split("=", 1)[1])
  main = remote.index("jaxgen.main")
  assert remote[remote.index("nohup") + 1] == "scripts/run_until_done.sh"
  assert remote[main + 1:main + 11] == [
      "--config", "experiments/edm/cifar10_baseline_ve.py", "--workdir", "gs://bucket/edm",
      "--config.distributed=true", "--config.data.data_dir=gs://bucket/tfds", "--config.batch_size=512",
      "--config.mesh.fsdp=4", ">", "~/jaxgen-run.log"]
  assert calls() == []


@pytest.mark.parametrize("accel, hosts_line", [
    ("v5e-16", "# v5litepod-16: 16 chips = 16 JAX devices on 4 host(s) (4 per host)"),
    ("v5litepod-8", "# v5litepod-8: 8 chips = 8 JAX devices on 1 host(s) (8 per host)"),
    ("v4-8", "# v4-8: 4 chips = 4 JAX devices on 1 host(s) (4 per host)"),
    ("v6e-32", "# v6e-32: 32 chips = 32 JAX devices on 8 host(s) (4 per host)"),
])
def test_hosts_and_devices_of_each_slice(fake_gcloud, accel, hosts_line):
  env, _ = fake_gcloud
  out = _launch(env, *BASE, "--accelerator", accel, "--no-setup", "--dry-run")
  assert out.returncode == 0 and out.stdout.splitlines()[0] == hosts_line


def test_without_dry_run_the_printed_commands_are_the_ones_run(fake_gcloud, tmp_path):
  env, calls = fake_gcloud
  out = _launch(env, *BASE, "--accelerator", "v5e-16", "--", "--config.task.note=it's \"quoted\"")
  assert out.returncode == 0, out.stderr
  printed = [shlex.split(line) for line in out.stdout.splitlines()
             if line.startswith("gcloud ")]
  assert [["gcloud", *c] for c in calls()] == printed and len(printed) == 3
  tarball = printed[0][5]  # gcloud compute tpus tpu-vm scp TARBALL ...: the git archive of HEAD
  assert tarball.startswith(str(tmp_path)) and os.path.getsize(tarball) > 0
  remote = shlex.split(printed[-1][-1].split("=", 1)[1])
  assert "--config.task.note=it's \"quoted\"" in remote  # survives both shells


@pytest.mark.parametrize("args, message", [
    (["--accelerator", "v4-32", "--workdir", "/tmp/run"], "--workdir must be gs://"),
    (["--accelerator", "v5e-16", "--batch-size", "100"], "not divisible by the 16 devices"),
    (["--accelerator", "tpu-big"], "is not GENERATION-SIZE"),
    (["--accelerator", "v4-32", "--data-dir", "/data"], "--data-dir must be gs://"),
])
def test_bad_arguments_are_one_line_and_run_nothing(fake_gcloud, args, message):
  env, calls = fake_gcloud
  out = _launch(env, *BASE, *args)
  assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr
  assert calls() == []
