"""The one trainer (jaxgen/train.py) on the fixture task: sharding, logs, resume, guard, modes."""

from __future__ import annotations

import dataclasses
import json
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import checkpoint as ckpt_lib
from jaxgen import logging as log_lib
from jaxgen import sampling
from jaxgen import sharding as shd
from jaxgen import tasks, train
from tests.fixtures import synthetic_data
from tests.fixtures.trainer_utils import host_tree, make_config, trees_equal

# ---------------------------------------------------------------------------------------------
# Sharded step == single-device step
# ---------------------------------------------------------------------------------------------


def _one_step(config, mesh, batch):
  task = tasks.get(config)
  key = jax.random.key(0)
  state = jax.device_put(_init_state(config, batch), shd.replicated(mesh))
  _, metric_shapes = jax.eval_shape(task.train_step, state, batch, key)
  keys = train._scalar_metric_keys(metric_shapes)
  step = train.make_train_step(task, mesh, keys, donate=False)
  acc = train._make_acc_init(mesh, keys)()
  gbatch = shd.shard_batch(batch, mesh)
  assert len(gbatch["x"].sharding.device_set) == len(mesh.devices.flat)
  new, acc = step(state, gbatch, acc)
  return host_tree(new), host_tree(acc)


_INIT = {}


def _init_state(config, batch):
  key = config.optimizer.grad_accum_steps
  if key not in _INIT:
    _INIT[key] = host_tree(jax.jit(lambda: tasks.get(config).init(jax.random.key(0), batch))())
  return _INIT[key]


@pytest.mark.parametrize("accum", [1, 2])
def test_sharded_step_equals_single_device_step(accum):
  assert jax.device_count() == 8
  config = make_config(**{"optimizer.grad_accum_steps": accum, "optimizer.ema_decay": 0.5})
  batch = {"x": synthetic_data.points(16, 3)}
  s8, acc8 = _one_step(config, shd.make_mesh(), batch)
  s1, acc1 = _one_step(config, shd.make_mesh(jax.devices()[:1]), batch)
  assert int(s8.step) == int(s1.step) == 1
  # Same batch, same key: only the order of the cross-device gradient sum differs (float32 rounding).
  for a, b in zip(jax.tree_util.tree_leaves((s8.params, s8.opt_state, s8.ema_params)),
                  jax.tree_util.tree_leaves((s1.params, s1.opt_state, s1.ema_params))):
    scale = max(float(np.max(np.abs(b))), 1e-30)
    assert float(np.max(np.abs(a - b))) <= 1e-5 * scale
  np.testing.assert_allclose(acc8["last"]["loss"], acc1["last"]["loss"], rtol=1e-5)
  assert int(acc8["first_bad"]) == -1 and int(acc8["count"]) == 1


# ---------------------------------------------------------------------------------------------
# A full run: logs, checkpoints, samples, eval/sample modes, resume with more steps
# ---------------------------------------------------------------------------------------------

RUN12 = dict(num_train_steps=12, log_every_steps=4, checkpoint_every_steps=4, eval_every_steps=6,
             sample_every_steps=8)


