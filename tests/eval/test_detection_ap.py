"""VOC AP (11-point and area) and COCO AP (pycocotools) on hand-made detections with known answers."""

import json

import numpy as np
import pytest

from jaxgen.eval import detection as det_eval


def test_voc_ap_of_a_known_precision_recall_curve():
  recall, precision = [0.5, 1.0], [1.0, 0.5]
  # area: 0.5·1 + 0.5·0.5; 11-point: t = 0 … 0.5 see precision 1 (6 points), t = 0.6 … 1 see 0.5 (5)
  assert det_eval.voc_ap(recall, precision) == pytest.approx(0.75)
  assert det_eval.voc_ap(recall, precision, use_07_metric=True) == pytest.approx((6 + 2.5) / 11)
  # the envelope: a later higher precision lifts the earlier dip
  assert det_eval.voc_ap([0.25, 0.25, 0.5], [1.0, 0.5, 2 / 3]) == pytest.approx(0.25 + 0.25 * 2 / 3)
  assert det_eval.voc_ap([], []) == 0.0 and det_eval.voc_ap([], [], use_07_metric=True) == 0.0


GT = [  # image 0: two class-0 boxes (one difficult) and a class-1 box; image 1: one class-0 box
    dict(boxes=np.array([[10, 10, 50, 50], [100, 100, 140, 150], [200, 10, 260, 70]], float),
         classes=np.array([0, 0, 1]), difficult=np.array([False, True, False])),
    dict(boxes=np.array([[30, 40, 90, 80]], float), classes=np.array([0]), difficult=np.array([False])),
]
DETS = [
    dict(boxes=np.array([[10, 10, 50, 50],       # .9 true positive
                         [11, 11, 50, 51],       # .8 duplicate of the same box: false positive
                         [100, 100, 140, 150],   # .7 on the difficult box: ignored
                         [300, 300, 340, 340]],  # .5 nothing there: false positive
                        float),
         scores=np.array([0.9, 0.8, 0.7, 0.5]), classes=np.array([0, 0, 0, 0])),
    dict(boxes=np.array([[30, 40, 90, 80]], float), scores=np.array([0.6]), classes=np.array([0])),
]


def test_voc_hand_made_case_with_difficult_duplicates_and_misses():
  # class 0, ranked: TP(.9) FP(.8) [ignored .7] TP(.6) FP(.5); 2 non-difficult boxes
  # recall .5 .5 1 1, precision 1 .5 2/3 .5 -> area .5·1 + .5·2/3; 11-point (6·1 + 5·2/3)/11
  # class 1 has a box and no detection: AP 0; class 2 has no box: NaN, left out of the mean
  for use_07, ap0 in ((False, 0.5 + 0.5 * 2 / 3), (True, (6 + 5 * 2 / 3) / 11)):
    res = det_eval.voc_evaluate(DETS, GT, 3, use_07_metric=use_07, pixel_offset=0.0)
    np.testing.assert_allclose(res["ap"][:2], [ap0, 0.0])
    assert np.isnan(res["ap"][2]) and res["map"] == pytest.approx(ap0 / 2)
    np.testing.assert_array_equal(res["num_gt"], [2, 1, 0])


def test_voc_perfect_detections_and_padded_batches():
  gt_boxes = np.zeros((2, 3, 4))
  gt_classes = np.zeros((2, 3), int)
  gt_mask = np.zeros((2, 3), bool)
  gt_diff = np.zeros((2, 3), bool)
  for i, g in enumerate(GT):
    n = len(g["boxes"])
    gt_boxes[i, :n], gt_classes[i, :n], gt_mask[i, :n], gt_diff[i, :n] = (g["boxes"], g["classes"], True,
                                                                         g["difficult"])
  perfect = dict(boxes=gt_boxes, scores=np.full((2, 3), 0.9), classes=gt_classes, mask=gt_mask)
  meter = det_eval.VocMeter(3, class_names=["a", "b", "c"])
  meter.add_batch(perfect, gt_boxes, gt_classes, gt_mask, gt_diff)
  res = meter.result()
  assert res["map"] == 1.0 and res["per_class"]["a"] == 1.0 and res["num_images"] == 2
  # the padded-batch path gives the same numbers as per-image lists
  padded = dict(boxes=np.zeros((2, 5, 4)), scores=np.zeros((2, 5)), classes=np.zeros((2, 5), int),
                mask=np.zeros((2, 5), bool))
  for i, d in enumerate(DETS):
    n = len(d["boxes"])
    padded["boxes"][i, :n], padded["scores"][i, :n], padded["classes"][i, :n] = (d["boxes"], d["scores"],
                                                                                d["classes"])
    padded["mask"][i, :n] = True
  meter = det_eval.VocMeter(3, use_07_metric=False, pixel_offset=0.0)
  meter.add_batch(padded, gt_boxes, gt_classes, gt_mask, gt_diff)
  ref = det_eval.voc_evaluate(DETS, GT, 3, use_07_metric=False, pixel_offset=0.0)
  np.testing.assert_allclose(meter.result()["ap"], ref["ap"])


