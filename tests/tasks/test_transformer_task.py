"""The VQGAN stage-2 task: taming's loss, per-sample sampling, the masked AdamW, first-stage loading.

The task runs on the ``:smoke`` configuration of experiments/vqgan/transformer.py (a random tiny first stage
on 16×16 digits, 4×4 = 16 codes, a one-layer GPT). The loss against taming's own code is in
tests/convert/test_taming_gpt_convert.py.
"""

import copy
import importlib.util
import json
import math
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import tasks
from jaxgen.errors import ConfigError
from jaxgen.tasks import transformer as tt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def smoke_config():
  spec = importlib.util.spec_from_file_location(
      "exp_vqgan_transformer", os.path.join(REPO, "experiments", "vqgan", "transformer.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("smoke")
  c.task.sample_batch_size = 2
  return c


@pytest.fixture(scope="module")
def setup():
  c = smoke_config()
  task = tasks.get(c)
  rng = np.random.default_rng(0)
  batch = dict(image=rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32),
               label=np.arange(4, dtype=np.int32))
  state = jax.jit(task.init)(jax.random.key(0), batch)
  return c, task, batch, state


def test_sequence_loss_analytic():
  v = 7
  cond = jnp.array([[3], [5]], jnp.int32)
  codes = jnp.array([[1, 2, 6, 0], [4, 4, 4, 4]], jnp.int32)
  uniform = lambda seq: jnp.zeros(seq.shape + (v,))
  np.testing.assert_allclose(tt.sequence_loss(uniform, cond, codes), [math.log(v)] * 2, rtol=1e-6)
  # an oracle that puts all its mass on the true next code: input position t predicts codes[:, t]
  seq = jnp.concatenate([cond, codes], 1)
  oracle = lambda s: 50.0 * jax.nn.one_hot(seq[:, 1:], v)
  assert float(tt.sequence_loss(oracle, cond, codes).max()) < 1e-6
  logits = tt.sequence_logits(uniform, cond, codes)
  assert logits.shape == (2, 4, v)


def test_loss_is_taming_cross_entropy_of_the_codes(setup):
  # (train_step itself runs in the :smoke run of tests/test_experiments.py)
  c, task, batch, state = setup
  assert task.grid == (4, 4) and task.num_codes == 32
  assert set(state.model_state) == {"stage1"}
  @jax.jit
  def both(params, model_state, batch):
    loss, metrics, _ = task.loss(params, model_state, batch, jax.random.key(1), False)
    # reference: taming's CE of the first stage's codes after the start token, written out
    codes = task._codes(model_state["stage1"], batch["image"])
    want = tt.sequence_loss(lambda s: task.net.apply({"params": params}, s), jnp.zeros((4, 1), jnp.int32),
                            codes).mean()
    return loss, metrics, codes, want

  loss, metrics, codes, want = both(state.params, state.model_state, batch)
  assert codes.shape == (4, 16) and codes.dtype == jnp.int32
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(metrics["bits_per_code"], want / math.log(2), rtol=1e-5)
  assert abs(float(loss) - math.log(32)) < 0.5                       # an untrained GPT: about ln V


def test_adamw_decays_linear_weights_only(setup):
  c, task, batch, state = setup
  c = copy.deepcopy(c)
  c.optimizer.schedule, c.optimizer.warmup_steps = "constant", 0    # lr > 0 at the first update
  tx = tt.Task.optimizer.fget(types.SimpleNamespace(config=c))
  params = state.params
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = jax.jit(lambda p, g: tx.update(g, tx.init(p), p))(params, zeros)   # zero gradients: only decay
  changed = jax.tree_util.tree_map(lambda u: bool(jnp.any(u != 0)), updates)
  flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(changed)}
  assert flat["['head']['kernel']"] and flat["['blocks_0']['attn']['key']['kernel']"]
  assert not flat["['pos_emb']"] and not flat["['tok_emb']['embedding']"]
  assert not flat["['ln_f']['scale']"] and not flat["['blocks_0']['mlp_fc']['bias']"]
  assert c.optimizer.b2 == 0.95 and c.optimizer.weight_decay == 0.01     # taming's configure_optimizers


def test_sample_is_per_index_and_decoded(setup):
  _, task, _, state = setup
  key = jax.random.key(3)
  images, codes = task.sample_with_codes(state, key, 4, start_index=0)
  assert images.shape == (4, 16, 16, 1) and codes.shape == (4, 4, 4)
  assert images.min() >= -1 and images.max() <= 1 and codes.max() < 32
  later, later_codes = task.sample_with_codes(state, key, 2, start_index=2)
  np.testing.assert_array_equal(later_codes, codes[2:])
  np.testing.assert_allclose(later, images[2:], atol=1e-6)
  # the images are the first stage's decoding of the codes
  dec = jax.jit(lambda v, c: task.stage1_model.apply(v, c, method="decode_code"))(
      state.model_state["stage1"], jnp.asarray(codes[:2]))
  np.testing.assert_allclose(np.clip(dec, -1, 1), images[:2], atol=1e-5)
  np.testing.assert_array_equal(task.sample_classes(np.arange(12)) if task.cfg.conditional else [0], [0])


def test_stage1_from_a_vqgan_workdir(setup, tmp_path):
  from jaxgen import checkpoint as ckpt_lib

  c, task, _, _ = setup
  s1 = setup[3].model_state["stage1"]
  wd = str(tmp_path / "stage1")
  os.makedirs(wd)
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump(dict(task=dict(name="vqgan"),
                   model=dict(name="vqgan_tiny", overrides=c.task.stage1_overrides.to_dict())), f)
  ck = ckpt_lib.Checkpointer(wd, async_save=False)
  ck.save(7, dict(ema_params=s1["params"], params=s1["params"], model_state={}, step=jnp.int32(7)),
          {"pos": 0})
  ck.close()
  model, variables = tt.load_stage1_workdir(wd)
  same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), variables["params"], s1["params"])
  assert all(jax.tree_util.tree_leaves(same))
  assert model.n_embed == 32
  with pytest.raises(ConfigError, match="no config.json"):
    tt.load_stage1_workdir(str(tmp_path))


def test_config_errors():
  c = smoke_config()
  c.task.stage1_weights = "x.npz"
  with pytest.raises(ConfigError, match="exactly one first stage"):
    tasks.get(c)
  c = smoke_config()
  c.model.overrides.vocab_size = 16
  with pytest.raises(ConfigError, match="vocab_size"):
    tasks.get(c)
  c = smoke_config()
  c.model.overrides.block_size = 8
  with pytest.raises(ConfigError, match="block_size"):
    tasks.get(c)
  c = smoke_config()
  c.task.conditional = True
  with pytest.raises(ConfigError, match="num_classes"):
    tasks.get(c)