@pytest.fixture(scope="module")
def run12(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run12"))
  state = train.train_and_evaluate(make_config(**RUN12), workdir)
  return workdir, host_tree(state)


def test_run_writes_metrics_config_tensorboard_checkpoints_samples(run12):
  workdir, state = run12
  assert int(state.step) == 12
  records = log_lib.read_metrics(workdir)
  # Training records at multiples of log_every_steps and at the end; eval at 6 and at the end.
  assert sorted(records) == [4, 6, 8, 12]
  for s in (4, 8, 12):
    assert {"loss", "lr", "img_per_sec", "grad_norm"} <= set(records[s])
    assert np.isfinite(records[s]["loss"]) and records[s]["lr"] == pytest.approx(3e-3)
  assert set(records[6]) == {"step", "eval/loss"} and "eval/loss" in records[12]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert len(f.readlines()) == 4  # one JSON object per logged step
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == train.config_to_dict(make_config(**RUN12))
  events = os.listdir(os.path.join(workdir, "tensorboard"))
  assert any(e.startswith("events.out.tfevents") for e in events)
  assert ckpt_lib.saved_steps(workdir) == [4, 8, 12]  # keep_checkpoints=3
  for s in (8, 12):
    with Image.open(os.path.join(workdir, "samples", f"step_{s}.png")) as im:
      assert im.size[0] > 100
  assert not os.path.exists(os.path.join(workdir, "samples", "step_4.png"))


def test_eval_and_sample_modes_restore_latest(run12, tmp_path):
  workdir, state = run12
  import shutil
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  config = make_config(**RUN12)
  result = train.evaluate(make_config(**dict(RUN12, num_grid_samples=4)), copy)
  assert result["step"] == 12
  assert result["eval/loss"] == pytest.approx(log_lib.read_metrics(workdir)[12]["eval/loss"], rel=1e-6)
  with open(os.path.join(copy, "eval", "step_12.json")) as f:
    assert json.load(f) == result
  paths = train.sample(config, copy, num=10)
  x = sampling.load_samples(paths["dir"])   # a chunked, resumable sample set (docs/sampling.md)
  assert x.shape == (10, 2) and np.all(np.isfinite(x))
  # Sample i depends only on (key, i): the first 10 of the grid of 16 are the same points.
  task = tasks.get(config)
  grid = np.asarray(task.sample(state, jax.random.fold_in(jax.random.key(7), train._SAMPLE_TAG), 16))
  np.testing.assert_allclose(x, grid[:10], rtol=1e-5, atol=1e-6)
  assert os.path.exists(paths["png"])


def test_resume_with_more_steps_continues_and_matches_a_fresh_run(run12, tmp_path):
  workdir, _ = run12
  import shutil
  resumed = str(tmp_path / "resumed")
  shutil.copytree(workdir, resumed)
  config16 = make_config(**dict(RUN12, num_train_steps=16))
  s_resumed = train.train_and_evaluate(config16, resumed)
  assert int(s_resumed.step) == 16
  assert ckpt_lib.saved_steps(resumed) == [8, 12, 16]
  assert 16 in log_lib.read_metrics(resumed)
  s_fresh = train.train_and_evaluate(config16, str(tmp_path / "fresh"))
  assert trees_equal(s_resumed, s_fresh)  # constant learning rate: resuming is exact


def test_periodic_is_due_at_multiples_and_at_the_end():
  assert [s for s in range(1, 11) if train.Periodic(4, 10).due(s)] == [4, 8, 10]
  assert [s for s in range(1, 11) if train.Periodic(0, 10).due(s)] == [10]  # 0: only at the end
  assert [s for s in range(1, 11) if train.Periodic(5, 10).due(s)] == [5, 10]
  # The actions of RUN12 and when each runs (the steps of test_run_writes_...).
  periods = train._periods(make_config(**RUN12), generative=True)
  assert list(periods) == ["log", "checkpoint", "eval", "sample"]
  assert {k: [s for s in range(1, 13) if p.due(s)] for k, p in periods.items()} == {
      "log": [4, 8, 12], "checkpoint": [4, 8, 12], "eval": [6, 12], "sample": [8, 12]}
  assert "sample" not in train._periods(make_config(**RUN12), generative=False)
  assert "sample" not in train._periods(make_config(**dict(RUN12, num_grid_samples=0)), generative=True)


def test_summary_names_the_results_and_the_last_evaluation(run12):
  workdir, _ = run12
  records = log_lib.read_metrics(workdir)
  for s in (6, 12):  # every evaluation of training is also in eval/step_<N>.json
    with open(os.path.join(workdir, "eval", f"step_{s}.json")) as f:
      assert json.load(f) == {"step": s, "eval/loss": records[s]["eval/loss"]}
  summ = train.summary(workdir)
  assert summ.step == 12 and summ.num_train_steps == 12
  assert summ.eval_step == 12 and summ.eval_metrics == {"eval/loss": records[12]["eval/loss"]}
  # The training record of step 12 without the evaluation's keys.
  assert summ.train_step == 12
  assert summ.train_metrics == {k: v for k, v in records[12].items() if k not in ("step", "eval/loss")}
  assert summ.metrics_file == os.path.join(workdir, "metrics.jsonl")
  assert summ.checkpoint == os.path.join(workdir, "checkpoints", "12") and os.path.isdir(summ.checkpoint)
  assert summ.samples == (os.path.join(workdir, "samples", "step_12.png"),)
  text = str(summ)
  assert text.splitlines()[0] == f"run in {workdir}: step 12 of 12"
  for path in (summ.metrics_file, summ.checkpoint, summ.samples[0], summ.eval_file):
    assert path in text
  assert f"eval/loss={records[12]['eval/loss']:.4g}" in text and "loss=" in text
  # A run stopped early says so; an empty directory has nothing to show but its path.
  assert "unfinished" in str(dataclasses.replace(summ, step=8))
  assert train.summary(os.path.dirname(workdir) + "/nothing").lines() == [
      f"run in {os.path.dirname(workdir)}/nothing"]


def test_relaunch_at_the_end_evaluates_and_writes_the_grid_and_its_tensorboard_image(
    run12, tmp_path, monkeypatch):
  workdir, reference = run12
  import shutil
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  os.remove(os.path.join(copy, "samples", "step_12.png"))
  with open(os.path.join(copy, "metrics.jsonl")) as f:
    lines_before = len(f.readlines())
  images = []
  write_image = log_lib.MetricWriter.write_image
  monkeypatch.setattr(log_lib.MetricWriter, "write_image",
                      lambda self, step, tag, png: images.append((step, tag, png)) or write_image(
                          self, step, tag, png))
  state = train.train_and_evaluate(make_config(**RUN12), copy)  # already at num_train_steps
  assert int(state.step) == 12 and trees_equal(state, reference)
  png = os.path.join(copy, "samples", "step_12.png")
  assert images == [(12, "samples", png)] and os.path.exists(png)
  with open(os.path.join(copy, "metrics.jsonl")) as f:
    lines = f.readlines()
  assert len(lines) == lines_before + 1 and set(json.loads(lines[-1])) == {"step", "eval/loss"}
  assert json.loads(lines[-1])["eval/loss"] == pytest.approx(log_lib.read_metrics(workdir)[12]["eval/loss"],
                                                              rel=1e-6)
  assert ckpt_lib.saved_steps(copy) == [4, 8, 12]


def test_upscaled_grid_is_the_grid_in_constant_blocks(tmp_path):
  digits = np.random.default_rng(1).uniform(-1, 1, (64, 8, 8, 1)).astype(np.float32)
  grid = log_lib.image_grid(digits)  # 8x8 cells of 8 px, 2 px padding: 82 px square
  assert grid.shape == (82, 82, 1)
  with Image.open(log_lib.save_samples_png(digits, str(tmp_path / "d.png"))) as im:
    big = np.asarray(im)
  k = 7  # the smallest integer factor with 82·k >= 512
  assert big.shape == (82 * k, 82 * k) and im.mode == "L"
  blocks = big.reshape(82, k, 82, k)
  assert np.array_equal(blocks, np.broadcast_to(grid[:, None, :, None, 0], blocks.shape))
  # Never downscaled: a grid already larger than min_size keeps its size.
  large = np.zeros((4, 300, 300, 3), np.float32)
  with Image.open(log_lib.save_image_grid(large, str(tmp_path / "l.png"))) as im:
    assert im.size == (2 * 302 + 2, 2 * 302 + 2)
  assert log_lib.upscale(np.zeros((3, 5)), 512).shape == (3 * 103, 5 * 103)


# ---------------------------------------------------------------------------------------------
# Non-finite guard and SIGTERM
# ---------------------------------------------------------------------------------------------


def test_nonfinite_loss_stops_with_the_step_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path)
  config = make_config(**dict(RUN12, sample_every_steps=0, eval_every_steps=0),
                       **{"task.nan_at_step": 6})
  with pytest.raises(train.NonFiniteError, match=r"non-finite at step 6\b.*last good checkpoint is step 4"):
    train.train_and_evaluate(config, workdir)
  assert ckpt_lib.saved_steps(workdir) == [4]
  assert sorted(log_lib.read_metrics(workdir)) == [4]
  abstract = train._abstract_state(train._prepare(config, workdir, "eval"),
                                   train._init_fn(train._prepare(config, workdir, "eval")))
  c = ckpt_lib.Checkpointer(workdir, read_only=True)
  step, state, _ = c.restore_latest(abstract)
  c.close()
  assert step == 4 and int(state.step) == 4
  assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(host_tree(state.params)))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers need the main thread")
