"""Every experiment config runs: its ``:smoke`` variant trains 2 steps and evaluates.

Experiment files are discovered under ``experiments/`` (any depth), so a new file is tested without
editing this one.

The smoke runs check wiring (the config resolves; task, model, data and sampler build; two steps
train; evaluation, sample grid and checkpoint run), not numerics, and XLA's CPU compile of their
init / train-step / sampler programs is nearly all of their time. So they run in one helper process
per test worker (``python tests/test_experiments.py --smoke-worker``, started on first use and kept for
the module, so runs still share JAX's start-up and compilation caches) whose XLA compiles with LLVM
-O0 and, on jaxlib 0.10, XLA's elemental fusion emitter (``smoke_xla_flags``): 2–4× less CPU time
(GoogLeNet smoke run 111 → 32 CPU-s, EDM NCSN++ 38 → 11). Results differ from the default -O2 build
by float32 rounding only, but that is enough to fail library tests that compare two programs to 1e-5
(tests/diffusion/test_samplers.py, shard_map vs one device: 3e-5 at -O0), so the flags stay out of
the main test process. The worker writes the workdir the test then inspects;
``JAXGEN_TEST_SMOKE_IN_PROCESS=1`` runs the smoke runs in the test process instead (XLA defaults).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import jaxlib
import pytest

from jaxgen import checkpoint as ckpt_lib
from jaxgen import logging as log_lib
from jaxgen import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "experiments", "**", "*.py"), recursive=True)
    if not os.path.basename(p).startswith("_"))


def load_config(relpath: str, arg: str | None):
  name = "experiment_" + relpath[:-3].replace(os.sep, "_").replace("-", "_")
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relpath))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  config.lock()  # as the launcher does
  return module, config


@pytest.mark.parametrize("relpath", FILES)
def test_docstring_states_the_launch_command(relpath):
  module, _ = load_config(relpath, "smoke")
  doc = module.__doc__ or ""
  assert f"python -m jaxgen.main --config {relpath}" in doc, (
      f"{relpath}: the docstring must hold its launch command")


def smoke_xla_flags() -> str:
  """XLA_FLAGS of the smoke worker: the test process's plus a cheaper CPU compile (see the docstring;
  an XLA_FLAGS entry the installed jaxlib does not know aborts the process, hence the version gate)."""
  present = os.environ.get("XLA_FLAGS", "")
  if os.environ.get("JAX_PLATFORMS", "") != "cpu":  # (tests/conftest.py's default) only CPU compiles
    return present
  flags = ["--xla_backend_optimization_level=0"]
  if jaxlib.__version__.startswith("0.10."):
    flags.append("--xla_cpu_use_fusion_emitters=false")
  return " ".join([present, *(f for f in flags if f.split("=")[0] not in present)]).strip()


def run_smoke(relpath: str, workdir: str) -> int:
  """Trains the ``:smoke`` variant of ``relpath`` for 2 steps (plus its evaluation, sample grid and
  checkpoint) in ``workdir``; returns the final step."""
  _, config = load_config(relpath, "smoke")
  config.num_train_steps = 2
  return int(train.train_and_evaluate(config, workdir).step)


class SmokeWorker:
  """A child process running ``run_smoke`` requests one at a time (JSON lines over its stdin/stdout;
  its own output goes to a log file whose tail is reported when a run fails)."""

  def __init__(self):
    self.log = tempfile.NamedTemporaryFile("w+", prefix="smoke_worker_", suffix=".log", delete=False)
    env = dict(os.environ, XLA_FLAGS=smoke_xla_flags())
    self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--smoke-worker"], cwd=REPO,
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                 text=True)

  def log_tail(self, n: int = 6000) -> str:
    self.log.flush()
    with open(self.log.name, encoding="utf-8", errors="replace") as f:
      return f.read()[-n:]

  def run(self, relpath: str, workdir: str) -> int:
    self.proc.stdin.write(json.dumps({"relpath": relpath, "workdir": workdir}) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"the smoke worker exited (code {self.proc.wait()}) while running {relpath}; its "
                         f"log ({self.log.name}) ends with:\n{self.log_tail()}")
    reply = json.loads(line)
    if "error" in reply:
      pytest.fail(f"{relpath} :smoke failed in the smoke worker:\n{reply['error']}", pytrace=False)
    self.cpu_s = reply["cpu_s"]
    return int(reply["step"])

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.close()
      try:
        self.proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self.log.close()
    os.unlink(self.log.name)


@pytest.fixture(scope="module")
def smoke_runner():
  if os.environ.get("JAXGEN_TEST_SMOKE_IN_PROCESS", "0") == "1":
    yield run_smoke
    return
  worker = None

  def run(relpath, workdir):
    nonlocal worker
    if worker is None or worker.proc.poll() is not None:  # (re)start after a crash
      worker = SmokeWorker()
    step = worker.run(relpath, workdir)
    run.cpu_s = worker.cpu_s
    return step

  yield run
  if worker is not None:
    worker.close()


@pytest.mark.parametrize("relpath", FILES)
def test_smoke_variant_trains_two_steps_and_evaluates(relpath, tmp_path, smoke_runner, record_property):
  _, config = load_config(relpath, "smoke")
  assert config.batch_size <= 16, f"{relpath}: the smoke variant must use a tiny batch"
  workdir = str(tmp_path)
  assert smoke_runner(relpath, workdir) == 2
  if hasattr(smoke_runner, "cpu_s"):
    record_property("smoke_worker_cpu_s", smoke_runner.cpu_s)  # (CPU time spent in the worker)
  records = log_lib.read_metrics(workdir)
  assert 2 in records and math.isfinite(records[2]["loss"]), records
  assert ckpt_lib.saved_steps(workdir)[-1] == 2


def _worker_main():
  """The smoke worker's loop (see ``SmokeWorker``): set up like tests/conftest.py, then serve."""
  protocol = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)  # everything the runs print goes to the log, not into the protocol
  sys.stdout = sys.stderr
  import resource  # noqa: PLC0415

  import jax  # noqa: PLC0415
  jax.config.update("jax_num_cpu_devices", int(os.environ["JAX_NUM_CPU_DEVICES"]))
  cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
  for line in sys.stdin:
    req = json.loads(line)
    start = cpu()
    try:
      reply = {"step": run_smoke(req["relpath"], req["workdir"])}
      assert jax.device_count() == int(os.environ["JAX_NUM_CPU_DEVICES"]), jax.devices()
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
      reply = {"error": traceback.format_exc()}
    reply["cpu_s"] = round(cpu() - start, 2)
    protocol.write(json.dumps(reply) + "\n")
    protocol.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--smoke-worker"]:
  _worker_main()   # (JAX_PLATFORMS, JAX_NUM_CPU_DEVICES, XLA_FLAGS: from SmokeWorker's environment)
