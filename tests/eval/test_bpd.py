"""bits/dim on a split: the Gaussian data model, whose PF-ODE likelihood is known in closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import diffusion as dfn
from jaxgen.eval import bpd


def test_to_uint8_inverts_the_pipeline_scaling():
  k = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(bpd.to_uint8(k / 127.5 - 1.0), k)


def test_gaussian_model_bits_per_dim_matches_closed_form():
  # Data model N(0, s²I): D(x; σ) = s²/(s²+σ²)·x. With prior N(0, σ_max² I) the PF-ODE gives
  # log p(x) = log N(x_T; 0, σ_max²) + (d/2) ln((s²+σ_max²)/(s²+σ_min²)), x_T = x·√((s²+σ_max²)/(s²+σ_min²))
  # (docs/reference.md §3); bpd = −log p/(d ln 2) + 7.
  s, smin, smax = 0.5, 0.002, 80.0
  den = lambda x, sigma: (s**2 / (s**2 + sigma**2))[:, None, None, None] * x
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 2, 2, 1)).astype(np.float32) / 127.5 - 1
  batches = [{"image": images[:3], "mask": np.ones(3)}, {"image": np.concatenate([images[3:], images[:1]]),
                                                          "mask": np.array([1.0, 1.0, 0.0])}]
  key = jax.random.key(3)
  r = bpd.bits_per_dim_on_split(den, batches, key, exact_trace=True, sigma_min=smin, sigma_max=smax,
                                progress=False)
  assert r["num_images"] == 5
  # The same dequantization the function draws (fold_in of the split index).
  k_deq, _ = jax.random.split(key)
  x = np.stack([np.asarray(dfn.dequantize(jax.random.fold_in(k_deq, i), bpd.to_uint8(images[i])[None])[0])
                for i in range(5)]).astype(np.float64)
  d = 4
  ratio = (s**2 + smax**2) / (s**2 + smin**2)
  xt = x.reshape(5, -1) * math.sqrt(ratio)
  logp = -0.5 * d * math.log(2 * math.pi * smax**2) - 0.5 * (xt**2).sum(1) / smax**2 + 0.5 * d * math.log(ratio)
  expect = (-logp / (d * math.log(2)) + 7).mean()
  assert abs(r["bpd"] - expect) < 1e-3 * abs(expect), (r["bpd"], expect)