def test_voc_devkit_pixel_convention_decides_a_borderline_match():
  gt = [dict(boxes=np.array([[0, 0, 9, 9]], float), classes=np.array([0]))]
  dets = [dict(boxes=np.array([[0, 0, 9, 4.3]]), scores=np.array([1.0]), classes=np.array([0]))]
  # devkit: 10·5.3 / (10·10) = .53 > .5; continuous: 9·4.3 / 81 = .478 < .5
  assert det_eval.voc_evaluate(dets, gt, 1, pixel_offset=1.0)["map"] == 1.0
  assert det_eval.voc_evaluate(dets, gt, 1, pixel_offset=0.0)["map"] == 0.0


def _coco_set():
  """Four images, one box each: small (20²), medium (60²), large (120²) and medium; classes 0, 1."""
  boxes = [[10, 10, 30, 30], [50, 50, 110, 110], [0, 0, 120, 120], [200, 100, 260, 160]]
  return [dict(boxes=np.array([b], float), classes=np.array([i % 2])) for i, b in enumerate(boxes)]


def test_coco_perfect_detections_score_one():
  gts = _coco_set()
  dets = [dict(boxes=g["boxes"], scores=np.array([0.9]), classes=g["classes"]) for g in gts]
  res = det_eval.coco_evaluate_images(dets, gts, 2, category_ids=[3, 7])
  for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"):
    assert res[key] == pytest.approx(1.0), key


def test_coco_known_partial_case():
  # Class 0 holds images 0 and 2; class 1 images 1 and 3. In each class the higher-scoring detection is
  # exact and the other is shifted to IoU 0.62: matched at IoU thresholds .5, .55, .6, missed at
  # .65 … .95. Missed thresholds: recall 1/2 at precision 1, then a false positive, so COCO's 101-point
  # interpolated precision is 1 for recall 0 … 0.5 (51 points) and 0 above: AP_t = 51/101.
  gts = _coco_set()
  dets = []
  for i, g in enumerate(gts):
    b = g["boxes"].copy()
    if i >= 2:
      w = b[0, 2] - b[0, 0]
      shift = w * (1 - 0.62) / (1 + 0.62)  # IoU of a box shifted by s·w along x: (1 − s)/(1 + s)
      b[0, [0, 2]] += shift
    dets.append(dict(boxes=b, scores=np.array([0.9 if i < 2 else 0.5]), classes=g["classes"]))
  res = det_eval.coco_evaluate_images(dets, gts, 2)
  part = 51 / 101
  assert res["AP50"] == pytest.approx(1.0)
  assert res["AP75"] == pytest.approx(part)
  assert res["AP"] == pytest.approx((3 + 7 * part) / 10)
  assert res["AP_small"] == pytest.approx(1.0)  # the small box's detection is exact
  # no detections at all: AP 0 (−1 only where a size range has no ground truth)
  empty = [dict(boxes=np.zeros((0, 4)), scores=np.zeros(0), classes=np.zeros(0, int)) for _ in gts]
  res = det_eval.coco_evaluate_images(empty, gts, 2)
  assert res["AP"] == 0.0 and res["AR100"] == 0.0


