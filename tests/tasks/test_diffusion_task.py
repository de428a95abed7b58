"""The diffusion task: training decreases the loss, samples depend only on their index, every
preconditioning × loss path gives finite losses, the DDPM schedule trains and samples, evaluation runs
the configured evaluators, config errors. Tiny networks; compiled functions shared."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import configs
from jaxgen import diffusion as dfn
from jaxgen.data import digits
from jaxgen.errors import ConfigError
from jaxgen.eval import evaluators
from jaxgen.tasks import diffusion


def _digits_config(**task):
  c = configs.base_config()
  c.batch_size = 32
  c.num_train_steps = 40
  c.data.name = "digits"
  c.model.name = "small_unet"
  c.model.overrides.channels = 8
  c.model.overrides.channel_mult = (1,)     # one level keeps XLA's CPU compile short
  c.model.overrides.num_blocks = 1
  c.model.overrides.dropout = 0.0
  c.optimizer.learning_rate = 3e-3
  c.task.name = "diffusion"
  c.task.precond = "edm"
  c.task.loss = "edm"
  c.task.sampler = "heun"
  c.task.num_steps = 4
  c.task.update(task)
  return c


@functools.cache
def _trained():
  """A tiny EDM digits model before and after 40 Adam steps (batch 32)."""
  task = diffusion.Task(_digits_config())
  x, y = digits.load("train")
  state0 = task.init(jax.random.key(0), {"image": x[:32], "label": y[:32]})
  step = jax.jit(task.train_step)
  state = state0
  rng = np.random.default_rng(0)
  for i in range(40):
    idx = rng.choice(len(x), 32, replace=False)
    state, metrics = step(state, {"image": jnp.asarray(x[idx]), "label": jnp.asarray(y[idx])},
                          jax.random.key(i))
    assert not bool(metrics["nonfinite"])
  return task, state0, state


def _fixed_loss(task, params, model_state):
  """Eval-mode loss on a fixed batch of 256 images averaged over 8 fixed keys (common random numbers)."""
  x, _ = digits.load("test")
  batch = {"image": jnp.asarray(x[:256])}
  f = jax.jit(lambda p, k: task.loss(p, model_state, batch, k, False)[0])
  return float(np.mean([f(params, jax.random.key(100 + i)) for i in range(8)]))


def test_train_step_decreases_the_loss():
  task, state0, state = _trained()
  assert int(state.step) == 40
  before = _fixed_loss(task, state0.params, state0.model_state)
  after = _fixed_loss(task, state.params, state.model_state)
  # The untrained UNet outputs 0 (zero-initialized output conv), so D = c_skip·x at the start.
  assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("sampler,options", [("heun", {}), ("edm", {"s_churn": 10.0}), ("dpmpp_2m_sde", {}),
                                             ("unipc", {"order": 3})])
def test_sample_depends_only_on_its_index(sampler, options):
  _, _, state = _trained()
  task = diffusion.Task(_digits_config(sampler=sampler, sampler_options=options))
  key = jax.random.key(7)
  eight = task.sample(state, key, 8)
  four = task.sample(state, key, 4, start_index=4)
  assert eight.shape == (8, 8, 8, 1) and np.all(np.abs(eight) <= 1.0)
  np.testing.assert_allclose(four, eight[4:], atol=1e-5)
  assert not np.allclose(eight[0], eight[1])


def _toy_config(precond, loss, **task):
  c = configs.base_config()
  c.data.name = "toy2d"
  c.data.toy = "8gaussians"
  c.model.name = "toy_mlp"
  c.model.overrides.hidden = 16
  c.model.overrides.num_layers = 1
  c.model.overrides.emb_dim = 8
  c.task.name = "diffusion"
  c.task.precond = precond
  c.task.loss = loss
  c.task.update(task)
  return c


@pytest.mark.parametrize("precond,loss", [("edm", "edm"), ("vp", "vp"), ("ve", "ve"), ("iddpm", "vp"),
                                          ("fm", "fm"), ("vp", "eps"), ("vp", "v"), ("vp", "x0"),
                                          ("ve", "dsm"), ("subvp", "subvp"), ("ddpm", "eps"), ("ddpm", "v"),
                                          ("ddpm", "edm")])
def test_every_precond_and_loss_gives_finite_losses(precond, loss):
  task = diffusion.Task(_toy_config(precond, loss))
  x = jax.random.normal(jax.random.key(0), (16, 2)) * 2.0
  state = task.init(jax.random.key(1), {"x": x})
  # A random (not zero) output layer so the network term matters.
  params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), state.params)
  per = task.per_example_loss(params, state.model_state, {"x": x}, jax.random.key(3), True)
  assert per.shape == (16,) and bool(jnp.all(jnp.isfinite(per)))
  new, metrics = task.train_step(state.replace(params=params), {"x": x}, jax.random.key(4))
  assert not bool(metrics["nonfinite"]) and np.isfinite(float(metrics["loss"]))


def test_loss_reduce_mean_is_the_sum_over_the_dimension():
  x = jax.random.normal(jax.random.key(0), (16, 2)) * 2.0
  per = {}
  for reduce in ("sum", "mean"):
    task = diffusion.Task(_toy_config("subvp", "subvp", loss_reduce=reduce))
    state = task.init(jax.random.key(1), {"x": x})
    per[reduce] = task.per_example_loss(state.params, state.model_state, {"x": x}, jax.random.key(3), True)
  np.testing.assert_allclose(per["mean"] * 2, per["sum"], rtol=1e-6)
  with pytest.raises(ValueError, match="task.loss_reduce"):
    diffusion.Task(_toy_config("subvp", "subvp", loss_reduce="max"))


def test_dequantize_feeds_the_loss_the_dequantized_pixels(monkeypatch):
  """With task.dequantize the loss sees (k + U)/256 on [−1, 1]: inside pixel k's bin, uniform there."""
  task = diffusion.Task(_digits_config(dequantize=True))
  k = np.arange(256, dtype=np.float32)
  img = np.tile(((k / 127.5) - 1.0).reshape(1, 16, 16, 1), (64, 1, 1, 1))  # every 8-bit value, 64 times
  seen = {}

  def fake_loss(D, y, key, **kw):
    seen["y"] = y
    return jnp.zeros(y.shape[0])

  monkeypatch.setitem(diffusion.dfn.LOSSES, "edm", fake_loss)
  state = task.init(jax.random.key(0), {"image": img[:1, :8, :8]})
  task.per_example_loss(state.params, state.model_state, {"image": jnp.asarray(img)}, jax.random.key(1), True)
  frac = (np.asarray(seen["y"]) + 1.0) / 2.0 * 256.0 - k.reshape(1, 16, 16, 1)  # the U in (k + U)/256
  assert frac.min() >= 0.0 and frac.max() < 1.0 + 1e-4
  u = np.sort(frac.reshape(-1))
  assert np.max(np.abs(u - np.arange(1, u.size + 1) / u.size)) < 1.63 / np.sqrt(u.size)  # KS, 1% level


