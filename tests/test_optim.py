import math

import jax.numpy as jnp
import ml_collections
import numpy as np
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
