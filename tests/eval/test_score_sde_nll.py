"""score_sde's NLL protocol in jaxgen's σ-frame (jaxgen.eval.bpd.score_sde_*): analytic checks.

For Gaussian data N(m, v·I) (in jaxgen's [−1, 1] units) the ideal denoiser is D(x; σ) = m + v/(v+σ²)(x − m)
and the PF-ODE flow is x(σ) − m = (x(σ') − m)·√((v+σ²)/(v+σ'²)) (docs/reference.md §3), so what score_sde's
``likelihood_fn`` computes — the data taken as x at t = ε, the ODE run to T, the prior N(0, I) for VP/sub-VP
in x-space (N(0, σ_max²) on [0, 1] data for VE) — has a closed form:

  VP/sub-VP: log p = log N(s(T)·z̃; 0, I) + d·ln s(T) + (d/2)·ln((v+σ(T)²)/(v+σ(ε)²)) − d·ln s(ε),
             z̃ = m + (x/s(ε) − m)·√((v+σ(T)²)/(v+σ(ε)²))
  VE:        log p = log N(z; −1, (2σ_max)²) + (d/2)·ln((v+σ_T²)/(v+σ_ε²)),  σ_t = 2σ_min(σ_max/σ_min)^t.

A large ε (0.2) makes s(ε) ≠ 1 visible. Exact trace, RK45 at 1e-6: tolerance 1e-3 nats on |log p| ~ 10.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jaxgen import diffusion as dfn
from jaxgen.errors import ConfigError
from jaxgen.eval import bpd as bpd_lib

M_, V_ = 0.3, 0.2


def _gauss_denoiser(x, sigma):
  w = V_ / (V_ + sigma ** 2)
  return M_ + w.reshape((-1,) + (1,) * (x.ndim - 1)) * (x - M_)


SDES = {
    "vpsde": dict(name="vpsde", beta_min=0.1, beta_max=20.0, T=1.0, eps=0.2),
    "subvpsde": dict(name="subvpsde", beta_min=0.1, beta_max=20.0, T=1.0, eps=0.2),
    "vesde": dict(name="vesde", sigma_min=0.01, sigma_max=50.0, T=1.0, eps=0.2),
}


def _closed_form(x, sde):
  t = bpd_lib.score_sde_terms(sde)
  d = x[0].size
  g = math.sqrt((V_ + t["sigma_max"] ** 2) / (V_ + t["sigma_min"] ** 2))
  z = M_ + (x / t["s0"] - M_) * g
  zx = z * t["s1"] - t["prior_mean"]
  prior = (-0.5 * d * math.log(2 * math.pi * t["prior_std"] ** 2)
           - 0.5 * np.sum(zx.reshape(len(x), -1) ** 2, axis=1) / t["prior_std"] ** 2)
  return prior + d * math.log(g) + d * math.log(t["s1"]) - d * math.log(t["s0"])


@pytest.mark.parametrize("name", list(SDES))
def test_score_sde_log_likelihood_closed_form(name):
  sde = SDES[name]
  x = np.asarray(jax.random.uniform(jax.random.key(1), (2, 2, 2, 1), minval=-1, maxval=1))
  got = jax.jit(lambda x: bpd_lib.score_sde_log_likelihood(_gauss_denoiser, x, None, sde, exact_trace=True,
                                                           rtol=1e-6, atol=1e-6))(x)
  np.testing.assert_allclose(np.asarray(got), _closed_form(x, sde), atol=1e-3)


def test_terms_match_schedules():
  """σ(ε), σ(T), s(ε), s(T) of score_sde's VP/sub-VP equal jaxgen's VPSchedule / SubVPSchedule (β_d = 19.9,
  β_min = 0.1: score_sde's β ∈ [0.1, 20]); VE's σ is score_sde's σ_min(σ_max/σ_min)^t doubled."""
  for name, sched in (("vpsde", dfn.VPSchedule()), ("subvpsde", dfn.SubVPSchedule())):
    t = bpd_lib.score_sde_terms(dict(SDES[name], eps=1e-5))
    np.testing.assert_allclose([t["sigma_min"], t["sigma_max"], t["s0"], t["s1"]],
                               [float(sched.sigma(1e-5)), float(sched.sigma(1.0)), float(sched.s(1e-5)),
                                float(sched.s(1.0))], rtol=2e-5)
  t = bpd_lib.score_sde_terms(dict(SDES["vesde"], eps=1e-5))
  assert t["sigma_max"] == 100.0 and abs(t["sigma_min"] - 0.02 * 5000 ** 1e-5) < 1e-12


def test_nll_repeats_and_batching():
  """Each repeat draws fresh dequantization and probes (repeat r: fold_in(key, r)); an image's value does not
  depend on the batch it is in; the result is the mean over repeats and images."""
  sde = dict(SDES["subvpsde"], eps=1e-5)
  rng = np.random.default_rng(0)
  img = (rng.integers(0, 256, (3, 2, 2, 1)).astype(np.float32) / 127.5 - 1)
  one = [{"image": img}]
  split = [{"image": img[:1]}, {"image": np.concatenate([img[1:], img[:1]]), "mask": np.array([1, 1, 0])}]
  kw = dict(num_repeats=2, progress=False, rtol=1e-4, atol=1e-4)
  a = bpd_lib.score_sde_nll(_gauss_denoiser, sde, one, jax.random.key(3), **kw)
  b = bpd_lib.score_sde_nll(_gauss_denoiser, sde, lambda: iter(split), jax.random.key(3), **kw)
  assert a["num_images"] == b["num_images"] == 3 and a["num_repeats"] == 2
  np.testing.assert_allclose(a["bpd_repeats"], b["bpd_repeats"], rtol=1e-6)
  assert a["bpd_repeats"][0] != a["bpd_repeats"][1]
  np.testing.assert_allclose(a["bpd"], np.mean(a["bpd_repeats"]), rtol=1e-9)


def test_score_sde_bpd_evaluator():
  """``config.evals`` entry ``score_sde_bpd`` = score_sde_nll with the entry's SDE; an SDE whose σ(T) is not
  the task schedule's is a ConfigError."""
  import ml_collections

  from jaxgen.eval import evaluators as ev

  sde = dict(SDES["subvpsde"], eps=1e-5)
  img = np.random.default_rng(1).integers(0, 256, (2, 2, 2, 1)).astype(np.float32) / 127.5 - 1
  batches = [{"image": img}]
  facts = {"name": "digits", "sigma_max": bpd_lib.score_sde_terms(sde)["sigma_max"]}
  fns = {"denoise": _gauss_denoiser, "data": facts}
  evals = ml_collections.ConfigDict({"nll": dict(type="score_sde_bpd", sde="subvpsde", num_repeats=1,
                                                 rtol=1e-4, atol=1e-4)})
  key = jax.random.key(2)
  out = ev.run(evals, fns, key, batches)
  want = bpd_lib.score_sde_nll(_gauss_denoiser, sde, batches, jax.random.fold_in(key, 0), num_repeats=1,
                               progress=False, rtol=1e-4, atol=1e-4)
  assert out["num_images"] == 2 and out["num_repeats"] == 1
  assert out["bpd"] == pytest.approx(want["bpd"], rel=1e-6)
  evals.nll.sde = "vpsde"
  with pytest.raises(ConfigError, match="task.precond"):
    ev.run(evals, fns, key, batches)
