"""PSRoI align (vs a NumPy loop and finite differences), training targets, post-processing and losses."""

import math

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxgen import detection
from jaxgen.errors import ConfigError

# ---------------------------------------------------------------------------------------------- PSRoI align


def _bilinear(f, y, x):
  """torchvision's bilinear_interpolate (roi_align_kernel.cpp), float64."""
  h, w = f.shape
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return 0.0
  y, x = max(y, 0.0), max(x, 0.0)
  yl, xl = int(y), int(x)
  if yl >= h - 1:
    yl = yh = h - 1
    y = float(yl)
  else:
    yh = yl + 1
  if xl >= w - 1:
    xl = xh = w - 1
    x = float(xl)
  else:
    xh = xl + 1
  ly, lx = y - yl, x - xl
  return ((1 - ly) * (1 - lx) * f[yl, xl] + (1 - ly) * lx * f[yl, xh] + ly * (1 - lx) * f[yh, xl]
          + ly * lx * f[yh, xh])


def _np_psroi_align(feat, rois, k, c_out, scale, sr):
  out = np.zeros((len(rois), k, k, c_out))
  for r, (x1, y1, x2, y2) in enumerate(rois):
    sx, sy = x1 * scale - 0.5, y1 * scale - 0.5
    bw, bh = (x2 - x1) * scale / k, (y2 - y1) * scale / k
    for i in range(k):
      for j in range(k):
        for c in range(c_out):
          plane = feat[:, :, (c * k + i) * k + j]
          acc = 0.0
          for iy in range(sr):
            for ix in range(sr):
              acc += _bilinear(plane, sy + (i + (iy + 0.5) / sr) * bh, sx + (j + (ix + 0.5) / sr) * bw)
          out[r, i, j, c] = acc / sr ** 2
  return out


K, C_OUT, SCALE, SR = 3, 2, 0.5, 2
# sample positions stay ≥ 0.03 px away from integers (the bilinear kinks) for the finite differences
ROIS = np.array([[1.37, 2.1, 9.9, 8.4], [0.2, 0.6, 13.1, 11.3], [-4.1, -3.3, 5.2, 4.4],
                 [8.3, 6.2, 15.9, 14.7]])


@pytest.fixture(scope="module")
def psroi():
  fn = lambda f, r: detection.psroi_align(f, r, output_size=K, channels=C_OUT, spatial_scale=SCALE,
                                          sampling_ratio=SR)
  feat = np.random.default_rng(0).normal(size=(6, 7, K * K * C_OUT))
  return jax.jit(fn), feat


def test_psroi_align_matches_the_numpy_loop(psroi):
  fn, feat = psroi
  got = fn(feat.astype(np.float32), ROIS.astype(np.float32))
  assert got.shape == (4, K, K, C_OUT)
  np.testing.assert_allclose(got, _np_psroi_align(feat, ROIS, K, C_OUT, SCALE, SR), atol=1e-5)


def test_psroi_align_gradients_match_finite_differences(psroi):
  fn, feat = psroi
  rng = np.random.default_rng(1)
  cot = rng.normal(size=(4, K, K, C_OUT))
  loss = jax.jit(lambda f, r: jnp.sum(fn(f, r) * cot))
  g_feat, g_rois = jax.grad(loss, argnums=(0, 1))(feat.astype(np.float32), ROIS.astype(np.float32))
  ref = lambda f, r: np.sum(_np_psroi_align(f, r, K, C_OUT, SCALE, SR) * cot)
  # features: the map is linear, so any direction's difference quotient is exact
  v = rng.normal(size=feat.shape)
  fd = (ref(feat + v, ROIS) - ref(feat - v, ROIS)) / 2
  np.testing.assert_allclose(np.sum(np.asarray(g_feat) * v), fd, rtol=1e-4)
  # RoI coordinates: central differences of the float64 reference, one coordinate at a time
  eps = 1e-6
  fd_rois = np.zeros_like(ROIS)
  for idx in np.ndindex(*ROIS.shape):
    d = np.zeros_like(ROIS)
    d[idx] = eps
    fd_rois[idx] = (ref(feat, ROIS + d) - ref(feat, ROIS - d)) / (2 * eps)
  np.testing.assert_allclose(g_rois, fd_rois, atol=2e-3 * np.abs(fd_rois).max())


