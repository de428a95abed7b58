"""FSDP sharded state (jaxgen/sharding.py, docs/pods.md "Sharded state") on the 8 simulated CPU devices.

The mesh of ``config.mesh`` (data x fsdp x model), the state's shardings by rule, a train step on 4x2, 1x8
and 2x2x2 meshes against the 1-device step, per-device bytes, a checkpoint read back on other meshes and
exact resume of a sharded run through the trainer.
"""

from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxgen import checkpoint as ckpt_lib
from jaxgen import sharding as shd
from jaxgen import tasks, train
from jaxgen.errors import ConfigError
from tests.fixtures import synthetic_data
from tests.fixtures.trainer_utils import host_tree, make_config, trees_equal

# A rule that puts the MLP's middle layer on the model axis (tensor parallel) and everything else on the
# default 'fsdp' rule; the kernel is (16, 16): split 8 ways in the 2x2x2 mesh.
MODEL_RULES = ((r"Dense_1/kernel$", ("fsdp", "model")), (r"Dense_1/bias$", ("model",)))


def _config(data=-1, fsdp=1, model=1, rules=(), min_size=1, **overrides):
  return make_config(**{"mesh.data": data, "mesh.fsdp": fsdp, "mesh.model": model, "sharding.rules": rules,
                        "sharding.fsdp_min_size": min_size, "optimizer.ema_decay": 0.5, **overrides})


def _one_line(e) -> str:
  msg = str(e.value)
  assert "\n" not in msg
  return msg


# ---------------------------------------------------------------------------------------------
# The mesh and the rules (no compilation)
# ---------------------------------------------------------------------------------------------

def test_mesh_of_the_config_and_its_errors():
  assert shd.mesh_shape({"data": -1, "fsdp": 2}, 8) == {"data": 4, "fsdp": 2, "model": 1}
  assert shd.mesh_shape({"data": 2, "fsdp": -1, "model": 2}, 8) == {"data": 2, "fsdp": 2, "model": 2}
  mesh = shd.mesh_from_config(_config(fsdp=2))
  assert mesh.axis_names == ("data", "fsdp", "model") and tuple(mesh.devices.shape) == (4, 2, 1)
  assert shd.data_sharding(mesh).spec == P(("data", "fsdp"))
  assert shd.data_sharding(shd.make_mesh()).spec == P("data")  # the 1-D mesh of make_mesh() is unchanged
  # Defaults: every device on 'data', nothing sharded.
  default = shd.mesh_from_config(make_config())
  assert tuple(default.devices.shape) == (8, 1, 1)
  bad = [({"fsdp": 3}, r"config.mesh \(data=-1 x fsdp=3 x model=1\): the fixed sizes multiply to 3, which "
                       r"does not divide the 8 devices"),
         ({"data": 2, "fsdp": 2}, r"needs 4 devices, but there are 8: .* or set one of them to -1"),
         ({"fsdp": -1}, r"more than one axis of size -1: give all but one of data, fsdp a size"),
         ({"fsdp": 0}, r"config.mesh.fsdp=0 is impossible .*set --config.mesh.fsdp"),
         ({"rules": (("kernel", ("fsdp", "tensor")),)}, r"uses 'tensor', not an axis of the mesh"),
         ({"rules": (("(", "fsdp"),)}, r"rules\[0\]=.* has an invalid regex"),
         ({"rules": (("kernel", "shard"),)}, r"names the spec 'shard', neither 'fsdp' nor 'replicate'"),
         ({"rules": (("a", "fsdp"), "kernel")}, r"rules\[1\]='kernel' is not a \(regex, spec\) pair"),
         ({"rules": (("a", ("fsdp", "fsdp")),)}, r"uses one mesh axis twice"),
         ({"min_size": -1}, r"fsdp_min_size=-1 is impossible")]
  for kw, pattern in bad:
    with pytest.raises(ConfigError, match=pattern) as e:
      shd.mesh_from_config(_config(**kw))
    _one_line(e)


def test_default_rule_splits_the_largest_divisible_dimension_and_replicates_small_tensors():
  mesh = shd.make_mesh(shape={"fsdp": -1})   # 1 x 8 x 1
  assert shd.fsdp_spec((3, 16), mesh, 1) == P(None, "fsdp")
  assert shd.fsdp_spec((24, 16), mesh, 1) == P("fsdp")           # the largest divisible dimension
  assert shd.fsdp_spec((16, 16), mesh, 1) == P(None, "fsdp")     # a tie: the later one
  assert shd.fsdp_spec((3, 3, 64, 20), mesh, 1) == P(None, None, "fsdp")   # 20 is not divisible by 8
  assert shd.fsdp_spec((3, 5), mesh, 1) == P()                   # nothing divisible: replicated
  assert shd.fsdp_spec((256, 255), mesh) == P()                   # 65280 elements < 2^16: replicated
  assert shd.fsdp_spec((256, 256), mesh) == P(None, "fsdp")       # 2^16 elements: split
  assert shd.fsdp_spec((512, 255), mesh) == P("fsdp")
  assert shd.fsdp_spec((4096,), shd.make_mesh(shape={"data": -1}), 1) == P()   # fsdp = 1


