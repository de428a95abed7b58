"""NCSN: the conditional RefineNet (jaxgen.models.ncsn), NCSNSchedule and the 'ncsn' task preconditioning.

Full-size networks only through jax.eval_shape; everything that runs uses ngf 4, 3 levels, 8×8×1.
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import configs
from jaxgen import diffusion as dfn
from jaxgen import models
from jaxgen.models import ncsn
from jaxgen.tasks import diffusion as diffusion_task

TINY = dict(ngf=4, num_levels=3, channels=1, img_resolution=8)


def test_param_count_equals_the_official_model():
  # Trainable parameters of the official CondRefineNetDilated (ermongroup/ncsn,
  # models/cond_refinenet_dilated.py), obtained by constructing it with PyTorch 2.13 (CPU) and summing
  # p.numel() over parameters() with requires_grad: CIFAR-10 (ngf 128, 10 levels, 3 channels)
  # 30,117,635; MNIST (ngf 64, 10 levels, 1 channel) 7,638,657.
  assert models.count_params(models.param_shapes("ncsn_cifar10")) == 30_117_635
  assert models.count_params(models.param_shapes("ncsn_mnist")) == 7_638_657


def _sine_weights(name, shape):
  """Deterministic weights of one official parameter (the same rule fed the PyTorch reference run)."""
  n = int(np.prod(shape))
  phase = (zlib.crc32(name.encode()) % 1000) / 1000.0 * 2 * np.pi
  v = np.sin(0.731 * np.arange(n) + phase)
  if name.endswith("embed.weight"):
    v = 1.0 + 0.2 * v
  elif len(shape) == 4:
    v = v * 1.5 / np.sqrt(np.prod(shape[1:]))
  else:
    v = 0.1 * v
  return v.reshape(shape).astype(np.float32)


@functools.cache
def _tiny():
  net = models.create("ncsn_cifar10", **TINY)
  apply = jax.jit(lambda p, x, c: net.apply({"params": p}, x, c))
  params = net.init(jax.random.key(0), *models.example_inputs("ncsn_cifar10", batch=2, **TINY))["params"]
  return net, apply, params


def test_init_is_the_official_distribution():
  _, _, params = _tiny()
  np.testing.assert_array_equal(jax.tree_util.tree_structure(params),
                                jax.tree_util.tree_structure(models.param_shapes("ncsn_cifar10", **TINY)))
  embeds, convs = [], []
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    parent = params
    for p in path[:-1]:
      parent = parent[p.key]
    leaf = np.asarray(leaf)
    if path[-1].key == "embed":  # γ | α ~ N(1, 0.02), β = 0
      c = leaf.shape[1] // 3
      np.testing.assert_array_equal(leaf[:, 2 * c:], 0.0)
      embeds.append(leaf[:, :2 * c].ravel())
    else:  # PyTorch's default: U(±1/√fan_in) for weights and biases: w·√fan_in ~ U(−1, 1)
      convs.append(leaf.ravel() * np.sqrt(np.prod(parent["kernel"].shape[:3])))
  e, u = np.concatenate(embeds), np.concatenate(convs)
  assert abs(e.mean() - 1.0) < 0.002 and abs(e.std() - 0.02) < 0.002
  assert np.max(np.abs(u)) <= 1.0 + 1e-6 and np.max(np.abs(u)) > 0.99
  assert abs(u.mean()) < 0.02 and abs(u.var() - 1 / 3) < 0.02


def _x():
  return jnp.asarray((0.8 * np.sin(0.37 * np.arange(2 * 8 * 8))).reshape(2, 8, 8, 1), jnp.float32)


def test_forward_matches_the_official_pytorch_model():
  """The official model (ngf 4, 3 levels, 1 channel) with the sine weights, on u = (x + 1)/2 and
  levels (0, 2), gave (PyTorch 2.13 CPU, float32; NHWC indexing) sum −1.7856662571430206, sum of
  squares 79.4620004198766, out[0,0,0,0] −0.07751376181840897, out[1,7,7,0] −0.31465625762939453,
  out[0,3,5,0] −0.8797288537025452. Ours is that times score_scale ½ (the score of [−1, 1] data)."""
  _, apply, params = _tiny()
  state = {ncsn.torch_name([p.key for p in path]): None
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  shapes = {ncsn.torch_name([p.key for p in path]): leaf.shape
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
  for name, s in shapes.items():  # official shapes: conv weights OIHW
    state[name] = _sine_weights(name, (s[3], s[2], s[0], s[1]) if len(s) == 4 else s)
  official = ncsn.params_from_torch({"module." + k: v for k, v in state.items()}, params)
  out = 2.0 * np.asarray(apply(official, _x(), jnp.asarray([0.0, 2.0])), np.float64)
  np.testing.assert_allclose(out.sum(), -1.7856662571430206, atol=2e-4)
  np.testing.assert_allclose((out ** 2).sum(), 79.4620004198766, rtol=2e-5)
  np.testing.assert_allclose([out[0, 0, 0, 0], out[1, 7, 7, 0], out[0, 3, 5, 0]],
                             [-0.07751376181840897, -0.31465625762939453, -0.8797288537025452], atol=2e-5)


def test_output_shape_dtype_and_level_conditioning():
  _, apply, params = _tiny()
  x = _x()
  out0 = apply(params, x, jnp.asarray([0.0, 0.0]))
  assert out0.shape == x.shape and out0.dtype == jnp.float32
  out2 = apply(params, x, jnp.asarray([2.0, 2.0]))
  assert float(jnp.max(jnp.abs(out2 - out0))) > 1e-3
  # the index as int gives the same result; out-of-range indices clip to the ladder's ends
  np.testing.assert_array_equal(apply(params, x, jnp.asarray([2, 2], jnp.int32)), out2)
  np.testing.assert_array_equal(apply(params, x, jnp.asarray([7.0, 7.0])), out2)


def test_conditional_instance_norm_plus_plus_against_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)) * [1.0, 3.0, 0.5] + [0.2, -1.0, 2.0]
  gamma, alpha, beta = rng.normal(size=(3, 2, 3))
  mu = x.mean(axis=(1, 2))
  var = x.var(axis=(1, 2))
  m = mu.mean(-1, keepdims=True)
  v = mu.var(-1, ddof=1, keepdims=True)
  h = (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
  h = h + (alpha * (mu - m) / np.sqrt(v + 1e-5))[:, None, None]
  want = gamma[:, None, None] * h + beta[:, None, None]
  got = jax.jit(ncsn.cin_plus_plus)(jnp.asarray(x, jnp.float32), *(jnp.asarray(a, jnp.float32) for a in (gamma, alpha, beta)))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

  # its hand-written backward pass equals autodiff of the plain formula
  def plain(x, gamma, alpha, beta):
    mu = jnp.mean(x, axis=(1, 2))
    h = (x - mu[:, None, None]) / jnp.sqrt(jnp.var(x, axis=(1, 2)) + 1e-5)[:, None, None]
    mn = (mu - jnp.mean(mu, -1, keepdims=True)) / jnp.sqrt(jnp.var(mu, -1, ddof=1, keepdims=True) + 1e-5)
    return gamma[:, None, None] * (h + (alpha * mn)[:, None, None]) + beta[:, None, None]

  args = [jnp.asarray(a, jnp.float32) for a in (x, gamma, alpha, beta)]
  w = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  want_g = jax.jit(jax.grad(lambda *a: jnp.sum(plain(*a) * w), argnums=(0, 1, 2, 3)))(*args)
  got_g = jax.jit(jax.grad(lambda *a: jnp.sum(ncsn.cin_plus_plus(*a) * w), argnums=(0, 1, 2, 3)))(*args)
  for g1, g2 in zip(got_g, want_g):
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-5, atol=1e-5)
  # the module picks row `level` of its [L, 3C] embedding, laid out γ | α | β
  mod = ncsn.CondInstanceNormPP(num_levels=4)
  table = rng.normal(size=(4, 9)).astype(np.float32)
  out = mod.apply({"params": {"embed": table}}, jnp.asarray(x, jnp.float32), jnp.asarray([3, 1]))
  rows = table[[3, 1]]
  want = ncsn.cin_plus_plus(jnp.asarray(x, jnp.float32), rows[:, :3], rows[:, 3:6], rows[:, 6:])
  np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-6)


def test_bilinear_align_corners_is_exact_on_a_linear_ramp():
  # align_corners=True samples input coordinate o·(n_in − 1)/(n_out − 1); a ramp stays a ramp.
  x = (np.arange(4)[:, None] * 2.0 + np.arange(3)[None, :] * 0.5)[None, :, :, None]
  y = ncsn.resize_bilinear_align_corners(jnp.asarray(x, jnp.float32), (7, 5))
  r, c = np.linspace(0, 3, 7), np.linspace(0, 2, 5)
  np.testing.assert_allclose(np.asarray(y)[0, :, :, 0], r[:, None] * 2.0 + c[None, :] * 0.5, atol=1e-6)


def test_ncsn_schedule_ladder_precond_and_round_trip():
  s = dfn.NCSNSchedule(sigma_max=2.0, sigma_min=0.02, num_levels=10)
  lad = s.sigmas
  np.testing.assert_allclose(lad[[0, -1]], [2.0, 0.02], rtol=1e-12)
  np.testing.assert_allclose(lad[1:] / lad[:-1], (0.01) ** (1 / 9), rtol=1e-12)
  sig = jnp.asarray(lad, jnp.float32)
  c = s.precond(sig)
  np.testing.assert_array_equal(c.c_skip, 1.0)
  np.testing.assert_array_equal(c.c_in, 1.0)
  np.testing.assert_allclose(c.c_out, np.asarray(sig) ** 2, rtol=1e-7)
  np.testing.assert_array_equal(c.c_noise, np.arange(10, dtype=np.float32))
  # nearest level in log σ: a factor just under the half-step ratio keeps the level
  half = np.sqrt(lad[0] / lad[1])
  np.testing.assert_array_equal(s.index(sig * 0.99 * half), np.arange(10))
  np.testing.assert_array_equal(s.index(sig / (0.99 * half)), np.arange(10))
  np.testing.assert_array_equal(s.round_sigma(sig * 1.1), sig)
  assert int(s.index(jnp.float32(0.0))) == 9
  np.testing.assert_array_equal(s.time_steps(10), np.append(sig, 0.0))
  np.testing.assert_array_equal(s.sigma_steps(10), np.append(sig, 0.0))
  np.testing.assert_array_equal(s.time_steps(4), np.append(np.asarray(sig)[[0, 3, 6, 9]], 0.0))
  with pytest.raises(ValueError, match="exceeds the 10 NCSN noise levels"):
    s.time_steps(11)
  draws = np.asarray(s.sample_sigma(jax.random.key(0), (4000,)))
  assert set(np.unique(draws)) == set(np.asarray(sig))
  counts = np.array([(draws == v).sum() for v in np.asarray(sig)])
  assert np.all(np.abs(counts - 400) < 5 * np.sqrt(400))
  np.testing.assert_allclose(s.loss_weight(sig), 0.5 / np.asarray(sig) ** 2, rtol=1e-6)


def _gaussian_setup(v=0.3, n=8192, d=16):
  """y ~ N(0, v·I) in d dims and a 'network' that outputs the exact score −x/(v + σ_i²) of level i."""
  s = dfn.NCSNSchedule(sigma_max=2.0, sigma_min=0.02, num_levels=10)
  lad = jnp.asarray(s.sigmas, jnp.float32)
  y = jnp.sqrt(v) * jax.random.normal(jax.random.key(1), (n, d))

  def net(x_in, c_noise, labels=None):
    sig = lad[c_noise.astype(jnp.int32)][:, None]
    return -x_in / (v + sig ** 2)

  # E ½σ²‖s(y + σn) + n/σ‖² = ½·d·v/(v + σ²) per level, averaged over the uniform level
  analytic = float(np.mean(0.5 * d * v / (v + s.sigmas ** 2)))
  return s, lad, y, net, analytic


def test_dsm_through_the_ncsn_denoiser_is_ncsns_objective():
  s, lad, y, net, analytic = _gaussian_setup()
  D = dfn.precondition(net, s)
  key = jax.random.key(2)
  via_d = dfn.dsm_loss(D, y, key, sigmas=lad, preconditioned=True)
  raw = dfn.dsm_loss(net, y, key, sigmas=lad)  # the score net called with the level index directly
  np.testing.assert_allclose(np.asarray(via_d), np.asarray(raw), rtol=2e-4, atol=1e-5)
  # Monte Carlo: 8192 examples × 16 dims, relative standard error ≈ 1.5 %
  np.testing.assert_allclose(float(jnp.mean(via_d)), analytic, rtol=0.05)
  # the schedule's own p_train and λ(σ) = 1/(2σ²) give the same objective through D
  den = dfn.denoising_loss(D, y, jax.random.key(3), schedule=s, preconditioned=True)
  np.testing.assert_allclose(float(jnp.mean(den)), analytic, rtol=0.05)


def _task_config():
  c = configs.base_config()
  c.batch_size = 2
  c.data.name = "digits"
  c.model.name = "ncsn_cifar10"
  c.model.overrides.ngf = 4
  c.model.overrides.num_levels = 3
  c.model.overrides.channels = 1
  c.task.name = "diffusion"
  c.task.precond = "ncsn"
  c.task.loss = "dsm"
  c.task.sampler = "annealed_langevin"
  c.task.ncsn_sigma_max = 1.0
  c.task.ncsn_sigma_min = 0.1
  c.task.ncsn_levels = 3
  return c


def test_task_dsm_with_ncsn_precond_equals_ncsns_loss_and_shares_the_ladder():
  task = diffusion_task.Task(_task_config())
  assert isinstance(task.schedule, dfn.NCSNSchedule)
  bad = _task_config()
  bad.task.ncsn_levels = 4
  with pytest.raises(ValueError, match="set model.overrides.num_levels to task.ncsn_levels"):
    diffusion_task.Task(bad)
  np.testing.assert_array_equal(task.ncsn_sigmas, np.asarray([1.0, np.sqrt(0.1), 0.1], np.float32))
  np.testing.assert_array_equal(task.schedule.sigma_steps(3), np.append(task.ncsn_sigmas, 0.0))
  net, apply, params = _tiny()
  batch = {"image": _x()}
  key = jax.random.key(5)
  got = task.per_example_loss(params, {}, batch, key, train=False)
  # NCSN's anneal_dsm_score_estimation with the raw network s(x, i): same loss key (the task splits
  # off its dropout key first)
  k_loss, _ = jax.random.split(key)
  want = dfn.dsm_loss(lambda x, i, labels=None: apply(params, x, i), batch["image"], k_loss,
                      sigmas=task.ncsn_sigmas)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4)
