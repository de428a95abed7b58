"""Axis-aligned boxes: area, IoU, clipping and the Faster R-CNN box parameterization.

Boxes are ``[..., 4]`` float32 arrays ``(x1, y1, x2, y2)`` in pixels with continuous coordinates: a box's
width is ``x2 - x1`` (no "+1"; the VOC devkit's inclusive-pixel convention lives only in
``jaxgen.eval.detection``). Everything here is jit-able with static shapes; batch with ``jax.vmap``.

The regression targets are those of Faster R-CNN (Ren et al. 2015, eq. 2), scaled by ``weights``:

    dx = wx·(gx − ax)/aw,  dy = wy·(gy − ay)/ah,  dw = ww·log(gw/aw),  dh = wh·log(gh/ah)

with (ax, ay, aw, ah) the reference box's center and size. ``weights=(1, 1, 1, 1)`` is the RPN's choice;
``(10, 10, 5, 5)`` is the R-CNN head's (the same as py-faster-rcnn's target normalization by the stds
(0.1, 0.1, 0.2, 0.2)). ``decode`` inverts ``encode`` and clamps dw, dh at ``log(1000/16)`` so that an
untrained head cannot overflow ``exp`` (docs/thundernet.md).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

BBOX_CLIP = math.log(1000.0 / 16)


def area(boxes):
  """``[..., 4] -> [...]``; empty (inverted) boxes have area 0."""
  boxes = jnp.asarray(boxes)
  w = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
  h = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
  return w * h


def intersection(a, b):
  """Pairwise intersection areas: ``a [N, 4]``, ``b [M, 4]`` -> ``[N, M]``."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  lo = jnp.maximum(a[:, None, :2], b[None, :, :2])
  hi = jnp.minimum(a[:, None, 2:], b[None, :, 2:])
  wh = jnp.maximum(hi - lo, 0.0)
  return wh[..., 0] * wh[..., 1]


def iou(a, b):
  """Pairwise intersection over union: ``a [N, 4]``, ``b [M, 4]`` -> ``[N, M]``.

  A pair whose union is empty (two degenerate boxes) has IoU 0, never NaN.
  """
  inter = intersection(a, b)
  union = area(a)[:, None] + area(b)[None, :] - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def elementwise_iou(a, b):
  """IoU of matching rows: ``a [..., 4]``, ``b [..., 4]`` -> ``[...]``."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  lo = jnp.maximum(a[..., :2], b[..., :2])
  hi = jnp.minimum(a[..., 2:], b[..., 2:])
  wh = jnp.maximum(hi - lo, 0.0)
  inter = wh[..., 0] * wh[..., 1]
  union = area(a) + area(b) - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def clip(boxes, hw):
  """Clip ``[..., 4]`` boxes to an image of height/width ``hw = (H, W)`` (0 ≤ x ≤ W, 0 ≤ y ≤ H).

  ``hw`` may be a traced array (per-image sizes under vmap).
  """
  boxes = jnp.asarray(boxes)
  h = jnp.asarray(hw[0], boxes.dtype)
  w = jnp.asarray(hw[1], boxes.dtype)
  x1 = jnp.clip(boxes[..., 0], 0.0, w)
  y1 = jnp.clip(boxes[..., 1], 0.0, h)
  x2 = jnp.clip(boxes[..., 2], 0.0, w)
  y2 = jnp.clip(boxes[..., 3], 0.0, h)
  return jnp.stack([x1, y1, x2, y2], axis=-1)


def to_cxcywh(boxes):
  """``(x1, y1, x2, y2) -> (cx, cy, w, h)``."""
  boxes = jnp.asarray(boxes)
  wh = boxes[..., 2:] - boxes[..., :2]
  return jnp.concatenate([boxes[..., :2] + 0.5 * wh, wh], axis=-1)


def from_cxcywh(boxes):
  """``(cx, cy, w, h) -> (x1, y1, x2, y2)``."""
  boxes = jnp.asarray(boxes)
  half = 0.5 * boxes[..., 2:]
  return jnp.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)


def encode(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
  """Regression targets that move ``anchors [..., 4]`` onto ``boxes [..., 4]`` -> ``[..., 4]``.

  Degenerate anchors or boxes (width or height ≤ 0) give finite targets: sizes are floored at 1e-6 —
  callers mask such rows out of the loss anyway.
  """
  boxes, anchors = jnp.asarray(boxes, jnp.float32), jnp.asarray(anchors, jnp.float32)
  wx, wy, ww, wh = weights
  a = to_cxcywh(anchors)
  g = to_cxcywh(boxes)
  aw = jnp.maximum(a[..., 2], 1e-6)
  ah = jnp.maximum(a[..., 3], 1e-6)
  gw = jnp.maximum(g[..., 2], 1e-6)
  gh = jnp.maximum(g[..., 3], 1e-6)
  dx = wx * (g[..., 0] - a[..., 0]) / aw
  dy = wy * (g[..., 1] - a[..., 1]) / ah
  dw = ww * jnp.log(gw / aw)
  dh = wh * jnp.log(gh / ah)
  return jnp.stack([dx, dy, dw, dh], axis=-1)


def decode(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0), clip_ratio=BBOX_CLIP):
  """Apply ``deltas [..., 4]`` to ``anchors [..., 4]`` -> boxes ``[..., 4]`` (the inverse of ``encode``).

  ``dw``, ``dh`` (after dividing by their weights) are clamped at ``clip_ratio`` before ``exp``.
  """
  deltas, anchors = jnp.asarray(deltas, jnp.float32), jnp.asarray(anchors, jnp.float32)
  wx, wy, ww, wh = weights
  a = to_cxcywh(anchors)
  dx = deltas[..., 0] / wx
  dy = deltas[..., 1] / wy
  dw = jnp.minimum(deltas[..., 2] / ww, clip_ratio)
  dh = jnp.minimum(deltas[..., 3] / wh, clip_ratio)
  cx = a[..., 0] + dx * a[..., 2]
  cy = a[..., 1] + dy * a[..., 3]
  w = a[..., 2] * jnp.exp(dw)
  h = a[..., 3] * jnp.exp(dh)
  return from_cxcywh(jnp.stack([cx, cy, w, h], axis=-1))