def test_langevin_uniform_start_is_uniform_and_indexed():
  # With no Langevin step (n_steps_each=0) the sampler returns its start: U(−1, 1) per coordinate.
  task = diffusion.Task(_toy_config("ncsn", "dsm", sampler="annealed_langevin", langevin_init="uniform",
                                    sampler_options={"n_steps_each": 0, "denoise": False}))
  state = task.init(jax.random.key(1), {"x": jnp.zeros((4, 2))})
  out = np.asarray(task.sample(state, jax.random.key(0), 4000))
  assert out.min() >= -1.0 and out.max() <= 1.0
  u = np.sort((out.reshape(-1) + 1.0) / 2.0)
  ks = np.max(np.abs(u - np.arange(1, u.size + 1) / u.size))
  assert ks < 1.63 / np.sqrt(u.size)  # Kolmogorov–Smirnov, 1% level
  np.testing.assert_array_equal(np.asarray(task.sample(state, jax.random.key(0), 3, start_index=5)), out[5:8])
  with pytest.raises(ValueError, match="task.langevin_init"):
    diffusion.Task(_toy_config("ncsn", "dsm", langevin_init="sobol"))


def test_fm_sampler_in_its_own_time_and_bad_names():
  task = diffusion.Task(_toy_config("fm", "fm", sampler="ode", num_steps=3,
                                    sampler_options={"solver": "euler"}))
  state = task.init(jax.random.key(1), {"x": jnp.zeros((4, 2))})
  out = task.sample(state, jax.random.key(0), 5)
  # The untrained F (the velocity prediction v̂) is 0, so dx_t/dt = v̂ = 0 and the flow keeps its start
  # x_{t₀} = latent·σ(t₀)·s(t₀) = latent·t₀ (t₀ = t_max = 0.999) all the way to t = 0.
  z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(jax.random.split(jax.random.key(0))[0], i),
                                           (2,)))(jnp.arange(5))
  np.testing.assert_allclose(out, np.asarray(z) * 0.999, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="task.precond"):
    diffusion.Task(_toy_config("cosine", "edm"))
  with pytest.raises(ValueError, match="task.sampler"):
    diffusion.Task(_toy_config("edm", "edm", sampler="magic"))


