"""Boxes, anchors and NMS of jaxgen.detection against hand-computed values and plain NumPy references."""

import math

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxgen import detection
from jaxgen.detection import boxes as box_ops
from jaxgen.detection.nms import batched_nms, nms, soft_nms


def _np_iou(a, b):
  lo = np.maximum(a[:, None, :2], b[None, :, :2])
  hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
  area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)
  union = area(a)[:, None] + area(b)[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _np_nms(boxes, scores, thr):
  """py-faster-rcnn's greedy loop (continuous coordinates)."""
  order = np.argsort(-scores, kind="stable")
  keep = []
  while order.size:
    i = order[0]
    keep.append(i)
    ov = _np_iou(boxes[i:i + 1], boxes[order[1:]])[0]
    order = order[1:][ov <= thr]
  return keep


def _np_soft_nms(boxes, scores, method, sigma, thr, score_thr):
  s = scores.astype(np.float64).copy()
  alive = s > score_thr
  out = []
  while alive.any():
    j = int(np.argmax(np.where(alive, s, -np.inf)))
    out.append((j, s[j]))
    alive[j] = False
    ov = _np_iou(boxes[j:j + 1], boxes)[0]
    decay = np.exp(-ov ** 2 / sigma) if method == "gaussian" else np.where(ov > thr, 1 - ov, 1)
    s = s * decay
    alive &= s > score_thr
  return out


def _random_boxes(seed, n, size=100.0):
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, size, (n, 2))
  wh = rng.uniform(5, 40, (n, 2))
  return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def _scores(seed, n):
  return np.random.default_rng(seed).uniform(size=n).astype(np.float32)


def test_iou_of_hand_made_pairs():
  a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [5, 5, 5, 9]], np.float32)
  b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 5, 9]], np.float32)
  got, diag, area = jax.jit(lambda a, b: (detection.iou(a, b), detection.elementwise_iou(a, b),
                                          detection.area(a)))(a, b)
  # overlap 1 / union 7; identical boxes 1; nested 1/4; disjoint 0; degenerate (zero area) 0, not NaN
  np.testing.assert_allclose(got[0], [1 / 7, 1, 0], atol=1e-7)
  np.testing.assert_allclose(got[1], [0, 0.25, 0], atol=1e-7)
  np.testing.assert_allclose(got[2], [0, 0, 0], atol=1e-7)
  np.testing.assert_allclose(diag, np.diag(got), atol=1e-7)
  np.testing.assert_allclose(area, [4, 1, 0])
  rnd = _random_boxes(0, 30)
  np.testing.assert_allclose(jax.jit(detection.iou)(rnd, rnd[:7]), _np_iou(rnd, rnd[:7]), atol=1e-6)


ENCODE = jax.jit(detection.encode, static_argnums=2)
DECODE = jax.jit(detection.decode, static_argnums=2)


def test_encode_decode_round_trip_and_known_deltas():
  anchors = np.array([[0, 0, 10, 20], [5, 5, 15, 15]], np.float32)
  gt = np.array([[5, 0, 15, 20], [0, 0, 20, 20]], np.float32)
  d = np.asarray(ENCODE(gt, anchors, (1.0, 1.0, 1.0, 1.0)))
  # first: shifted by half a width -> dx = 0.5; second: same center, twice the size -> log 2
  np.testing.assert_allclose(d, [[0.5, 0, 0, 0], [0, 0, math.log(2), math.log(2)]], atol=1e-6)
  w = (10.0, 10.0, 5.0, 5.0)
  np.testing.assert_allclose(ENCODE(gt, anchors, w), d * np.array(w), atol=1e-5)
  rnd_a, rnd_b = _random_boxes(1, 50), _random_boxes(2, 50)
  for weights in [(1.0, 1.0, 1.0, 1.0), w]:
    back = DECODE(ENCODE(rnd_b, rnd_a, weights), rnd_a, weights)
    np.testing.assert_allclose(back, rnd_b, atol=2e-4)
  # huge dw is clamped at log(1000/16): width at most 62.5 × the anchor's
  big = DECODE(np.array([[0, 0, 50.0, 0]], np.float32), anchors[:1], (1.0, 1.0, 1.0, 1.0))
  np.testing.assert_allclose(big[0, 2] - big[0, 0], 10 * 1000 / 16, rtol=1e-5)


def test_clip_to_image():
  b = np.array([[-5, -3, 50, 70], [10, 10, 20, 20]], np.float32)
  got = jax.jit(detection.clip)(b, np.array([60, 40]))  # hw may be traced
  np.testing.assert_allclose(got, [[0, 0, 40, 60], [10, 10, 20, 20]])


