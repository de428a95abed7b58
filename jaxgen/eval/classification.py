"""Classification accuracy: top-k over masked evaluation batches.

``topk_correct(logits, labels, k)`` is 1 where the label is among the k largest logits. Ties are
broken as ``jax.lax.top_k`` does (lower index first), so a constant logit vector counts as correct
for labels < k only. ``evaluate_classifier`` streams eval batches (dicts with 'image', 'label' and
the padding 'mask' of the last batch) through a compiled ``logits_fn(*args, images)`` and returns
``{'top1', 'top5', 'loss', 'count'}`` (accuracies in [0, 1], mean cross-entropy without smoothing).
The ``accuracy`` evaluator of ``config.evals`` (``jaxgen.eval.evaluators``) runs it on a task's
``'predict'`` function.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """float32 [B]: 1 if ``labels[i]`` is among the ``k`` largest ``logits[i]``."""
  k = min(int(k), logits.shape[-1])
  _, idx = jax.lax.top_k(logits, k)
  return jnp.any(idx == labels[:, None], axis=-1).astype(jnp.float32)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy against (1 − ε)·onehot + ε/K (Szegedy et al. 2016), float32."""
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  target = jax.nn.one_hot(labels, num_classes) * (1.0 - label_smoothing) + label_smoothing / num_classes
  return -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array, ks: Sequence[int] = (1, 5)) -> dict:
  """Masked sums of the top-k hits and of the cross-entropy of one batch (jit-able)."""
  mask = mask.astype(jnp.float32)
  out = {f"top{k}": jnp.sum(topk_correct(logits, labels, k) * mask) for k in ks}
  out["loss"] = jnp.sum(cross_entropy(logits, labels) * mask)
  out["count"] = jnp.sum(mask)
  return out


def make_sums_fn(logits_fn: Callable[..., jax.Array], ks: Sequence[int] = (1, 5)) -> Callable:
  """Compiled ``(args, images, labels, mask) -> batch_sums(logits_fn(*args, images), ...)``; build it
  once and reuse it across evaluations (params are arguments, not baked-in constants)."""
  return jax.jit(lambda args, images, labels, mask: batch_sums(logits_fn(*args, images), labels, mask, ks))


def evaluate_classifier(logits_fn: Callable[..., jax.Array], batches: Iterable[dict],
                        ks: Sequence[int] = (1, 5), args: tuple = (), sums_fn: Callable | None = None
                        ) -> dict[str, float]:
  """Top-k accuracies and mean loss of ``logits_fn(*args, images)`` over all (unmasked) eval examples.

  Sums are accumulated per process in float64 on the host and, with several processes, added over
  processes, so every process returns the global numbers. ``sums_fn``: a ``make_sums_fn`` result to
  reuse (otherwise one is compiled for this call).
  """
  sums_fn = sums_fn or make_sums_fn(logits_fn, ks)
  totals: dict[str, float] = {}
  for b in batches:
    labels = np.asarray(b["label"])
    mask = np.asarray(b["mask"]) if "mask" in b else np.ones(labels.shape, np.float32)
    s = jax.device_get(sums_fn(args, b["image"], labels, mask))
    for key, v in s.items():
      totals[key] = totals.get(key, 0.0) + float(v)
  if not totals:
    raise ConfigError("classification evaluation got no batches: set --config.data.eval_split (e.g. 'test').")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    keys = sorted(totals)
    summed = multihost_utils.process_allgather(np.array([totals[k] for k in keys])).sum(axis=0)
    totals = dict(zip(keys, map(float, summed)))
  n = max(totals["count"], 1.0)
  out = {f"top{k}": totals[f"top{k}"] / n for k in ks}
  out["loss"] = totals["loss"] / n
  out["count"] = totals["count"]
  return out
