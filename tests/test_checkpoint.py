"""Checkpoints (jaxgen/checkpoint.py): retention, corrupted-checkpoint fallback, exact resume after SIGKILL."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import checkpoint as ckpt_lib
from jaxgen import logging as log_lib
from jaxgen import train
from tests.fixtures.trainer_utils import (CONFIG_FILE, REPO, host_tree, launcher, make_config,
                                          subprocess_env, trees_equal)


def _abstract(tree):
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def test_retention_keeps_last_n_plus_multiples_and_round_trips(tmp_path):
  c = ckpt_lib.Checkpointer(str(tmp_path), keep=2, keep_every=4)
  state = {"w": jnp.arange(3, dtype=jnp.float32), "step": jnp.int32(0), "rng": jnp.zeros(2, jnp.uint32)}
  for step in range(1, 10):
    c.save(step, dict(state, w=state["w"] + step, step=jnp.int32(step)), {"pos": step, "epoch": [step, 1]})
  c.wait()
  assert c.all_steps() == [4, 8, 9]  # the newest 2 plus every multiple of 4
  step, restored, data = c.restore_latest(_abstract(state))
  c.close()
  assert step == 9 and data == {"pos": 9, "epoch": [9, 1]}
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(3) + 9.0)
  assert restored["w"].dtype == jnp.float32 and restored["rng"].dtype == jnp.uint32
  assert ckpt_lib.saved_steps(str(tmp_path)) == [4, 8, 9]


def test_corrupted_latest_checkpoint_falls_back_to_newest_valid_one(tmp_path, caplog):
  workdir = str(tmp_path)
  config = make_config(num_train_steps=8, checkpoint_every_steps=4, log_every_steps=4,
                       num_grid_samples=0, **{"data.eval_split": ""})
  final = host_tree(train.train_and_evaluate(config, workdir))
  assert ckpt_lib.saved_steps(workdir) == [4, 8]
  # Truncate every file of the latest checkpoint, as a crash of the file system might.
  for dirpath, _, files in os.walk(os.path.join(workdir, "checkpoints", "8")):
    for f in files:
      p = os.path.join(dirpath, f)
      with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) // 2)
  with caplog.at_level(logging.WARNING, logger="jaxgen"):
    resumed = train.train_and_evaluate(config, workdir)
  warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
  assert "checkpoint at step 8" in warnings and "unreadable" in warnings
  assert "resumed from step 4" in warnings
  assert os.listdir(os.path.join(workdir, "checkpoints_corrupt"))[0].startswith("8.")
  assert ckpt_lib.saved_steps(workdir) == [4, 8]
  # Steps 5..8 were recomputed from step 4's state and data position: the same params, bit for bit.
  assert trees_equal(resumed, final)


def test_sigkill_at_any_moment_then_rerun_finishes_bit_identical(tmp_path):
  steps, every = 40, 5
  flags = [f"--config.num_train_steps={steps}", f"--config.checkpoint_every_steps={every}",
           f"--config.log_every_steps={every}", "--config.num_grid_samples=0",
           "--config.data.eval_split="]
  reference = train.train_and_evaluate(
      make_config(num_train_steps=steps, checkpoint_every_steps=every, log_every_steps=every,
                  num_grid_samples=0, **{"data.eval_split": ""}), str(tmp_path / "reference"))

  workdir = str(tmp_path / "run")
  cmd = launcher("--config", CONFIG_FILE, "--workdir", workdir, *flags, "--config.data.delay_s=0.04")
  env = subprocess_env(jax.device_count())
  env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 120
  try:
    while not ckpt_lib.saved_steps(workdir) and time.monotonic() < deadline and proc.poll() is None:
      time.sleep(0.02)
    delay = random.Random(os.getpid()).uniform(0.0, 0.4)  # some moment after the first checkpoint
    time.sleep(delay)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stdout.read().decode()}"
    proc.kill()
  finally:
    proc.wait()
  assert proc.returncode == -9
  killed_at = ckpt_lib.saved_steps(workdir)
  assert killed_at and killed_at[-1] < steps, killed_at

  rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert ckpt_lib.saved_steps(workdir)[-1] == steps
  c = ckpt_lib.Checkpointer(workdir, read_only=True)
  step, state, _ = c.restore_latest(_abstract(reference))
  c.close()
  assert step == steps
  assert trees_equal(state, reference), f"killed after step {killed_at[-1]} (+{delay:.2f} s)"
  assert steps in log_lib.read_metrics(workdir)
