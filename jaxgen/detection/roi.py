"""Position-sensitive RoI align (R-FCN's PSRoI pooling with RoIAlign's bilinear sampling).

ThunderNet pools its 245-channel (5 × 7 × 7) SAM output with PSRoI align to 7×7 bins of 5 channels
(docs/reference.md §5). Each RoI is split into ``k × k`` bins; bin (i, j) reads only its own group of
``channels`` feature channels, at input channel ``(c·k + i)·k + j`` for output channel c (R-FCN's and
torchvision's ``ps_roi_align`` layout: class/channel-major, then bin row, then bin column).

Sampling (RoIAlign, He et al. 2017, "aligned" pixel model): a RoI (x1, y1, x2, y2) in image pixels maps
to feature coordinates ``x·spatial_scale − 0.5``; each bin averages ``sampling_ratio²`` bilinear samples
on a regular grid inside it. Bilinear reads follow torchvision's ``bilinear_interpolate``: a sample more
than one pixel outside the map reads 0, otherwise coordinates are clamped to the map. The result is
differentiable in the features (and, through the sample positions, in the RoIs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _axis_matrix(start, bin_size, k, sampling_ratio, size):
  """Bilinear read weights of one axis, averaged over each bin's samples: ``[k, size]``.

  Row i holds, for every map index along the axis, the mean over the bin's ``sampling_ratio`` sample
  positions of its bilinear weight (0 for samples more than one pixel outside the map).
  """
  grid = (jnp.arange(k, dtype=jnp.float32)[:, None]
          + (jnp.arange(sampling_ratio, dtype=jnp.float32)[None, :] + 0.5) / sampling_ratio)
  pos = start + grid * bin_size  # [k, s]
  inside = (pos >= -1.0) & (pos <= size)
  pos = jnp.maximum(pos, 0.0)
  low = jnp.floor(jax.lax.stop_gradient(pos)).astype(jnp.int32)
  at_edge = low >= size - 1
  low = jnp.where(at_edge, size - 1, low)
  high = jnp.where(at_edge, size - 1, low + 1)
  pos = jnp.where(at_edge, low.astype(jnp.float32), pos)
  frac = pos - low.astype(jnp.float32)
  w_low = jnp.where(inside, 1.0 - frac, 0.0)
  w_high = jnp.where(inside, frac, 0.0)
  mat = (jax.nn.one_hot(low, size, dtype=jnp.float32) * w_low[..., None]
         + jax.nn.one_hot(high, size, dtype=jnp.float32) * w_high[..., None])
  return mat.mean(axis=1)


def psroi_align(features, rois, *, output_size=7, channels=None, spatial_scale=1.0 / 16,
                sampling_ratio=2):
  """Pool ``rois [R, 4]`` (xyxy image pixels) from ``features [H, W, k·k·C]`` -> ``[R, k, k, C]``.

  ``output_size`` is k, ``channels`` is C (default: the feature channels divided by k²).
  ``sampling_ratio`` (static, > 0) samples per bin along each axis. One image; vmap over a batch.

  Bilinear sampling on a regular grid is separable, so the pooling is two dense contractions with
  per-RoI ``[k, H]`` and ``[k, W]`` weight matrices (``_axis_matrix``): no gathers, and the backward
  pass is matrix products too (no scatter-add), which is what makes it fast on CPU and accelerators.
  Cost per image: R·k²·H·W·C multiply-adds for the first contraction.
  """
  k = int(output_size)
  features = jnp.asarray(features)
  height, width, total = features.shape
  if channels is None:
    channels = total // (k * k)
  if total != k * k * channels:
    raise ValueError(f"psroi_align needs k·k·C = {k}·{k}·{channels} = {k * k * channels} feature channels, "
                     f"got {total}")
  if int(sampling_ratio) <= 0:
    raise ValueError("psroi_align needs a static sampling_ratio > 0")
  s = int(sampling_ratio)
  # [H, W, C, k, k]: channel (c·k + i)·k + j -> (c, i, j)
  grouped = features.reshape(height, width, channels, k, k)
  rois = jnp.asarray(rois, jnp.float32) * spatial_scale - 0.5
  bin_w = (rois[:, 2] - rois[:, 0]) / k
  bin_h = (rois[:, 3] - rois[:, 1]) / k
  ay = jax.vmap(lambda st, b: _axis_matrix(st, b, k, s, height))(rois[:, 1], bin_h)  # [R, k(i), H]
  ax = jax.vmap(lambda st, b: _axis_matrix(st, b, k, s, width))(rois[:, 0], bin_w)   # [R, k(j), W]
  cdt = jnp.promote_types(features.dtype, jnp.float32)
  rows = jnp.einsum("rih,hwcij->riwcj", ay.astype(cdt), grouped.astype(cdt))        # [R, k, W, C, k]
  out = jnp.einsum("riwcj,rjw->rijc", rows, ax.astype(cdt))                          # [R, k, k, C]
  return out.astype(features.dtype)
