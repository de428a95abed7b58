"""FID, Inception Score and KID with the TF-FID Inception-v3, and the 50k-sample protocol.

    ext = InceptionFeatures("inception_fid.npz")          # weights: jaxgen.convert.inception
    pool3, logits = ext(images)                           # images [N, H, W, 3] in [−1, 1] or uint8
    save_stats("cifar10_train.npz", *gaussian_stats(pool3))
    result = evaluate_protocol(sample_fn, "cifar10_train.npz", ext)   # 3 × 50k, min FID (EDM)

Formulas (features f = pool3, 2048-d; p(y|x) = softmax over the graph's 1008 logits):
- FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{½})  (``jaxgen.eval.frechet``, float64; Heusel et al. 2017).
- IS = exp(E_x KL(p(y|x) ‖ p(y))), averaged over 10 splits (Salimans et al. 2016); uniform p(y|x) gives 1.
- KID = unbiased MMD² with k(x, y) = (xᵀy/d + 1)³, averaged over random subsets (Bińkowski et al. 2018):
  per subset of size m, Σ_{i≠j}[k(x_i,x_j) + k(y_i,y_j)]/(m(m−1)) − 2Σ_{i,j}k(x_i,y_j)/m².

Images are quantised like saved PNGs before Inception (EDM ``generate.py``: uint8 = clip(127.5x + 128)),
then resized to 299² as the TF graph does (``inception_v3.preprocess``).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.eval.frechet import frechet_distance, gaussian_stats

__all__ = ["InceptionFeatures", "quantize", "fid_from_features", "fid_from_stats", "inception_score", "kid",
           "save_stats", "load_stats", "reference_stats", "features_from_batches", "evaluate_samples",
           "evaluate_protocol", "compute_fid", "cached_extractor", "gaussian_stats"]


def quantize(images) -> jax.Array:
  """Float images in [−1, 1] → uint8 as EDM saves them: clip(127.5 x + 128, 0, 255) truncated."""
  x = jnp.asarray(images)
  if x.dtype == jnp.uint8:
    return x
  return jnp.clip(x.astype(jnp.float32) * 127.5 + 128, 0, 255).astype(jnp.uint8)


class InceptionFeatures:
  """Jitted pool3 + logits extraction, batch sharded over all devices (mesh axis 'data')."""

  def __init__(self, weights: str | dict | None, batch_size: int = 200, resize: str = "tf1",
               devices=None):
    from jaxgen.models import inception_v3 as iv3

    self.variables = weights if isinstance(weights, dict) else iv3.load_variables(weights or "")
    self.devices = list(devices or jax.devices())
    nd = len(self.devices)
    self.batch_size = max(nd, batch_size // nd * nd)
    mesh = jax.sharding.Mesh(np.asarray(self.devices), ("data",))
    self._data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    self.variables = jax.device_put(self.variables, repl)
    net = iv3.InceptionV3()

    def fn(variables, images):
      out = net.apply(variables, iv3.preprocess(images, 299, resize))
      return out["pool3"], out["logits"]

    self._fn = jax.jit(fn, in_shardings=(repl, self._data), out_shardings=(self._data, self._data))

  def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
    """images [N, H, W, C] → (pool3 [N, 2048], logits [N, 1008]) as float32 numpy arrays."""
    images = np.asarray(quantize(images))
    n = images.shape[0]
    pools, logits = [], []
    for i in range(0, n, self.batch_size):
      chunk = images[i:i + self.batch_size]
      k = chunk.shape[0]
      pad = -k % len(self.devices)
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)], 0)
      p, l = self._fn(self.variables, jax.device_put(chunk, self._data))
      pools.append(np.asarray(p)[:k])
      logits.append(np.asarray(l)[:k])
    return np.concatenate(pools), np.concatenate(logits)


# ------------------------------------------------------------------------------------------------
# Metrics on features.


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
  return frechet_distance(mu1, sigma1, mu2, sigma2)


def fid_from_features(f1, f2) -> float:
  return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
  """(mean, std) over ``splits`` equal parts of exp(mean_x KL(p(y|x) ‖ p(y))), in float64."""
  logits = np.asarray(logits, np.float64)
  if logits.shape[0] < splits:
    raise ValueError(f"inception_score needs at least {splits} samples, got {logits.shape[0]}.")
  logp = logits - logits.max(1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
  scores = []
  for part in np.array_split(logp, splits):
    p = np.exp(part)
    py = p.mean(0)
    log_py = np.log(np.where(py > 0, py, 1.0))
    kl = np.where(p > 0, p * (part - log_py), 0.0).sum(1).mean()   # 0·log 0 = 0
    scores.append(np.exp(kl))
  return float(np.mean(scores)), float(np.std(scores))


def kid(f1, f2, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """(mean, std) of the unbiased MMD² (cubic polynomial kernel) over random subsets, float64."""
  x_all, y_all = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  d = x_all.shape[1]
  m = min(x_all.shape[0], y_all.shape[0], subset_size)
  if m < 2:
    raise ValueError("KID needs at least 2 samples in each feature set.")
  rng = np.random.default_rng(seed)
  vals = []
  for _ in range(num_subsets):
    x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
    y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    vals.append(within - 2 * kxy.sum() / (m * m))
  return float(np.mean(vals)), float(np.std(vals))


# ------------------------------------------------------------------------------------------------
# Reference statistics.


def save_stats(path: str, mu, sigma, num_images: int | None = None, features=None) -> None:
  """Writes ``mu``, ``sigma`` (float64) [and ``features`` float32, for KID] to an .npz."""
  arrays = dict(mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
  if num_images is not None:
    arrays["num_images"] = np.asarray(num_images, np.int64)
  if features is not None:
    arrays["features"] = np.asarray(features, np.float32)
  np.savez(path, **arrays)


def load_stats(path: str) -> dict:
  import os

  if not path or not os.path.exists(path):
    raise FileNotFoundError(f"FID reference statistics {path!r} not found: compute them with "
                            "`python -m jaxgen.eval.fid --data cifar10 --split train --weights W.npz --out REF.npz`.")
  with np.load(path) as f:
    out = {k: f[k] for k in f.files}
  if "mu" not in out or "sigma" not in out:
    raise ConfigError(f"{path} has no 'mu'/'sigma' arrays; it is not a jaxgen.eval.fid statistics file: "
                      "make one with `python -m jaxgen.eval.fid --data ... --out REF.npz`.")
  return out


def features_from_batches(batches: Iterable[dict], extractor: InceptionFeatures, limit: int | None = None,
                          progress: bool = True) -> np.ndarray:
  """pool3 features of the ``'image'`` of every batch (rows with ``'mask'`` 0 dropped), up to ``limit``."""
  feats, n = [], 0
  bar = _progress(limit, "reference features", progress)
  for batch in batches:
    img = np.asarray(batch["image"])
    if "mask" in batch:
      img = img[np.asarray(batch["mask"]) > 0]
    if limit is not None:
      img = img[:limit - n]
    if img.shape[0] == 0:
      continue
    f, _ = extractor(img)
    feats.append(f)
    n += f.shape[0]
    bar.update(f.shape[0])
    if limit is not None and n >= limit:
      break
  bar.close()
  if not feats:
    raise ConfigError("no images in the reference data: check data.eval_split / --split.")
  return np.concatenate(feats)


def reference_stats(data_cfg, extractor: InceptionFeatures, out_path: str, batch_size: int = 500,
                    limit: int | None = None, keep_features: bool = False) -> dict:
  """Statistics of ``data_cfg.eval_split`` (one pass, TFDS via ``jaxgen.data``), saved to ``out_path``."""
  from jaxgen import data as jdata

  feats = features_from_batches(jdata.eval_dataset(data_cfg, batch_size=batch_size), extractor, limit)
  mu, sigma = gaussian_stats(feats)
  save_stats(out_path, mu, sigma, feats.shape[0], feats if keep_features else None)
  return dict(mu=mu, sigma=sigma, num_images=feats.shape[0])


# ------------------------------------------------------------------------------------------------
# The sampling protocol.


def _progress(total, desc, enabled):
  """A tqdm bar on process 0 when ``enabled``; otherwise a disabled (no-op) one."""
  from tqdm import tqdm  # noqa: PLC0415

  return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True,
              disable=not enabled or jax.process_index() != 0)


def evaluate_samples(sample_fn: Callable, key, num_samples: int, extractor: InceptionFeatures, ref: dict,
                     batch_size: int = 500, progress: bool = True, kid_subsets: int = 100) -> dict:
  """Draws ``num_samples`` images with ``sample_fn(key, n, start_index)`` (in [−1, 1]) in batches and
  returns FID (and IS; KID when ``ref`` holds features) against ``ref`` (``load_stats`` output)."""
  feats, logits = [], []
  bar = _progress(num_samples, "FID samples", progress)
  for start in range(0, num_samples, batch_size):
    n = min(batch_size, num_samples - start)
    images = sample_fn(key, n, start)
    if images.shape[0] != n:
      raise ValueError(f"sample_fn returned {images.shape[0]} images for n={n}.")
    f, l = extractor(images)
    feats.append(f)
    logits.append(l)
    bar.update(n)
  bar.close()
  feats, logits = np.concatenate(feats), np.concatenate(logits)
  mu, sigma = gaussian_stats(feats)
  out = dict(fid=fid_from_stats(mu, sigma, ref["mu"], ref["sigma"]))
  if feats.shape[0] >= 10:
    out["is"], out["is_std"] = inception_score(logits)
  if "features" in ref and kid_subsets:
    out["kid"], out["kid_std"] = kid(feats, ref["features"], num_subsets=kid_subsets)
  return out


def evaluate_protocol(sample_fn: Callable, ref: str | dict, extractor: InceptionFeatures,
                      num_samples: int = 50000, seeds: tuple[int, ...] = (0, 1, 2), batch_size: int = 500,
                      progress: bool = True) -> dict:
  """EDM's protocol: FID of ``num_samples`` images for each of three seed sets; reports the minimum.

  Seed set s draws image i from ``sample_fn(jax.random.key(s), ·, start_index)``, so a set does not
  depend on ``batch_size`` or the device count. Returns ``fid`` (min), ``fid_mean``, ``fid_per_seed``
  and the IS (and KID) of the best set.
  """
  ref = load_stats(ref) if isinstance(ref, str) else ref
  runs = [evaluate_samples(sample_fn, jax.random.key(s), num_samples, extractor, ref, batch_size, progress)
          for s in seeds]
  fids = [r["fid"] for r in runs]
  best = runs[int(np.argmin(fids))]
  out = dict(best, fid=float(min(fids)), fid_mean=float(np.mean(fids)), fid_per_seed=fids)
  return out


@functools.lru_cache(maxsize=2)
def cached_extractor(weights: str, batch_size: int) -> InceptionFeatures:
  """One ``InceptionFeatures`` per (weights file, batch size), kept across evaluations of a run."""
  return InceptionFeatures(weights, batch_size=batch_size)


def compute_fid(sample_fn: Callable, num_samples: int, inception_weights: str, fid_ref: str, *, seed: int = 0,
                batch_size: int = 500, progress: bool = True) -> float:
  """FID of ``num_samples`` images from ``sample_fn(key, n, start_index)`` (one seed set, ``key(seed)``)
  against the reference statistics ``fid_ref``, with the Inception weights ``inception_weights``.

  (The trainer's evaluation is the ``fid`` evaluator of ``jaxgen.eval.evaluators``, configured in
  ``config.evals``; this is the same computation for scripts.)
  """
  ref = load_stats(fid_ref)
  if not inception_weights:
    raise FileNotFoundError("no Inception weights given: set inception_weights (config.evals.<name>."
                            "inception_weights) to an .npz made by `python -m jaxgen.convert.inception "
                            "pt_inception-2015-12-05-6726825d.pth out.npz`.")
  ext = cached_extractor(str(inception_weights), int(batch_size))
  return evaluate_samples(sample_fn, jax.random.key(int(seed)), num_samples, ext, ref, batch_size, progress,
                          kid_subsets=0)["fid"]


def main(argv=None) -> int:
  """``python -m jaxgen.eval.fid --data cifar10 --split train --weights W.npz --out REF.npz``."""
  import argparse

  from jaxgen.configs import base_config

  p = argparse.ArgumentParser(description="FID reference statistics of a data split.")
  p.add_argument("--data", required=True, help="a jaxgen.data name (cifar10, celeb_a, imagenet2012, image_folder...)")
  p.add_argument("--split", default="train")
  p.add_argument("--resolution", type=int, default=0)
  p.add_argument("--data-dir", default="")
  p.add_argument("--weights", required=True, help=".npz from jaxgen.convert.inception")
  p.add_argument("--out", required=True)
  p.add_argument("--limit", type=int, default=None)
  p.add_argument("--batch", type=int, default=500)
  p.add_argument("--keep-features", action="store_true", help="also store the features (needed for KID)")
  a = p.parse_args(argv)
  cfg = base_config().data
  cfg.name, cfg.eval_split, cfg.resolution, cfg.data_dir = a.data, a.split, a.resolution, a.data_dir
  ext = InceptionFeatures(a.weights, batch_size=a.batch)
  r = reference_stats(cfg, ext, a.out, a.batch, a.limit, a.keep_features)
  print(f"wrote statistics of {r['num_images']} images of {a.data}/{a.split} to {a.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
