"""LossTask: gradient accumulation equals the full-batch step; the non-finite guard keeps the state."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.configs import base_config
from jaxgen.tasks.base import LossTask


class _Linear(LossTask):
  def init_variables(self, key, batch):
    return {"params": {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}}

  def loss(self, params, model_state, batch, key, train):
    pred = batch["x"] @ params["w"] + params["b"]
    per_example = (pred - batch["y"]) ** 2 * batch["scale"]
    return per_example.mean(), {"mse": per_example.mean()}, model_state


def _config(accum):
  c = base_config()
  c.batch_size = 8
  c.num_train_steps = 10
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.grad_accum_steps = accum
  c.optimizer.ema_decay = 0.5
  return c


def _batch(scale=1.0):
  k1, k2 = jax.random.split(jax.random.key(1))
  return {"x": jax.random.normal(k1, (8, 3)), "y": jax.random.normal(k2, (8,)),
          "scale": jnp.full((8,), scale)}


def test_grad_accumulation_equals_full_batch():
  outs = []
  for accum in (1, 4):
    task = _Linear(_config(accum))
    state = task.init(jax.random.key(0), _batch())
    state, metrics = jax.jit(task.train_step)(state, _batch(), jax.random.key(2))
    outs.append((state, metrics))
  (s1, m1), (s4, m4) = outs
  for a, b in zip(jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(s4.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-6)
  assert int(s1.step) == int(s4.step) == 1
  # EMA with decay 0.5 from identical init: ema = (init + new)/2.
  task = _Linear(_config(1))
  init = task.init(jax.random.key(0), _batch())
  np.testing.assert_allclose(s1.ema_params["w"], 0.5 * (init.params["w"] + s1.params["w"]), rtol=1e-6)


def test_nonfinite_step_keeps_state():
  task = _Linear(_config(1))
  state = task.init(jax.random.key(0), _batch())
  new, metrics = jax.jit(task.train_step)(state, _batch(scale=jnp.nan), jax.random.key(2))
  assert bool(metrics["nonfinite"])
  assert int(new.step) == 0
  np.testing.assert_array_equal(new.params["w"], state.params["w"])