def test_anchors_layout_sizes_and_ratios():
  sizes, ratios = (32, 64, 128, 256, 512), (0.5, 0.75, 1.0, 4 / 3, 2.0)
  a = np.asarray(detection.generate_anchors((3, 4), 16, sizes, ratios))
  assert a.shape == (3 * 4 * 25, 4) and detection.num_anchors() == 25
  per = a.reshape(3, 4, 5, 5, 4)  # [y, x, size, ratio, 4]
  w = per[..., 2] - per[..., 0]
  h = per[..., 3] - per[..., 1]
  np.testing.assert_allclose(np.sqrt(w * h), np.broadcast_to(np.array(sizes, float)[:, None], w.shape),
                             rtol=1e-5)
  np.testing.assert_allclose(h / w, np.broadcast_to(np.array(ratios), w.shape), rtol=1e-5)
  cx = (per[..., 0] + per[..., 2]) / 2
  cy = (per[..., 1] + per[..., 3]) / 2
  np.testing.assert_allclose(cx[1, 2], 2.5 * 16, atol=1e-4)   # row y=1, column x=2: center (40, 24)
  np.testing.assert_allclose(cy[1, 2], 1.5 * 16, atol=1e-4)
  inside = jax.jit(detection.inside_image)(a, np.array([48, 64]))
  assert bool(inside[25 * 5 + 2]) and not bool(inside[25 * 5 + 24])  # 32² 1:1 fits; 512² 2:1 does not


@pytest.fixture(scope="module")
def nms_fn():
  return jax.jit(nms, static_argnums=3)  # the thresholds may be traced


def test_nms_matches_the_numpy_loop(nms_fn):
  boxes = _random_boxes(3, 60)
  scores = _scores(4, 60)
  for thr in (0.3, 0.5, 0.7):
    keep, valid = nms_fn(boxes, scores, thr, 60)
    ref = _np_nms(boxes, scores, thr)
    assert int(valid.sum()) == len(ref)
    assert list(np.asarray(keep)[np.asarray(valid)]) == ref
  # a shorter output is the prefix of the full one
  k5, v5 = nms_fn(boxes, scores, 0.7, 5)
  assert list(np.asarray(k5)) == ref[:5] and bool(v5.all())


def test_nms_thresholds_masks_and_ties(nms_fn):
  boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
  scores = np.array([0.9, 0.8, 0.1, 0.9], np.float32)
  keep, valid = nms_fn(boxes, scores, 0.5, 4, score_threshold=0.2, valid=np.ones(4, bool))
  assert list(np.asarray(keep)[np.asarray(valid)]) == [0, 3]  # tie 0.9: lower index first; 0.1 dropped
  keep, valid = nms_fn(boxes, scores, 0.5, 4, score_threshold=-np.inf,
                       valid=np.array([False, True, True, True]))
  assert list(np.asarray(keep)[np.asarray(valid)]) == [3, 1, 2]
  keep, valid = nms_fn(boxes, np.array([np.nan, 1, 1, -np.inf], np.float32), 0.5, 4,
                       score_threshold=-np.inf, valid=np.ones(4, bool))
  assert list(np.asarray(keep)[np.asarray(valid)]) == [1, 2]


def test_batched_nms_is_nms_per_class():
  boxes = _random_boxes(5, 40, size=40.0)
  scores = _scores(6, 40)
  classes = np.arange(40) % 3
  fn = jax.jit(batched_nms, static_argnums=(3, 4))
  keep, valid = fn(boxes, scores, classes, 0.4, 40)
  got = np.asarray(keep)[np.asarray(valid)]
  ref = []
  for c in range(3):
    idx = np.flatnonzero(classes == c)
    ref += [idx[i] for i in _np_nms(boxes[idx], scores[idx], 0.4)]
  assert sorted(got.tolist()) == sorted(ref)
  assert np.all(np.diff(scores[got]) <= 0)  # best first across classes
  # a NaN box (never kept itself) does not disturb the class offsets of the others
  bad = boxes.copy()
  bad[int(np.argmin(scores))] = np.nan
  keep2, valid2 = fn(bad, scores, classes, 0.4, 40)
  assert set(np.asarray(keep2)[np.asarray(valid2)]) == set(got) - {int(np.argmin(scores))}


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_soft_nms_matches_the_numpy_loop(method):
  boxes = _random_boxes(7, 30, size=40.0)
  scores = _scores(8, 30)
  fn = jax.jit(soft_nms, static_argnums=2, static_argnames=("method", "sigma", "iou_threshold",
                                                           "score_threshold"))
  keep, new_scores, valid = fn(boxes, scores, 30, method=method, sigma=0.5, iou_threshold=0.3,
                               score_threshold=0.05)
  ref = _np_soft_nms(boxes, scores, method, 0.5, 0.3, 0.05)
  n = int(valid.sum())
  assert n == len(ref)
  assert list(np.asarray(keep)[:n]) == [j for j, _ in ref]
  np.testing.assert_allclose(np.asarray(new_scores)[:n], [s for _, s in ref], rtol=1e-5)
