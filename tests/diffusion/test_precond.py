"""precondition(): D = c_skip·x + c_out·F(c_in·x, c_noise, labels) (EDM eq. 7), float32 σ math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dif

S2 = 0.3 ** 2  # data N(0, 0.3² I)


def ideal_D(x, sigma):
  """Ideal denoiser of N(0, s²I): D = s²/(s²+σ²)·x (docs/reference.md §3)."""
  return S2 / (S2 + sigma[:, None] ** 2) * x


def raw_net_for(sched):
  """The raw F that makes precondition(F, sched) the ideal denoiser: F = (D − c_skip·x)/c_out in F's inputs."""
  def net(x_in, c_noise, labels):
    sigma = jnp.asarray(SIG)
    c = sched.precond(sigma)
    x = x_in / c.c_in[:, None]
    np.testing.assert_allclose(c_noise, c.c_noise)
    return (ideal_D(x, sigma) - c.c_skip[:, None] * x) / c.c_out[:, None]
  return net


SIG = np.array([0.01, 0.2, 1.0, 7.0], np.float32)


@pytest.mark.parametrize("sched", [dif.VPSchedule(), dif.VESchedule(), dif.EDMSchedule(),
                                   dif.FlowMatchingSchedule(), dif.DDPMSchedule(prediction="v"),
                                   dif.DDPMSchedule(), dif.DDPMSchedule(kind="cosine", prediction="x0")],
                         ids=lambda s: type(s).__name__)
def test_precondition_reconstructs_denoiser(sched):
  x = jax.random.normal(jax.random.key(0), (4, 3))
  D = dif.precondition(raw_net_for(sched), sched)(x, SIG)
  assert D.dtype == jnp.float32
  np.testing.assert_allclose(D, ideal_D(x, SIG), rtol=1e-5, atol=1e-6)


def test_ddpm_parameterizations_agree():
  """ε-, v- and x₀-prediction networks that are exact give the same denoiser."""
  x0 = jnp.array([[0.3, -0.7]] * 3)
  eps = jnp.array([[1.0, 0.5], [-0.2, 2.0], [0.1, -1.0]])
  sched = dif.DDPMSchedule()
  j = jnp.array([10, 500, 990])
  sig = jnp.asarray(sched.sigmas, jnp.float32)[j]
  x = x0 + sig[:, None] * eps
  a = jnp.asarray(np.sqrt(sched.alphas_cumprod), jnp.float32)[j][:, None]
  b = jnp.sqrt(1 - a ** 2)
  targets = {"eps": eps, "v": a * eps - b * x0, "x0": x0}
  for pred, tgt in targets.items():
    def net(x_in, c_noise, labels, tgt=tgt):
      np.testing.assert_allclose(x_in, a * x0 + b * eps, rtol=1e-5, atol=1e-6)
      np.testing.assert_array_equal(c_noise, j)
      return tgt
    D = dif.precondition(net, dif.DDPMSchedule(prediction=pred))(x, sig)
    np.testing.assert_allclose(D, x0, rtol=1e-3, atol=1e-4)


def test_bfloat16_net_labels_and_kwargs():
  seen = {}

  def net(x_in, c_noise, labels, *, augment_labels=None):
    seen["labels"], seen["aug"], seen["dtype"] = labels, augment_labels, x_in.dtype
    return (x_in * 2).astype(jnp.bfloat16)

  x = jnp.ones((2, 4, 4, 1), jnp.float32)
  closed = jnp.array([3, 4])
  fn = jax.jit(dif.precondition(net, dif.EDMSchedule(), labels=closed, input_dtype=jnp.bfloat16))
  D = fn(x, jnp.float32(1.0))
  assert D.dtype == jnp.float32 and seen["dtype"] == jnp.bfloat16 and seen["labels"].shape == (2,)
  c = dif.EDMSchedule().precond(1.0)
  np.testing.assert_allclose(D, c.c_skip + c.c_out * 2 * c.c_in, rtol=1e-2)
  dif.precondition(net, dif.EDMSchedule())(x, jnp.ones(2), labels=closed, augment_labels=jnp.zeros((2, 9)))
  assert seen["aug"].shape == (2, 9)


def test_learned_variance_channels_and_errors():
  net = lambda x, c, l: jnp.concatenate([x, 100 + x], -1)
  D = dif.precondition(net, dif.IDDPMSchedule())(jnp.ones((2, 3, 3, 3)), 0.5)
  np.testing.assert_allclose(D, 1 - 0.5 / np.sqrt(1.25), rtol=1e-6)
  with pytest.raises(ValueError, match="shape"):
    dif.precondition(lambda x, c, l: x[..., :1], dif.EDMSchedule())(jnp.ones((2, 3, 3, 3)), 0.5)
  with pytest.raises(ValueError, match="one σ per example"):
    dif.precondition(lambda x, c, l: x, dif.EDMSchedule())(jnp.ones((2, 3)), jnp.ones(3))


def test_training_target():
  """EDM eq. 8: F_target = (y − c_skip·x)/c_out; the ideal F hits it in expectation (here: exactly for y = D)."""
  sched = dif.EDMSchedule()
  y = jnp.array([[0.5, -0.25]])
  x = y + 2.0 * jnp.array([[1.0, -1.0]])
  c = sched.precond(jnp.array([2.0]))
  tgt = dif.training_target(sched, y, x, 2.0)
  np.testing.assert_allclose(c.c_skip[:, None] * x + c.c_out[:, None] * tgt, y, rtol=1e-6)


# -- conversions (jaxgen.diffusion.conversions) -------------------------------------------------

def test_conversions_round_trip_and_meaning():
  from jaxgen.diffusion import conversions as cv
  k1, k2 = jax.random.split(jax.random.key(3))
  y = jax.random.normal(k1, (4, 3))
  n = jax.random.normal(k2, (4, 3))
  sigma = jnp.array([0.05, 0.5, 2.0, 30.0])
  x = y + sigma[:, None] * n
  # with the exact clean image as "D", each prediction is its textbook target
  s_vp = 1 / jnp.sqrt(1 + sigma ** 2)
  expected = {"denoiser": y, "x0": y, "eps": n, "score": -n / sigma[:, None],
              "v": s_vp[:, None] * n - (s_vp * sigma)[:, None] * y, "velocity": n - y}
  for kind, want in expected.items():
    got = cv.convert(y, x, sigma, "denoiser", kind)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(cv.convert(got, x, sigma, kind, "denoiser"), y, rtol=2e-3, atol=2e-4)
  # v with a non-VP scale s (e.g. flow matching's s = 1/(1+σ)) still inverts exactly
  s = 1 / (1 + sigma)
  v = cv.v_from_denoiser(y, x, sigma, s)
  np.testing.assert_allclose(cv.denoiser_from_v(v, x, sigma, s), y, rtol=1e-3, atol=1e-4)
  for a in cv.PREDICTIONS:
    for b in cv.PREDICTIONS:
      np.testing.assert_allclose(cv.convert(cv.convert(y * 0.9, x, sigma, "denoiser", a), x, sigma, a, b),
                                 cv.convert(y * 0.9, x, sigma, "denoiser", b), rtol=2e-3, atol=2e-4)
  D = lambda x, sigma: 0.5 * x
  eps_fn = cv.as_prediction(D, "eps")
  np.testing.assert_allclose(cv.as_denoiser(eps_fn, "eps")(x, sigma), 0.5 * x, rtol=1e-5)
  with pytest.raises(ValueError, match="prediction"):
    cv.convert(y, x, sigma, "denoiser", "logits")
