"""Gradient penalty, R1, weight clipping, spectral norm and the n_critic schedules."""

import numpy as np
import optax
import pytest

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import gan
from jaxgen.errors import ConfigError


def _linear(w):
  w = jnp.asarray(w, jnp.float32)
  return lambda x: x.reshape(x.shape[0], -1) @ w.reshape(-1)


def test_gradient_penalty_of_linear_critics():
  key = jax.random.key(0)
  real = jax.random.normal(key, (16, 2, 3))
  fake = jax.random.normal(jax.random.key(1), (16, 2, 3))
  w = np.arange(1.0, 7.0)
  unit = w / np.linalg.norm(w)
  # ‖∇f‖ = 1 everywhere: zero penalty (both variants)
  assert float(gan.gradient_penalty(_linear(unit), real, fake, key)) < 1e-10
  assert float(gan.gradient_penalty(_linear(unit), real, fake, key, one_sided=True)) < 1e-10
  # ‖∇f‖ = 2: (2 − 1)² = 1; ‖∇f‖ = ½: two-sided ¼, one-sided 0
  np.testing.assert_allclose(gan.gradient_penalty(_linear(2 * unit), real, fake, key), 1.0, rtol=1e-5)
  np.testing.assert_allclose(gan.gradient_penalty(_linear(unit / 2), real, fake, key), 0.25, rtol=1e-5)
  assert float(gan.gradient_penalty(_linear(unit / 2), real, fake, key, one_sided=True)) == 0.0
  # R1 = E‖∇D‖² = ‖w‖²
  np.testing.assert_allclose(gan.r1_penalty(_linear(w), real), np.sum(w ** 2), rtol=1e-5)
  # the penalty is differentiable in the critic's parameters, also at a zero gradient
  g = jax.grad(lambda v: gan.gradient_penalty(_linear(v), real, fake, key))(jnp.zeros(6))
  assert bool(jnp.all(jnp.isfinite(g)))


def test_interpolates_lie_on_segments():
  key = jax.random.key(3)
  real, fake = jnp.zeros((8, 4)), jnp.ones((8, 4))
  x = gan.interpolates(key, real, fake)
  assert bool(jnp.all((x >= 0) & (x <= 1)))
  np.testing.assert_allclose(x, x[:, :1] * jnp.ones((1, 4)))  # one ε per sample