def _devkit_style_ap(dets, gts, c, thr, use_07):
  """py-faster-rcnn voc_eval's procedure (one global ranking per class), rewritten for the test."""
  recs = {i: dict(boxes=g["boxes"][g["classes"] == c], difficult=g["difficult"][g["classes"] == c],
                  det=np.zeros((g["classes"] == c).sum(), bool)) for i, g in enumerate(gts)}
  npos = sum(int((~r["difficult"]).sum()) for r in recs.values())
  items = [(s, i, b) for i, d in enumerate(dets) for b, s, k in zip(d["boxes"], d["scores"], d["classes"])
           if k == c]
  items.sort(key=lambda t: -t[0])
  tp, fp = np.zeros(len(items)), np.zeros(len(items))
  for n, (_, i, bb) in enumerate(items):
    r = recs[i]
    ovmax = -np.inf
    if len(r["boxes"]):
      g = r["boxes"]
      iw = np.maximum(np.minimum(g[:, 2], bb[2]) - np.maximum(g[:, 0], bb[0]) + 1, 0)
      ih = np.maximum(np.minimum(g[:, 3], bb[3]) - np.maximum(g[:, 1], bb[1]) + 1, 0)
      inter = iw * ih
      area_g = (g[:, 2] - g[:, 0] + 1) * (g[:, 3] - g[:, 1] + 1)
      uni = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + area_g - inter
      ov = inter / uni
      ovmax, jmax = ov.max(), ov.argmax()
    if ovmax > thr:
      if not r["difficult"][jmax]:
        if not r["det"][jmax]:
          tp[n] = r["det"][jmax] = 1
        else:
          fp[n] = 1
    else:
      fp[n] = 1
  tp, fp = np.cumsum(tp), np.cumsum(fp)
  return det_eval.voc_ap(tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps), use_07)


def test_voc_streaming_matches_a_global_ranking_on_random_data():
  rng = np.random.default_rng(0)
  gts, dets = [], []
  for _ in range(12):
    n = rng.integers(1, 5)
    xy = rng.integers(0, 200, (n, 2)).astype(float)
    g = np.concatenate([xy, xy + rng.integers(10, 80, (n, 2))], 1)
    gts.append(dict(boxes=g, classes=rng.integers(0, 3, n), difficult=rng.random(n) < 0.2))
    jitter = g + rng.normal(0, 4, g.shape)  # near misses and hits, some duplicated
    extra = np.concatenate([xy, xy + 30], 1)[: rng.integers(0, n + 1)] + 50
    boxes = np.concatenate([jitter, jitter[:1] + 2, extra])
    dets.append(dict(boxes=boxes, scores=rng.random(len(boxes)), classes=rng.integers(0, 3, len(boxes))))
    dets[-1]["classes"][:n] = gts[-1]["classes"]
  for use_07 in (True, False):
    got = det_eval.voc_ap_per_class(*[[d[k] for d in dets] for k in ("boxes", "scores", "classes")],
                                    *[[g[k] for g in gts] for k in ("boxes", "classes", "difficult")],
                                    num_classes=3, use_07_metric=use_07)
    want = [_devkit_style_ap(dets, gts, c, 0.5, use_07) for c in range(3)]
    np.testing.assert_allclose(got, want)
    assert 0.2 < np.mean(want) < 0.95  # a non-trivial case


def test_coco_evaluate_on_coco_format_input_and_a_json_file(tmp_path):
  gts = _coco_set()
  meter = det_eval.CocoMeter(2, category_ids=[1, 2])
  for g in gts:
    meter.add(g["boxes"][:0], [], [], g["boxes"], g["classes"])
  gt_dict = dict(images=meter._images, annotations=meter._gt, categories=[dict(id=1), dict(id=2)])
  path = tmp_path / "instances.json"
  path.write_text(json.dumps(gt_dict))
  # detections for images 1 and 2 only, both exact; evaluating those two images gives 1, all four 0.5
  xywh = lambda b: [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
  dets = [dict(image_id=i + 1, category_id=int(gts[i]["classes"][0]) + 1, score=0.8,
               bbox=xywh(gts[i]["boxes"][0])) for i in range(2)]
  stats = det_eval.coco_evaluate(str(path), dets, image_ids=[1, 2])
  assert stats.shape == (12,) and stats[0] == pytest.approx(1.0)
  stats = det_eval.coco_evaluate(gt_dict, dets)
  assert stats[8] == pytest.approx(0.5)  # AR@100: half of the boxes found in each class
  assert det_eval.coco_evaluate(gt_dict, [])[0] == 0.0