def test_psroi_align_rejects_a_wrong_channel_count():
  with pytest.raises(ValueError, match="k·k·C"):
    detection.psroi_align(np.zeros((4, 4, 10), np.float32), ROIS, output_size=3, channels=2)


# ------------------------------------------------------------------------------------------------- targets


def _np_decode(d, a):
  """Faster R-CNN's box parameterization, inverted (weights already divided out)."""
  w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
  cx, cy = a[:, 0] + w / 2 + d[:, 0] * w, a[:, 1] + h / 2 + d[:, 1] * h
  w, h = w * np.exp(d[:, 2]), h * np.exp(d[:, 3])
  return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _np_iou(a, b):
  lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), -1)
  ar = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)
  return inter / (ar(a)[:, None] + ar(b)[None] - inter)


RPN_FN = jax.jit(detection.rpn_targets)  # counts, fractions and thresholds may be traced


def test_rpn_targets_labels_of_hand_made_anchors():
  gt = np.array([[0, 0, 10, 10], [50, 50, 70, 60], [100, 100, 110, 110]], np.float32)
  gt_mask = np.array([True, True, False])  # the padding row would match anchor 3 if it counted
  anchors = np.array([[0, 0, 10, 10],     # IoU 1            -> positive
                      [0, 0, 10, 14],     # IoU 100/140=.71  -> positive
                      [0, 0, 10, 20],     # IoU .5           -> ignored
                      [100, 100, 110, 110],  # IoU 0         -> negative
                      [50, 50, 70, 75],   # IoU .4, best for box 2 -> positive (low-quality match)
                      [50, 50, 70, 80],   # IoU .33          -> ignored
                      [0, 0, 10, 40]], np.float32)  # IoU .25 -> negative
  labels, targets, weights = RPN_FN(anchors, gt, gt_mask, jax.random.key(0), num_samples=16)  # no valid
  assert list(np.asarray(labels)) == [1, 1, -1, 0, 1, -1, 0]
  np.testing.assert_array_equal(weights, [1, 1, 0, 0, 1, 0, 0])
  back = _np_decode(np.asarray(targets), anchors)
  np.testing.assert_allclose(back[[0, 1, 4]], gt[[0, 0, 1]], atol=1e-4)
  assert not np.any(np.asarray(targets)[[2, 3, 5, 6]])


def test_rpn_targets_sampling_counts_and_masks():
  anchors = np.asarray(detection.generate_anchors((10, 10), 16, sizes=(32, 64), ratios=(0.5, 1.0, 2.0)))
  gt = np.array([[8, 24, 72, 88], [88, 8, 152, 72], [0, 0, 0, 0]], np.float32)  # two 64² anchors
  mask = np.array([True, True, False])
  # the 4-neighbours of each matching anchor have IoU 0.6
  kw = dict(pos_iou=0.5, valid=np.ones(len(anchors), bool))
  full, _, _ = RPN_FN(anchors, gt, mask, jax.random.key(1), num_samples=len(anchors), pos_fraction=1.0, **kw)
  eligible_pos, eligible_neg = np.asarray(full) == 1, np.asarray(full) == 0
  assert eligible_pos.sum() >= 10 and eligible_neg.sum() > 64
  a, _, _ = RPN_FN(anchors, gt, mask, jax.random.key(2), num_samples=16, pos_fraction=0.25, **kw)
  b, _, _ = RPN_FN(anchors, gt, mask, jax.random.key(3), num_samples=16, pos_fraction=0.25, **kw)
  for lab in (np.asarray(a), np.asarray(b)):
    assert (lab == 1).sum() == 4 and (lab == 0).sum() == 12
    assert np.all(eligible_pos[lab == 1]) and np.all(eligible_neg[lab == 0])
  assert np.any(np.asarray(a) != np.asarray(b))  # the key matters
  # no ground truth: only negatives; excluded anchors are never sampled
  valid = np.arange(len(anchors)) % 2 == 0
  lab, _, w = RPN_FN(anchors, gt, np.zeros(3, bool), jax.random.key(4), num_samples=64, pos_fraction=0.5,
                     pos_iou=0.7, valid=valid)
  lab = np.asarray(lab)
  assert (lab == 0).sum() == 64 and not np.any(lab == 1) and not np.any(lab[~valid] >= 0)
  assert float(np.sum(w)) == 0.0


