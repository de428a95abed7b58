"""The GAN task inside the one-trainer contract: n_critic in the compiled step, clipping, sampling,
the non-finite guard, toy evaluation (config.evals), the typed task config."""

import dataclasses
import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import tasks
from jaxgen.configs import base_config, smoke
from jaxgen.data import toy2d
from jaxgen.errors import ConfigError
from jaxgen.recipes import gan as gan_recipe
from jaxgen.tasks import gan as gan_task


def _config(**task):
  c = base_config()
  c.data.name = "toy2d"
  c.data.toy = "8gaussians"
  c.model.name = "gan_mlp_g"
  c.model.overrides.hidden = 8
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 5e-3
  gan_recipe.task_config(c, critic="gan_mlp_d", loss="wasserstein", latent_dim=2)
  smoke(c)
  c.task.critic.overrides.hidden = 8
  c.evals.toy2d = dict(type="toy2d", num_samples=48, lp_samples=32, num_projections=8)
  c.evals.critic = dict(type="critic_w1", num_samples=48, lp_samples=32)
  c.task.sample_batch_size = 4
  c.task.update(task)
  return c


@functools.cache
def _setup():
  task = tasks.get(_config(n_critic=3, clip_value=0.01))
  batch = {"x": np.asarray(toy2d.sample("8gaussians", jax.random.key(0), 16))}
  state = task.init(jax.random.key(1), batch)
  return task, batch, state, jax.jit(task.train_step)


def test_generator_updates_every_n_critic_steps_and_clipping_holds():
  task, batch, state, step = _setup()
  g_steps, states = [], [state]
  for i in range(6):
    state, m = step(state, batch, jax.random.key(10 + i))
    g_steps.append(int(state.g_step))
    assert float(m["g_updated"]) == float(i % 3 == 2)
    assert not bool(m["nonfinite"])
    states.append(state)
    for leaf in jax.tree_util.tree_leaves(state.critic_params):
      assert float(jnp.max(jnp.abs(leaf))) <= 0.01
  assert g_steps == [0, 0, 1, 1, 1, 2] and int(state.step) == 6
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                               jax.tree_util.tree_leaves(b)))
  assert same(states[0].params, states[2].params)           # no generator update yet
  assert not same(states[2].params, states[3].params)       # updated after the 3rd critic step
  assert not same(states[3].critic_params, states[4].critic_params)


def test_nonfinite_batch_leaves_the_state_unchanged():
  task, batch, state, step = _setup()
  bad = {"x": np.full_like(batch["x"], np.nan)}
  new, m = step(state, bad, jax.random.key(0))
  assert bool(m["nonfinite"])
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(state)))


def test_sample_i_depends_only_on_key_and_index():
  task, _, state, _ = _setup()
  key = jax.random.key(3)
  a = task.sample(state, key, 5, start_index=3)
  b = task.sample(state, key, 9)
  np.testing.assert_allclose(a, b[3:8], rtol=1e-6, atol=1e-6)
  assert a.shape == (5, 2)


def test_toy_evaluation_reports_duality_and_coverage():
  task, _, state, _ = _setup()
  out = task.evaluate(state, jax.random.key(0), None)
  for k in ("w1", "w1_critic", "critic_lipschitz", "w1_critic_normalized", "sw1", "modes_hit", "hq_fraction"):
    assert np.isfinite(out[k]), k
  assert out["num_modes"] == 8 and out["w1"] > 0
  # the toy2d keys are the same for every family (tests/tasks/test_diffusion_task.py asks for the same set)
  assert set(out) == {"sw1", "sw1_floor", "mmd", "mmd_floor", "w1", "w1_floor", "w1_x", "w1_y", "modes_hit",
                      "num_modes", "hq_fraction", "w1_critic", "critic_lipschitz", "w1_critic_normalized"}
  # (mode coverage itself: tests/eval/test_evaluators.py)


def test_generator_steps_inverts_the_schedule():
  assert gan_task.generator_steps(10, 5, "constant") == 2
  assert gan_task.generator_steps(2499, 5, "wgan") == 24 and gan_task.generator_steps(2500, 5, "wgan") == 25
  # update g = 500 (0-based) needs 100 critic steps again: it starts at C(500) = 2500 + 5·475 = 4875
  assert gan_task.generator_steps(4875, 5, "wgan") == 500
  assert gan_task.generator_steps(4974, 5, "wgan") == 500 and gan_task.generator_steps(4975, 5, "wgan") == 501


def test_config_errors_name_the_fix():
  c = _config(gp_weight=10.0)
  tiny = ml_collections.ConfigDict(dict(resolution=16, channels=1, base=4))
  c.task.critic.name, c.task.critic.overrides = "dcgan32_d", tiny
  c.model.name, c.model.overrides = "dcgan32_g", tiny
  task = tasks.get(c)
  with pytest.raises(ValueError, match="batch norm"):
    task.init(jax.random.key(0), {"image": np.zeros((2, 16, 16, 1), np.float32)})
  with pytest.raises(ValueError, match="task.loss"):
    tasks.get(_config(loss="wgan"))
  with pytest.raises(ValueError, match="n_critic_schedule"):
    tasks.get(_config(n_critic_schedule="ttur"))
  with pytest.raises(ConfigError, match=r"task.gp_weight=-1.0 is negative"):
    tasks.get(_config(gp_weight=-1.0))
  with pytest.raises(ConfigError, match=r"task.n_critc is not an option.*did you mean 'n_critic'"):
    tasks.get(_config(n_critc=5))
  with pytest.raises(ConfigError, match=r"task.critic.overides is not an option.*did you mean 'overrides'"):
    c = _config()
    c.task.critic.overides = dict(hidden=4)
    tasks.get(c)
  c = _config()
  c.evals.ll = dict(type="toy2d_likelihood")
  with pytest.raises(ConfigError, match=r"evals.ll \(type 'toy2d_likelihood'\) needs the task's 'denoise' "
                                        r"function, which task 'gan' does not provide"):
    tasks.get(c)


def test_recipe_writes_every_task_key_with_the_task_defaults():
  c = gan_recipe.task_config(base_config(), critic="gan_mlp_d", loss="hinge", latent_dim=7)
  # every field is a key of the config, so each can be set on the command line
  assert set(c.task.keys()) == {"name"} | {f.name for f in dataclasses.fields(gan_task.GanConfig)}
  assert (c.task.loss, c.task.latent_dim, c.task.n_critic, c.task.sample_batch_size) == ("hinge", 7, 1, 500)
