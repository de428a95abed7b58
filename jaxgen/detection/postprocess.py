"""From network outputs to boxes: RPN proposals and final per-class detections (static shapes, one image).

``proposals``: take the ``pre_nms`` anchors with the highest objectness, apply their deltas
(``boxes.decode``, RPN weights (1, 1, 1, 1)), clip to the image, drop boxes smaller than ``min_size``,
NMS at ``nms_iou`` (0.7), keep ``post_nms`` (ThunderNet: 200 at test, docs/reference.md §5).

``detections``: softmax over the ``C + 1`` class logits (background at column 0), decode each RoI's box
deltas (class-agnostic ``[R, 4]`` or per class ``[R, C + 1, 4]``; R-CNN weights (10, 10, 5, 5)), clip,
keep (RoI, class) pairs scoring above ``score_threshold``, per-class NMS at ``nms_iou`` (or Soft-NMS), and
return the best ``max_detections`` as the task vocabulary's ``'detect'`` dict: ``boxes [D, 4]`` xyxy
pixels, ``scores [D]``, ``classes [D]`` int32 (0-based, background removed), ``mask [D]`` bool.

Batch with ``jax.vmap`` (``image_hw`` may be per image: ``[B, 2]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.detection import boxes as box_ops
from jaxgen.detection import nms as nms_ops


def proposals(rpn_logits, rpn_deltas, anchors, image_hw, *, pre_nms=6000, post_nms=200, nms_iou=0.7,
              min_size=0.0, weights=(1.0, 1.0, 1.0, 1.0), valid=None):
  """RPN proposals of one image: ``rpn_logits [A]`` (objectness logits), ``rpn_deltas [A, 4]``, ``anchors
  [A, 4]``. Returns ``(boxes [post_nms, 4], scores [post_nms] (sigmoid), valid [post_nms] bool)``.
  """
  rpn_logits = jnp.asarray(rpn_logits, jnp.float32)
  num = rpn_logits.shape[0]
  k = min(int(pre_nms), num)
  logits = rpn_logits if valid is None else jnp.where(jnp.asarray(valid, bool), rpn_logits, -jnp.inf)
  top, idx = jax.lax.top_k(logits, k)
  cand = box_ops.decode(jnp.asarray(rpn_deltas)[idx], jnp.asarray(anchors)[idx], weights)
  cand = box_ops.clip(cand, image_hw)
  w = cand[:, 2] - cand[:, 0]
  h = cand[:, 3] - cand[:, 1]
  ok = (w > 0) & (h > 0) & (w >= min_size) & (h >= min_size) & jnp.isfinite(top)
  keep, kept = nms_ops.nms(cand, top, nms_iou, post_nms, valid=ok)
  out_boxes = jnp.where(kept[:, None], cand[keep], 0.0)
  out_scores = jnp.where(kept, jax.nn.sigmoid(top[keep]), 0.0)
  return out_boxes, out_scores, kept


def detections(cls_logits, box_deltas, rois, image_hw, *, roi_valid=None, score_threshold=0.05,
               nms_iou=0.5, max_detections=100, soft_nms=False, soft_nms_sigma=0.5,
               weights=(10.0, 10.0, 5.0, 5.0), pre_nms=None):
  """Final detections of one image from ``cls_logits [R, C+1]``, ``box_deltas`` and ``rois [R, 4]``.

  ``soft_nms``: False (greedy per-class NMS), True or ``'gaussian'`` (Gaussian Soft-NMS, σ
  ``soft_nms_sigma``) or ``'linear'`` (linear Soft-NMS above ``nms_iou``); Soft-NMS drops boxes whose
  decayed score falls to ``score_threshold``. ``pre_nms``: if set, only the ``pre_nms`` best-scoring
  (RoI, class) pairs enter NMS (faster with many classes, e.g. 200 RoIs × 80 COCO classes; exact unless
  more than ``pre_nms − max_detections`` of them are suppressed). Returns the ``'detect'`` dict (module
  docstring).
  """
  cls_logits = jnp.asarray(cls_logits, jnp.float32)
  rois = jnp.asarray(rois, jnp.float32)
  num_rois, num_cols = cls_logits.shape
  num_classes = num_cols - 1
  probs = jax.nn.softmax(cls_logits, axis=-1)[:, 1:]  # [R, C]
  box_deltas = jnp.asarray(box_deltas, jnp.float32)
  if box_deltas.ndim == 2:
    box_deltas = jnp.broadcast_to(box_deltas[:, None, :], (num_rois, num_classes, 4))
  else:
    box_deltas = box_deltas.reshape(num_rois, num_cols, 4)[:, 1:]
  cand = box_ops.decode(box_deltas, jnp.broadcast_to(rois[:, None, :], box_deltas.shape), weights)
  cand = box_ops.clip(cand, image_hw).reshape(-1, 4)
  scores = probs.reshape(-1)
  classes = jnp.broadcast_to(jnp.arange(num_classes, dtype=jnp.int32)[None, :], probs.shape).reshape(-1)
  ok = (cand[:, 2] > cand[:, 0]) & (cand[:, 3] > cand[:, 1])
  if roi_valid is not None:
    ok &= jnp.repeat(jnp.asarray(roi_valid, bool), num_classes)
  if pre_nms is not None and int(pre_nms) < scores.shape[0]:
    _, top = jax.lax.top_k(jnp.where(ok, scores, -jnp.inf), int(pre_nms))
    cand, scores, classes, ok = cand[top], scores[top], classes[top], ok[top]
  if soft_nms:
    method = "linear" if soft_nms == "linear" else "gaussian"
    keep, out_scores, kept = nms_ops.soft_nms(
        cand, scores, max_detections, method=method, sigma=soft_nms_sigma, iou_threshold=nms_iou,
        score_threshold=score_threshold, valid=ok, classes=classes)
  else:
    keep, kept = nms_ops.batched_nms(cand, scores, classes, nms_iou, max_detections,
                                     score_threshold=score_threshold, valid=ok)
    out_scores = scores[keep]
  return dict(boxes=jnp.where(kept[:, None], cand[keep], 0.0),
              scores=jnp.where(kept, out_scores, 0.0),
              classes=jnp.where(kept, classes[keep], 0).astype(jnp.int32),
              mask=kept)