def test_weight_clipping_keeps_every_weight_in_range():
  params = {"a": jnp.linspace(-1, 1, 101), "b": jnp.full((3, 3), 0.5), "c": jnp.array([0.0099999])}
  tx = optax.chain(optax.rmsprop(0.05), gan.weight_clipping(0.01))
  state = tx.init(params)
  for i in range(5):
    grads = jax.tree_util.tree_map(lambda p: jnp.cos(p * 7.0 + i), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    for leaf in jax.tree_util.tree_leaves(params):
      assert float(jnp.max(jnp.abs(leaf))) <= 0.01
  with pytest.raises(ConfigError, match="clip"):
    gan.weight_clipping(0.0)


def test_spectral_norm_normalizes_the_top_singular_value():
  m = gan.SpectralNorm(nn.Dense(5), n_power_iterations=1)
  x = jnp.ones((2, 7))
  v = m.init(jax.random.key(0), x)
  assert float(jnp.linalg.svd(v["params"]["layer"]["kernel"], compute_uv=False)[0]) != pytest.approx(1.0, abs=0.05)

  @jax.jit
  def step(v):
    _, upd = m.apply(v, x, update_stats=True, mutable=["spectral"])
    return {**v, **upd}

  for _ in range(40):
    v = step(v)
  eye = jnp.eye(7)
  eff = m.apply(v, eye) - m.apply(v, jnp.zeros((1, 7)))   # the normalized kernel
  np.testing.assert_allclose(jnp.linalg.svd(eff, compute_uv=False)[0], 1.0, rtol=1e-3)
  # evaluation leaves the state alone
  _, upd = m.apply(v, x, mutable=["spectral"])
  np.testing.assert_array_equal(jax.tree_util.tree_leaves(upd)[0], jax.tree_util.tree_leaves(v["spectral"])[0])


def test_spectral_norm_differs_from_flax_as_its_docstring_says():
  """Why jaxgen keeps its own SpectralNorm (jaxgen/gan/spectral.py): on one kernel W and one stored u₀,
  after v₁ = Wu₀/‖Wu₀‖, u₁ = Wᵀv₁/‖Wᵀv₁‖, ours divides by ‖Wu₁‖ in training and ‖Wu₀‖ in
  evaluation; flax.linen.SpectralNorm by v₁ᵀWu₁ = ‖Wᵀv₁‖ in both, and it stores u elsewhere. If this
  fails, Flax changed: re-check whether it now matches and the models can switch to it."""
  x = jnp.ones((2, 7))
  ours = gan.SpectralNorm(nn.Dense(5))
  theirs = nn.SpectralNorm(nn.Dense(5), collection_name="spectral")
  v = ours.init(jax.random.key(0), x)
  vf = theirs.init(jax.random.key(0), x, update_stats=False)
  assert set(v["spectral"]) == {"u_kernel"} and set(v["params"]) == {"layer"}
  assert set(vf["spectral"]) == {"layer_instance/kernel/u", "layer_instance/kernel/sigma"}
  assert set(vf["params"]) == {"layer_instance"}
  w = np.asarray(v["params"]["layer"]["kernel"], np.float64)
  u0 = np.asarray(v["spectral"]["u_kernel"], np.float64)
  vf = {"params": {"layer_instance": v["params"]["layer"]},            # the same W and u₀ in Flax's layout
        "spectral": {**vf["spectral"], "layer_instance/kernel/u": jnp.asarray(u0[None], jnp.float32)}}
  v1 = w @ u0 / np.linalg.norm(w @ u0)
  u1 = w.T @ v1 / np.linalg.norm(w.T @ v1)

  def sigma(module, variables, **kw):   # the σ̂ the layer divided its kernel by
    out = lambda inp: module.apply(variables, inp, **kw)
    eff = [o[0] if isinstance(o, tuple) else o for o in (out(jnp.eye(7)), out(jnp.zeros((1, 7))))]
    return float(np.linalg.norm(w) / np.linalg.norm(np.asarray(eff[0] - eff[1], np.float64)))

  train = dict(update_stats=True, mutable=["spectral"])
  np.testing.assert_allclose(sigma(ours, v, **train), np.linalg.norm(w @ u1), rtol=1e-5)
  np.testing.assert_allclose(sigma(ours, v), np.linalg.norm(w @ u0), rtol=1e-5)
  np.testing.assert_allclose(sigma(theirs, vf, **train), np.linalg.norm(w.T @ v1), rtol=1e-5)
  np.testing.assert_allclose(sigma(theirs, vf, update_stats=False), np.linalg.norm(w.T @ v1), rtol=1e-5)
  # the two estimates differ on this state (‖Wu₁‖ ≥ v₁ᵀWu₁ by Cauchy–Schwarz), both below σ_max
  top = np.linalg.svd(w, compute_uv=False)[0]
  assert np.linalg.norm(w.T @ v1) * 1.01 < np.linalg.norm(w @ u1) <= top * (1 + 1e-9)


def test_n_critic_schedules():
  # constant: generator after every n-th critic step
  due = [bool(gan.generator_update_due(s, s // 5, 5)) for s in range(10)]
  assert due == [False] * 4 + [True] + [False] * 4 + [True]
  # WGAN (Arjovsky et al. code): 100 critic iterations for generator steps 0..24 and every 500th
  def brute(g, n):
    return sum(100 if (j < 25 or j % 500 == 0) else n for j in range(g))
  gs = np.arange(0, 1600)
  np.testing.assert_array_equal(gan.critic_steps_before(gs, 5, "wgan"), [brute(g, 5) for g in gs])
  np.testing.assert_array_equal(gan.critic_iters(np.array([0, 24, 25, 499, 500, 501]), 5, "wgan"),
                                [100, 100, 5, 5, 100, 5])
  # the trainer's view: generator update g comes right after critic step C(g+1) − 1, not before
  g = np.arange(0, 1100)
  last = np.asarray(gan.critic_steps_before(g + 1, 5, "wgan")) - 1
  assert bool(jnp.all(gan.generator_update_due(last, g, 5, "wgan")))
  assert not bool(jnp.any(gan.generator_update_due(last - 1, g, 5, "wgan")))
  np.testing.assert_array_equal(np.diff(np.concatenate([[-1], last]))[:36], [100] * 25 + [5] * 11)
  with pytest.raises(ConfigError, match="n_critic_schedule"):
    gan.critic_iters(0, 5, "ttur")
