"""Detection accuracy: PASCAL VOC average precision (both variants) and COCO AP through pycocotools.

Inputs are per image, NumPy-convertible, boxes xyxy in pixels: detections ``boxes [N, 4]``, ``scores
[N]``, ``classes [N]`` (contiguous 0-based labels), ground truth ``boxes [G, 4]``, ``classes [G]`` and,
for VOC, ``difficult [G]``. ``VocMeter`` / ``CocoMeter`` accumulate them image by image (``add``) or from
padded batches with masks (``add_batch``: the task vocabulary's ``'detect'`` dict), then ``result()``.

VOC (the devkit's ``VOCevaldet`` / py-faster-rcnn's ``voc_eval``): per class, all detections are ranked
by score; each is a true positive if its best-overlapping ground-truth box of that class in its image has
IoU > ``iou_threshold`` (0.5) and was not matched by a higher-scoring detection; matching a *difficult*
box makes it neither true nor false positive; every other detection is a false positive. Recall counts
only non-difficult boxes. AP is
- ``use_07_metric=True``: the VOC2007 11-point AP, the mean over t ∈ {0, 0.1, …, 1} of the highest
  precision at recall ≥ t (what ThunderNet's VOC07 test numbers 70.1/75.1/78.6 use);
- ``use_07_metric=False``: the VOC2010+ area under the monotone (right-to-left maximum) precision envelope.
mAP is the mean over classes that have at least one non-difficult box (AP is NaN for the others).
``pixel_offset=1.0`` is the devkit's inclusive-pixel IoU (width = x2 − x1 + 1), right for boxes read
from VOC's 1-based integer annotations; ``0.0`` is continuous coordinates.

COCO: ``pycocotools.cocoeval.COCOeval`` (``iouType='bbox'``) on in-memory ground truth and detections
(``CocoMeter``, ``coco_evaluate_images``), or on COCO-format dicts / an official instances json
(``coco_evaluate``); returns its 12 summary numbers (AP@[.5:.95], AP50, AP75, AP small/medium/large,
AR@1/10/100, AR small/medium/large at COCOeval's default 1/10/100 detections per image; −1 where a size
range has no boxes). Box sizes use the ground truth's ``area`` when given (COCO's annotation area is the
*segment* area) and box area otherwise. Contiguous labels map to COCO
category ids through ``category_ids`` (default ``label + 1``). pycocotools is imported on first use.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

COCO_METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
                "AR_small", "AR_medium", "AR_large")


def voc_ap(recall, precision, use_07_metric: bool = False) -> float:
  """Average precision from a ranked list's cumulative ``recall`` and ``precision`` arrays."""
  recall = np.asarray(recall, np.float64)
  precision = np.asarray(precision, np.float64)
  if use_07_metric:
    points = []
    # the devkit's thresholds 0:0.1:1 as floats (3·0.1 = 0.30000000000000004: a recall of exactly 0.3
    # does not reach that point, in MATLAB's devkit and py-faster-rcnn's voc_eval alike)
    for t in np.arange(0.0, 1.1, 0.1):
      above = recall >= t
      points.append(np.max(precision[above]) if np.any(above) else 0.0)
    return float(np.sum(points) / 11.0)
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]
  steps = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou_matrix(a, b, pixel_offset):
  lo = np.maximum(a[:, None, :2], b[None, :, :2])
  hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo + pixel_offset, 0.0, None), axis=-1)
  area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2] + pixel_offset, 0.0, None), axis=-1)
  union = area(a)[:, None] + area(b)[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _as_image(boxes, scores, classes, gt_boxes, gt_classes, gt_difficult):
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  scores = np.asarray(scores, np.float64).reshape(-1)
  classes = np.asarray(classes).reshape(-1).astype(np.int64)
  gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
  gt_classes = np.asarray(gt_classes).reshape(-1).astype(np.int64)
  if gt_difficult is None:
    gt_difficult = np.zeros(len(gt_boxes), bool)
  gt_difficult = np.asarray(gt_difficult).reshape(-1).astype(bool)
  if not (len(boxes) == len(scores) == len(classes)) or not (len(gt_boxes) == len(gt_classes)
                                                              == len(gt_difficult)):
    raise ValueError("detections (boxes, scores, classes) and ground truth (boxes, classes, difficult) "
                     "must have matching lengths")
  return boxes, scores, classes, gt_boxes, gt_classes, gt_difficult


def _unpad(batch_arrays, mask):
  mask = np.asarray(mask, bool)
  return [None if a is None else np.asarray(a)[mask] for a in batch_arrays]


class VocMeter:
  """Accumulates VOC matches image by image; ``result()`` gives per-class AP and mAP (module docstring)."""

  def __init__(self, num_classes: int, *, iou_threshold: float = 0.5, use_07_metric: bool = True,
               pixel_offset: float = 1.0, class_names=None):
    self.num_classes = int(num_classes)
    self.iou_threshold = float(iou_threshold)
    self.use_07_metric = bool(use_07_metric)
    self.pixel_offset = float(pixel_offset)
    self.class_names = list(class_names) if class_names is not None else None
    self._scores = [[] for _ in range(self.num_classes)]
    self._tp = [[] for _ in range(self.num_classes)]
    self._fp = [[] for _ in range(self.num_classes)]
    self._npos = np.zeros(self.num_classes, np.int64)
    self.num_images = 0

  def add(self, boxes, scores, classes, gt_boxes, gt_classes, gt_difficult=None):
    """One image's detections and ground truth (unpadded)."""
    boxes, scores, classes, gt_boxes, gt_classes, gt_difficult = _as_image(
        boxes, scores, classes, gt_boxes, gt_classes, gt_difficult)
    for arr, name in ((classes, "detection"), (gt_classes, "ground-truth")):
      if arr.size and (arr.min() < 0 or arr.max() >= self.num_classes):
        raise ValueError(f"{name} class outside [0, {self.num_classes})")
    self.num_images += 1
    np.add.at(self._npos, gt_classes[~gt_difficult], 1)
    for c in np.unique(classes):
      sel = np.flatnonzero(classes == c)
      sel = sel[np.argsort(-scores[sel], kind="stable")]
      gsel = np.flatnonzero(gt_classes == c)
      tp = np.zeros(len(sel), bool)
      fp = np.zeros(len(sel), bool)
      if len(gsel):
        ious = _iou_matrix(boxes[sel], gt_boxes[gsel], self.pixel_offset)
        taken = np.zeros(len(gsel), bool)
        for d in range(len(sel)):
          g = int(np.argmax(ious[d]))
          if ious[d, g] > self.iou_threshold:
            if gt_difficult[gsel[g]]:
              continue  # neither true nor false positive
            if not taken[g]:
              tp[d] = taken[g] = True
            else:
              fp[d] = True
          else:
            fp[d] = True
      else:
        fp[:] = True
      self._scores[c].append(scores[sel])
      self._tp[c].append(tp)
      self._fp[c].append(fp)

  def add_batch(self, detect, gt_boxes, gt_classes, gt_mask, gt_difficult=None):
    """A padded batch: ``detect`` = dict(boxes [B,N,4], scores, classes, mask [B,N]); ground truth
    ``gt_boxes [B,G,4]``, ``gt_classes [B,G]``, ``gt_mask [B,G]``, optional ``gt_difficult [B,G]``."""
    det = {k: np.asarray(v) for k, v in detect.items()}
    gt_boxes, gt_classes, gt_mask = np.asarray(gt_boxes), np.asarray(gt_classes), np.asarray(gt_mask)
    for i in range(len(gt_boxes)):
      b, s, c = _unpad([det["boxes"][i], det["scores"][i], det["classes"][i]], det["mask"][i])
      gdiff = None if gt_difficult is None else np.asarray(gt_difficult)[i]
      gb, gc, gd = _unpad([gt_boxes[i], gt_classes[i], gdiff], gt_mask[i])
      self.add(b, s, c, gb, gc, gd)

  def result(self) -> dict:
    """``dict(ap [C] (NaN for classes without boxes), map, num_gt [C], per_class {name: ap}, ...)``."""
    aps = np.full(self.num_classes, np.nan)
    for c in range(self.num_classes):
      if self._npos[c] == 0:
        continue
      if not self._scores[c]:
        aps[c] = 0.0
        continue
      scores = np.concatenate(self._scores[c])
      order = np.argsort(-scores, kind="stable")
      tp = np.cumsum(np.concatenate(self._tp[c])[order])
      fp = np.cumsum(np.concatenate(self._fp[c])[order])
      recall = tp / self._npos[c]
      precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
      aps[c] = voc_ap(recall, precision, self.use_07_metric)
    names = self.class_names or [str(c) for c in range(self.num_classes)]
    has = ~np.isnan(aps)
    return dict(ap=aps, map=float(np.mean(aps[has])) if has.any() else float("nan"),
                num_gt=self._npos.copy(), per_class=dict(zip(names, aps.tolist())),
                use_07_metric=self.use_07_metric, iou_threshold=self.iou_threshold,
                num_images=self.num_images)


def voc_evaluate(detections, ground_truths, num_classes: int, **kwargs) -> dict:
  """VOC AP of lists of per-image dicts: detections ``{boxes, scores, classes}``, ground truth ``{boxes,
  classes, difficult (optional)}``; ``kwargs`` as ``VocMeter``."""
  if len(detections) != len(ground_truths):
    raise ValueError(f"{len(detections)} detection entries for {len(ground_truths)} images")
  meter = VocMeter(num_classes, **kwargs)
  for det, gt in zip(detections, ground_truths):
    meter.add(det["boxes"], det["scores"], det["classes"], gt["boxes"], gt["classes"], gt.get("difficult"))
  return meter.result()


def voc_ap_per_class(det_boxes, det_scores, det_classes, gt_boxes, gt_classes, gt_difficult=None, *,
                     num_classes: int, iou_threshold: float = 0.5, use_07_metric: bool = True,
                     pixel_offset: float = 1.0) -> np.ndarray:
  """Per-class VOC AP ``[num_classes]`` (NaN where a class has no non-difficult box) from parallel lists
  with one entry per image (unpadded arrays); ``gt_difficult`` may be None (no difficult boxes)."""
  meter = VocMeter(num_classes, iou_threshold=iou_threshold, use_07_metric=use_07_metric,
                   pixel_offset=pixel_offset)
  if gt_difficult is None:
    gt_difficult = [None] * len(gt_boxes)
  lists = (det_boxes, det_scores, det_classes, gt_boxes, gt_classes, gt_difficult)
  if len({len(x) for x in lists}) != 1:
    raise ValueError(f"per-image lists of different lengths: {[len(x) for x in lists]}")
  for args in zip(*lists):
    meter.add(*args)
  return meter.result()["ap"]


def _xywh(boxes):
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


class CocoMeter:
  """Accumulates images for ``pycocotools``' COCOeval (bbox); ``result()`` gives its 12 numbers."""

  def __init__(self, num_classes: int, *, category_ids=None):
    self.num_classes = int(num_classes)
    ids = list(range(1, self.num_classes + 1)) if category_ids is None else [int(i) for i in category_ids]
    if len(ids) != self.num_classes:
      raise ValueError(f"{len(ids)} category ids for {self.num_classes} classes")
    self.category_ids = ids
    self._images, self._gt, self._dt = [], [], []

  def add(self, boxes, scores, classes, gt_boxes, gt_classes, *, gt_area=None, gt_crowd=None,
          image_id=None, height=None, width=None):
    """One image (unpadded). ``image_id`` defaults to a running counter (1, 2, …)."""
    image_id = len(self._images) + 1 if image_id is None else int(image_id)
    image = dict(id=image_id)
    if height is not None and width is not None:
      image.update(height=int(height), width=int(width))
    self._images.append(image)
    gxywh = _xywh(gt_boxes)
    gt_classes = np.asarray(gt_classes).reshape(-1).astype(np.int64)
    areas = gxywh[:, 2] * gxywh[:, 3] if gt_area is None else np.asarray(gt_area, np.float64).reshape(-1)
    crowd = np.zeros(len(gxywh), bool) if gt_crowd is None else np.asarray(gt_crowd, bool).reshape(-1)
    for b, c, a, z in zip(gxywh, gt_classes, areas, crowd):
      self._gt.append(dict(id=len(self._gt) + 1, image_id=image_id, category_id=self.category_ids[c],
                           bbox=[float(v) for v in b], area=float(a), iscrowd=int(z)))
    dxywh = _xywh(boxes)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    for b, s, c in zip(dxywh, scores, classes):
      self._dt.append(dict(id=len(self._dt) + 1, image_id=image_id, category_id=self.category_ids[c],
                           bbox=[float(v) for v in b], area=float(b[2] * b[3]), score=float(s), iscrowd=0))

  def add_batch(self, detect, gt_boxes, gt_classes, gt_mask, *, gt_area=None, gt_crowd=None,
                image_ids=None):
    """A padded batch (``VocMeter.add_batch``'s layout), optional ``gt_area``/``gt_crowd [B,G]``."""
    det = {k: np.asarray(v) for k, v in detect.items()}
    gt_boxes, gt_classes, gt_mask = np.asarray(gt_boxes), np.asarray(gt_classes), np.asarray(gt_mask)
    for i in range(len(gt_boxes)):
      b, s, c = _unpad([det["boxes"][i], det["scores"][i], det["classes"][i]], det["mask"][i])
      ga = None if gt_area is None else np.asarray(gt_area)[i]
      gz = None if gt_crowd is None else np.asarray(gt_crowd)[i]
      gb, gc, ga, gz = _unpad([gt_boxes[i], gt_classes[i], ga, gz], gt_mask[i])
      self.add(b, s, c, gb, gc, gt_area=ga, gt_crowd=gz,
               image_id=None if image_ids is None else int(np.asarray(image_ids)[i]))

  def result(self) -> dict:
    """``dict(AP, AP50, AP75, AP_small, AP_medium, AP_large, AR1, AR10, AR100, AR_small, …)``."""
    cats = [dict(id=i, name=str(i)) for i in self.category_ids]
    gt = dict(images=list(self._images), categories=cats, annotations=list(self._gt))
    stats = coco_evaluate(gt, self._dt, image_ids=[im["id"] for im in self._images])
    out = {name: float(v) for name, v in zip(COCO_METRICS, stats)}
    out["num_images"] = len(self._images)
    return out


def _coco(dataset):
  from pycocotools.coco import COCO
  coco = COCO()
  coco.dataset = dataset
  with contextlib.redirect_stdout(io.StringIO()):
    coco.createIndex()
  return coco


def coco_evaluate(ground_truth, detections, *, image_ids=None) -> np.ndarray:
  """pycocotools' bbox ``COCOeval`` -> its 12 ``stats`` (order ``COCO_METRICS``).

  ``ground_truth``: a COCO-format dict (images, annotations, categories) or the path of an instances
  json (e.g. instances_val2017.json); ``detections``: a list of COCO result dicts (image_id,
  category_id, bbox [x, y, w, h] in pixels, score), possibly empty; ``image_ids``: evaluate only these
  images (default: all of the ground truth's).
  """
  from pycocotools.cocoeval import COCOeval
  if isinstance(ground_truth, (str, bytes)) or hasattr(ground_truth, "__fspath__"):
    import json
    with open(ground_truth, encoding="utf-8") as f:
      ground_truth = json.load(f)
  gt = _coco(ground_truth)
  anns = []
  for i, d in enumerate(detections):
    x, y, w, h = (float(v) for v in d["bbox"])
    anns.append(dict(id=i + 1, image_id=d["image_id"], category_id=int(d["category_id"]),
                     bbox=[x, y, w, h], area=w * h, score=float(d["score"]), iscrowd=0))
  dt = _coco(dict(images=list(gt.dataset["images"]), categories=list(gt.dataset["categories"]),
                  annotations=anns))
  ev = COCOeval(gt, dt, iouType="bbox")
  if image_ids is not None:
    ev.params.imgIds = sorted({int(i) for i in image_ids})
  with contextlib.redirect_stdout(io.StringIO()):
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return np.asarray(ev.stats, np.float64)


def coco_evaluate_images(detections, ground_truths, num_classes: int, **kwargs) -> dict:
  """COCO AP of lists of per-image dicts (``voc_evaluate``'s layout; ground truth may carry ``area``,
  ``iscrowd``, ``image_id``); ``kwargs`` as ``CocoMeter``."""
  if len(detections) != len(ground_truths):
    raise ValueError(f"{len(detections)} detection entries for {len(ground_truths)} images")
  meter = CocoMeter(num_classes, **kwargs)
  for det, gt in zip(detections, ground_truths):
    meter.add(det["boxes"], det["scores"], det["classes"], gt["boxes"], gt["classes"],
              gt_area=gt.get("area"), gt_crowd=gt.get("iscrowd"), image_id=gt.get("image_id"))
  return meter.result()
