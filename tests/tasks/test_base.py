"""LossTask: gradient accumulation equals the full-batch step; the non-finite guard keeps the state.
Task.evaluate: the evaluators of config.evals on the task's eval_functions, checked when it is built."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.configs import base_config
from jaxgen.errors import ConfigError
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


class _Evaluated(_Linear):
  """A LossTask whose per-example eval loss is x·w + b − y squared (EMA params), for eval_loss."""

  EVAL_FUNCTIONS = ("loss", "data")

  def eval_functions(self, state):
    def loss(batch, key):
      pred = jnp.asarray(batch["x"]) @ state.ema_params["w"] + state.ema_params["b"]
      return (pred - jnp.asarray(batch["y"])) ** 2
    return {"loss": loss, "data": {}}


def test_evaluate_runs_config_evals_and_build_checks_them():
  c = _config(1)
  assert _Evaluated(c).evaluate(None, jax.random.key(0), [_batch()]) == {}      # no evals: nothing
  c.evals.l = dict(type="eval_loss")
  task = _Evaluated(c)
  state = task.init(jax.random.key(0), _batch())
  b = _batch()
  out = task.evaluate(state, jax.random.key(0), [b, dict(b, mask=jnp.asarray([1.0] * 4 + [0.0] * 4))])
  per = np.asarray((b["x"] @ state.ema_params["w"] + state.ema_params["b"] - b["y"]) ** 2)
  np.testing.assert_allclose(out["eval_loss"], (per.sum() + per[:4].sum()) / 12, rtol=1e-5)
  c.data.name, c.evals.s = "toy2d", dict(type="toy2d")
  with pytest.raises(ConfigError, match=r"evals.s \(type 'toy2d'\) needs the task's 'sample' function"):
    _Evaluated(c)
  # a task that declares nothing is checked when it evaluates
  undeclared = _Linear(c)
  with pytest.raises(ConfigError, match="needs the task's 'loss' function"):
    undeclared.evaluate(state, jax.random.key(0), [b])
