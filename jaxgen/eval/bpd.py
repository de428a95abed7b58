"""bits/dim of a data split through the PF-ODE likelihood (``jaxgen.diffusion.log_likelihood``).

    r = bits_per_dim_on_split(denoise_fn, eval_batches, key, limit=10000)   # {'bpd', 'bpd_sem', 'num_images'}
    r = score_sde_nll(denoise_fn, meta['sde'], eval_batches, key)         # score_sde's own NLL protocol

Each image (float in [−1, 1] as the data pipeline yields it) is mapped back to its 8-bit values k,
uniformly dequantized x = −1 + 2(k + u)/256 with u from ``fold_in(key, i)`` (i its index in the split),
and scored with log p(x; σ_min) from the PF-ODE (Hutchinson probes also keyed by i), so an image's
number does not depend on the batching. bpd = −log p/(D ln 2) + 8 − log₂ 2 = −log p/(D ln 2) + 7
(docs/reference.md §2). Padding rows (``mask`` 0) are skipped.

score_sde's protocol (``run_lib.evaluate`` with ``likelihood.get_likelihood_fn``; docs/convert.md
"## score_sde"), which ``score_sde_nll`` follows: the data point is x at t = ε = 1e-5 (not σ = 0), the
PF-ODE runs to t = T = 1, the prior is N(0, I) for VP/sub-VP and N(0, σ_max²I) for VE (in its [0, 1]
units), RK45 with rtol = atol = 1e-5, one Rademacher probe per image, and the test split is scored
``num_repeats`` = 5 times (fresh dequantization and probes), the mean of all of them reported (DDPM++ cont.
deep, sub-VP: 2.99 bits/dim). In jaxgen's σ-frame (x̃ = x/s, σ(t); ``SubVPSchedule``/``VPSchedule``) the
same flow gives log p_ε(x) = log N(s(T)·z̃; 0, I) + D·ln s(T) + ∫div − D·ln s(ε) with z̃ = x̃(σ(T)), the
ODE started at x̃ = x/s(ε), σ_min = σ(ε), σ_max = σ(T) (``score_sde_log_likelihood``). For VE the data
in [−1, 1] are 2y − 1 of score_sde's y ∈ [0, 1]: σ doubles, the prior becomes N(−1, (2σ_max)²I), and log p
loses D·ln 2, which the +7 offset (score_sde's is +8 for [0, 1]) puts back.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError


def to_uint8(images) -> np.ndarray:
  """Float images in [−1, 1] from the pipeline (k/127.5 − 1) → the integer pixel values k."""
  x = np.asarray(images, np.float32)
  return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)


def bits_per_dim_on_split(denoise_fn: Callable, batches: Iterable[dict], key, *, limit: int | None = None,
                          progress: bool = True, **likelihood_kw) -> dict:
  """Mean bits/dim (and its standard error) over the images of ``batches`` (up to ``limit``).

  ``likelihood_kw`` go to ``jaxgen.diffusion.log_likelihood`` (sigma_min, sigma_max, rtol, atol,
  exact_trace, estimator, fixed_steps ...).
  """
  from jaxgen import diffusion as dfn

  k_deq, k_probe = jax.random.split(key)

  @jax.jit
  def score(x_u8, idx):
    keys = jax.vmap(lambda i: jax.random.fold_in(k_deq, i))(idx)
    x = jax.vmap(lambda k, xi: dfn.dequantize(k, xi[None])[0])(keys, x_u8)
    logp = dfn.log_likelihood(denoise_fn, x, k_probe, indices=idx, **likelihood_kw)
    return dfn.bits_per_dim(logp, math.prod(x.shape[1:]))

  v = _score_split(score, batches, limit, progress).astype(np.float64)
  return dict(bpd=float(v.mean()), bpd_sem=float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan"),
              num_images=int(len(v)))


# ------------------------------------------------------------------------------------------------
# score_sde's NLL protocol.

def score_sde_terms(sde: dict) -> dict:
  """σ range and scales of score_sde's likelihood for ``sde`` (``meta['sde']`` of
  ``jaxgen.convert.score_sde``: name vpsde|subvpsde|vesde, β or σ range, T, eps): ``sigma_min`` = σ(ε),
  ``sigma_max`` = σ(T) in jaxgen's [−1, 1] units, ``s0`` = s(ε), ``s1`` = s(T), ``prior_mean`` and
  ``prior_std`` (score_sde's prior in x-space, in [−1, 1] units: VE's N(0, σ_max²) on [0, 1] data is
  N(−1, (2σ_max)²) there)."""
  name, eps, T = sde["name"], float(sde.get("eps", 1e-5)), float(sde.get("T", 1.0))
  if name == "vesde":
    smin, smax = float(sde["sigma_min"]), float(sde["sigma_max"])
    sig = lambda t: 2 * smin * (smax / smin) ** t  # noqa: E731   [0, 1] data → [−1, 1]: σ doubles
    return dict(sigma_min=sig(eps), sigma_max=sig(T), s0=1.0, s1=1.0, prior_mean=-1.0, prior_std=2 * smax)
  if name not in ("vpsde", "subvpsde"):
    raise ConfigError(f"sde {name!r} is not a score_sde SDE: use vpsde, subvpsde or vesde.")
  b0, b1 = float(sde.get("beta_min", 0.1)), float(sde.get("beta_max", 20.0))
  big_b = lambda t: 0.5 * (b1 - b0) * t ** 2 + b0 * t  # noqa: E731   ∫₀ᵗβ
  if name == "vpsde":
    sig = lambda t: math.sqrt(math.expm1(big_b(t)))  # noqa: E731
  else:
    sig = lambda t: 2 * math.sinh(0.5 * big_b(t))  # noqa: E731
  return dict(sigma_min=sig(eps), sigma_max=sig(T), s0=math.exp(-0.5 * big_b(eps)),
              s1=math.exp(-0.5 * big_b(T)), prior_mean=0.0, prior_std=1.0)


def score_sde_log_likelihood(denoise_fn: Callable, x, key, sde: dict, **likelihood_kw):
  """score_sde's log p(x) in nats (x: dequantized data in [−1, 1], the denoiser's units), computed in
  jaxgen's σ-frame by ``jaxgen.diffusion.log_likelihood`` and corrected to score_sde's start time, scale
  and prior (module docstring). ``likelihood_kw``: rtol, atol, exact_trace, estimator, indices, ..."""
  from jaxgen import diffusion as dfn
  from jaxgen.diffusion.likelihood import gaussian_log_prob

  terms = score_sde_terms(sde)
  x = jnp.asarray(x, jnp.float32)
  d = math.prod(x.shape[1:])
  logp, st = dfn.log_likelihood(denoise_fn, x / terms["s0"], key, sigma_min=terms["sigma_min"],
                                sigma_max=terms["sigma_max"], return_stats=True, **likelihood_kw)
  z = st["z"] * terms["s1"]   # x-space latent at T
  prior = gaussian_log_prob(z - terms["prior_mean"], terms["prior_std"])
  return logp - st["prior_logp"] + prior + d * math.log(terms["s1"]) - d * math.log(terms["s0"])


def score_sde_nll(denoise_fn: Callable, sde: dict, batches: Iterable[dict] | Callable[[], Iterable[dict]], key,
                  *, num_repeats: int = 5, limit: int | None = None, progress: bool = True,
                  rtol: float = 1e-5, atol: float = 1e-5, estimator: str = "rademacher",
                  exact_trace: bool = False, fixed_steps: int = 0) -> dict:
  """score_sde's bits/dim of a split (``run_lib.evaluate``'s bpd: every image of ``batches`` scored
  ``num_repeats`` times, 5 for the test split, with fresh uniform dequantization and Hutchinson probes;
  the mean of all scores). ``batches``: a re-iterable of pipeline batches (images in [−1, 1]) or a
  function returning a fresh iterator (called once per repeat). Repeat r uses ``fold_in(key, r)``, image i
  within it the dequantization and probe keys ``fold_in(·, i)``, so a number does not depend on batching.
  Returns ``bpd`` (mean), ``bpd_sem`` (standard error over the per-image means), ``bpd_repeats`` (the mean
  of each repeat), ``num_images``, ``num_repeats``. ``fixed_steps`` > 0: that many equal RK45 steps instead of
  the adaptive solve (smoke runs only; score_sde's protocol is adaptive at 1e-5)."""
  from jaxgen import diffusion as dfn

  if num_repeats < 1:
    raise ConfigError(f"num_repeats={num_repeats}: score at least once (score_sde uses 5 on the test split).")
  kw = dict(rtol=rtol, atol=atol, estimator=estimator, exact_trace=exact_trace, fixed_steps=fixed_steps or None)

  @jax.jit
  def score(x_u8, idx, k):   # one compilation per batch shape, shared by the repeats (k is an argument)
    k_deq, k_probe = jax.random.split(k)
    keys = jax.vmap(lambda i: jax.random.fold_in(k_deq, i))(idx)
    x = jax.vmap(lambda kk, xi: dfn.dequantize(kk, xi[None])[0])(keys, x_u8)
    logp = score_sde_log_likelihood(denoise_fn, x, k_probe, sde, indices=idx, **kw)
    return dfn.bits_per_dim(logp, math.prod(x.shape[1:]))

  per_repeat = []
  for r in range(num_repeats):
    it = batches() if callable(batches) else batches
    k_r = jax.random.fold_in(key, r)
    vals = _score_split(lambda x_u8, idx, k_r=k_r: score(x_u8, idx, k_r), it, limit, progress,
                        desc=f"bits/dim {r + 1}/{num_repeats}")
    per_repeat.append(vals)
  n = min(len(v) for v in per_repeat)
  if n == 0 or any(len(v) != n for v in per_repeat):
    raise ConfigError("the eval split gave a different number of images on a repeat: give batches that "
                      "can be iterated again (a list, or a function returning a fresh iterator).")
  v = np.stack(per_repeat).astype(np.float64)   # [repeats, images]
  img = v.mean(axis=0)
  return dict(bpd=float(v.mean()), bpd_sem=float(img.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
              bpd_repeats=[float(x) for x in v.mean(axis=1)], num_images=int(n), num_repeats=int(num_repeats))


def _score_split(score, batches, limit, progress, desc="bits/dim") -> np.ndarray:
  """``score(x_uint8, idx)`` over the (masked) images of ``batches`` up to ``limit``: per-image values."""
  bar = None
  if progress and jax.process_index() == 0:
    try:
      from tqdm import tqdm
      bar = tqdm(total=limit, desc=desc, unit="img", dynamic_ncols=True)
    except ImportError:
      bar = None
  vals, n = [], 0
  for batch in batches:
    img = np.asarray(batch["image"])
    if "mask" in batch:
      img = img[np.asarray(batch["mask"]) > 0]
    if limit is not None:
      img = img[:limit - n]
    if img.shape[0] == 0:
      continue
    idx = jnp.arange(n, n + img.shape[0], dtype=jnp.int32)
    vals.append(np.asarray(score(jnp.asarray(to_uint8(img)), idx)))
    n += img.shape[0]
    if bar is not None:
      bar.update(img.shape[0])
    if limit is not None and n >= limit:
      break
  if bar is not None:
    bar.close()
  if not vals:
    raise ConfigError("no images to score: set --config.data.eval_split to a split with images "
                      "(e.g. 'test').")
  return np.concatenate(vals)


def score_sde_nll_from_file(path: str, batches, key, **kw) -> dict:
  """``score_sde_nll`` of a ``python -m jaxgen.convert.score_sde`` file (its ``meta['sde']`` and network),
  plus the file's provenance: ``config``, ``weights`` ('ema'/'model'), ``step``. ``batches``: e.g.
  ``jaxgen.data.eval_dataset(cfg.data, batch_size=...)`` with ``data.eval_split='test'`` (re-iterable)."""
  from jaxgen.convert import score_sde as convert

  variables, meta = convert.load(path)
  out = score_sde_nll(convert.denoiser(variables, meta), meta["sde"], batches, key, **kw)
  return dict(out, config=meta.get("config"), weights=meta.get("weights"), step=meta.get("step"))
