"""Every experiment config runs: its ``:smoke`` variant trains 2 steps and evaluates, in-process.

Experiment files are discovered under ``experiments/`` (any depth), so a new file is tested without
editing this one. Runs share the process (and JAX's start-up and compilation caches).
"""

from __future__ import annotations

import glob
import importlib.util
import math
import os

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


@pytest.mark.parametrize("relpath", FILES)
def test_smoke_variant_trains_two_steps_and_evaluates(relpath, tmp_path):
  _, config = load_config(relpath, "smoke")
  assert config.batch_size <= 16, f"{relpath}: the smoke variant must use a tiny batch"
  config.num_train_steps = 2
  workdir = str(tmp_path)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 2
  records = log_lib.read_metrics(workdir)
  assert 2 in records and math.isfinite(records[2]["loss"]), records
  assert ckpt_lib.saved_steps(workdir)[-1] == 2
