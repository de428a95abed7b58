"""Training losses for diffusion and score models: pure functions returning one loss per example.

Common signature ``loss(net, x, key, *, labels=None, ...) -> [B]`` (float32), with ``x`` the clean
batch [B, ...] and ``net`` the raw network ``net(x_in, c_noise, labels, **kw) -> F``. Dropout keys
and ``train`` flags are the caller's business (close over them). With ``preconditioned=True``,
``net`` is instead a denoiser ``D(x, sigma[B], labels=..., **kw)`` in σ-space (e.g. the output of
``precondition``); the denoising losses then use it directly, the prediction losses convert D into
their target kind (``jaxgen.diffusion.conversions``).

Reductions follow each method's official code: ``reduce='sum'`` (over the non-batch axes) for the
EDM/VP/sub-VP/VE losses (EDM ``training/loss.py`` returns the elementwise loss and ``train.py`` sums it
and divides by the batch size) and NCSN, ``'mean'`` for DDPM's L_simple (``meanflat``) and for the
prediction / flow-matching losses. Pass ``reduce`` to change it (``None``: the loss's own default).

One vocabulary (``LOSSES``, also ``jaxgen.diffusion.LOSSES``; the task's ``task.loss`` uses the same
names). Every entry takes the same call,

    LOSSES[name](net, x, key, *, schedule=None, sigmas=None, labels=None, augment_labels=None,
                 preconditioned=False, reduce=None) -> [B]

and a keyword an entry does not use is accepted and ignored, so a caller needs no per-loss branches:

  name   function            ``schedule`` (None: the default)                           reduce
  edm    edm_loss            p_train and λ(σ) (``EDMSchedule()``)                       sum
  vp     vp_loss             p_train and λ(σ) (``VPSchedule()``)                        sum
  subvp  subvp_loss          p_train and λ(σ) (``SubVPSchedule()``)                     sum
  ve     ve_loss             p_train and λ(σ) (``VESchedule()``)                        sum
  eps    eps_loss            (σ, c_noise) from ``noise_level`` (``DDPMSchedule()``)       mean
  v      v_loss              as eps                                                     mean
  x0     x0_loss             as eps                                                     mean
  fm     flow_matching_loss  p_train of t (``FlowMatchingSchedule()``)                  mean
  dsm    dsm_loss            ignored; ``sigmas`` is the NCSN ladder (default            sum
                             ``ncsn_sigmas(2.0, 0.02, 10)``), ignored by every other entry

With ``preconditioned=True`` the schedule of a loss is only its noise distribution and weighting: the
denoiser's own preconditioning may be another schedule's.

- ``denoising_loss`` (EDM eq. 2 with λ(σ)): λ(σ)·‖D(y + σn; σ) − y‖², σ ~ p_train of a schedule;
  ``edm_loss``, ``vp_loss``, ``ve_loss`` are it with the schedules of EDM Table 1 (official ``EDMLoss``,
  ``VPLoss``, ``VELoss``; ``augment_labels`` are passed to the network as a keyword, as there).
- ``ddpm_loss`` / ``eps_loss`` (L_simple, Ho et al. 2020), ``v_loss`` (Salimans & Ho 2022), ``x0_loss``:
  the network sees x_t = α·y + σ_t·ε (α = 1/√(1+σ²), σ_t = ασ, i.e. √ᾱ and √(1−ᾱ)) and c_noise = the
  integer step j ~ U{0..T−1} of a ``DDPMSchedule`` (or σ ~ p_train and c_noise of a continuous schedule).
- ``flow_matching_loss`` (Lipman et al. 2023; Liu et al. 2023): x_t = (1−t)y + tε, target v = ε − y,
  the network sees (x_t, t).
- ``dsm_loss`` (NCSN, Song & Ermon 2019): ½σ²·‖s(y + σn, i) + n/σ‖² summed, σ = σ_i, i ~ U{0..L−1} over a
  geometric ladder. NCSN's ladder σ₁ = 1 → σ_L = 0.01 (L = 10) is for data in [0, 1]; data in [−1, 1] is
  twice as wide, so the default here is σ₁ = 2 → σ_L = 0.02 (``ncsn_sigmas(2.0, 0.02, 10)``); pass
  ``sigmas=ncsn_sigmas()`` for [0, 1] data.
- ``sliced_score_matching_loss`` (Song, Garg, Shi & Ermon 2019): vᵀ∇ₓ(vᵀs(x)) + ½(vᵀs(x))², or with
  variance reduction vᵀ∇ₓ(vᵀs(x)) + ½‖s(x)‖², v Gaussian or Rademacher (E[vvᵀ] = I), averaged over
  ``n_particles`` projections. The official code normalizes v to the unit sphere in its non-VR
  version (a factor 1/D on the objective); we keep E[vvᵀ] = I for both.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxgen.diffusion import conversions as _cv
from jaxgen.diffusion.conversions import bcast
from jaxgen.diffusion.precond import precondition
from jaxgen.diffusion.schedules import (DDPMSchedule, EDMSchedule, FlowMatchingSchedule, NCSNSchedule,
                                        SubVPSchedule, VESchedule, VPSchedule)
from jaxgen.errors import ConfigError

f32 = jnp.float32


def _reduce(err, reduce: str | None, default: str = "sum"):
  reduce = default if reduce is None else reduce
  axes = tuple(range(1, err.ndim))
  if reduce == "sum":
    return jnp.sum(err, axis=axes)
  if reduce == "mean":
    return jnp.mean(err, axis=axes)
  raise ConfigError(f"unknown reduce {reduce!r}: use 'sum' or 'mean'.")


def _kw(labels, augment_labels):
  """Keywords for a call: labels (denoisers only; raw networks get them positionally) and augment_labels."""
  kw = {}
  if labels is not None:
    kw["labels"] = labels
  if augment_labels is not None:
    kw["augment_labels"] = augment_labels
  return kw


# -- EDM-style denoising losses -----------------------------------------------------------------

def denoising_loss(net: Callable, x, key, *, schedule, labels=None, augment_labels=None,
                   preconditioned: bool = False, reduce: str | None = "sum", sigmas=None):
  """λ(σ)·‖D(y + σn; σ) − y‖² with σ ~ ``schedule.sample_sigma`` (EDM eq. 2 and Table 1).

  Without ``preconditioned`` the network is wrapped by ``schedule``'s own preconditioning. ``sigmas`` is
  ignored (the uniform ``LOSSES`` call).
  """
  del sigmas
  y = jnp.asarray(x, f32)
  k_sigma, k_noise = jax.random.split(key)
  sigma = schedule.sample_sigma(k_sigma, (y.shape[0],))
  n = jax.random.normal(k_noise, y.shape, f32)
  D = net if preconditioned else precondition(net, schedule)
  out = D(y + bcast(sigma, y) * n, sigma, **_kw(labels, augment_labels))
  return _reduce(bcast(schedule.loss_weight(sigma), y) * (out.astype(f32) - y) ** 2, reduce)


def edm_loss(net, x, key, *, schedule=None, **kw):
  """EDM loss: ln σ ~ N(P_mean, P_std²), λ = (σ² + σ_d²)/(σσ_d)², EDM preconditioning."""
  return denoising_loss(net, x, key, schedule=EDMSchedule() if schedule is None else schedule, **kw)


def vp_loss(net, x, key, *, schedule=None, **kw):
  """VP loss: σ = σ(t), t ~ U(ε_t, 1), λ = 1/σ², VP preconditioning (official ``VPLoss``)."""
  return denoising_loss(net, x, key, schedule=VPSchedule() if schedule is None else schedule, **kw)


def subvp_loss(net, x, key, *, schedule=None, **kw):
  """Sub-VP loss: σ = σ(t) of sub-VP, t ~ U(ε_t, 1), λ = 1/σ² (score_sde's unweighted continuous loss)."""
  return denoising_loss(net, x, key, schedule=SubVPSchedule() if schedule is None else schedule, **kw)


def ve_loss(net, x, key, *, schedule=None, **kw):
  """VE loss: ln σ ~ U(ln σ_min, ln σ_max), λ = 1/σ², VE preconditioning (official ``VELoss``)."""
  return denoising_loss(net, x, key, schedule=VESchedule() if schedule is None else schedule, **kw)


# -- prediction losses (DDPM family) ------------------------------------------------------------

def ddpm_loss(net: Callable, x, key, *, labels=None, schedule=None, prediction: str = "eps",
              augment_labels=None, preconditioned: bool = False, reduce: str | None = "mean",
              weight_fn: Callable | None = None, sigmas=None):
  """‖F(x_t, c_noise) − target‖², target ε (L_simple), v = αε − σ_t·y, or y; optional weight_fn(σ).

  (σ, c_noise) come from ``schedule.noise_level`` (default ``DDPMSchedule()``); ``sigmas`` is ignored.
  """
  del sigmas
  if prediction not in ("eps", "v", "x0"):
    raise ConfigError(f"unknown prediction {prediction!r}: use 'eps', 'v' or 'x0'.")
  schedule = DDPMSchedule() if schedule is None else schedule
  y = jnp.asarray(x, f32)
  k_sigma, k_noise = jax.random.split(key)
  sigma, c_noise = schedule.noise_level(k_sigma, (y.shape[0],))
  alpha = 1.0 / jnp.sqrt(1.0 + sigma ** 2)
  eps = jax.random.normal(k_noise, y.shape, f32)
  if preconditioned:
    xs = y + bcast(sigma, y) * eps
    D = net(xs, sigma, **_kw(labels, augment_labels)).astype(f32)
    pred = _cv.convert(D, xs, sigma, "denoiser", prediction)
  else:
    x_t = bcast(alpha, y) * y + bcast(alpha * sigma, y) * eps
    pred = net(x_t, c_noise, labels, **_kw(None, augment_labels)).astype(f32)
  target = {"eps": eps, "v": bcast(alpha, y) * eps - bcast(alpha * sigma, y) * y, "x0": y}[prediction]
  err = (pred - target) ** 2
  if weight_fn is not None:
    err = bcast(weight_fn(sigma), y) * err
  return _reduce(err, reduce, "mean")


def eps_loss(net, x, key, **kw):
  """DDPM L_simple: E_{j, ε}‖ε − ε_θ(√ᾱ_j y + √(1−ᾱ_j) ε, j)‖² (mean over dimensions, as ``meanflat``)."""
  return ddpm_loss(net, x, key, prediction="eps", **kw)


def v_loss(net, x, key, **kw):
  """v-prediction: target v = √ᾱ ε − √(1−ᾱ) y (Salimans & Ho 2022)."""
  return ddpm_loss(net, x, key, prediction="v", **kw)


def x0_loss(net, x, key, **kw):
  """x₀-prediction: target y."""
  return ddpm_loss(net, x, key, prediction="x0", **kw)


# -- flow matching ------------------------------------------------------------------------------

def flow_matching_loss(net: Callable, x, key, *, labels=None, schedule=None, augment_labels=None,
                       preconditioned: bool = False, reduce: str | None = "mean", sigmas=None):
  """‖F(x_t, t) − (ε − y)‖², x_t = (1−t)y + tε, t ~ p_train of the flow-matching schedule (default
  ``FlowMatchingSchedule()``); ``sigmas`` is ignored.

  Equal to ``denoising_loss`` with the same schedule: λ(σ)‖D − y‖² = ‖v̂ − v‖² (λ = (1+σ)²/σ²).
  """
  del sigmas
  schedule = FlowMatchingSchedule() if schedule is None else schedule
  y = jnp.asarray(x, f32)
  k_t, k_noise = jax.random.split(key)
  t = schedule.sample_time(k_t, (y.shape[0],))
  eps = jax.random.normal(k_noise, y.shape, f32)
  if preconditioned:
    sigma = t / (1.0 - t)
    xs = y + bcast(sigma, y) * eps
    D = net(xs, sigma, **_kw(labels, augment_labels)).astype(f32)
    pred = _cv.velocity_from_denoiser(D, xs, sigma)
  else:
    x_t = bcast(1.0 - t, y) * y + bcast(t, y) * eps
    pred = net(x_t, t, labels, **_kw(None, augment_labels)).astype(f32)
  return _reduce((pred - (eps - y)) ** 2, reduce, "mean")


# -- score matching -----------------------------------------------------------------------------

def ncsn_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.01, num: int = 10):
  """NCSN's geometric ladder σ_1 = sigma_max > … > σ_L = sigma_min (float32, descending; computed in
  float64 as ``NCSNSchedule.sigmas``, the official ``np.exp(np.linspace(...))``)."""
  return jnp.asarray(NCSNSchedule(sigma_max=sigma_max, sigma_min=sigma_min, num_levels=num).sigmas, f32)


