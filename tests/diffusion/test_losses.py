"""Losses: analytic expectations with ideal denoisers/scores of Gaussian data (docs/reference.md §3), and
jit/vmap/grad for every loss. Monte-Carlo tolerances are 5 standard errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dif
from jaxgen.diffusion import losses as L

KEY = jax.random.key(7)


def gauss_D(s2):
  """Ideal denoiser of N(0, s²I): D(x; σ) = s²/(s²+σ²)·x."""
  return lambda x, sigma, **kw: s2 / (s2 + sigma.reshape((-1,) + (1,) * (x.ndim - 1)) ** 2) * x


def within(samples, expected, k=5.0):
  samples = np.asarray(samples, np.float64)
  se = samples.std(ddof=1) / np.sqrt(samples.size)
  assert abs(samples.mean() - expected) < k * se + 1e-7, (samples.mean(), expected, se)


def test_edm_loss_of_ideal_denoiser_is_one_per_dimension():
  """docs/reference.md §3: with the ideal denoiser of N(0, σ_d²), λ(σ)E‖D − y‖² = 1 per dimension at
  every σ."""
  B, d = 4096, 8
  y = 0.5 * jax.random.normal(jax.random.key(1), (B, d))

  def raw_ideal(x_in, c_noise, labels):
    # F through the EDM preconditioning: σ = exp(4·c_noise), x = x_in/c_in, F = (D − c_skip x)/c_out
    sigma = jnp.exp(4 * c_noise)
    c = dif.EDMSchedule().precond(sigma)
    x = x_in / c.c_in[:, None]
    return (gauss_D(0.25)(x, sigma) - c.c_skip[:, None] * x) / c.c_out[:, None]

  per_dim, total = jax.jit(lambda y: (L.edm_loss(raw_ideal, y, KEY, reduce="mean"),
                                       L.edm_loss(gauss_D(0.25), y, KEY, preconditioned=True)))(y)
  within(per_dim, 1.0)
  np.testing.assert_allclose(total, d * per_dim, rtol=2e-4)


@pytest.mark.parametrize("sched", [dif.VPSchedule(), dif.VESchedule()], ids=["vp", "ve"])
def test_vp_ve_loss_of_ideal_denoiser(sched):
  """λ = 1/σ²: E = s²/(s²+σ²) per dimension; averaged over p_train (computed by quadrature over u)."""
  s2, B = 0.25, 4096
  y = 0.5 * jax.random.normal(jax.random.key(2), (B, 1))
  out = jax.jit(lambda y: L.denoising_loss(gauss_D(s2), y, KEY, schedule=sched, preconditioned=True))(y)
  u = (np.arange(200000) + 0.5) / 200000
  sig = np.asarray(sched.sigma(1 + u * (1e-5 - 1))) if isinstance(sched, dif.VPSchedule) else 0.02 * 5000 ** u
  within(out, np.mean(s2 / (s2 + sig.astype(np.float64) ** 2)))


def test_ddpm_prediction_losses_of_ideal_denoiser():
  """Per dimension at level σ: ε: s²/(s²+σ²); v: (1+σ²)s²/(s²+σ²); x₀: s²σ²/(s²+σ²); j ~ U{0..T−1}."""
  s2, B = 0.25, 4096
  y = 0.5 * jax.random.normal(jax.random.key(3), (B, 2))
  sig2 = dif.DDPMSchedule().sigmas ** 2
  expect = {"eps": s2 / (s2 + sig2), "v": (1 + sig2) * s2 / (s2 + sig2), "x0": s2 * sig2 / (s2 + sig2)}
  out = jax.jit(lambda y: {p: fn(gauss_D(s2), y, KEY, preconditioned=True)
                           for p, fn in (("eps", L.eps_loss), ("v", L.v_loss), ("x0", L.x0_loss))})(y)
  for pred in expect:
    within(out[pred], expect[pred].mean())


@pytest.mark.parametrize("pred", ["eps", "v", "x0"])
def test_ddpm_raw_network_path_matches_denoiser_path(pred):
  """The raw network F(x_t, j) equivalent to the ideal denoiser gives the same per-example loss."""
  sched = dif.DDPMSchedule(kind="cosine", prediction=pred)
  ladder = jnp.asarray(sched.sigmas, jnp.float32)

  def raw(x_t, c_noise, labels):
    sigma = ladder[c_noise.astype(jnp.int32)]
    c = sched.precond(sigma)
    x = x_t / c.c_in[:, None]
    return (gauss_D(0.25)(x, sigma) - c.c_skip[:, None] * x) / c.c_out[:, None]

  y = 0.5 * jax.random.normal(jax.random.key(4), (64, 3))
  a, b = jax.jit(lambda y: (L.ddpm_loss(raw, y, KEY, schedule=sched, prediction=pred),
                            L.ddpm_loss(gauss_D(0.25), y, KEY, schedule=sched, prediction=pred,
                                        preconditioned=True)))(y)
  np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)


def test_flow_matching_loss_equals_weighted_denoising_loss():
  """λ(σ)‖D − y‖² with λ = (1+σ)²/σ² is the velocity MSE; same key ⇒ same t and ε."""
  sched = dif.FlowMatchingSchedule()
  net = lambda x_t, t, labels: 0.3 * x_t - 0.2 * t[:, None]
  y = 0.5 * jax.random.normal(jax.random.key(5), (256, 3))
  fm, den, out = jax.jit(lambda y: (L.flow_matching_loss(net, y, KEY),
                                    L.denoising_loss(net, y, KEY, schedule=sched, reduce="mean"),
                                    L.flow_matching_loss(gauss_D(0.25), y, KEY, preconditioned=True)))(y)
  np.testing.assert_allclose(fm, den, rtol=2e-3, atol=1e-4)
  # ideal velocity of N(0, s²): E‖v̂ − v‖² = λ·s²σ²/(s²+σ²) per dimension
  t = (np.arange(100000) + 0.5) / 100000
  sig = t / (1 - t)
  within(out, np.mean(((1 + sig) / sig) ** 2 * 0.25 * sig ** 2 / (0.25 + sig ** 2)))


def test_dsm_loss_of_ideal_score():
  """½σ²E‖s + n/σ‖² = ½·s²/(s²+σ²) per dimension for the ideal score −x/(s²+σ²)."""
  s2, B, d = 0.25, 4096, 2
  y = 0.5 * jax.random.normal(jax.random.key(6), (B, d))
  sigmas = L.ncsn_sigmas(2.0, 0.02, 10)
  net = lambda x, i, labels: -x / (s2 + sigmas[i.astype(jnp.int32)][:, None] ** 2)
  expect = d * 0.5 * np.mean(s2 / (s2 + np.asarray(sigmas, np.float64) ** 2))
  out, out_d = jax.jit(lambda y: (L.dsm_loss(net, y, KEY), L.dsm_loss(gauss_D(s2), y, KEY, preconditioned=True)))(y)
  within(out, expect)
  np.testing.assert_allclose(out_d, out, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(L.ncsn_sigmas(), np.geomspace(1.0, 0.01, 10), rtol=1e-6)


def test_sliced_score_matching():
  """Score −x/a of N(0, s²I): J = −I/a, so with Rademacher v the VR objective is exactly −d/a + ½‖x‖²/a²,
  the non-VR one has the same expectation, and the gradient in a vanishes at a = ‖x‖²/d (the MLE)."""
  d = 3
  x = jax.random.normal(jax.random.key(8), (5, d))
  sq = np.asarray(jnp.sum(x ** 2, 1), np.float64)
  a = 0.7
  P = 4000
  vr, plain = jax.jit(lambda x: (
      L.sliced_score_matching_loss(lambda z: -z / a, x, KEY, projection="rademacher"),
      L.sliced_score_matching_loss(lambda z: -z / a, x[:1], KEY, n_particles=P, variance_reduction=False)))(x)
  np.testing.assert_allclose(vr, -d / a + 0.5 * sq / a ** 2, rtol=1e-5)
  # per particle: vᵀJv = −‖v‖²/a (var 2d/a²) plus ½(vᵀs)² (var ½‖s‖⁴); independent parts ⇒ variances add
  se = np.sqrt((2 * d / a ** 2 + 0.5 * (sq[0] / a ** 2) ** 2) / P)
  assert abs(float(plain[0]) - (-d / a + 0.5 * sq[0] / a ** 2)) < 5 * se
  g = jax.jit(jax.grad(lambda a: L.sliced_score_matching_loss(lambda z: -z / a, x, KEY, projection="rademacher").mean()))
  assert abs(float(g(jnp.float32(sq.mean() / d)))) < 1e-4


def _net(params, x, c_noise, labels, augment_labels=None):
  h = x * params["w"] + params["b"] * jnp.tanh(c_noise).reshape((-1,) + (1,) * (x.ndim - 1))
  if labels is not None:
    h = h + params["e"][labels].reshape((-1,) + (1,) * (x.ndim - 1))
  return h


LOSS_CASES = {
    "edm": (L.edm_loss, {}), "vp": (L.vp_loss, {}), "ve": (L.ve_loss, {}),
    "eps": (L.eps_loss, {}), "v": (L.v_loss, {"schedule": dif.DDPMSchedule(kind="cosine")}),
    "x0": (L.x0_loss, {"schedule": dif.VPSchedule()}), "flow": (L.flow_matching_loss, {}),
    "dsm": (L.dsm_loss, {}), "iddpm": (L.denoising_loss, {"schedule": dif.IDDPMSchedule()}),
}


@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_losses_jit_vmap_grad(name):
  fn, kw = LOSS_CASES[name]
  params = {"w": jnp.float32(0.5), "b": jnp.float32(0.1), "e": jnp.arange(3, dtype=jnp.float32) / 10}
  x = jax.random.normal(jax.random.key(9), (4, 2, 2, 1))
  labels = jnp.array([0, 1, 2, 1])

  def total(p, key):
    out = fn(functools.partial(_net, p), x, key, labels=labels, **kw)
    assert out.shape == (4,) and out.dtype == jnp.float32
    return out.mean()

  grads = jax.jit(jax.vmap(jax.grad(total), in_axes=(None, 0)))(params, jax.random.split(KEY, 3))
  for leaf in jax.tree_util.tree_leaves(grads):
    assert leaf.shape[0] == 3 and bool(jnp.all(jnp.isfinite(leaf)))
  assert float(jnp.abs(grads["w"]).sum()) > 0


def test_ssm_jit_vmap_grad_and_augment_labels():
  g = jax.jit(jax.vmap(jax.grad(lambda w, k: L.sliced_score_matching_loss(
      lambda z: -z * w, jnp.ones((2, 3)), k, n_particles=2).mean()), in_axes=(None, 0)))
  assert bool(jnp.all(jnp.isfinite(g(jnp.float32(1.0), jax.random.split(KEY, 2)))))
  seen = {}

  def net(x, c_noise, labels, augment_labels=None):
    seen["aug"] = augment_labels
    return x

  L.edm_loss(net, jnp.ones((2, 3)), KEY, augment_labels=jnp.zeros((2, 9)))
  assert seen["aug"].shape == (2, 9)
  with pytest.raises(ValueError, match="reduce"):
    L.edm_loss(net, jnp.ones((2, 3)), KEY, reduce="max")
  with pytest.raises(ValueError, match="unknown diffusion loss"):
    L.get_loss("nope")


# -- one vocabulary -------------------------------------------------------------------------------

def test_losses_vocabulary_and_uniform_call():
  """LOSSES holds exactly the task's names; every entry takes the same keywords (an unused one is ignored)
  and equals the direct call it stands for (same key ⇒ same σ and noise, so equal to rounding)."""
  assert list(dif.LOSSES) == ["edm", "vp", "subvp", "ve", "eps", "v", "x0", "fm", "dsm"]
  assert dif.LOSSES is L.LOSSES and all(L.get_loss(n) is f for n, f in L.LOSSES.items())
  y = 0.5 * jax.random.normal(jax.random.key(10), (16, 2, 2, 1))
  labels = jnp.arange(16) % 3
  D = gauss_D(0.25)
  ladder = L.ncsn_sigmas(2.0, 0.02, 10)
  fm = dif.FlowMatchingSchedule(p_train="logit_normal")
  direct = {
      "edm": L.denoising_loss(D, y, KEY, schedule=dif.EDMSchedule(), preconditioned=True),
      "vp": L.denoising_loss(D, y, KEY, schedule=dif.VPSchedule(), preconditioned=True),
      "subvp": L.denoising_loss(D, y, KEY, schedule=dif.SubVPSchedule(), preconditioned=True),
      "ve": L.denoising_loss(D, y, KEY, schedule=dif.VESchedule(), preconditioned=True),
      "eps": L.ddpm_loss(D, y, KEY, schedule=dif.DDPMSchedule(), prediction="eps", preconditioned=True),
      "v": L.ddpm_loss(D, y, KEY, schedule=dif.DDPMSchedule(), prediction="v", preconditioned=True),
      "x0": L.ddpm_loss(D, y, KEY, schedule=dif.DDPMSchedule(), prediction="x0", preconditioned=True),
      "fm": L.flow_matching_loss(D, y, KEY, schedule=fm, preconditioned=True),
      "dsm": L.dsm_loss(D, y, KEY, sigmas=ladder, preconditioned=True),
  }
  schedules = {"edm": dif.EDMSchedule(), "vp": dif.VPSchedule(), "subvp": dif.SubVPSchedule(),
               "ve": dif.VESchedule(), "eps": dif.DDPMSchedule(), "v": dif.DDPMSchedule(),
               "x0": dif.DDPMSchedule(), "fm": fm, "dsm": dif.NCSNSchedule()}
  for name, fn in dif.LOSSES.items():
    run = jax.jit(lambda y, fn=fn, s=schedules[name]: fn(D, y, KEY, schedule=s, sigmas=ladder, labels=labels,
                                                        augment_labels=None, preconditioned=True,
                                                        reduce=None))
    got = run(y)
    assert got.shape == (16,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, direct[name], rtol=1e-4, err_msg=name)   # jit vs eager: rounding
    # schedule=None is the entry's default schedule; reduce picks the reduction
    if name not in ("fm", "dsm"):
      np.testing.assert_allclose(fn(D, y, KEY, schedule=None, preconditioned=True), direct[name], rtol=1e-6)
    n_dims = 4
    total = fn(D, y, KEY, schedule=schedules[name], sigmas=ladder, preconditioned=True, reduce="sum")
    mean = fn(D, y, KEY, schedule=schedules[name], sigmas=ladder, preconditioned=True, reduce="mean")
    np.testing.assert_allclose(total, n_dims * mean, rtol=1e-5, err_msg=name)
  with pytest.raises(ValueError, match="choose one of edm, vp, subvp"):
    L.get_loss("ddpm_eps")


def test_subvp_loss_is_score_sdes_weighting():
  """subvp: σ = σ_subVP(t), t ~ U(ε_t, 1), λ = 1/σ²; with the ideal denoiser of N(0, s²) the expected loss
  per dimension is E[s²/(s² + σ²)] over that p_train (quadrature over t)."""
  s2, B = 0.25, 4096
  y = 0.5 * jax.random.normal(jax.random.key(11), (B, 1))
  out = jax.jit(lambda y: L.subvp_loss(gauss_D(s2), y, KEY, preconditioned=True))(y)
  u = (np.arange(200000) + 0.5) / 200000
  sig = np.asarray(dif.SubVPSchedule().sigma(1 + u * (1e-5 - 1)), np.float64)
  within(out, np.mean(s2 / (s2 + sig ** 2)))