def test_rules_place_params_ema_and_optimizer_state_alike():
  config = _config(1, 8, 1, rules=((r"Dense_1/kernel$", ("fsdp", None)), (r"bias$", "replicate")))
  mesh = shd.mesh_from_config(config)
  batch = {"x": synthetic_data.points(16, 3)}
  shapes = jax.eval_shape(lambda: tasks.get(config).init(jax.random.key(0), batch))
  specs = {shd.path_name(p): s.spec for p, s in
           jax.tree_util.tree_flatten_with_path(shd.tree_shardings(shapes, mesh, config))[0]}
  assert specs["params/Dense_1/kernel"] == P("fsdp", None)    # the rule
  assert specs["params/Dense_0/kernel"] == P(None, "fsdp")    # the default rule, (3, 16)
  assert specs["params/Dense_2/kernel"] == P("fsdp")          # (16, 2)
  assert specs["params/Dense_0/bias"] == P() and specs["step"] == P()
  mirrors = [k for k in specs if not k.startswith("params/") and "/Dense_" in k]
  assert len(mirrors) == 18   # ema_params and Adam's mu and nu of the 6 params
  for k in mirrors:
    assert specs[k] == specs["params/" + "/".join(k.split("/")[-2:])], k
  # A rule that does not divide its tensor is refused with the leaf named.
  bad = _config(1, 8, 1, rules=((r"Dense_0/kernel$", ("fsdp", None)),))
  with pytest.raises(ConfigError, match=r"rules\[0\] splits dimension 0 of params/Dense_0/kernel "
                                        r"\(shape \(3, 16\)\) over fsdp of size 8, which does not divide 3"):
    shd.tree_shardings(shapes, mesh, bad)


# ---------------------------------------------------------------------------------------------
# A train step on FSDP meshes == the 1-device step
# ---------------------------------------------------------------------------------------------

_BATCH = {"x": synthetic_data.points(16, 3)}
_HOST_INIT = {}


def _placed_state(config, mesh):
  """The fixture task's initial state placed by the config's rules on ``mesh``."""
  if "init" not in _HOST_INIT:
    _HOST_INIT["init"] = host_tree(jax.jit(lambda: tasks.get(config).init(jax.random.key(0), _BATCH))())
  return jax.device_put(_HOST_INIT["init"], shd.tree_shardings(_HOST_INIT["init"], mesh, config))


def _step(config, devices=None):
  """(state placed by the rules, one updated state, acc) on the config's mesh over ``devices``."""
  task = tasks.get(config)
  mesh = shd.mesh_from_config(config, devices)
  state = _placed_state(config, mesh)
  _, metric_shapes = jax.eval_shape(task.train_step, state, _BATCH, jax.random.key(0))
  keys = train._scalar_metric_keys(metric_shapes)
  step = train.make_train_step(task, mesh, keys, donate=False)
  new, acc = step(state, shd.shard_batch(_BATCH, mesh), train._make_acc_init(mesh, keys)())
  return state, new, acc


@pytest.fixture(scope="module")
def one_device_step():
  config = _config(data=1)
  _, new, acc = _step(config, jax.devices()[:1])
  return host_tree(new), host_tree(acc)


@pytest.mark.parametrize("shape,rules", [((4, 2, 1), ()), ((1, 8, 1), ()), ((2, 2, 2), MODEL_RULES)],
                         ids=["4x2", "1x8", "2x2x2_model"])
