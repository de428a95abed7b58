"""Evaluators by config (jaxgen.eval.evaluators): each metric against an analytic value or an exact
reference, and every config error (unknown type / option, a function the task lacks, wrong data)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen.configs import base_config
from jaxgen.data import toy2d
from jaxgen.errors import ConfigError
from jaxgen.eval import evaluators as ev
from jaxgen.eval import fid as fid_lib

TOY_KEYS = {"sw1", "sw1_floor", "mmd", "mmd_floor", "w1", "w1_floor", "w1_x", "w1_y"}
MODE_KEYS = {"modes_hit", "num_modes", "hq_fraction"}


def _toy_fns(toy="8gaussians", transform=lambda x: x):
  """A 'task' whose samples are exact draws of the toy (sample i from fold_in(key, start + i))."""
  def sample(key, n, start_index=0):
    idx = jnp.arange(n) + start_index
    x = jax.vmap(lambda i: toy2d.sample(toy, jax.random.fold_in(key, i), 1)[0])(idx)
    return np.asarray(transform(x))
  return {"sample": sample, "data": {"name": "toy2d", "toy": toy, "resolution": 0}}


def _evals(**entries):
  c = ml_collections.ConfigDict()
  for name, spec in entries.items():
    setattr(c, name, spec)
  return c


def test_toy2d_on_exact_samples_sits_at_its_floor_and_hits_every_mode():
  evals = _evals(t=dict(type="toy2d", num_samples=2000, lp_samples=500))
  out = ev.run(evals, _toy_fns(), jax.random.key(0), None)
  assert set(out) == TOY_KEYS | MODE_KEYS
  assert out["modes_hit"] == out["num_modes"] == 8
  # P(‖x − μ‖ ≤ 3σ) of an isotropic 2-D Gaussian: 1 − exp(−9/2) = 0.98889 (binomial s.e. 0.0023 at n = 2000)
  assert abs(out["hq_fraction"] - (1 - math.exp(-4.5))) < 0.01
  # model and floor are both exact-vs-exact, so both are the finite-sample noise (mode counts differing by
  # ~√(n/8) per mode: sliced W1 0.01–0.09, LP W1 on 500 points 0.09–0.26 over seeds); a collapse is ≥ 1
  for k in ("sw1", "sw1_floor"):
    assert out[k] < 0.15, out
  for k in ("w1", "w1_floor"):
    assert out[k] < 0.4, out
  assert abs(out["mmd"]) < 3e-3 and abs(out["mmd_floor"]) < 3e-3


def test_toy2d_sees_collapse_and_a_shift():
  # every sample on mode 0: one mode hit, the distances far above the floor
  mode0 = jnp.asarray(toy2d.mixture("8gaussians").means[0])
  collapsed = _toy_fns(transform=lambda x: jnp.broadcast_to(mode0, x.shape))
  out = ev.run(_evals(t=dict(type="toy2d", num_samples=400)), collapsed, jax.random.key(0), None)
  assert out["modes_hit"] == 1 and out["hq_fraction"] == 1.0
  assert out["sw1"] > 10 * out["sw1_floor"] and out["mmd"] > 100 * abs(out["mmd_floor"]) + 0.05
  # a translation by (1, 0): W1 = 1 exactly in the limit; the 1-D W1 of x is 1, of y the floor
  shifted = _toy_fns("swiss_roll", transform=lambda x: x + jnp.asarray([1.0, 0.0]))
  evals = _evals(t=dict(type="toy2d", num_samples=1000, lp_samples=1000))
  out = ev.run(evals, shifted, jax.random.key(1), None)
  assert not MODE_KEYS & set(out)                      # not a Gaussian mixture
  assert abs(out["w1_x"] - 1.0) < 0.1 and out["w1_y"] < 0.15
  assert abs(out["w1"] - 1.0) < out["w1_floor"] + 0.05


def test_mmd2_is_unbiased_and_matches_the_gaussian_closed_form():
  x = jax.random.normal(jax.random.key(0), (300, 2))
  k = np.exp(-np.sum((np.asarray(x)[:, None] - np.asarray(x)[None]) ** 2, -1) / 2.0)
  n = 300
  # identical sets: the unbiased estimate is 2(S − n²)/(n²(n − 1)), S = Σ_ij k(x_i, x_j) (≈ 0, below it)
  np.testing.assert_allclose(float(ev.mmd2(x, x, 1.0)), 2 * (k.sum() - n * n) / (n * n * (n - 1)), rtol=1e-4)
  # N(0, s²I) vs N(μ, s²I), kernel width h: MMD² = 2c(1 − exp(−‖μ‖²/(2(h² + 2s²)))), c = (h²/(h² + 2s²))^{d/2}
  s, h, mu = 1.0, 1.5, np.array([1.0, 0.5])
  c = h * h / (h * h + 2 * s * s)
  exact = 2 * c * (1 - math.exp(-(mu @ mu) / (2 * (h * h + 2 * s * s))))
  vals = []
  for i in range(8):
    ka, kb = jax.random.split(jax.random.key(10 + i))
    a = jax.random.normal(ka, (1000, 2)) * s
    b = jax.random.normal(kb, (1000, 2)) * s + mu
    vals.append(float(ev.mmd2(a, b, h)))
  assert abs(np.mean(vals) - exact) < 0.01 * exact + 4 * np.std(vals) / math.sqrt(len(vals)), (vals, exact)
  # same law, independent draws: the unbiased estimate averages to 0
  same = [float(ev.mmd2(jax.random.normal(jax.random.key(2 * i), (500, 2)),
                        jax.random.normal(jax.random.key(2 * i + 1), (500, 2)), h)) for i in range(8)]
  assert abs(np.mean(same)) < 4 * np.std(same) / math.sqrt(len(same)) + 1e-6


def test_median_bandwidth_of_two_points():
  assert float(ev.median_bandwidth(jnp.asarray([[0.0, 0.0], [3.0, 4.0]]))) == pytest.approx(5.0)


def test_mode_coverage_of_exact_samples():
  # Exact mixture samples: every mode hit; P(‖x − μ‖ ≤ 3σ) for an isotropic 2-D Gaussian is
  # 1 − exp(−9/2) = 0.98889 (Rayleigh radius).
  mix = toy2d.mixture("25gaussians")
  x = np.asarray(toy2d.sample("25gaussians", jax.random.key(0), 10_000))
  hit, hq, counts = ev.mode_coverage(x, mix.means, mix.std)
  assert hit == 25 and counts.sum() == round(hq * 10_000)
  assert abs(hq - (1 - np.exp(-4.5))) < 4 * np.sqrt(0.0111 * 0.9889 / 10_000)
  # a collapsed generator: everything on one mode
  hit, hq, _ = ev.mode_coverage(np.repeat(mix.means[:1], 100, 0), mix.means, mix.std)
  assert (hit, hq) == (1, 1.0)


def test_critic_w1_of_the_optimal_critic_of_a_translation():
  # fake = real + (1, 0): W1 = 1, attained by the 1-Lipschitz f(x) = −x₀ (Kantorovich–Rubinstein)
  fns = _toy_fns(transform=lambda x: x + jnp.asarray([1.0, 0.0]))
  fns["critic"] = lambda x: -x[:, 0]
  evals = _evals(c=dict(type="critic_w1", num_samples=2000, lp_samples=2000))
  out = ev.run(evals, fns, jax.random.key(0), None)
  assert out["critic_lipschitz"] == pytest.approx(1.0, abs=1e-6)
  # difference of two means of 2000 independent x₀ (variance 2 each): s.e. 0.045
  assert abs(out["w1_critic"] - 1.0) < 0.2
  assert out["w1_critic_normalized"] == pytest.approx(out["w1_critic"], rel=1e-6)


def test_digits_fd_of_the_test_split_is_fd_real():
  from jaxgen.eval import digits_fd  # noqa: PLC0415

  x, _ = digits_fd.digits_split("test")
  fns = {"sample": lambda key, n, start=0: x[start:start + n], "data": {"name": "digits", "resolution": 0}}
  out = ev.run(_evals(fd=dict(type="digits_fd", num_samples=0)), fns, jax.random.key(0), None)
  assert set(out) == {"fd", "fd_real", "fd_gaussian"}
  assert out["fd"] == pytest.approx(out["fd_real"], rel=1e-9) and out["fd_gaussian"] > out["fd_real"]


def _ideal_8gaussians():
  m = toy2d.mixture("8gaussians")
  mu, s2, logw = jnp.asarray(m.means), m.std ** 2, jnp.log(jnp.asarray(m.weights))

  def D(x, sigma):
    v = s2 + sigma[:, None] ** 2
    d2 = jnp.sum((x[:, None, :] - mu[None]) ** 2, -1)
    w = jax.nn.softmax(logw[None] - 0.5 * d2 / v, axis=-1)
    post = (sigma[:, None, None] ** 2 * mu[None] + s2 * x[:, None, :]) / v[..., None]
    return jnp.sum(w[..., None] * post, axis=1)

  return D


def test_toy2d_likelihood_of_the_ideal_denoiser_is_the_exact_density():
  # The PF-ODE of the mixture's exact denoiser transports its law: the likelihood at σ_min = 1e-3 is the
  # density of the mixture smoothed by σ_min (negligible next to its std 0.02) up to the prior's mismatch
  # at σ_max = 80 (the smoothed mixture vs N(0, 80²I): ~(2/80)² nats).
  fns = {"denoise": _ideal_8gaussians(), "data": {"name": "toy2d", "toy": "8gaussians", "sigma_max": 80.0}}
  out = ev.run(_evals(ll=dict(type="toy2d_likelihood", num_points=32)), fns, jax.random.key(0), None)
  assert abs(out["log_likelihood"] - out["log_prob_exact"]) < 0.02, out


def test_eval_loss_is_the_masked_mean_and_skipped_without_batches():
  seen = []

  def loss(batch, key):
    seen.append(key)
    return jnp.asarray(batch["x"], jnp.float32)

  batches = [{"x": np.array([1.0, 2.0, 3.0])},
             {"x": np.array([10.0, 20.0, 99.0]), "mask": np.array([1.0, 1.0, 0.0])}]
  evals = _evals(loss=dict(type="eval_loss"))
  key = jax.random.key(3)
  out = ev.run(evals, {"loss": loss}, key, batches)
  assert out == {"eval_loss": pytest.approx((1 + 2 + 3 + 10 + 20) / 5)}
  entry_key = jax.random.fold_in(key, 0)    # entry 0; batch i gets fold_in(entry key, i)
  for i, k in enumerate(seen):
    want = jax.random.fold_in(entry_key, i)
    np.testing.assert_array_equal(jax.random.key_data(k), jax.random.key_data(want))
  assert ev.run(evals, {"loss": loss}, key, None) == {}


def test_accuracy_wraps_the_classifier_evaluation():
  logits = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 0]] * 5.0       # predicts 0, 1, 2, 3, 0, 0
  labels = np.array([0, 1, 2, 0, 0, 3])                                 # hits 0, 1, 2, 4
  batch = {"image": np.arange(6, dtype=np.float32), "label": labels, "mask": np.array([1, 1, 1, 1, 1, 0.0])}
  fns = {"predict": lambda b: jnp.asarray(logits)[jnp.asarray(b["image"], jnp.int32)]}
  out = ev.run(_evals(acc=dict(type="accuracy", ks=(1, 2))), fns, jax.random.key(0), [batch])
  assert out["top1"] == pytest.approx(4 / 5) and out["count"] == 5
  assert out["top2"] >= out["top1"]
  ce = -np.log(np.exp(5.0) / (np.exp(5.0) + 3.0))
  wrong = -np.log(1.0 / (np.exp(5.0) + 3.0))
  assert out["eval_loss"] == pytest.approx((4 * ce + wrong) / 5, rel=1e-5)
  assert "loss" not in out  # the training record of the same step owns "loss"


def test_bpd_evaluator_is_bits_per_dim_on_split():
  from jaxgen.eval import bpd  # noqa: PLC0415

  s = 0.5
  den = lambda x, sigma: (s ** 2 / (s ** 2 + sigma ** 2))[:, None, None, None] * x
  rng = np.random.default_rng(0)
  batches = [{"image": rng.integers(0, 256, (3, 2, 2, 1)).astype(np.float32) / 127.5 - 1}]
  key = jax.random.key(4)
  fns = {"denoise": den, "data": {"name": "digits", "sigma_max": 80.0}}
  out = ev.run(_evals(b=dict(type="bpd", exact_trace=True, sigma_min=0.002)), fns, key, batches)
  want = bpd.bits_per_dim_on_split(den, batches, jax.random.fold_in(key, 0), exact_trace=True,
                                   sigma_min=0.002, sigma_max=80.0, rtol=1e-5, atol=1e-5, progress=False)
  assert out["num_images"] == 3 and out["bpd"] == pytest.approx(want["bpd"], rel=1e-6)


def test_entries_in_name_order_each_with_its_own_key_and_prefix():
  evals = _evals(b=dict(type="toy2d", num_samples=16), a=None)
  out = ev.run(evals, _toy_fns("two_moons"), jax.random.key(0), None)
  assert set(out) == TOY_KEYS                                       # entry a (None) skipped ...
  fns = dict(_toy_fns("two_moons"), loss=None)                     # (eval_loss: no batches, skipped)
  evals = _evals(a=dict(type="eval_loss"), b=dict(type="toy2d", num_samples=16))
  alone = ev.run(evals, fns, jax.random.key(0), None)
  assert alone == out                                               # ... and b keeps its key, fold_in(key, 1)
  both = _evals(b=dict(type="toy2d", num_samples=16), c=dict(type="toy2d", num_samples=16, prefix="big_"))
  out = ev.run(both, _toy_fns("two_moons"), jax.random.key(0), None)
  assert set(out) == TOY_KEYS | {"big_" + k for k in TOY_KEYS}
  assert out["sw1"] != out["big_sw1"]                               # fold_in(key, 0) vs fold_in(key, 1)
  clash = _evals(b=dict(type="toy2d", num_samples=16), c=dict(type="toy2d", num_samples=16))
  with pytest.raises(ConfigError, match="evals.b and evals.c are both 'toy2d'.*--config.evals.c.prefix"):
    ev.entries(clash)
  # different types that would still report one name: refused when the second reports it
  ev.register("_test_sw1", needs=("sample",))(lambda fns, key, batches: {"sw1": 1.0})
  try:
    with pytest.raises(ConfigError, match="evals.b and evals.c both report 'sw1'.*evals.c.prefix"):
      ev.run(_evals(b=dict(type="toy2d", num_samples=16), c=dict(type="_test_sw1")), _toy_fns("two_moons"),
             jax.random.key(0), None)
  finally:
    del ev.EVALUATORS["_test_sw1"]


def _config(data="toy2d", **entries):
  c = base_config()
  c.data.name = data
  for name, spec in entries.items():
    setattr(c.evals, name, spec)
  return c


def test_config_errors_name_the_cause_and_the_fix():
  provides = ("sample", "denoise", "loss", "data")
  ev.check(_config(t=dict(type="toy2d"), l=dict(type="toy2d_likelihood")), provides, task="diffusion")
  with pytest.raises(ConfigError, match=r"evals.w \(type 'critic_w1'\) needs the task's 'critic' function.*"
                                        r"task 'diffusion' does not provide"):
    ev.check(_config(w=dict(type="critic_w1")), provides, task="diffusion")
  with pytest.raises(ConfigError, match=r"evals.t.type='toy2' is unknown \(did you mean 'toy2d'\?\)"):
    ev.check(_config(t=dict(type="toy2")), provides)
  with pytest.raises(ConfigError, match=r"evals.t.num_sample is not an option.*did you mean 'num_samples'"):
    ev.check(_config(t=dict(type="toy2d", num_sample=10)), provides)
  with pytest.raises(ConfigError, match=r"evals.t.num_samples='many' must be an integer"):
    ev.check(_config(t=dict(type="toy2d", num_samples="many")), provides)
  with pytest.raises(ConfigError, match=r"evals.t.num_samples=1 is impossible"):
    ev.check(_config(t=dict(type="toy2d", num_samples=1)), provides)
  with pytest.raises(ConfigError, match=r"evals.t has no type"):
    ev.check(_config(t=dict(num_samples=10)), provides)
  with pytest.raises(ConfigError,
                     match=r"evals.fd \(type 'digits_fd'\) evaluates digits data, but data.name='toy2d'"):
    ev.check(_config(fd=dict(type="digits_fd")), provides)
  # a task that declares nothing is checked when the evaluator runs
  ev.check(_config(w=dict(type="critic_w1")), None)
  with pytest.raises(ConfigError, match="needs the task's 'critic' function"):
    ev.run(_evals(w=dict(type="critic_w1")), _toy_fns(), jax.random.key(0), None)


def test_fid_files_are_checked_by_preflight_and_before_sampling(tmp_path, monkeypatch):
  c = _config("cifar10", fid=dict(type="fid", num_samples=20, inception_weights="", fid_ref=""))
  with pytest.raises(ConfigError, match=r"evals.fid.inception_weights='' does not exist: pass "
                                        r"--config.evals.fid.inception_weights="):
    ev.preflight(c)
  drawn = []
  fns = {"sample": lambda key, n, start=0: drawn.append(n)}
  with pytest.raises(ConfigError, match="inception_weights"):
    ev.run(c.evals, fns, jax.random.key(0), None)
  assert not drawn
  # with both files: FID / IS through jaxgen.eval.fid (a stand-in extractor: mean and std per channel)
  weights, ref_path = tmp_path / "w.npz", str(tmp_path / "ref.npz")
  weights.write_bytes(b"")

  def extractor(images):
    x = np.asarray(fid_lib.quantize(images), np.float64) / 255.0
    feats = np.concatenate([x.mean((1, 2)), x.std((1, 2))], 1)
    return feats, np.tile(feats[:, :1], (1, 4))

  def sample(key, n, start=0):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n) + start)
    return np.asarray(jax.vmap(lambda k: jnp.tanh(jax.random.normal(k, (4, 4, 3))))(keys))

  monkeypatch.setattr(fid_lib, "cached_extractor", lambda w, b: extractor)
  ref = extractor(sample(jax.random.key(9), 200))[0]
  fid_lib.save_stats(ref_path, *fid_lib.gaussian_stats(ref))
  c.evals.fid.inception_weights, c.evals.fid.fid_ref = str(weights), ref_path
  ev.preflight(c)
  out = ev.run(c.evals, {"sample": sample}, jax.random.key(0), None)
  assert set(out) == {"fid", "is", "is_std"} and 0 <= out["fid"] < 0.05
