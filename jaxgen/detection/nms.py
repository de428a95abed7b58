"""Non-maximum suppression with static shapes: greedy NMS, per-class NMS and Soft-NMS.

Greedy NMS (as in Faster R-CNN): visit boxes in descending score order; keep a box unless it overlaps an
already kept box by IoU > ``iou_threshold``. Here it runs as a ``lax.fori_loop`` of ``max_output`` steps,
each picking the best remaining box and suppressing what it overlaps: memory O(N) (no N×N IoU matrix) and
``max_output`` sequential steps, which is exact because NMS only ever needs the first ``max_output`` kept
boxes. Ties in score keep the lower original index first (a stable sort).

Outputs are padded: ``keep_idx [max_output]`` int32 indices into the input (0 where unused) and
``valid [max_output]`` bool. Gather with ``boxes[keep_idx]`` and mask with ``valid``.

``batched_nms`` runs NMS independently per class with the offset trick: each class's boxes are shifted
by ``class · (max coordinate + 1)`` so that boxes of different classes never overlap; greedy NMS on the
union then equals the union of per-class NMS results, kept in descending score order.

``soft_nms`` (Bodla et al. 2017) decays scores instead of discarding boxes: linear ``s·(1 − IoU)`` when
IoU > ``iou_threshold``, or Gaussian ``s·exp(−IoU²/σ)``; boxes whose decayed score falls to
``score_threshold`` or below are dropped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.detection.boxes import elementwise_iou


def _row_iou(box, boxes):
  return elementwise_iou(box[None, :], boxes)


def nms(boxes, scores, iou_threshold, max_output, *, score_threshold=-jnp.inf, valid=None):
  """Greedy NMS of ``boxes [N, 4]`` with ``scores [N]``.

  Boxes with ``score <= score_threshold``, non-finite scores or coordinates, or ``valid == False`` are
  never kept.
  Returns ``(keep_idx [max_output] int32, valid [max_output] bool)``, kept boxes in descending score order.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  scores = jnp.asarray(scores, jnp.float32)
  n = boxes.shape[0]
  max_output = int(max_output)
  if n == 0:
    return jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), bool)
  order = jnp.argsort(-scores, stable=True)
  sboxes = boxes[order]
  sscores = scores[order]
  alive = jnp.isfinite(sscores) & (sscores > score_threshold) & jnp.all(jnp.isfinite(sboxes), axis=-1)
  if valid is not None:
    alive &= jnp.asarray(valid, bool)[order]

  def body(i, carry):
    alive, keep, kept = carry
    j = jnp.argmax(alive)  # the first alive box in score order
    found = alive[j]
    overlap = _row_iou(sboxes[j], sboxes) > iou_threshold
    new_alive = alive & ~overlap
    new_alive = new_alive.at[j].set(False)
    alive = jnp.where(found, new_alive, alive)
    keep = keep.at[i].set(jnp.where(found, j, 0))
    kept = kept.at[i].set(found)
    return alive, keep, kept

  init = (alive, jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), bool))
  _, keep, kept = jax.lax.fori_loop(0, max_output, body, init)
  return jnp.where(kept, order[keep], 0).astype(jnp.int32), kept


def _offset_boxes(boxes, classes):
  boxes = jnp.asarray(boxes, jnp.float32)
  # finite coordinates only: one NaN box must not turn every shifted box into NaN
  span = jnp.max(jnp.where(jnp.isfinite(boxes), jnp.abs(boxes), 0.0)) * 2.0 + 1.0 if boxes.size else 1.0
  return boxes + (jnp.asarray(classes, jnp.float32) * span)[:, None]


def batched_nms(boxes, scores, classes, iou_threshold, max_output, *, score_threshold=-jnp.inf,
                valid=None):
  """Per-class greedy NMS of ``boxes [N, 4]``, ``scores [N]``, integer ``classes [N]``.

  Returns ``(keep_idx [max_output], valid [max_output])`` like ``nms``: the best ``max_output`` boxes that
  survive NMS within their own class, in descending score order.
  """
  return nms(_offset_boxes(boxes, classes), scores, iou_threshold, max_output,
             score_threshold=score_threshold, valid=valid)


def soft_nms(boxes, scores, max_output, *, method="gaussian", sigma=0.5, iou_threshold=0.3,
             score_threshold=1e-3, valid=None, classes=None):
  """Soft-NMS of ``boxes [N, 4]``, ``scores [N]``; per class when ``classes [N]`` is given.

  ``method``: ``'gaussian'`` (decay ``exp(−IoU²/sigma)``) or ``'linear'`` (decay ``1 − IoU`` above
  ``iou_threshold``). Returns ``(keep_idx [max_output] int32, new_scores [max_output], valid
  [max_output] bool)`` in the order boxes were selected (each step takes the highest decayed score).
  """
  if method not in ("gaussian", "linear"):
    raise ValueError(f"soft_nms method must be 'gaussian' or 'linear', got {method!r}")
  boxes = jnp.asarray(boxes, jnp.float32)
  if classes is not None:
    boxes = _offset_boxes(boxes, classes)
  scores = jnp.asarray(scores, jnp.float32)
  max_output = int(max_output)
  alive = jnp.isfinite(scores) & (scores > score_threshold) & jnp.all(jnp.isfinite(boxes), axis=-1)
  if valid is not None:
    alive &= jnp.asarray(valid, bool)
  current = jnp.where(alive, scores, -jnp.inf)

  def body(i, carry):
    current, keep, out_scores, kept = carry
    j = jnp.argmax(current)
    s = current[j]
    found = s > score_threshold
    ov = _row_iou(boxes[j], boxes)
    if method == "gaussian":
      decay = jnp.exp(-(ov * ov) / sigma)
    else:
      decay = jnp.where(ov > iou_threshold, 1.0 - ov, 1.0)
    new = current * decay
    new = jnp.where(new > score_threshold, new, -jnp.inf).at[j].set(-jnp.inf)
    current = jnp.where(found, new, current)
    keep = keep.at[i].set(jnp.where(found, j, 0))
    out_scores = out_scores.at[i].set(jnp.where(found, s, 0.0))
    kept = kept.at[i].set(found)
    return current, keep, out_scores, kept

  init = (current, jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), jnp.float32),
          jnp.zeros((max_output,), bool))
  _, keep, out_scores, kept = jax.lax.fori_loop(0, max_output, body, init)
  return keep.astype(jnp.int32), out_scores, kept
