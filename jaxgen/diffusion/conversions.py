"""Conversions between what a network may predict, in EDM's σ-space (Karras et al. 2022).

Notation: clean data y, noise n ~ N(0, I), x = y + σ·n the noisy input in σ-space, x_t = s·x the
input of a diffusion written with a scale s(t). With D = D(x; σ) ≈ E[y | x]:

  denoiser / x₀-prediction   x̂₀ = D
  score                      ∇log p(x; σ) = (D − x)/σ²               (Tweedie / EDM eq. 3)
  ε-prediction               ε̂ = (x − D)/σ                           (Ho et al. 2020)
  v-prediction               v̂ = α·ε̂ − σ_t·x̂₀, α = s, σ_t = s·σ     (Salimans & Ho 2022; VP: s = 1/√(1+σ²))
                             x̂₀ = (α·x_t − σ_t·v̂)/(α² + σ_t²)
  flow-matching velocity     v̂ = ε̂ − x̂₀ for x_t = (1−t)x₀ + tε, s = 1−t = 1/(1+σ)
                             x̂₀ = x_t − t·v̂ = (x − σ·v̂)/(1+σ)

``sigma`` is a scalar or one value per example ([B]); ``s`` likewise (v-prediction only, default the
VP scale). All functions are pure jnp, float32 σ arithmetic, and exact inverses of each other.

``bcast(v, x)`` is the package's one batch-broadcast helper (a scalar or a per-example ``[B]`` value
against ``x`` of shape ``[B, ...]``); precond, losses, sde and samplers import it from here.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jaxgen.errors import ConfigError

f32 = jnp.float32

PREDICTIONS = ("denoiser", "x0", "score", "eps", "v", "velocity")


def bcast(v, x):
  """``v`` (a scalar or a per-example ``[B]`` value) as float32 shaped to broadcast against ``x [B, ...]``."""
  v = jnp.asarray(v, f32)
  return v.reshape(v.shape + (1,) * (jnp.ndim(x) - v.ndim))


def _vp_scale(sigma):
  return 1.0 / jnp.sqrt(1.0 + jnp.asarray(sigma, f32) ** 2)


def score_from_denoiser(D, x, sigma):
  return (D - x) / bcast(sigma, x) ** 2


def denoiser_from_score(score, x, sigma):
  return x + bcast(sigma, x) ** 2 * score


def eps_from_denoiser(D, x, sigma):
  return (x - D) / bcast(sigma, x)


def denoiser_from_eps(eps, x, sigma):
  return x - bcast(sigma, x) * eps


def v_from_denoiser(D, x, sigma, s=None):
  """v = α·ε̂ − σ_t·x̂₀ with α = s and σ_t = s·σ (default s = 1/√(1+σ²), the VP/DDPM convention)."""
  s = _vp_scale(sigma) if s is None else s
  sb, sg = bcast(s, x), bcast(sigma, x)
  return sb * ((x - D) / sg - sg * D)


def denoiser_from_v(v, x, sigma, s=None):
  """x̂₀ = (α·x_t − σ_t·v)/(α² + σ_t²) with x_t = s·x; reduces to (x − σv/s)/(1+σ²)."""
  s = _vp_scale(sigma) if s is None else s
  sb, sg = bcast(s, x), bcast(sigma, x)
  return (x - sg * v / sb) / (1.0 + sg ** 2)


def velocity_from_denoiser(D, x, sigma):
  """Flow-matching velocity v = ε̂ − x̂₀."""
  return (x - D) / bcast(sigma, x) - D


def denoiser_from_velocity(v, x, sigma):
  """x̂₀ = (x − σ·v)/(1 + σ) (= x_t − t·v with x_t = x/(1+σ), t = σ/(1+σ))."""
  sg = bcast(sigma, x)
  return (x - sg * v) / (1.0 + sg)


_TO_D = {"denoiser": lambda p, x, sg, s: p, "x0": lambda p, x, sg, s: p,
         "score": lambda p, x, sg, s: denoiser_from_score(p, x, sg),
         "eps": lambda p, x, sg, s: denoiser_from_eps(p, x, sg),
         "v": denoiser_from_v,
         "velocity": lambda p, x, sg, s: denoiser_from_velocity(p, x, sg)}
_FROM_D = {"denoiser": lambda D, x, sg, s: D, "x0": lambda D, x, sg, s: D,
           "score": lambda D, x, sg, s: score_from_denoiser(D, x, sg),
           "eps": lambda D, x, sg, s: eps_from_denoiser(D, x, sg),
           "v": v_from_denoiser,
           "velocity": lambda D, x, sg, s: velocity_from_denoiser(D, x, sg)}


def _check(kind):
  if kind not in PREDICTIONS:
    raise ConfigError(f"unknown prediction {kind!r}: use one of {', '.join(PREDICTIONS)}.")


def convert(pred, x, sigma, source: str, target: str, s=None):
  """Convert a prediction of kind ``source`` into kind ``target`` (kinds: PREDICTIONS)."""
  _check(source)
  _check(target)
  return _FROM_D[target](_TO_D[source](pred, x, sigma, s), x, sigma, s)


def as_denoiser(pred_fn: Callable, prediction: str, s_fn: Callable | None = None) -> Callable:
  """``pred_fn(x, sigma, **kw)`` predicting ``prediction`` in σ-space → ``denoise_fn(x, sigma, **kw)``.

  ``s_fn(sigma)`` gives the scale of a v-prediction (default VP).
  """
  _check(prediction)

  def denoise_fn(x, sigma, **kw):
    s = None if s_fn is None else s_fn(sigma)
    return _TO_D[prediction](pred_fn(x, sigma, **kw), x, sigma, s)

  return denoise_fn


def as_prediction(denoise_fn: Callable, prediction: str, s_fn: Callable | None = None) -> Callable:
  """``denoise_fn`` → a function of (x, sigma) returning the ``prediction`` kind."""
  _check(prediction)

  def pred_fn(x, sigma, **kw):
    s = None if s_fn is None else s_fn(sigma)
    return _FROM_D[prediction](denoise_fn(x, sigma, **kw), x, sigma, s)

  return pred_fn


def pf_ode_drift(denoise_fn: Callable, schedule) -> Callable:
  """The general probability-flow ODE in time (EDM eq. 4 / Algorithm 1) as ``f(x, t) -> dx/dt``.

  dx/dt = (ṡ/s)·x + s·σ̇·(x/s − D(x/s; σ))/σ, x = s(t)·(y + σ(t)·n), t a scalar or [B].
  (The s² of eq. 4 meets the 1/s of ∇_x log p(x/s; σ) = ∇log p(·; σ)(x/s)/s.)
  """

  def f(x, t):
    t = jnp.asarray(t, f32)
    tb = jnp.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t
    sig, sd, s, ds = schedule.sigma(tb), schedule.sigma_deriv(tb), schedule.s(tb), schedule.s_deriv(tb)
    xs = x / bcast(s, x)
    D = denoise_fn(xs, sig)
    return bcast(ds / s, x) * x + bcast(s * sd / sig, x) * (xs - D)

  return f


__all__ = ["PREDICTIONS", "bcast", "score_from_denoiser", "denoiser_from_score", "eps_from_denoiser",
           "denoiser_from_eps", "v_from_denoiser", "denoiser_from_v",
           "velocity_from_denoiser", "denoiser_from_velocity", "convert", "as_denoiser", "as_prediction",
           "pf_ode_drift"]