def dsm_loss(net: Callable, x, key, *, labels=None, sigmas=None, anneal_power: float = 2.0,
             preconditioned: bool = False, reduce: str | None = "sum", schedule=None, augment_labels=None):
  """NCSN annealed denoising score matching: ½·σ^anneal_power·‖s_θ(y + σn, i) + n/σ‖².

  ``sigmas``: the ladder σ_1 > … > σ_L (default ``ncsn_sigmas(2.0, 0.02, 10)``). The network gets
  c_noise = i (the ladder index, float32) as NCSN's ``scorenet(x, labels)``; with
  ``preconditioned=True`` ``net`` is a denoiser and the score is (D − x)/σ². ``schedule`` is ignored.
  """
  del schedule
  sigmas = ncsn_sigmas(2.0, 0.02, 10) if sigmas is None else jnp.asarray(sigmas, f32)
  y = jnp.asarray(x, f32)
  k_i, k_noise = jax.random.split(key)
  i = jax.random.randint(k_i, (y.shape[0],), 0, sigmas.shape[0])
  sigma = sigmas[i]
  n = jax.random.normal(k_noise, y.shape, f32)
  xs = y + bcast(sigma, y) * n
  if preconditioned:
    score = _cv.score_from_denoiser(net(xs, sigma, **_kw(labels, augment_labels)).astype(f32), xs, sigma)
  else:
    score = net(xs, i.astype(f32), labels, **_kw(None, augment_labels)).astype(f32)
  target = -n / bcast(sigma, y)
  return 0.5 * _reduce((score - target) ** 2, reduce) * sigma ** anneal_power


