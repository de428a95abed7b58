"""The ``reconstruction`` evaluator of autoencoders (the VQGAN first stage, docs/vqgan.md).

    c.evals.recon = dict(type="reconstruction")                      # PSNR, SSIM, code usage
    c.evals.recon = dict(type="reconstruction", rfid=True, inception_weights="inception.npz")

Over the eval split (``limit`` images, 0: all; padded rows of the last batch, ``mask`` 0, are left out)
it reconstructs every image with the task's ``'reconstruct'`` function and reports

  psnr, psnr_std     mean and standard deviation over images of the per-image PSNR in dB
                     (``jaxgen.eval.reconstruction.psnr``, data range 2 for images in [−1, 1]; a perfect
                     reconstruction counts as 100 dB instead of +inf)
  ssim               mean per-image SSIM (Gaussian 11×11 window, σ 1.5, K1 0.01, K2 0.03: Wang et al. 2004)
  lpips              mean LPIPS(x, x̂) (VGG, ``jaxgen.models.lpips``) when an LPIPS file is given (the option
                     ``lpips_weights``, or the task's ``task.lpips_weights`` when the option is '')
  code_usage         share of the ``num_codes`` codes used at least once on the split; ``perplexity`` =
                     exp(entropy) of the code histogram (``jaxgen.vq``); ``num_codes``
  rfid               with ``rfid``: the Fréchet Inception distance between the reconstructions and the
                     originals of the split (TF-FID Inception, ``jaxgen.eval.fid``, weights
                     ``inception_weights``), as taming-transformers' reconstruction FIDs (the paper's
                     7.94 / 4.98 on the 50k ImageNet validation images); FID is biased upwards at small n
  num_images         images evaluated

Reconstruction grids (originals beside reconstructions) are the trainer's sample grids of the VQGAN task
(``jaxgen.tasks.vqgan.Task.sample``).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import vq
from jaxgen.errors import ConfigError
from jaxgen.eval.evaluators import register

__all__ = ["reconstruction", "image_metrics"]

_PSNR_CAP = 100.0


@functools.lru_cache(maxsize=4)
def _metrics_fn(data_range: float):
  from jaxgen.eval import reconstruction as rec  # noqa: PLC0415

  return jax.jit(lambda x, y: (jnp.minimum(rec.psnr(x, y, data_range), _PSNR_CAP),
                               rec.ssim(x, y, data_range)))


def image_metrics(x, y, data_range: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
  """Per-image (PSNR dB capped at 100, SSIM) of two batches [B, H, W, C] as float64 numpy arrays."""
  p, s = _metrics_fn(float(data_range))(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  return np.asarray(p, np.float64), np.asarray(s, np.float64)


@functools.lru_cache(maxsize=2)
def _lpips_fn(path: str):
  from jaxgen.models import lpips as lpips_lib  # noqa: PLC0415

  variables = lpips_lib.load_lpips(path)
  net = lpips_lib.LPIPS()
  fn = jax.jit(lambda v, x, y: net.apply(v, x, y).reshape(x.shape[0]))
  return lambda x, y: np.asarray(fn(variables, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)),
                                 np.float64)


def _three_channels(x):
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


@register("reconstruction", needs=("reconstruct", "data"), batches=True,
          bounds=dict(limit=dict(min=0), data_range=dict(above=0.0), inception_batch_size=dict(min=1)))
def reconstruction(fns, key, batches, *, limit: int = 0, data_range: float = 2.0, lpips_weights: str = "",
                   rfid: bool = False, inception_weights: str = "", inception_batch_size: int = 200) -> dict:
  """PSNR, SSIM, LPIPS, code usage and rFID of the task's reconstructions of the eval split."""
  del key
  facts = dict(fns.get("data") or {})
  lp_path = str(lpips_weights or facts.get("lpips_weights") or "")
  for opt, path, need in (("lpips_weights", lp_path, bool(lp_path)),
                          ("inception_weights", str(inception_weights), bool(rfid))):
    if need and not os.path.exists(path):
      tail = " or set rfid=False." if opt == "inception_weights" else "."
      raise ConfigError(f"config.evals.<name>.{opt}={path!r} does not exist: pass "
                        f"--config.evals.<name>.{opt}=<path>{tail}")
  lpips = _lpips_fn(lp_path) if lp_path else None
  extractor = None
  if rfid:
    from jaxgen.eval import fid as fid_lib  # noqa: PLC0415
    extractor = fid_lib.cached_extractor(str(inception_weights), int(inception_batch_size))
  num_codes = int(facts.get("num_codes", 0) or 0)
  psnrs, ssims, lps, feats_x, feats_y = [], [], [], [], []
  counts = np.zeros((max(num_codes, 1),), np.int64)
  n = 0
  for batch in batches:
    out = fns["reconstruct"](batch)
    x = np.asarray(batch["image"], np.float32)
    y = np.asarray(jax.device_get(out["image"]), np.float32)
    keep = np.asarray(batch["mask"]) > 0 if "mask" in batch else np.ones((x.shape[0],), bool)
    if limit:
      keep &= np.cumsum(keep) <= limit - n
    if not keep.any():
      if limit and n >= limit:
        break
      continue
    p, s = image_metrics(x, y, data_range)
    psnrs.append(p[keep])
    ssims.append(s[keep])
    if lpips is not None:
      lps.append(lpips(_three_channels(x), _three_channels(y))[keep])
    if "indices" in out:
      idx = np.asarray(jax.device_get(out["indices"]))[keep].reshape(-1)
      if idx.size and idx.max() >= counts.shape[0]:
        counts = np.pad(counts, (0, int(idx.max()) + 1 - counts.shape[0]))
      counts += np.bincount(idx, minlength=counts.shape[0])[:counts.shape[0]]
    if extractor is not None:
      feats_x.append(extractor(_three_channels(x[keep]))[0])
      feats_y.append(extractor(_three_channels(y[keep]))[0])
    n += int(keep.sum())
    if limit and n >= limit:
      break
  if not n:
    return {}
  p, s = np.concatenate(psnrs), np.concatenate(ssims)
  res = dict(psnr=float(p.mean()), psnr_std=float(p.std()), ssim=float(s.mean()), num_images=float(n))
  if lps:
    res["lpips"] = float(np.concatenate(lps).mean())
  if counts.sum():   # counts has max(num_codes, largest index + 1) entries
    res.update(code_usage=float(vq.usage_fraction(counts)), num_codes=float(counts.shape[0]),
               perplexity=float(vq.perplexity(counts)))
  if extractor is not None:
    from jaxgen.eval import fid as fid_lib  # noqa: PLC0415
    fx, fy = np.concatenate(feats_x), np.concatenate(feats_y)
    if fx.shape[0] < 2:
      raise ConfigError("rfid needs at least 2 eval images: raise data.eval_size or the evaluator's limit.")
    res["rfid"] = float(fid_lib.fid_from_features(fy, fx))
  return res
