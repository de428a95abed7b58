"""Detection evaluators: ``voc_map`` (PASCAL VOC AP) and ``coco_ap`` (COCO AP through pycocotools).

Both need the task's ``'detect'`` function and read the eval split (``batches=True``; nothing is reported
when ``data.eval_split`` is ''). Each eval batch of ``jaxgen.data.detection`` carries the ground truth of
its images; ``collect`` runs ``fns['detect']`` on every batch and maps the detections and the ground
truth from network-input pixels back to source-image pixels (``(b − offset) / scale``, clipped to the
image), skipping the padding images (``mask`` 0). The metrics are then computed on the host by
``jaxgen.eval.detection`` (docs/thundernet.md):

  voc_map   ``map`` (mean over the classes that have ground truth) and ``ap_<class>`` per class
            (``per_class=True``), at IoU ``iou_threshold`` (0.5); ``metric='voc07'`` is the 11-point
            interpolated AP of the VOC2007 devkit (the ThunderNet paper's VOC numbers), ``'voc10'`` the
            area under the monotone precision envelope (VOC2010+). Difficult boxes are neither true nor
            false positives. Also ``num_images``, ``num_detections``.
  coco_ap   ``ap``, ``ap50``, ``ap75``, ``ap_small``, ``ap_medium``, ``ap_large``, ``ar100``
            (pycocotools' ``COCOeval`` stats, the COCO AP@[.5:.95] of the ThunderNet paper's COCO
            numbers). The ground truth is rebuilt from the eval split: TFDS's copy of the official
            annotations (boxes, segment ``area`` for the size ranges, is_crowd as ``iscrowd``), so the
            numbers equal those against instances_val2017.json up to TFDS's float32 box rounding;
            contiguous labels map to COCO category ids for COCO, to label + 1 for other sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.eval.evaluators import register


@dataclass
class ImageResult:
  """One evaluated image in source pixels: detections and ground truth."""

  image_id: int
  hw: tuple[int, int]
  det_boxes: np.ndarray      # [D, 4] xyxy
  det_scores: np.ndarray     # [D]
  det_classes: np.ndarray    # [D] int, 0-based
  gt_boxes: np.ndarray       # [G, 4] xyxy
  gt_classes: np.ndarray     # [G]
  gt_difficult: np.ndarray   # [G] bool (VOC difficult / COCO crowd)
  gt_area: np.ndarray        # [G]


def _to_source(boxes, scale, offset, hw):
  sy, sx = float(scale[0]), float(scale[1])
  oy, ox = float(offset[0]), float(offset[1])
  b = (np.asarray(boxes, np.float64) - np.array([ox, oy, ox, oy])) / np.array([sx, sy, sx, sy])
  h, w = float(hw[0]), float(hw[1])
  return np.clip(b, 0.0, np.array([w, h, w, h]))


def collect(detect, batches, *, limit: int = 0, keep_images: int = 0, views: list | None = None
            ) -> list[ImageResult]:
  """Runs ``detect`` over the eval ``batches`` and returns the per-image results (see module doc); the
  first ``keep_images`` images go to ``views`` as (image, detections, gt boxes) in network pixels."""
  out: list[ImageResult] = []
  for batch in batches:
    det = detect(batch)
    mask = np.asarray(batch.get("mask", np.ones(len(batch["image"]))), np.float32)
    for i in np.nonzero(mask > 0)[0]:
      if limit and len(out) >= limit:
        return out
      if views is not None and len(views) < keep_images:
        keep = np.asarray(det["mask"][i], bool)
        views.append((np.asarray(batch["image"][i]),
                      {k: np.asarray(v[i])[keep] for k, v in det.items() if k != "mask"},
                      np.asarray(batch["boxes"][i])[np.asarray(batch["box_mask"][i], bool)]))
      hw = tuple(int(v) for v in np.asarray(batch["orig_hw"][i]))
      scale, offset = batch["scale"][i], batch["offset"][i]
      keep = np.asarray(det["mask"][i], bool)
      gkeep = np.asarray(batch["box_mask"][i], bool)
      out.append(ImageResult(
          image_id=int(batch["image_id"][i]), hw=hw,
          det_boxes=_to_source(np.asarray(det["boxes"][i])[keep], scale, offset, hw),
          det_scores=np.asarray(det["scores"][i], np.float64)[keep],
          det_classes=np.asarray(det["classes"][i], np.int64)[keep],
          gt_boxes=_to_source(np.asarray(batch["boxes"][i])[gkeep], scale, offset, hw),
          gt_classes=np.asarray(batch["classes"][i], np.int64)[gkeep],
          gt_difficult=np.asarray(batch["difficult"][i], bool)[gkeep],
          gt_area=np.asarray(batch["area"][i], np.float64)[gkeep]))
  return out


def _num_classes(fns, results) -> int:
  n = int(dict(fns.get("data") or {}).get("num_classes", 0))
  if n:
    return n
  top = [r.gt_classes.max() for r in results if len(r.gt_classes)]
  return int(max(top)) + 1 if top else 0


def _class_names(fns, num_classes: int) -> list[str]:
  names = list(dict(fns.get("data") or {}).get("class_names", ()))
  return names if len(names) == num_classes else [str(c) for c in range(num_classes)]


def save_picture(path: str, views, class_names, *, threshold: float = 0.5, zoom: int = 2, cols: int = 4):
  """A grid PNG of images with their detections scoring ≥ ``threshold`` (green, labelled with class and
  score) over the ground truth (thin grey)."""
  from PIL import Image, ImageDraw  # noqa: PLC0415
  if not views:
    return
  h, w = views[0][0].shape[:2]
  rows = (len(views) + cols - 1) // cols
  grid = Image.new("RGB", (cols * w * zoom, rows * h * zoom), (255, 255, 255))
  for n, (image, det, gt) in enumerate(views):
    rgb = np.clip((np.asarray(image)[..., :3] + 1.0) * 127.5, 0, 255).astype(np.uint8)
    tile = Image.fromarray(rgb).resize((w * zoom, h * zoom), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(tile)
    for b in gt:
      draw.rectangle([float(v) * zoom for v in b], outline=(160, 160, 160), width=1)
    for b, s, c in zip(det["boxes"], det["scores"], det["classes"]):
      if s >= threshold:
        draw.rectangle([float(v) * zoom for v in b], outline=(0, 255, 0), width=2)
        draw.text((float(b[0]) * zoom + 2, float(b[1]) * zoom + 1), f"{class_names[int(c)]} {s:.2f}",
                  fill=(255, 255, 0))
    grid.paste(tile, ((n % cols) * w * zoom, (n // cols) * h * zoom))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  grid.save(path)


def _facts(fns, evaluator: str) -> tuple[dict, int]:
  """The task's 'data' facts and their number of classes (without it, a ConfigError naming ``evaluator``)."""
  facts = dict(fns.get("data") or {})
  k = int(facts.get("num_classes", 0))
  if not k:
    raise ConfigError(f"the {evaluator} evaluator needs the number of classes in the task's 'data' facts: "
                      "use it with the detection task and a jaxgen.data.detection data set.")
  return facts, k