def sliced_score_matching_loss(score_fn: Callable, x, key, *, labels=None, n_particles: int = 1,
                               variance_reduction: bool = True, projection: str = "gaussian"):
  """Sliced score matching per example (see module docstring). ``score_fn(x)`` or ``score_fn(x, labels)``.

  The Hessian-vector term uses one forward-mode ``jvp`` of the batched score; examples must not
  interact inside ``score_fn`` (no batch statistics).
  """
  if projection not in ("gaussian", "rademacher"):
    raise ConfigError(f"unknown projection {projection!r}: use 'gaussian' or 'rademacher'.")
  y = jnp.asarray(x, f32)
  B = y.shape[0]
  xd = jnp.broadcast_to(y, (n_particles,) + y.shape).reshape((n_particles * B,) + y.shape[1:])
  draw = jax.random.normal if projection == "gaussian" else jax.random.rademacher
  v = draw(key, xd.shape, f32)
  if labels is None:
    fn = lambda z: score_fn(z).astype(f32)
  else:
    lab = jnp.concatenate([labels] * n_particles, axis=0)
    fn = lambda z: score_fn(z, lab).astype(f32)
  s, jv = jax.jvp(fn, (xd,), (v,))
  vjv = _reduce(v * jv, "sum")
  half = 0.5 * (_reduce(s ** 2, "sum") if variance_reduction else _reduce(v * s, "sum") ** 2)
  return jnp.mean((vjv + half).reshape(n_particles, B), axis=0)


# The one loss vocabulary of the library and the task (see the module docstring for the uniform call).
LOSSES = {"edm": edm_loss, "vp": vp_loss, "subvp": subvp_loss, "ve": ve_loss, "eps": eps_loss,
          "v": v_loss, "x0": x0_loss, "fm": flow_matching_loss, "dsm": dsm_loss}


def get_loss(name: str) -> Callable:
  """``LOSSES[name]`` with a one-line error naming the choices."""
  if name not in LOSSES:
    raise ConfigError(f"unknown diffusion loss {name!r}: choose one of {', '.join(LOSSES)}.")
  return LOSSES[name]


__all__ = ["denoising_loss", "edm_loss", "vp_loss", "subvp_loss", "ve_loss", "ddpm_loss", "eps_loss",
           "v_loss", "x0_loss", "flow_matching_loss", "ncsn_sigmas", "dsm_loss", "sliced_score_matching_loss",
           "LOSSES", "get_loss"]
