import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxgen import optim
from jaxgen.configs import base_config


def _opt(**kw):
  c = base_config().optimizer
  c.update(kw)
  return c


def test_edm_ema_halflife_and_rampup():
  # EDM training_loop.py: ema_nimg = min(halflife·1000, cur_nimg·ratio); β = 0.5^(batch/max(ema_nimg, 1e-8)).
  c = _opt(ema_halflife_kimg=500.0, ema_rampup_ratio=0.05)
  assert float(optim.ema_decay(c, 0, 512)) == 0.0  # first update copies the params
  step = 1000  # cur_nimg = 512000 → ramp-up limits ema_nimg to 25600
  expected = 0.5 ** (512 / 25600)
  assert math.isclose(float(optim.ema_decay(c, step, 512)), expected, rel_tol=1e-6)
  step = 10**6  # ramp-up no longer binding: half-life of 500k images
  assert math.isclose(float(optim.ema_decay(c, step, 512)), 0.5 ** (512 / 500000), rel_tol=1e-6)


def test_constant_ema_and_no_ema():
  assert float(optim.ema_decay(_opt(ema_decay=0.999), 5, 8)) == pytest.approx(0.999)
  assert float(optim.ema_decay(_opt(), 5, 8)) == 0.0


def test_warmup_matches_edm_rampup():
  # EDM: lr·min(cur_nimg / rampup_nimg, 1), cur_nimg counted before the update (step 0 → lr 0).
  s = optim.make_schedule(_opt(learning_rate=1e-3, warmup_steps=10), 100)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(5e-4)
  assert float(s(10)) == pytest.approx(1e-3)
  assert float(s(99)) == pytest.approx(1e-3)


def test_cosine_and_exponential():
  s = optim.make_schedule(_opt(learning_rate=1.0, schedule="cosine"), 100)
  assert float(s(50)) == pytest.approx(0.5, abs=1e-6)
  assert float(s(100)) == pytest.approx(0.0, abs=1e-6)
  e = optim.make_schedule(_opt(learning_rate=1.0, schedule="exponential", decay_steps=10,
                               decay_rate=0.5, staircase=True), 100)
  assert float(e(19)) == pytest.approx(0.5) and float(e(20)) == pytest.approx(0.25)


def test_clipping_and_unknown_names():
  tx = optim.make_optimizer(_opt(name="sgd", learning_rate=1.0, clip_grad_norm=1.0), 10)
  params = {"w": jnp.zeros(4)}
  upd, _ = tx.update({"w": jnp.full(4, 10.0)}, tx.init(params), params)
  np.testing.assert_allclose(np.linalg.norm(upd["w"]), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="optimizer.name"):
    optim.make_optimizer(_opt(name="adagrad"), 10)
  with pytest.raises(ValueError, match="optimizer.schedule"):
    optim.make_schedule(_opt(schedule="poly"), 10)


def _old_classification_optimizer(cfg, num_train_steps, mask):
  """The optimizer the classification task composed itself before make_optimizer took its options
  (copied verbatim from jaxgen/tasks/classification.py, the reference for the factory)."""
  name = cfg.name
  wd = float(cfg.get("weight_decay", 0.0))
  if name in ("adamw", "lamb") or (wd == 0.0 and name != "rmsprop"):
    return optim.make_optimizer(cfg, num_train_steps)
  parts = []
  if float(cfg.get("clip_grad_norm", 0.0)) > 0:
    parts.append(optax.clip_by_global_norm(float(cfg.clip_grad_norm)))
  if wd:
    parts.append(optax.masked(optax.add_decayed_weights(wd), mask))
  if name == "rmsprop":
    sched = optim.make_schedule(cfg, num_train_steps)
    parts.append(optax.rmsprop(sched, decay=float(cfg.get("rms_decay", 0.9)), eps=float(cfg.eps),
                               initial_scale=float(cfg.get("rms_initial_scale", 1.0)), eps_in_sqrt=True,
                               centered=bool(cfg.get("centered", False)),
                               momentum=float(cfg.momentum) or None))
  else:
    base = cfg.to_dict()
    base.update(weight_decay=0.0, clip_grad_norm=0.0)
    parts.append(optim.make_optimizer(ml_collections.ConfigDict(base), num_train_steps))
  return optax.chain(*parts)


