"""2-D toy distributions: exact samplers and log-densities (pure JAX).

``sample(name, key, n) -> float32 [n, 2]`` is a pure function of the key (jit it with ``name`` and
``n`` static); ``log_prob(name, x) -> float32 [...]`` is the exact log-density of the same law for
``x: [..., 2]`` (a closed form where one exists, else a 1-D quadrature of a closed-form integrand
accurate to float32 rounding); ``mixture(name)`` gives the Gaussian-mixture parameters of the two
mixtures, so other code can build the ideal denoiser
``D(x; σ) = Σ_k w_k N(x; μ_k, (s²+σ²)I) (σ² μ_k + s² x)/(s²+σ²) / Σ_k w_k N(x; μ_k, (s²+σ²)I)``.

Scale conventions (every constant below is the one used here; sources in brackets):

* ``8gaussians``: 8 equal-weight isotropic Gaussians, std 0.02, means on the circle of radius 2 at
  angles k·π/4 [WGAN-GP toy, Gulrajani et al. 2017, ``gan_toy.py``: ``scale=2``, ``randn*.02``; that
  script afterwards divides the whole data set by 1.414, which we do NOT do].
* ``25gaussians``: 25 equal-weight isotropic Gaussians, std 0.05, means on the grid {−2,…,2}²·2
  [WGAN-GP toy; again without its final division by 2.828].
* ``swiss_roll``: t ~ U[1.5π, 4.5π], x = ((t cos t, t sin t) + 0.25·ε)/7.5, ε ~ N(0, I)
  [WGAN-GP toy: scikit-learn ``make_swiss_roll(noise=0.25)`` columns (0, 2), divided by 7.5].
* ``checkerboard``: uniform on the 8 squares of side 2 of [−4, 4]² whose integer cell indices
  (⌊x/2⌋, ⌊y/2⌋) have an even sum; density 1/32 there, 0 elsewhere [FFJORD, Grathwohl et al. 2019,
  ``toy_data.py`` ``checkerboard``].
* ``two_moons``: with probability ½ each, the upper arc (cos θ, sin θ) or the lower arc
  (1 − cos θ, 0.5 − sin θ), θ ~ U[0, π], plus 0.1·ε; then x ↦ 2x + (−1, −0.2), so the final noise std
  is 0.2 [FFJORD ``moons``: scikit-learn ``make_moons(noise=0.1)*2 + [-1, -0.2]``; the angle is drawn
  uniformly here instead of on scikit-learn's even grid, which makes the law exact].
* ``rings``: 4 equal-weight rings of radii 3, 2.25, 1.5, 0.75 (3·{1, ¾, ½, ¼}), uniform angle, plus
  0.08·ε [FFJORD ``rings``; again a uniform angle instead of an even grid]. A ring has the closed-form
  density ``exp(−(r−R)²/2s²) · i0e(rR/s²) / (2π s²)`` (Rice distribution, r = |x|).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError

NAMES = ("8gaussians", "25gaussians", "swiss_roll", "checkerboard", "two_moons", "rings")
MIXTURES = ("8gaussians", "25gaussians")   # the Gaussian mixtures (``mixture``; mode coverage)

RING_RADII = (3.0, 2.25, 1.5, 0.75)
RING_STD = 0.08
SWISS_NOISE = 0.25
SWISS_SCALE = 7.5
MOONS_NOISE = 0.1
MOONS_SCALE = 2.0
MOONS_SHIFT = (-1.0, -0.2)

_SWISS_NODES = 1024   # midpoint nodes in t: mean moves ≤ 0.52 noise std per node → error ~e^(-2π²/0.52²) ≪ float32 eps
_MOONS_NODES = 512    # per arc: mean moves 0.012 per node ≪ noise std 0.2
_CHUNK = 1024         # points per chunk in the quadrature densities (bounds memory)


class GaussianMixture(NamedTuple):
  """Isotropic mixture Σ_k weights[k] · N(means[k], std² I)."""
  means: np.ndarray    # float32 [K, 2]
  std: float
  weights: np.ndarray  # float32 [K]


def _check(name: str) -> None:
  if name not in NAMES:
    raise ConfigError(f"Unknown 2-D toy data set {name!r}; set data.toy to one of {', '.join(NAMES)}.")


def mixture(name: str) -> GaussianMixture:
  """Parameters of ``8gaussians`` / ``25gaussians`` (the other toys are not Gaussian mixtures)."""
  _check(name)
  if name == "8gaussians":
    a = np.arange(8) * (np.pi / 4)
    means = 2.0 * np.stack([np.cos(a), np.sin(a)], -1)
    return GaussianMixture(means.astype(np.float32), 0.02, np.full(8, 1 / 8, np.float32))
  if name == "25gaussians":
    g = 2.0 * np.arange(-2, 3)
    means = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(25, 2)
    return GaussianMixture(means.astype(np.float32), 0.05, np.full(25, 1 / 25, np.float32))
  raise ValueError(f"2-D toy {name!r} is not a Gaussian mixture; mixture() supports 8gaussians and 25gaussians.")


# ----------------------------------------------------------------------------------------- samplers

def _sample_mixture(name, key, n):
  m = mixture(name)
  kc, kn = jax.random.split(key)
  comp = jax.random.randint(kc, (n,), 0, len(m.weights))
  return jnp.asarray(m.means)[comp] + m.std * jax.random.normal(kn, (n, 2))


def _swiss_mean(t):
  return jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1) / SWISS_SCALE


def _sample_swiss(key, n):
  kt, kn = jax.random.split(key)
  t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(kt, (n,)))
  return _swiss_mean(t) + (SWISS_NOISE / SWISS_SCALE) * jax.random.normal(kn, (n, 2))


def _sample_checkerboard(key, n):
  k1, k2, k3 = jax.random.split(key, 3)
  x1 = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
  x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.bernoulli(k3, 0.5, (n,))
  x2 = x2 + jnp.mod(jnp.floor(x1), 2.0)
  return 2.0 * jnp.stack([x1, x2], -1)


def _moons_mean(theta, upper):
  c, s = jnp.cos(theta), jnp.sin(theta)
  arc = jnp.where(upper[..., None], jnp.stack([c, s], -1), jnp.stack([1.0 - c, 0.5 - s], -1))
  return MOONS_SCALE * arc + jnp.asarray(MOONS_SHIFT)


def _sample_moons(key, n):
  kt, kc, kn = jax.random.split(key, 3)
  theta = jnp.pi * jax.random.uniform(kt, (n,))
  upper = jax.random.bernoulli(kc, 0.5, (n,))
  return _moons_mean(theta, upper) + MOONS_SCALE * MOONS_NOISE * jax.random.normal(kn, (n, 2))


def _sample_rings(key, n):
  kr, ka, kn = jax.random.split(key, 3)
  r = jnp.asarray(RING_RADII)[jax.random.randint(kr, (n,), 0, len(RING_RADII))]
  a = 2.0 * jnp.pi * jax.random.uniform(ka, (n,))
  return r[:, None] * jnp.stack([jnp.cos(a), jnp.sin(a)], -1) + RING_STD * jax.random.normal(kn, (n, 2))


def sample(name: str, key: jax.Array, n: int) -> jax.Array:
  """``n`` exact samples (float32 [n, 2]) of the toy ``name``; pure in ``key``."""
  _check(name)
  if name in ("8gaussians", "25gaussians"):
    x = _sample_mixture(name, key, n)
  elif name == "swiss_roll":
    x = _sample_swiss(key, n)
  elif name == "checkerboard":
    x = _sample_checkerboard(key, n)
  elif name == "two_moons":
    x = _sample_moons(key, n)
  else:
    x = _sample_rings(key, n)
  return x.astype(jnp.float32)


# ---------------------------------------------------------------------------------------- densities

def _log_normal2(x, mean, std):
  """log N(x; mean, std² I) in 2-D, broadcasting."""
  d2 = jnp.sum((x - mean) ** 2, -1)
  return -d2 / (2 * std ** 2) - jnp.log(2 * jnp.pi * std ** 2)


def _chunked(fn, x):
  """Applies ``fn: [C, 2] -> [C]`` to flattened ``x`` in chunks of _CHUNK points."""
  shape = x.shape[:-1]
  flat = x.reshape(-1, 2)
  n = flat.shape[0]
  pad = (-n) % _CHUNK
  flat = jnp.pad(flat, ((0, pad), (0, 0)))
  out = jax.lax.map(fn, flat.reshape(-1, _CHUNK, 2)).reshape(-1)[:n]
  return out.reshape(shape)


def _lp_mixture(name, x):
  m = mixture(name)
  lp = _log_normal2(x[..., None, :], jnp.asarray(m.means), m.std) + jnp.log(jnp.asarray(m.weights))
  return jax.nn.logsumexp(lp, -1)


def _lp_swiss(x):
  """∫ U(t) N(x; m(t), s²I) dt by the midpoint rule on [1.5π, 4.5π]."""
  t = 1.5 * jnp.pi + 3.0 * jnp.pi * (jnp.arange(_SWISS_NODES) + 0.5) / _SWISS_NODES
  mu = _swiss_mean(t)

  def f(xc):
    return jax.nn.logsumexp(_log_normal2(xc[:, None, :], mu, SWISS_NOISE / SWISS_SCALE), -1)

  return _chunked(f, x) - math.log(_SWISS_NODES)


def _lp_moons(x):
  """½ Σ_arc ∫ U(θ) N(x; 2·arc(θ) + b, 0.2² I) dθ by the midpoint rule on [0, π]."""
  theta = jnp.pi * (jnp.arange(_MOONS_NODES) + 0.5) / _MOONS_NODES
  mu = jnp.concatenate([_moons_mean(theta, jnp.ones_like(theta, bool)),
                        _moons_mean(theta, jnp.zeros_like(theta, bool))], 0)

  def f(xc):
    return jax.nn.logsumexp(_log_normal2(xc[:, None, :], mu, MOONS_SCALE * MOONS_NOISE), -1)

  return _chunked(f, x) - math.log(2 * _MOONS_NODES)


def _lp_rings(x):
  """Equal mixture of rings; one ring: exp(−(r²+R²)/2s²) I0(rR/s²)/(2πs²) (exact)."""
  r = jnp.linalg.norm(x, axis=-1)[..., None]
  big_r = jnp.asarray(RING_RADII)
  s2 = RING_STD ** 2
  z = r * big_r / s2
  lp = -(r - big_r) ** 2 / (2 * s2) + jnp.log(jax.scipy.special.i0e(z)) - jnp.log(2 * jnp.pi * s2)
  return jax.nn.logsumexp(lp, -1) - math.log(len(RING_RADII))


def _lp_checkerboard(x):
  inside = jnp.all((x >= -4.0) & (x < 4.0), -1)
  cells = jnp.floor(x / 2.0)
  even = jnp.mod(cells[..., 0] + cells[..., 1], 2.0) == 0
  return jnp.where(inside & even, -math.log(32.0), -jnp.inf)


def log_prob(name: str, x: jax.Array) -> jax.Array:
  """Exact log-density of the toy ``name`` at ``x: [..., 2]`` (−inf off the checkerboard)."""
  _check(name)
  x = jnp.asarray(x, jnp.float32)
  if name in ("8gaussians", "25gaussians"):
    return _lp_mixture(name, x)
  if name == "swiss_roll":
    return _lp_swiss(x)
  if name == "checkerboard":
    return _lp_checkerboard(x)
  if name == "two_moons":
    return _lp_moons(x)
  return _lp_rings(x)


# ------------------------------------------------------------------------ per-example sample streams

@functools.partial(jax.jit, static_argnums=(0,))
def _indexed(name, seed, hi, lo):
  key = jax.random.key(seed)
  keys = jax.vmap(lambda h, l: jax.random.fold_in(jax.random.fold_in(key, h), l))(hi, lo)
  return jax.vmap(lambda k: sample(name, k, 1)[0])(keys)


def sample_indexed(name: str, seed: int, indices: np.ndarray) -> np.ndarray:
  """Sample number ``i`` of the stream ``seed`` for each ``i`` in ``indices`` (int64 ≥ 0).

  Sample i uses the key ``fold_in(fold_in(key(seed), i // 2³²), i mod 2³²)``, so it depends on
  (seed, i) only: not on the batch it lands in, the batch size or the number of processes. It is
  computed on the host CPU (when JAX has one), so the data stream is the same bits whatever
  accelerator trains on it, and data threads never queue work on the accelerator.
  """
  _check(name)
  idx = np.asarray(indices, np.int64).reshape(-1)
  n = len(idx)
  padded = np.zeros(max(8, 1 << max(n - 1, 0).bit_length()), np.int64)   # few shapes → few compiles
  padded[:n] = idx
  hi = (padded >> 32).astype(np.uint32)
  lo = (padded & 0xFFFFFFFF).astype(np.uint32)
  with jax.default_device(_host_device()):
    out = _indexed(name, np.uint32(seed % 2 ** 32), hi, lo)
  return np.asarray(out, np.float32)[:n]


@functools.cache
def _host_device():
  try:
    return jax.local_devices(backend="cpu")[0]
  except RuntimeError:   # JAX_PLATFORMS without cpu: use the default device
    return None
