"""Streamed, sharded, resumable sampling (docs/sampling.md; ``jaxgen.sampling``, ``train.sample``).

The chunk writer: chunk files and manifest, a resumed set equal bit for bit to an uninterrupted one with
only the missing chunks drawn, a larger or smaller ``num`` reusing the complete chunks, uint8 storage
equal to ``jaxgen.eval.fid.quantize``, batched reading across chunk boundaries, FID read from a
directory equal to FID of the same samples in memory. Sharding: the diffusion and GAN tasks draw a
chunk split over the 8 devices (the output is sharded over 'data') with the 1-device values. The
trainer: ``--mode sample`` on the fixture run writes the set, resumes it, and refuses a set of another
checkpoint step or config.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import configs, sampling, train
from jaxgen import sharding as shd
from jaxgen.errors import ConfigError
from jaxgen.eval import fid as fid_lib
from jaxgen.tasks import diffusion
from tests.fixtures.trainer_utils import make_config, snapshot


class Counting:
  """``sample_fn(key, n, start)``: image i = a fixed function of (key, i), in [−1, 1]; counts its calls."""

  def __init__(self, shape=(4, 4, 3), fail_after=None):
    self.shape, self.fail_after, self.calls = shape, fail_after, []

  def __call__(self, key, n, start):
    if self.fail_after is not None and len(self.calls) >= self.fail_after:
      raise KeyboardInterrupt("killed")
    self.calls.append((start, n))
    seed = [int(v) for v in np.asarray(jax.random.key_data(key)).reshape(-1)]
    return np.stack([np.random.default_rng(seed + [i]).uniform(-1, 1, self.shape).astype(np.float32)
                     for i in range(start, start + n)])


KEY = jax.random.key(5)


def test_chunks_manifest_and_values(tmp_path):
  d = str(tmp_path / "set")
  fn = Counting()
  info = sampling.write_samples(fn, d, 10, KEY, identity={"step": 3}, chunk_size=4, progress=False)
  assert (info.num, info.written, info.skipped, info.dtype, info.shape) == (10, 3, 0, "uint8", (4, 4, 3))
  assert fn.calls == [(0, 4), (4, 4), (8, 2)]
  assert sorted(f for f in os.listdir(d) if f.startswith("chunk_")) == [
      "chunk_000000.npy", "chunk_000001.npy", "chunk_000002.npy"]
  m = sampling.read_manifest(d)
  assert m["complete"] and m["num_complete"] == 10 and m["chunk_size"] == 4 and m["num_chunks"] == 3
  assert m["identity"] == {"step": 3} and m["shape"] == [4, 4, 3]
  assert m["key"] == {"impl": str(jax.random.key_impl(KEY)), "data": [int(v) for v in jax.random.key_data(KEY)]}
  # uint8 exactly as jaxgen.eval.fid.quantize (what Inception sees)
  want = np.asarray(fid_lib.quantize(Counting()(KEY, 10, 0)))
  np.testing.assert_array_equal(sampling.load_samples(d), want)
  assert os.path.exists(info.png)
  assert not [f for f in os.listdir(d) if ".tmp" in f]


def test_resume_skips_complete_chunks_and_equals_an_uninterrupted_set(tmp_path):
  whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
  sampling.write_samples(Counting(shape=(3,)), whole, 11, KEY, chunk_size=3, progress=False)
  with pytest.raises(KeyboardInterrupt):
    sampling.write_samples(Counting(shape=(3,), fail_after=2), resumed, 11, KEY, chunk_size=3, progress=False)
  assert not sampling.read_manifest(resumed)["complete"] and sampling.num_complete(resumed) == 6
  with open(sampling.chunk_path(resumed, 2) + ".tmp999", "wb") as f:   # a killed writer's leftover
    f.write(b"partial")
  fn = Counting(shape=(3,))
  info = sampling.write_samples(fn, resumed, 11, KEY, chunk_size=3, progress=False)
  assert fn.calls == [(6, 3), (9, 2)] and (info.written, info.skipped) == (2, 2)
  for k in range(4):
    with open(sampling.chunk_path(whole, k), "rb") as a, open(sampling.chunk_path(resumed, k), "rb") as b:
      assert a.read() == b.read()   # bit for bit, float32 stored as drawn
  assert not [f for f in os.listdir(resumed) if ".tmp" in f]
  # a rerun of a finished set draws nothing
  fn = Counting(shape=(3,))
  assert sampling.write_samples(fn, resumed, 11, KEY, chunk_size=3, progress=False).written == 0 and not fn.calls


def test_more_or_fewer_samples_reuse_complete_chunks(tmp_path):
  d = str(tmp_path / "set")
  sampling.write_samples(Counting(shape=(2,)), d, 5, KEY, chunk_size=4, progress=False)
  fn = Counting(shape=(2,))
  sampling.write_samples(fn, d, 10, KEY, chunk_size=4, progress=False)
  assert fn.calls == [(4, 4), (8, 2)]   # the partial last chunk is redrawn whole
  np.testing.assert_array_equal(sampling.load_samples(d), Counting(shape=(2,))(KEY, 10, 0))
  fn = Counting(shape=(2,))
  sampling.write_samples(fn, d, 6, KEY, chunk_size=4, progress=False)
  assert not fn.calls and sampling.load_samples(d).shape == (6, 2)


def test_another_identity_key_or_chunk_size_is_refused_untouched(tmp_path):
  d = str(tmp_path / "set")
  sampling.write_samples(Counting(shape=(2,)), d, 4, KEY, identity={"step": 1, "config_hash": "a"},
                         chunk_size=2, progress=False)
  before = snapshot(d)
  for kwargs, pattern in [(dict(identity={"step": 2, "config_hash": "a"}), r"identity.step \(1 -> 2\)"),
                          (dict(identity={"step": 1, "config_hash": "b"}), r"identity.config_hash"),
                          (dict(identity={"step": 1, "config_hash": "a"}, key=jax.random.key(6)), r"key"),
                          (dict(identity={"step": 1, "config_hash": "a"}, chunk_size=3), r"chunk_size")]:
    fn = Counting(shape=(2,))
    args = dict(dict(key=KEY, chunk_size=2, progress=False), **kwargs)
    with pytest.raises(ConfigError, match=pattern) as e:
      sampling.write_samples(fn, d, 8, args.pop("key"), **args)
    assert "\n" not in str(e.value) and "--sample_run" in str(e.value) and not fn.calls
  assert snapshot(d) == before


def test_iterate_across_chunk_boundaries_and_missing_chunks(tmp_path, capsys):
  d = str(tmp_path / "set")
  sampling.write_samples(Counting(shape=(1,)), d, 10, KEY, chunk_size=3, progress=False)
  batches = list(sampling.iterate_samples(d, batch_size=4))
  assert [b.shape[0] for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate(batches), Counting(shape=(1,))(KEY, 10, 0))
  assert [b.shape[0] for b in sampling.iterate_samples(d, batch_size=4, limit=5)] == [4, 1]
  os.remove(sampling.chunk_path(d, 2))
  assert sampling.num_complete(d) == 6
  assert sampling.main(["info", d]) == 0
  info = json.loads(capsys.readouterr().out)
  assert (info["num"], info["present"], info["chunk_size"], info["complete"]) == (10, 6, 3, True)
  with pytest.raises(ConfigError, match=r"chunk_000002.npy is missing or incomplete .* rerun"):
    list(sampling.iterate_samples(d, batch_size=4))
  assert len(list(sampling.iterate_samples(d, batch_size=6, limit=6))) == 1


def test_fid_of_directory_equals_fid_of_the_samples_in_memory(tmp_path, monkeypatch, capsys):
  """The stored uint8 set and the float samples give the same FID (a stand-in feature map for Inception)."""
  class Features:
    batch_size = 8

    def __call__(self, images):
      u = np.asarray(fid_lib.quantize(images), np.float64)
      f = np.concatenate([u.mean((1, 2)), u.std((1, 2)), u[:, :2, :2].reshape(len(u), -1)], 1)
      return f.astype(np.float32), f[:, :5].astype(np.float32)

  monkeypatch.setattr(fid_lib, "cached_extractor", lambda w, b: Features())
  weights = tmp_path / "w.npz"
  np.savez(weights, x=np.zeros(1))
  rng = np.random.default_rng(0)
  ref = tmp_path / "ref.npz"
  feats = rng.normal(size=(50, 18)) * 30 + 120
  fid_lib.save_stats(str(ref), feats.mean(0), np.cov(feats, rowvar=False))
  d = str(tmp_path / "set")
  sampling.write_samples(Counting(), d, 24, KEY, chunk_size=5, progress=False)
  got = sampling.fid_of_directory(d, str(weights), str(ref), batch_size=8, progress=False)
  want = fid_lib.evaluate_samples(Counting(), KEY, 24, Features(), fid_lib.load_stats(str(ref)), batch_size=8,
                                  progress=False, kid_subsets=0)
  assert got["num_samples"] == 24
  assert got["fid"] == pytest.approx(want["fid"], rel=1e-9) and got["is"] == pytest.approx(want["is"], rel=1e-9)
  # the command line: one JSON line with the same numbers
  assert sampling.main(["fid", d, "--inception_weights", str(weights), "--fid_ref", str(ref), "--batch_size",
                        "8"]) == 0
  line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert line["fid"] == pytest.approx(want["fid"], rel=1e-9) and line["num_samples"] == 24


def test_disk_space_is_checked_before_any_write(tmp_path, monkeypatch):
  d = str(tmp_path / "big")
  monkeypatch.setattr(sampling.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 2**20,
                                                                                        2**20))
  fn = Counting(shape=(64, 64, 3))
  with pytest.raises(ConfigError, match=r"need 0\.\d\d GiB .* has 0\.00 GiB free: free space there, .*"
                     "--num_samples") as e:
    sampling.write_samples(fn, d, 100, KEY, chunk_size=10, progress=False, sample_shape=(64, 64, 3))
  assert "\n" not in str(e.value) and not fn.calls and not os.path.exists(d)


# ------------------------------------------------------------------------------------------- sharding

def _diffusion_task():
  c = configs.base_config()
  c.data.name = "toy2d"
  c.data.toy = "8gaussians"
  c.model.name = "toy_mlp"
  c.model.overrides.update(hidden=16, num_layers=1, emb_dim=8)
  c.task.name = "diffusion"
  c.task.sampler = "euler_ancestral"          # stochastic: per-sample noise must follow the index
  c.task.num_steps = 3
  c.task.sample_batch_size = 12                # not a multiple of 8: rounded up to 16 on the mesh
  task = diffusion.Task(c)
  state = task.init(jax.random.key(0), {"image": np.zeros((8, 2), np.float32)})
  leaves, tdef = jax.tree_util.tree_flatten(state.ema_params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  noisy = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]   # a non-trivial network
  return task, state.replace(ema_params=jax.tree_util.tree_unflatten(tdef, noisy))


def _gan_task():
  from jaxgen import tasks
  from jaxgen.recipes import gan as gan_recipe
  c = configs.base_config()
  c.data.name = "toy2d"
  c.data.toy = "8gaussians"
  c.model.name = "gan_mlp_g"
  c.model.overrides.hidden = 8
  gan_recipe.task_config(c, critic="gan_mlp_d", loss="wasserstein", latent_dim=2)
  c.task.critic.overrides.hidden = 8
  c.task.sample_batch_size = 5
  task = tasks.get(c)
  return task, task.init(jax.random.key(0), {"image": np.zeros((8, 2), np.float32)})


@pytest.mark.parametrize("make", [_diffusion_task, _gan_task], ids=["diffusion", "gan"])
def test_a_chunk_is_drawn_split_over_the_mesh_with_the_one_device_values(make):
  assert jax.device_count() == 8
  task, state = make()
  key = jax.random.key(3)
  one = task.sample(state, key, 21, start_index=2)   # no mesh set: one device
  mesh = shd.make_mesh()
  state8 = jax.device_put(state, shd.replicated(mesh))
  with sampling.over_mesh(mesh):
    assert sampling.batch_multiple() == 8 and sampling.round_up(12) == 16
    eight = task.sample(state8, key, 21, start_index=2)
    idx = jnp.arange(16, dtype=jnp.int32)
    if isinstance(task, diffusion.Task):
      out = task._draw_indices_jit(state8.ema_params, state8.model_state, key, idx, task._sample_shape(state8))
    else:
      out = task._generate(state8.ema_params, state8.model_state, key, idx)
  assert out.sharding.spec == jax.sharding.PartitionSpec("data") and len(out.sharding.device_set) == 8
  assert one.shape == eight.shape == (21, 2) and task.sample_shape(state) == (2,)   # (no drawing)
  np.testing.assert_allclose(eight, one, rtol=1e-5, atol=1e-5)   # the per-sample contract's tolerance
  assert not np.allclose(one[0], one[1])


# -------------------------------------------------------------------------------------------- trainer

SMALL = dict(num_train_steps=4, checkpoint_every_steps=4, log_every_steps=4, num_grid_samples=0,
             **{"data.eval_split": ""})


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("sampling") / "run4")
  state = train.train_and_evaluate(make_config(**SMALL), workdir)
  return workdir, state


def test_mode_sample_streams_resumes_and_refuses_another_step_or_config(run4, tmp_path):
  workdir, state = run4
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  config = make_config(**SMALL)
  paths = train.sample(config, copy, num=10, chunk_size=4, progress=False)
  assert paths["dir"] == os.path.join(copy, "samples", "step4_seed7") and os.path.exists(paths["png"])
  with open(paths["manifest"]) as f:
    m = json.load(f)
  assert m["identity"]["step"] == 4 and len(m["identity"]["config_hash"]) == 16 and m["num_chunks"] == 3
  x = sampling.load_samples(paths["dir"])
  # the run's sample key: the same points as the task's own sample of the state (the trainer's grid)
  from jaxgen import tasks
  want = tasks.get(config).sample(state, jax.random.fold_in(jax.random.key(7), train._SAMPLE_TAG), 10)
  np.testing.assert_allclose(x, want, rtol=0, atol=1e-5)
  # resume: remove a chunk; the rerun redraws only it, bit for bit
  with open(sampling.chunk_path(paths["dir"], 1), "rb") as f:
    before = f.read()
  os.remove(sampling.chunk_path(paths["dir"], 1))
  train.sample(config, copy, num=10, chunk_size=4, progress=False)
  with open(sampling.chunk_path(paths["dir"], 1), "rb") as f:
    assert f.read() == before
  # another config (a key in the hash) into the same named set: refused, naming the key
  other = make_config(**dict(SMALL, **{"task.nan_at_step": 99}))
  with pytest.raises(ConfigError, match=r"config keys task.nan_at_step.*--sample_run"):
    train.sample(other, copy, num=10, chunk_size=4, run_id="step4_seed7", progress=False)
  # the cadences are not in the hash: a set resumes under another log_every_steps
  assert train.sample(make_config(**dict(SMALL, log_every_steps=2)), copy, num=10, chunk_size=4,
                      progress=False)["dir"] == paths["dir"]
  # a later checkpoint (step 8) into the named set of step 4: refused; by default it gets its own set
  longer = make_config(**dict(SMALL, num_train_steps=8))
  train.train_and_evaluate(longer, copy)
  with pytest.raises(ConfigError, match=r"identity.step \(4 -> 8\)"):
    train.sample(longer, copy, num=10, chunk_size=4, run_id="step4_seed7", progress=False)
  assert train.sample(longer, copy, num=4, chunk_size=4, progress=False)["dir"].endswith("step8_seed7")
  with pytest.raises(ConfigError, match=r"--sample_run='\.\./x' is not a directory name"):
    train.sample(config, copy, num=4, run_id="../x")


def test_a_set_on_gcs_is_written_read_and_resumed_alike():
  """gs:// directories go through jaxgen.fs (one upload per chunk), against the local GCS emulator."""
  import importlib.util
  for module in ("gcp_storage_emulator", "gcsfs"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"{module} is not installed (the gcs and test extras)")
  from jaxgen import fs
  from tests.fixtures.gcs_emulator import emulator
  with emulator("jaxgen-sampling") as env, pytest.MonkeyPatch.context() as mp:
    for k, v in env.items():
      mp.setenv(k, v)
    d = "gs://jaxgen-sampling/run/samples/step1_seed0"
    sampling.write_samples(Counting(), d, 10, KEY, chunk_size=4, progress=False)
    assert fs.listdir(d) == ["chunk_000000.npy", "chunk_000001.npy", "chunk_000002.npy", "grid.png",
                             "manifest.json"]
    fs.remove(sampling.chunk_path(d, 1))
    fn = Counting()
    sampling.write_samples(fn, d, 10, KEY, chunk_size=4, progress=False)
    assert fn.calls == [(4, 4)]
    np.testing.assert_array_equal(sampling.load_samples(d), np.asarray(fid_lib.quantize(Counting()(KEY, 10, 0))))