def test_ddpm_precond_trains_the_discrete_schedule_and_samples():
  task = diffusion.Task(_digits_config(precond="ddpm", loss="eps", ddpm_schedule="cosine", sampler="ddim",
                                       sample_batch_size=4))
  assert isinstance(task.schedule, dfn.DDPMSchedule)
  assert (task.schedule.kind, task.schedule.T, task.schedule.prediction) == ("cosine", 1000, "eps")
  x, y = digits.load("train")
  batch = {"image": jnp.asarray(x[:16]), "label": jnp.asarray(y[:16])}
  state = task.init(jax.random.key(0), batch)
  new, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(1))
  assert int(new.step) == 1 and not bool(metrics["nonfinite"]) and np.isfinite(float(metrics["loss"]))
  # L_simple: the ε-MSE averaged over pixels; the untrained UNet outputs ε̂ = 0, so it is E‖ε‖²/D = 1
  per = task.per_example_loss(state.params, state.model_state, batch, jax.random.key(2), False)
  assert abs(float(jnp.mean(per)) - 1.0) < 0.1
  out = task.sample(new, jax.random.key(3), 5)
  assert out.shape == (5, 8, 8, 1) and np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
  # the sampler runs on the DDPM ladder: N = 4 steps from σ_max of the T = 1000 schedule
  np.testing.assert_allclose(np.asarray(task.sigma_grid())[0], task.schedule.sigma_max, rtol=1e-5)


def test_config_keys_are_typed_and_checked():
  task = diffusion.Task(_toy_config("edm", "edm", num_steps=7))
  assert task.cfg.num_steps == 7 and task.cfg.sampler == "heun"        # a default stated in DiffusionConfig
  fields = {f.name for f in dataclasses.fields(diffusion.DiffusionConfig)}
  assert fields >= {"precond", "loss", "ddpm_schedule"}
  with pytest.raises(ConfigError, match=r"task.num_step is not an option.*did you mean 'num_steps'"):
    diffusion.Task(_toy_config("edm", "edm", num_step=7))
  with pytest.raises(ConfigError, match=r"task.loss='ddpm_eps' was renamed to 'eps'.*--config.task.loss=eps"):
    diffusion.Task(_toy_config("vp", "ddpm_eps"))
  with pytest.raises(ConfigError, match=r"task.loss='epss' is unknown \(did you mean 'eps'\?\)"):
    diffusion.Task(_toy_config("vp", "epss"))
  with pytest.raises(ConfigError, match=r"task.num_steps='many' must be an integer"):
    diffusion.Task(_toy_config("edm", "edm", num_steps="many"))
  with pytest.raises(ConfigError, match=r"task.ddpm_schedule='quadratic' is unknown"):
    diffusion.Task(_toy_config("ddpm", "eps", ddpm_schedule="quadratic"))