def test_fsdp_step_equals_one_device_step_and_keeps_the_state_sharded(shape, rules, one_device_step):
  config = _config(*shape, rules=rules)
  state, new, acc = _step(config)
  s1, acc1 = one_device_step
  host = host_tree(new)
  assert int(host.step) == int(s1.step) == 1
  # As tests/test_train.py's 8-device test: only the order of the cross-device sums differs.
  for a, b in zip(jax.tree_util.tree_leaves((host.params, host.opt_state, host.ema_params)),
                  jax.tree_util.tree_leaves((s1.params, s1.opt_state, s1.ema_params))):
    scale = max(float(np.max(np.abs(b))), 1e-30)
    assert float(np.max(np.abs(a - b))) <= 1e-5 * scale
  np.testing.assert_allclose(np.asarray(acc["last"]["loss"]), acc1["last"]["loss"], rtol=1e-5)
  # The updated state comes back where the rules put it, and each device holds its share of it.
  mesh = shd.mesh_from_config(config)
  want = shd.tree_shardings(new, mesh, config)

  def split(sharding):  # the number of pieces a leaf is cut into
    return int(np.prod([mesh.shape[a] for e in sharding.spec if e is not None
                        for a in ((e,) if isinstance(e, str) else e)]))

  for x, w in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(want)):
    assert x.sharding.is_equivalent_to(w, x.ndim), (x.sharding, w)
    assert x.addressable_shards[0].data.nbytes * split(w) == x.nbytes
  assert sum(split(w) > 1 for w in jax.tree_util.tree_leaves(want)) >= 20   # params, EMA, mu, nu
  # Per-device bytes of params + optimizer state: 1/n of each sharded leaf, all of a replicated one.
  tree = (new.params, new.opt_state)
  leaves = jax.tree_util.tree_leaves(tree)
  total = sum(x.nbytes for x in leaves)
  assert shd.bytes_per_device(tree) == sum(x.nbytes // split(x.sharding) for x in leaves)
  n = mesh.shape["fsdp"]
  per = shd.bytes_per_device(tree)   # ≈ 1/fsdp (1/(fsdp·model) for the model rule's leaves)
  assert total / (n * mesh.shape["model"]) <= per <= total / n + 0.01 * total


# ---------------------------------------------------------------------------------------------
# Checkpoints across meshes; exact resume of a sharded run
# ---------------------------------------------------------------------------------------------

def test_checkpoint_written_on_one_mesh_restores_on_others(tmp_path):
  config = _config(4, 2, 1)
  state = _placed_state(config, shd.mesh_from_config(config))
  assert state.params["Dense_1"]["kernel"].sharding.spec == P(None, "fsdp")
  c = ckpt_lib.Checkpointer(str(tmp_path))
  c.save(3, state, {"pos": 3})
  c.close()
  for shape, devices in (((1, 8, 1), None), ((2, 2, 2), None), ((1, 1, 1), jax.devices()[:1])):
    other = _config(*shape, rules=MODEL_RULES if shape[2] > 1 else ())
    mesh = shd.mesh_from_config(other, devices)
    target = shd.abstract_tree(state, mesh, other)
    c = ckpt_lib.Checkpointer(str(tmp_path), read_only=True)
    step, restored, data = c.restore_latest(target)
    c.close()
    assert step == 3 and data == {"pos": 3}
    assert trees_equal(restored, state)
    for x, t in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(target)):
      assert x.sharding.is_equivalent_to(t.sharding, x.ndim)


RUN = dict(num_train_steps=4, log_every_steps=2, checkpoint_every_steps=2, num_grid_samples=0,
           **{"data.eval_split": ""})


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory):
  """A 4-step run on the 4x2 mesh, and a copy-able workdir of the same run stopped at step 2."""
  root = tmp_path_factory.mktemp("fsdp_runs")
  straight = train.train_and_evaluate(_config(4, 2, 1, **RUN), str(root / "straight"))
  half = train.train_and_evaluate(_config(4, 2, 1, **dict(RUN, num_train_steps=2)), str(root / "half"))
  assert int(half.step) == 2
  return straight, str(root / "half")


def test_sharded_run_resumes_exactly(sharded_runs, tmp_path):
  straight, half = sharded_runs
  leaf = straight.params["Dense_1"]["kernel"]
  assert leaf.sharding.spec == P(None, "fsdp") and leaf.addressable_shards[0].data.shape == (16, 8)
  workdir = str(tmp_path / "resumed")
  shutil.copytree(half, workdir)
  resumed = train.train_and_evaluate(_config(4, 2, 1, **RUN), workdir)
  assert int(resumed.step) == 4 and trees_equal(resumed, straight)
  # --mode eval / sample restore the sharded checkpoint into the same shardings.
  step, state = train._restore_for_inference(train._prepare(_config(4, 2, 1, **RUN), workdir, "eval"))
  assert step == 4 and trees_equal(state, straight)
  assert state.params["Dense_1"]["kernel"].sharding.spec == P(None, "fsdp")


@pytest.mark.skipif("mesh." not in train.RESUMABLE_KEYS,
                    reason="resuming with another config.mesh needs 'mesh.' in train.RESUMABLE_KEYS")
