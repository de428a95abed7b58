"""``jaxgen.tables.samplers`` in checkpoint mode: the samplers against NFE on a trained network (issue 14).

A tiny diffusion run (toy_mlp, hidden 16, 2 steps, toy2d) is trained with the trainer into tmp_path; the
table then restores its EMA params read-only and scores Heun (and Euler) against Heun at N = 256.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxgen import configs, train
from jaxgen.tables import samplers as st


def _tiny_config():
  c = configs.base_config()
  c.batch_size = 16
  c.num_train_steps = 2
  c.log_every_steps = 1
  c.checkpoint_every_steps = 2
  c.num_grid_samples = 0
  c.data.name = "toy2d"
  c.data.toy = "8gaussians"
  c.model.name = "toy_mlp"
  c.model.overrides.hidden = 16
  c.model.overrides.num_layers = 1
  c.model.overrides.emb_dim = 8
  c.optimizer.learning_rate = 1e-2
  c.task.name = "diffusion"
  c.task.precond = "edm"
  c.task.loss = "edm"
  c.lock()
  return c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("tiny_diffusion_run"))
  train.train_and_evaluate(_tiny_config(), d)
  assert os.path.exists(os.path.join(d, "config.json"))
  return d


def test_checkpoint_mode_heun_converges_to_its_reference(workdir):
  problem = st.checkpoint_problem(workdir, batch=64)
  assert problem.z.shape == (64, 2) and problem.ref.shape == (64, 2)
  assert np.all(np.isfinite(problem.ref))
  results, _, _ = st.evaluate(names=["sample_heun", "sample_euler"], problem=problem)
  heun = {r.name: r for r in results}["sample_heun"]
  assert heun.kind == "ODE" and heun.formula == "2N-1"
  errors = {t: heun.runs[t][2] for t in (10, 20, 50)}
  assert {t: heun.runs[t][0] for t in errors} == {10: 5, 20: 10, 50: 25}
  # second order: more steps, smaller error against the fine reference
  assert errors[50] < errors[10]
  assert errors[50] < errors[20] < errors[10]
  # the reference (N = 256) is much closer to N = 512 than any table entry is to it
  entries = [v[2] for r in results for v in r.runs.values()]
  assert entries and problem.ref_error < 0.1 * min(entries), (problem.ref_error, entries)


def test_checkpoint_tables_leave_stochastic_samplers_out(workdir, monkeypatch, tmp_path):
  monkeypatch.setenv("JAXGEN_TABLES_WORKDIR", workdir)   # what `python -m jaxgen.tables samplers` reads
  made = st.tables(out=str(tmp_path), targets=(10, 20), batch=16,
                   samplers=["sample_heun", "sample_euler_ancestral"])
  assert len(made) == 1
  t = made[0]
  assert "trained network" in t.title and workdir in t.source
  assert [r[0] for r in t.rows] == ["sample_heun"]
  text = t.render()
  assert "sample_euler_ancestral" in text and "stochastic: left out" in text
  assert os.path.getsize(tmp_path / "samplers_nfe_checkpoint.png") > 0