def test_evaluate_runs_the_configured_evaluators():
  c = _toy_config("edm", "edm", num_steps=2, sample_batch_size=64)
  c.evals.toy = dict(type="toy2d", num_samples=64, lp_samples=64)
  c.evals.loss = dict(type="eval_loss")
  task = diffusion.Task(c)
  x = jax.random.normal(jax.random.key(0), (16, 2)) * 2.0
  state = task.init(jax.random.key(1), {"x": x})
  batches = [{"x": np.asarray(x[:8])}, {"x": np.asarray(x[8:]), "mask": np.array([1.0] * 5 + [0.0] * 3)}]
  key = jax.random.key(5)
  out = task.evaluate(state, key, batches)
  # the toy2d keys are the same for every family (tests/gan/test_task.py asks for the same set)
  assert set(out) == {"sw1", "sw1_floor", "mmd", "mmd_floor", "w1", "w1_floor", "w1_x", "w1_y", "modes_hit",
                      "num_modes", "hq_fraction", "eval_loss"}
  # eval_loss: the masked mean of the per-example eval-mode loss (EMA params), batch i with fold_in(k, i)
  k_entry = jax.random.fold_in(key, 0)                         # 'loss' is the first name
  per = [np.asarray(task.per_example_loss(state.ema_params, state.model_state, {"x": b["x"]},
                                          jax.random.fold_in(k_entry, i), False))
         for i, b in enumerate(batches)]
  want = (per[0].sum() + per[1][:5].sum()) / 13
  np.testing.assert_allclose(out["eval_loss"], want, rtol=1e-5)
  assert task.evaluate(state, key, None).keys() == set(out) - {"eval_loss"}
  c.evals.critic = dict(type="critic_w1")
  with pytest.raises(ConfigError, match=r"needs the task's 'critic' function, which task 'diffusion' does"):
    diffusion.Task(c)
  assert set(task.EVAL_FUNCTIONS) == set(task.eval_functions(state))
  assert set(task.EVAL_FUNCTIONS) <= set(evaluators.FUNCTIONS)


@pytest.mark.parametrize("grid,tau0", [("ddim_uniform", 900), ("ddim_quadratic", 800)])
def test_ddim_sigma_grids_are_the_official_subsequences(grid, tau0):
  task = diffusion.Task(_toy_config("ddpm", "eps", sampler="ddim", sigma_grid=grid, num_steps=10))
  g = np.asarray(task.sigma_grid())
  skip = grid.removeprefix("ddim_")
  np.testing.assert_array_equal(g, np.asarray(task.schedule.ddim_steps(10, skip)))
  np.testing.assert_allclose(g[0], task.schedule.sigmas[tau0], rtol=1e-6)   # uniform: σ_900 ≈ 60.82
  assert g.shape == (11,) and g[-1] == 0.0
  with pytest.raises(ConfigError, match=r"sigma_grid='ddim_uniform' is a sub-sequence.*task.precond='ddpm'"):
    diffusion.Task(_toy_config("vp", "vp", sigma_grid="ddim_uniform"))


def test_ddpm_sampler_with_beta_variance_draws_from_the_task():
  task = diffusion.Task(_toy_config("ddpm", "eps", sampler="ddpm", num_steps=20, sample_batch_size=8,
                                    sampler_options=dict(variance="beta"), sigma_grid="ddim_uniform"))
  state = task.init(jax.random.key(0), {"x": jnp.zeros((4, 2), jnp.float32)})
  a = task.sample(state, jax.random.key(1), 5)
  b = task.sample(state, jax.random.key(1), 3, start_index=2)   # a sample depends only on its index
  assert a.shape == (5, 2) and np.all(np.isfinite(a))
  np.testing.assert_allclose(a[2:], b, rtol=1e-5, atol=1e-5)
