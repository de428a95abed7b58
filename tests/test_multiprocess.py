"""Two processes on localhost (CPU, 2 devices each) train in lockstep through the one trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxgen import checkpoint as ckpt_lib
from jaxgen import logging as log_lib
from tests.fixtures.trainer_utils import REPO, subprocess_env

portpicker = pytest.importorskip("portpicker")


def test_two_processes_train_in_lockstep_with_identical_params(tmp_path):
  port = portpicker.pick_unused_port()
  workdir, out = tmp_path / "run", tmp_path / "out"
  out.mkdir()
  env = subprocess_env(num_devices=2)
  procs = [subprocess.Popen([sys.executable, "-m", "tests.fixtures.mp_worker", str(port), str(i),
                             str(workdir), str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=240)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-4000:]
  r0, r1 = (np.load(out / f"process_{i}.npz") for i in range(2))
  assert int(r0["devices"]) == int(r1["devices"]) == 4 and int(r0["local_devices"]) == 2
  assert int(r0["step"]) == int(r1["step"]) == 4
  keys = sorted(k for k in r0.files if k.startswith("p"))
  assert keys and all(np.array_equal(r0[k], r1[k]) for k in keys)
  # One log (process 0), a checkpoint per cadence step, each process's data position saved.
  assert sorted(log_lib.read_metrics(str(workdir))) == [2, 4]
  assert ckpt_lib.saved_steps(str(workdir)) == [2, 4]
  data_dir = workdir / "checkpoints" / "4" / "data"
  states = [json.loads((data_dir / f"process_{i}-of-2.json").read_text()) for i in range(2)]
  assert len(states) == 2