RCNN_FN = jax.jit(detection.rcnn_targets, static_argnames=("num_samples",))


def test_rcnn_targets_append_the_ground_truth_and_label_classes():
  rng = np.random.default_rng(5)
  xy = rng.uniform(0, 100, (20, 2))
  proposals = np.concatenate([xy, xy + rng.uniform(5, 30, (20, 2))], 1).astype(np.float32)
  gt = np.array([[10, 10, 50, 40], [60, 60, 90, 100], [0, 0, 5, 5]], np.float32)
  classes = np.array([4, 0, 7])
  mask = np.array([True, True, False])
  rois, labels, targets, valid = RCNN_FN(proposals, gt, classes, mask, jax.random.key(0), num_samples=16,
                                         proposal_valid=np.ones(20, bool))
  rois, labels, valid = np.asarray(rois), np.asarray(labels), np.asarray(valid)
  assert valid.all() and rois.shape == (16, 4)
  fg = labels > 0
  assert 2 <= fg.sum() <= 4 and np.all(fg[:fg.sum()])  # ≤ ¼ foreground, listed first
  assert set(labels[fg]) <= {5, 1}  # class + 1; the padding row (class 7) never appears
  back = _np_decode(np.asarray(targets) / [10.0, 10.0, 5.0, 5.0], rois)
  ious = _np_iou(rois, gt[:2])
  np.testing.assert_allclose(back[fg], gt[:2][ious[fg].argmax(1)], atol=1e-3)
  assert np.all(ious[fg].max(1) >= 0.5) and np.all(ious[~fg] < 0.5)
  assert not np.any(np.asarray(targets)[~fg])
  # nothing valid: nothing sampled
  _, labels, _, valid = RCNN_FN(proposals, gt, classes, np.zeros(3, bool), jax.random.key(0),
                                num_samples=16, proposal_valid=np.zeros(20, bool))
  assert not np.any(valid) and not np.any(labels)
  with pytest.raises(ConfigError, match="num_samples"):
    detection.rcnn_targets(proposals, gt, classes, mask, jax.random.key(0), num_samples=64)


# --------------------------------------------------------------------------------------------- postprocess


def test_proposals_decode_clip_nms_and_pad():
  anchors = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [-20, 20, 40, 40], [5, 5, 5, 30]], np.float32)
  logits = np.array([3.0, 2.0, 1.0, 4.0], np.float32)
  deltas = np.zeros((4, 4), np.float32)
  deltas[2] = [0.1, 0.0, 0.0, 0.0]  # moves box 2 right by 6 px before clipping
  fn = jax.jit(lambda lg, dl, an: detection.proposals(lg, dl, an, (32, 30), post_nms=4, nms_iou=0.7))
  boxes, scores, valid = fn(logits, deltas, anchors)
  # box 3 is empty (zero width), box 1 overlaps box 0 (IoU 9/11 > .7); box 2 is clipped to the image
  np.testing.assert_array_equal(valid, [True, True, False, False])
  np.testing.assert_allclose(boxes, [[0, 0, 10, 10], [0, 20, 30, 32], [0, 0, 0, 0], [0, 0, 0, 0]],
                             atol=1e-4)
  np.testing.assert_allclose(scores[:2], 1 / (1 + np.exp(-np.array([3.0, 1.0]))), rtol=1e-6)
  # batched by vmap with per-image sizes
  bfn = jax.jit(jax.vmap(lambda lg, hw: detection.proposals(lg, deltas, anchors, hw, post_nms=2)))
  b, _, v = bfn(np.stack([logits, logits[::-1]]), np.array([[32, 30], [32, 30]]))
  assert b.shape == (2, 2, 4) and bool(v.all())


