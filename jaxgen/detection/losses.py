"""Detection losses: smooth L1, masked means and the classification terms of the RPN and the R-CNN head.

Faster R-CNN's multi-task loss (Ren et al. 2015, eq. 1) for each stage is a classification term over the
sampled anchors/RoIs plus a box-regression term over the positives only. The masked means here divide by
the number of sampled items (at least 1), so padding never changes a loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smooth_l1(x, beta=1.0):
  """Elementwise Huber-style smooth L1: ``0.5·x²/β`` for ``|x| < β``, else ``|x| − 0.5·β``; β=0 gives |x|."""
  x = jnp.asarray(x)
  ax = jnp.abs(x)
  if beta <= 0:
    return ax
  return jnp.where(ax < beta, 0.5 * x * x / beta, ax - 0.5 * beta)


def masked_sum(values, mask):
  """Sum of ``values`` where ``mask`` (broadcast against ``values``) is True or weighted by it."""
  values = jnp.asarray(values)
  return jnp.sum(values * jnp.broadcast_to(jnp.asarray(mask, values.dtype), values.shape))


def masked_mean(values, mask, *, normalizer=None):
  """``masked_sum(values, mask) / max(normalizer, 1)``; the normalizer defaults to ``sum(mask)``."""
  if normalizer is None:
    normalizer = jnp.sum(jnp.asarray(mask, jnp.float32))
  return masked_sum(values, mask) / jnp.maximum(normalizer, 1.0)


def sigmoid_cross_entropy(logits, labels):
  """Elementwise binary cross-entropy with logits (stable); ``labels`` in {0, 1}."""
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  return jnp.maximum(logits, 0.0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def softmax_cross_entropy(logits, labels):
  """``[..., C]`` logits, integer ``[...]`` labels -> ``[...]`` cross-entropy (labels clipped into range)."""
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.clip(jnp.asarray(labels, jnp.int32), 0, logits.shape[-1] - 1)
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def rpn_loss(logits, deltas, labels, box_targets, box_weights, *, beta=1.0 / 9):
  """The RPN's two terms for one image or a batch: ``(objectness, box)``.

  ``logits [..., A]`` (objectness logit, sigmoid), ``deltas [..., A, 4]``; ``labels`` in {1, 0, −1} (−1
  ignored), ``box_targets``/``box_weights`` from ``targets.rpn_targets``. Both terms are averaged over the
  sampled anchors (Detectron's normalization); β = 1/9 is py-faster-rcnn's RPN smooth-L1 σ = 3.
  """
  sampled = labels >= 0
  cls = masked_mean(sigmoid_cross_entropy(logits, labels == 1), sampled)
  box = masked_sum(smooth_l1(deltas - box_targets, beta).sum(-1), box_weights)
  return cls, box / jnp.maximum(jnp.sum(sampled.astype(jnp.float32)), 1.0)


def rcnn_loss(cls_logits, box_deltas, labels, box_targets, valid, *, beta=1.0):
  """The R-CNN head's two terms: ``(classification, box)``.

  ``cls_logits [..., S, C+1]`` (background at 0), ``box_deltas [..., S, 4]`` (class-agnostic) or
  ``[..., S, C+1, 4]`` (per class: the labelled class's row is used), ``labels [..., S]`` and
  ``box_targets``, ``valid`` from ``targets.rcnn_targets``. Both terms are averaged over the valid RoIs.
  """
  labels = jnp.asarray(labels, jnp.int32)
  if box_deltas.ndim == labels.ndim + 2:
    box_deltas = jnp.take_along_axis(box_deltas, labels[..., None, None], axis=-2)[..., 0, :]
  cls = masked_mean(softmax_cross_entropy(cls_logits, labels), valid)
  fg = jnp.asarray(valid, bool) & (labels > 0)
  box = masked_sum(smooth_l1(box_deltas - box_targets, beta).sum(-1), fg)
  return cls, box / jnp.maximum(jnp.sum(jnp.asarray(valid, jnp.float32)), 1.0)