def test_sigterm_saves_exits_cleanly_and_resumes_exactly(run12, tmp_path):
  _, reference = run12
  workdir = str(tmp_path)
  # The data pipeline SIGTERMs this process at its 5th batch of every launch: each launch saves
  # a checkpoint off the regular cadence and returns; relaunching finishes the run.
  config = make_config(**dict(RUN12, checkpoint_every_steps=100, keep_checkpoints=10),
                       **{"data.sigterm_at_batch": 5})
  stops = []
  for _ in range(6):
    state = train.train_and_evaluate(config, workdir)
    stops.append(int(state.step))
    if stops[-1] == 12:
      break
  assert stops[-1] == 12 and len(stops) >= 2, stops
  assert ckpt_lib.saved_steps(workdir) == stops  # one checkpoint per SIGTERM, plus the final one
  assert trees_equal(state.params, reference.params)
  assert trees_equal(state.opt_state, reference.opt_state)
  assert trees_equal(state.ema_params, reference.ema_params)


# ---------------------------------------------------------------------------------------------
# Logging helpers
# ---------------------------------------------------------------------------------------------


def test_image_grid_layout_and_uint8_conversion(tmp_path):
  imgs = np.stack([np.full((3, 4, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
  grid = log_lib.image_grid(imgs, ncols=2, pad=1)
  assert grid.shape == (2 * 4 + 1, 2 * 5 + 1, 1)
  assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 128 and grid[5, 1, 0] == 255  # round((x+1)·127.5)
  assert grid[0].max() == 0 and grid[5, 6, 0] == 0  # padding and the empty cell are black
  rgb = np.random.default_rng(0).uniform(-1, 1, (5, 8, 8, 3)).astype(np.float32)
  with Image.open(log_lib.save_image_grid(rgb, str(tmp_path / "g.png"), min_size=0)) as im:
    assert im.mode == "RGB" and im.size == (3 * 10 + 2, 2 * 10 + 2)
  assert os.path.getsize(log_lib.save_scatter(np.zeros((5, 2)), str(tmp_path / "s.png"))) > 0


def test_progress_plain_lines_and_tty_bar():
  import io

  out = io.StringIO()
  p = log_lib.Progress(0, 100, stream=out, interactive=False)
  p.advance(1)
  p.report(10, 0.123456, 2048.0)
  p.close()
  line = out.getvalue().strip()
  assert line.startswith("step  10/100  loss 0.12346  img/s 2048.0  eta ") and line.count("\n") == 0
  tty = io.StringIO()
  p = log_lib.Progress(0, 100, stream=tty, interactive=True)
  p.report(50, 0.5, float("nan"))
  p.close()
  assert "50/100" in tty.getvalue() and "loss=0.5" in tty.getvalue() and "img_s=-" in tty.getvalue()


def test_read_metrics_keeps_last_record_per_step(tmp_path):
  w = log_lib.MetricWriter(str(tmp_path))
  w.write(2, {"loss": jnp.float32(3.0)})
  w.write(4, {"loss": 2.0})
  w.write(2, {"loss": 1.0, "vec": np.zeros(3)})  # non-scalars are not logged
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "lo')  # a line cut short by a kill is ignored
  assert log_lib.read_metrics(str(tmp_path)) == {2: {"step": 2, "loss": 1.0}, 4: {"step": 4, "loss": 2.0}}