def test_detections_per_class_nms_and_soft_nms():
  rois = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60]], np.float32)
  # columns: background, class 0, class 1
  logits = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.3, 0.6], [0.97, 0.02, 0.01]], np.float32))
  deltas = np.zeros((3, 4), np.float32)
  det = jax.jit(lambda lg, dl: detection.detections(lg, dl, rois, (100, 100), max_detections=4))
  out = det(logits, deltas)
  m = np.asarray(out["mask"])
  got = sorted(zip(np.asarray(out["scores"])[m].round(4), np.asarray(out["classes"])[m]), reverse=True)
  # class 0: roi 0 (0.8) suppresses roi 1 (0.3); class 1: roi 1 (0.6) kept, roi 0 (0.1) suppressed
  assert got == [(np.float32(0.8), 0), (np.float32(0.6), 1)]
  np.testing.assert_allclose(np.asarray(out["boxes"])[m][0], rois[0])
  # only the 3 best (RoI, class) pairs enter NMS: the same two detections
  top3 = jax.jit(lambda lg, dl: detection.detections(lg, dl, rois, (100, 100), max_detections=4, pre_nms=3))
  out3 = top3(logits, deltas)
  m3 = np.asarray(out3["mask"])
  assert sorted(zip(np.asarray(out3["scores"])[m3].round(4), np.asarray(out3["classes"])[m3]),
                reverse=True) == got
  # per-class deltas [R, C+1, 4]: class 1's row moves roi 1 by dx = 1 (weights 10 -> delta 10)
  per_class = np.zeros((3, 3, 4), np.float32)
  per_class[1, 2, 0] = 10.0
  out = det(logits, per_class)
  i = int(np.flatnonzero(np.asarray(out["classes"]) == 1)[0])
  np.testing.assert_allclose(out["boxes"][i], [10, 0, 20, 11], atol=1e-4)
  # Soft-NMS keeps the suppressed pair with a decayed score: 0.3 · exp(−IoU²/0.5)
  out = jax.jit(lambda lg, dl: detection.detections(lg, dl, rois, (100, 100), max_detections=4,
                                                    soft_nms=True))(logits, deltas)
  m = np.asarray(out["mask"])
  iou = 100 / 110
  # (0.1 decays to 0.019 < score_threshold 0.05: dropped)
  want = [0.8, 0.6, 0.3 * math.exp(-iou ** 2 / 0.5)]
  np.testing.assert_allclose(np.sort(np.asarray(out["scores"])[m])[::-1], want, rtol=1e-5)


# -------------------------------------------------------------------------------------------------- losses


def test_smooth_l1_and_the_stage_losses():
  x = np.array([-2.0, -0.5, 0.0, 0.05, 1.0, 3.0], np.float32)
  sl1 = jax.jit(detection.smooth_l1, static_argnums=1)
  np.testing.assert_allclose(sl1(x, 1.0), [1.5, 0.125, 0, 0.00125, 0.5, 2.5], rtol=1e-6)
  np.testing.assert_allclose(sl1(x, 0.0), np.abs(x))
  # continuous slope at |x| = β
  g = jax.jit(jax.vmap(jax.grad(lambda v: detection.smooth_l1(v, 0.5))))
  np.testing.assert_allclose(g(np.array([0.4999, 0.5001], np.float32)), [0.9998, 1.0], atol=1e-3)
  logits = np.array([2.0, -1.0, 0.5, 9.0], np.float32)
  labels = np.array([1, 0, -1, -1])  # two ignored
  deltas = np.ones((4, 4), np.float32)
  rpn_loss = jax.jit(detection.rpn_loss, static_argnames="beta")
  cls, box = rpn_loss(logits, deltas, labels, np.zeros((4, 4)), np.array([1.0, 0, 0, 0]), beta=1.0)
  np.testing.assert_allclose(cls, (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 2, rtol=1e-6)
  np.testing.assert_allclose(box, 4 * 0.5 / 2, rtol=1e-6)
  cls_logits = np.zeros((2, 3), np.float32)
  per_class = np.zeros((2, 3, 4), np.float32)
  per_class[0, 2] = 2.0  # only the labelled class's row counts
  cls, box = jax.jit(detection.rcnn_loss)(cls_logits, per_class, np.array([2, 0]), np.zeros((2, 4)),
                                 np.array([True, True]))
  np.testing.assert_allclose(cls, math.log(3), rtol=1e-6)
  np.testing.assert_allclose(box, 4 * 1.5 / 2, rtol=1e-6)