@register("voc_map", needs=("detect", "data"), batches=True,
          bounds=dict(iou_threshold=dict(above=0.0, below=1.0), metric=dict(choices=("voc07", "voc10")),
                      limit=dict(min=0), pixel_offset=dict(choices=(-1.0, 0.0, 1.0)),
                      picture_images=dict(min=1), picture_threshold=dict(min=0.0, max=1.0)))
def voc_map(fns, key, batches, *, metric: str = "voc07", iou_threshold: float = 0.5, per_class: bool = True,
            pixel_offset: float = -1.0, limit: int = 0, picture: str = "", picture_images: int = 16,
            picture_threshold: float = 0.5) -> dict:
  """PASCAL VOC mean AP of ``fns['detect']`` over the eval split (``limit`` images, 0: all).

  ``pixel_offset`` −1: the devkit's inclusive-pixel IoU (+1) for VOC, continuous boxes (0) otherwise.
  ``picture``: a PNG path for the first ``picture_images`` images with their detections scoring
  ≥ ``picture_threshold`` (``save_picture``).
  """
  from jaxgen.eval import detection as ap_lib  # noqa: PLC0415

  del key
  facts, k = _facts(fns, "voc_map")
  offset = pixel_offset if pixel_offset >= 0 else (1.0 if facts.get("family") == "voc" else 0.0)
  names = list(facts.get("class_names", ())) or None
  meter = ap_lib.VocMeter(k, iou_threshold=iou_threshold, use_07_metric=(metric == "voc07"),
                          pixel_offset=offset, class_names=names if names and len(names) == k else None)
  num_det, views = 0, []
  for r in collect(fns["detect"], batches, limit=limit, keep_images=picture_images if picture else 0,
                   views=views):
    meter.add(r.det_boxes, r.det_scores, r.det_classes, r.gt_boxes, r.gt_classes, r.gt_difficult)
    num_det += len(r.det_scores)
  if not meter.num_images:
    return {}
  if picture:
    save_picture(picture, views, list(facts.get("class_names", ())) or [str(c) for c in range(k)],
                 threshold=picture_threshold)
  res = meter.result()
  out = {"map": float(res["map"]), "num_images": float(meter.num_images), "num_detections": float(num_det)}
  if per_class:
    for name, ap in res["per_class"].items():
      if np.isfinite(ap):
        out[f"ap_{name}"] = float(ap)
  return out


COCO_KEYS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "AP_small": "ap_small", "AP_medium": "ap_medium",
             "AP_large": "ap_large", "AR100": "ar100"}


@register("coco_ap", needs=("detect", "data"), batches=True, bounds=dict(limit=dict(min=0)))
def coco_ap(fns, key, batches, *, limit: int = 0) -> dict:
  """COCO AP of ``fns['detect']`` over the eval split through pycocotools (module docstring)."""
  from jaxgen.eval import detection as ap_lib  # noqa: PLC0415

  del key
  facts, k = _facts(fns, "coco_ap")
  ids = None
  if facts.get("family") == "coco":
    from jaxgen.data.detection import COCO_CATEGORY_IDS  # noqa: PLC0415
    ids = list(COCO_CATEGORY_IDS)
  meter = ap_lib.CocoMeter(k, category_ids=ids)
  num_det, seen, spare = 0, set(), -1
  for r in collect(fns["detect"], batches, limit=limit):
    image_id = r.image_id
    if image_id in seen:     # COCOeval needs unique ids (sets without ids: a spare negative one)
      image_id, spare = spare, spare - 1
    seen.add(image_id)
    meter.add(r.det_boxes, r.det_scores, r.det_classes, r.gt_boxes, r.gt_classes, gt_area=r.gt_area,
              gt_crowd=r.gt_difficult, image_id=image_id, height=r.hw[0], width=r.hw[1])
    num_det += len(r.det_scores)
  if not seen:
    return {}
  res = meter.result()
  out = {ours: float(res[theirs]) for theirs, ours in COCO_KEYS.items()}
  out.update(num_images=float(res["num_images"]), num_detections=float(num_det))
  return out
