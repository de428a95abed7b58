"""Anchor boxes on a feature map (the RPN's reference boxes).

ThunderNet's RPN has 25 anchors per position at stride 16: sizes 32, 64, 128, 256, 512 (the square root
of the area) × aspect ratios 1:2, 3:4, 1:1, 4:3, 2:1 (docs/reference.md §5). ``ratio`` is height/width,
so an anchor of size s and ratio r is ``s/√r`` wide and ``s·√r`` high.

Order of ``generate_anchors``'s rows: position-major (row y, then column x), then anchor, and within one
position size-major then ratio: row ``((y·W + x)·S + i_size)·R + i_ratio``. A conv head whose output is
``[B, H, W, A]`` (A = S·R channels in that size-major order) reshapes to ``[B, H·W·A]`` in the same order.
Anchor centers sit at ``((x + offset)·stride, (y + offset)·stride)``; ``offset=0.5`` puts them at the
centers of the stride×stride cells.
"""

from __future__ import annotations

import numpy as np

import jax.numpy as jnp

SIZES = (32, 64, 128, 256, 512)
RATIOS = (0.5, 0.75, 1.0, 4 / 3, 2.0)


def base_anchors(sizes=SIZES, ratios=RATIOS) -> np.ndarray:
  """The ``[S·R, 4]`` anchors of one position centered at the origin (size-major, then ratio)."""
  sizes = np.asarray(sizes, np.float64)[:, None]
  sqrt_r = np.sqrt(np.asarray(ratios, np.float64))[None, :]
  w = (sizes / sqrt_r).reshape(-1)
  h = (sizes * sqrt_r).reshape(-1)
  return np.stack([-w / 2, -h / 2, w / 2, h / 2], axis=-1).astype(np.float32)


def num_anchors(sizes=SIZES, ratios=RATIOS) -> int:
  """Anchors per position."""
  return len(sizes) * len(ratios)


def generate_anchors(feature_hw, stride, sizes=SIZES, ratios=RATIOS, *, offset=0.5):
  """All anchors of an ``(H, W)`` feature map of the given stride -> ``[H·W·A, 4]`` float32 (xyxy pixels).

  ``feature_hw`` and ``stride`` must be static (Python numbers); the result is a constant.
  """
  fh, fw = int(feature_hw[0]), int(feature_hw[1])
  ys = (np.arange(fh, dtype=np.float64) + offset) * stride
  xs = (np.arange(fw, dtype=np.float64) + offset) * stride
  cy, cx = np.meshgrid(ys, xs, indexing="ij")
  centers = np.stack([cx, cy, cx, cy], axis=-1).reshape(-1, 1, 4)
  anchors = centers + base_anchors(sizes, ratios)[None].astype(np.float64)
  return jnp.asarray(anchors.reshape(-1, 4), jnp.float32)


def inside_image(anchors, hw, allowed_border=0.0):
  """``[A]`` bool: anchors lying within the image grown by ``allowed_border`` pixels on each side.

  Faster R-CNN ignores cross-boundary anchors during RPN training (pass this as ``valid`` to
  ``rpn_targets``).
  """
  anchors = jnp.asarray(anchors)
  h = jnp.asarray(hw[0], anchors.dtype)
  w = jnp.asarray(hw[1], anchors.dtype)
  b = allowed_border
  return ((anchors[:, 0] >= -b) & (anchors[:, 1] >= -b) & (anchors[:, 2] <= w + b)
          & (anchors[:, 3] <= h + b))