@pytest.mark.parametrize("kw", [
    dict(name="sgd", momentum=0.9, nesterov=True, weight_decay=1e-2, schedule="cosine", warmup_steps=2),
    dict(name="sgd", momentum=0.9, weight_decay=1e-2, clip_grad_norm=0.5),
    dict(name="sgd", momentum=0.9),                                        # no decay
    dict(name="adam", weight_decay=1e-2),
    dict(name="adamw", weight_decay=1e-2),
    dict(name="rmsprop", momentum=0.9, eps=1e-3, weight_decay=1e-2, schedule="exponential", decay_steps=2,
         decay_rate=0.5),
    dict(name="rmsprop", momentum=0.0, eps=1e-3, clip_grad_norm=1.0),      # no decay, no momentum
    dict(name="rmsprop", momentum=0.9, eps=1e-3, weight_decay=1e-2, rms_initial_scale=0.0),
])
def test_factory_with_classification_options_equals_the_old_composition(kw):
  # Same opt_state layout (so checkpoints of classification runs restore) and the same updates.
  cfg = _opt(learning_rate=0.1, **kw)
  mask = lambda p: optim.decay_mask(p, decay_norm_params=False, decay_biases=False)
  old = _old_classification_optimizer(cfg, 10, mask)
  new = optim.make_optimizer(cfg, 10, decay_mask=mask, rms_initial_scale=1.0)
  params = {"conv": {"kernel": jnp.array([2.0, -1.0]), "bias": jnp.array([0.5])},
            "bn": {"scale": jnp.array([1.5])}}
  s_old, s_new = old.init(params), new.init(params)
  assert jax.tree_util.tree_structure(s_old) == jax.tree_util.tree_structure(s_new)
  p_old = p_new = params
  for i in range(4):
    g = jax.tree_util.tree_map(lambda x: jnp.sin(x * (i + 1.0)) + 0.3, p_old)
    u_old, s_old = old.update(g, s_old, p_old)
    u_new, s_new = new.update(g, s_new, p_new)
    p_old, p_new = optax.apply_updates(p_old, u_old), optax.apply_updates(p_new, u_new)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p_old, p_new)
  assert not np.allclose(p_new["conv"]["kernel"], params["conv"]["kernel"])


def test_coupled_decay_mask_and_rms_initial_scale():
  # SGD without momentum, lr 1: Δw = −(g + wd·w·mask); the masked leaf gets the bare gradient.
  tx = optim.make_optimizer(_opt(name="sgd", learning_rate=1.0, weight_decay=0.5), 10,
                            decay_mask={"w": True, "b": False})
  params = {"w": jnp.array([2.0]), "b": jnp.array([2.0])}
  grads = {"w": jnp.array([1.0]), "b": jnp.array([1.0])}
  upd, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(upd["w"], [-(1.0 + 0.5 * 2.0)])
  np.testing.assert_allclose(upd["b"], [-1.0])
  # RMSProp's first step: Δw = −lr·g/√(ρ·ms0 + (1−ρ)g² + ε), ms0 from the keyword unless the config sets it.
  lr, rho, eps, g = 0.1, 0.9, 1e-3, 0.5
  for initial, cfg_kw in ((1.0, {}), (0.0, dict(rms_initial_scale=0.0))):
    tx = optim.make_optimizer(_opt(name="rmsprop", learning_rate=lr, rms_decay=rho, eps=eps, **cfg_kw), 10,
                              rms_initial_scale=1.0)
    upd, _ = tx.update({"w": jnp.array([g])}, tx.init({"w": jnp.zeros(1)}))
    np.testing.assert_allclose(upd["w"], [-lr * g / math.sqrt(rho * initial + (1 - rho) * g ** 2 + eps)],
                               rtol=1e-6)
  # optax's default (0) when neither the keyword nor the config says otherwise: every other task.
  tx = optim.make_optimizer(_opt(name="rmsprop", learning_rate=lr, rms_decay=rho, eps=eps), 10)
  upd, _ = tx.update({"w": jnp.array([g])}, tx.init({"w": jnp.zeros(1)}))
  np.testing.assert_allclose(upd["w"], [-lr * g / math.sqrt((1 - rho) * g ** 2 + eps)], rtol=1e-6)