def test_sharded_run_resumes_on_another_mesh(sharded_runs, tmp_path):
  straight, half = sharded_runs
  workdir = str(tmp_path / "other_mesh")
  shutil.copytree(half, workdir)
  resumed = train.train_and_evaluate(_config(1, 8, 1, **RUN), workdir)   # 4x2 checkpoint, 1x8 mesh
  assert int(resumed.step) == 4
  assert resumed.params["Dense_1"]["kernel"].addressable_shards[0].data.shape == (16, 2)
  # Equal up to the order of the cross-device sums (measured: 1.8e-7 relative).
  for a, b in zip(jax.tree_util.tree_leaves(host_tree(resumed)),
                  jax.tree_util.tree_leaves(host_tree(straight))):
    scale = max(float(np.max(np.abs(b))), 1e-30)
    assert float(np.max(np.abs(a.astype(np.float64) - b))) <= 1e-5 * scale


def test_bad_mesh_is_refused_before_anything_is_written(tmp_path):
  workdir = str(tmp_path / "run")
  with pytest.raises(ConfigError, match=r"config.mesh \(data=3 x fsdp=2 x model=1\) needs 6 devices") as e:
    train.train_and_evaluate(_config(3, 2, 1, **RUN), workdir)
  _one_line(e)
  assert not os.path.exists(workdir)
  with pytest.raises(ConfigError, match=r"rules\[0\] splits dimension 0 of params/Dense_0/kernel"):
    train.train_and_evaluate(_config(4, 2, 1, rules=((r"Dense_0/kernel$", ("fsdp",)),), **RUN), workdir)
  assert not os.path.exists(workdir)


def test_transformer_rules_split_gpt_heads_and_mlp_over_the_model_axis():
  from jaxgen import models
  config = _config(2, 2, 2, rules=shd.TRANSFORMER_RULES)
  mesh = shd.mesh_from_config(config)
  net = models.create("gpt_tiny", n_layer=1, n_head=4, n_embd=32, block_size=8, vocab_size=16)
  (idx,) = models.example_inputs("gpt_tiny", batch=8, block_size=8)
  idx = (np.arange(idx.size).reshape(idx.shape) * 7 % 16).astype(idx.dtype)
  params = jax.jit(net.init)(jax.random.key(1), idx)["params"]
  specs = {shd.path_name(p): s.spec for p, s in
           jax.tree_util.tree_flatten_with_path(shd.tree_shardings(params, mesh, config))[0]}
  assert specs["blocks_0/attn/query/kernel"] == P("fsdp", "model")
  assert specs["blocks_0/attn/proj/kernel"] == P("model", "fsdp")
  assert specs["blocks_0/mlp_fc/kernel"] == P("fsdp", "model") and specs["blocks_0/mlp_fc/bias"] == P("model")
  assert specs["blocks_0/mlp_proj/kernel"] == P("model", "fsdp")

  def loss(p, x):
    return jax.numpy.mean(net.apply({"params": p}, x) ** 2)

  f = jax.jit(jax.value_and_grad(loss))
  want_l, want_g = f(params, idx)
  placed = jax.device_put(params, shd.tree_shardings(params, mesh, config))
  got_l, got_g = f(placed, shd.shard_batch(idx, mesh))
  np.testing.assert_allclose(float(got_l), float(want_l), rtol=1e-5)
  want_g = jax.tree_util.tree_leaves(host_tree(want_g))
  scale = max(float(np.max(np.abs(b))) for b in want_g)   # (some biases' gradients cancel to ~1e-12)
  for a, b in zip(jax.tree_util.tree_leaves(host_tree(got_g)), want_g):
    assert float(np.max(np.abs(a - b))) <= 1e-5 * max(float(np.max(np.abs(b))), 1e-3 * scale)
  assert got_g["blocks_0"]["mlp_fc"]["kernel"].sharding.spec == P("fsdp", "model")


def test_the_batch_need_only_divide_the_batch_devices_of_a_mesh_with_a_model_axis():
  # 8 devices as data 2 x fsdp 2 x model 2: the batch is split over 4 devices, so 4 is a valid batch
  # and 6 is refused naming the 4 batch devices (validate_config alone: nothing is built or written).
  train.validate_config(_config(2, 2, 2, batch_size=4), device_count=8, process_count=1)
  with pytest.raises(ConfigError, match=r"not divisible by the 4 batch devices \(data x fsdp\)") as e:
    train.validate_config(_config(2, 2, 2, batch_size=6), device_count=8, process_count=1)
  _one_line(e)
  with pytest.raises(ConfigError, match=r"batch_size=4 is not divisible by 8 devices"):
    train.validate_config(_config(-1, 1, 1, batch_size=4), device_count=8, process_count=1)
