"""bits/dim of a data split through the PF-ODE likelihood (``jaxgen.diffusion.log_likelihood``).

    r = bits_per_dim_on_split(denoise_fn, eval_batches, key, limit=10000)   # {'bpd', 'bpd_sem', 'num_images'}

Each image (float in [−1, 1] as the data pipeline yields it) is mapped back to its 8-bit values k,
uniformly dequantized x = −1 + 2(k + u)/256 with u from ``fold_in(key, i)`` (i its index in the split),
and scored with log p(x; σ_min) from the PF-ODE (Hutchinson probes also keyed by i), so an image's
number does not depend on the batching. bpd = −log p/(D ln 2) + 8 − log₂ 2 = −log p/(D ln 2) + 7
(docs/reference.md §2). Padding rows (``mask`` 0) are skipped. Song et al. (2021) report the mean over the
CIFAR-10 test split with one dequantization and one probe per image (DDPM++ cont. deep, sub-VP: 2.99).
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

  bar = None
  if progress and jax.process_index() == 0:
    try:
      from tqdm import tqdm
      bar = tqdm(total=limit, desc="bits/dim", unit="img", dynamic_ncols=True)
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
  v = np.concatenate(vals).astype(np.float64)
  return dict(bpd=float(v.mean()), bpd_sem=float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan"),
              num_images=int(len(v)))
