"""Training targets of the two stages of a Faster R-CNN-style detector (Ren et al. 2015), static shapes.

Ground truth is padded: ``gt_boxes [G, 4]`` (xyxy pixels), ``gt_classes [G]`` (contiguous 0-based
labels), ``gt_mask [G]`` bool (False rows are padding). One image per call; ``jax.vmap`` over a batch
(``key`` per image).

RPN (``rpn_targets``): an anchor is positive if its best IoU with a ground-truth box is ≥ ``pos_iou``
(0.7) or it is (one of) the anchor(s) with the highest IoU for some ground-truth box (IoU > 0); negative
if it is not positive and its best IoU is < ``neg_iou`` (0.3); the rest are ignored. A minibatch of
``num_samples`` (256) anchors is drawn uniformly at random, at most ``pos_fraction`` (½) positives, filled
with negatives. Returns ``labels [A]`` (1 positive, 0 negative, −1 not sampled), ``box_targets [A, 4]``
(``boxes.encode`` of the matched box, zero off the positives) and ``weights [A]`` (1.0 on sampled
positives: the box-regression weight).

R-CNN (``rcnn_targets``): the ground-truth boxes are appended to the proposals (as in Faster R-CNN, so the
head sees perfect RoIs early in training). A candidate is foreground if its best IoU ≥ ``fg_iou`` (0.5),
background if ``bg_iou[0] ≤ IoU < bg_iou[1]``. ``num_samples`` RoIs are drawn with at most
``pos_fraction`` (¼) foreground. Returns ``rois [S, 4]`` (foreground first, then background),
``labels [S]`` (class + 1 for foreground, 0 for background: the head's logits have ``num_classes + 1``
columns with background at 0), ``box_targets [S, 4]`` (encoded with ``weights``, default (10, 10, 5, 5);
zero off the foreground) and ``valid [S]`` (False where fewer than S candidates qualified).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.detection import boxes as box_ops
from jaxgen.errors import ConfigError


def _subsample(mask, count, key):
  """Uniformly random subset of at most ``count`` (traced int) of the True entries of ``mask``."""
  priority = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
  # keep the `count` highest priorities: one sort, then a threshold (ties have probability 0)
  ordered = jnp.sort(priority)[::-1]
  count = jnp.clip(jnp.asarray(count, jnp.int32), 0, mask.shape[0])
  threshold = jnp.where(count > 0, ordered[jnp.maximum(count - 1, 0)], jnp.inf)
  return mask & (priority >= threshold)


def _match(candidates, gt_boxes, gt_mask):
  """IoU ``[N, G]`` with padding columns set to 0, best IoU ``[N]`` and the matched box index ``[N]``."""
  ious = box_ops.iou(candidates, gt_boxes)
  ious = jnp.where(jnp.asarray(gt_mask, bool)[None, :], ious, 0.0)
  return ious, ious.max(axis=1), ious.argmax(axis=1)


def rpn_targets(anchors, gt_boxes, gt_mask, key, *, num_samples=256, pos_fraction=0.5, pos_iou=0.7,
                neg_iou=0.3, valid=None, weights=(1.0, 1.0, 1.0, 1.0)):
  """RPN labels and box targets for ``anchors [A, 4]``; ``valid [A]`` excludes anchors (e.g. off-image).

  Returns ``(labels [A] int32 in {1, 0, -1}, box_targets [A, 4], weights [A] float32)``.
  """
  anchors = jnp.asarray(anchors, jnp.float32)
  gt_boxes = jnp.asarray(gt_boxes, jnp.float32)
  gt_mask = jnp.asarray(gt_mask, bool)
  num = anchors.shape[0]
  ok = jnp.ones((num,), bool) if valid is None else jnp.asarray(valid, bool)
  if gt_boxes.shape[0] == 0:
    gt_boxes, gt_mask = jnp.zeros((1, 4), jnp.float32), jnp.zeros((1,), bool)
  ious, best, matched = _match(anchors, gt_boxes, gt_mask)
  ious = jnp.where(ok[:, None], ious, 0.0)
  best_for_gt = ious.max(axis=0)  # [G]
  low_quality = jnp.any((ious == best_for_gt[None, :]) & (best_for_gt > 0)[None, :] & gt_mask[None, :],
                        axis=1)
  pos = ok & ((best >= pos_iou) | low_quality)
  neg = ok & ~pos & (best < neg_iou)
  kpos, kneg = jax.random.split(key)
  pos = _subsample(pos, jnp.floor(num_samples * pos_fraction), kpos)  # may be traced
  neg = _subsample(neg, num_samples - pos.sum(), kneg)
  labels = jnp.where(pos, 1, jnp.where(neg, 0, -1)).astype(jnp.int32)
  targets = box_ops.encode(gt_boxes[matched], anchors, weights)
  targets = jnp.where(pos[:, None], targets, 0.0)
  return labels, targets, pos.astype(jnp.float32)


def rcnn_targets(proposals, gt_boxes, gt_classes, gt_mask, key, *, num_samples=128, pos_fraction=0.25,
                 fg_iou=0.5, bg_iou=(0.0, 0.5), proposal_valid=None, weights=(10.0, 10.0, 5.0, 5.0)):
  """Sample ``num_samples`` RoIs from ``proposals [P, 4]`` + the ground truth and label them.

  Returns ``(rois [S, 4], labels [S] int32, box_targets [S, 4], valid [S] bool)``; S = ``num_samples``,
  which must not exceed P + G.
  """
  proposals = jnp.asarray(proposals, jnp.float32)
  gt_boxes = jnp.asarray(gt_boxes, jnp.float32)
  gt_mask = jnp.asarray(gt_mask, bool)
  gt_classes = jnp.asarray(gt_classes, jnp.int32)
  num_p = proposals.shape[0]
  if gt_boxes.shape[0] == 0:
    gt_boxes, gt_mask = jnp.zeros((1, 4), jnp.float32), jnp.zeros((1,), bool)
    gt_classes = jnp.zeros((1,), jnp.int32)
  if num_samples > num_p + gt_boxes.shape[0]:
    raise ConfigError(f"rcnn_targets: num_samples={num_samples} exceeds the {num_p} proposals + "
                      f"{gt_boxes.shape[0]} ground-truth slots; lower the number of sampled RoIs.")
  pvalid = jnp.ones((num_p,), bool) if proposal_valid is None else jnp.asarray(proposal_valid, bool)
  cands = jnp.concatenate([proposals, gt_boxes], axis=0)
  cvalid = jnp.concatenate([pvalid, gt_mask], axis=0)
  _, best, matched = _match(cands, gt_boxes, gt_mask)
  fg = cvalid & (best >= fg_iou)
  bg = cvalid & ~fg & (best >= bg_iou[0]) & (best < bg_iou[1])
  kfg, kbg = jax.random.split(key)
  fg = _subsample(fg, int(round(num_samples * pos_fraction)), kfg)
  bg = _subsample(bg, num_samples - fg.sum(), kbg)
  priority = jnp.where(fg, 2.0, jnp.where(bg, 1.0, 0.0))
  _, idx = jax.lax.top_k(priority, num_samples)
  valid = (fg | bg)[idx]
  is_fg = fg[idx]
  rois = cands[idx]
  gt_idx = matched[idx]
  labels = jnp.where(is_fg, gt_classes[gt_idx] + 1, 0).astype(jnp.int32)
  targets = box_ops.encode(gt_boxes[gt_idx], rois, weights)
  targets = jnp.where(is_fg[:, None], targets, 0.0)
  return rois, labels, targets, valid
