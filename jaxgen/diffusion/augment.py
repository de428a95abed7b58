"""EDM's non-leaking augmentation pipe (Karras et al. 2022; official ``training/augment.py``).

The pipe transforms a training image y before noise is added and returns, with it, a vector of
*augmentation labels* that tells the denoiser which transformation was applied
(``augment_labels`` → the network's ``map_augment``). Sampling conditions on zero labels (no
augmentation), so the augmentations do not leak into the generated images. The ops and their
semantics follow the official code (itself built on the ADA pipeline of Karras et al. 2020):

* every op has a strength multiplier; op k fires for an example with probability ``p·strength_k``
  (clipped to 1 by the draw ``u < p·strength``: EDM's CIFAR-10 ``xflip=1e8`` makes the x-flip op
  always active, and the flip itself is then a fair coin, so half the images are mirrored — and
  labelled so);
* an op with strength 0 is absent: it appends no label. An enabled op that does not fire appends
  zeros. Labels follow this order (``label_names``; EDM config F's six ops give 9 entries):

    op              parameter when the op fires (0 otherwise)          labels
    xflip, yflip    w ∈ {0, 1}, a fair coin                            w
    rotate_int      w ∈ {0, 1, 2, 3} quarter turns                     [w ∈ {1, 2}], [w ∈ {2, 3}]
    translate_int   (a, b) ~ U(−1, 1)², t = round((a·W, b·H)·m),       t_x/(W·m), t_y/(H·m)
                    m = translate_int_max
    scale           w ~ N(0, 1), factor 2^(w·scale_std)                w
    rotate_frac     θ ~ U(−π, π)·rotate_frac_max                       cos θ − 1, sin θ
    aniso           w ~ N(0, 1), factors 2^(±w·aniso_std) in a frame   w·cos r, w·sin r
                    at angle r ~ U(−π, π) (r = 0 with prob. 1 − aniso_rotate_prob)
    translate_frac  (a, b) ~ N(0, 1)², shift (a·W, b·H)·translate_frac_std   a, b
    brightness      w ~ N(0, 1), offset w·brightness_std               w
    contrast        w ~ N(0, 1), gain 2^(w·contrast_std)               w
    lumaflip        w ∈ {0, 1}, reflection along the luma axis         w
    hue             θ ~ U(−π, π)·hue_max, rotation about the luma axis cos θ − 1, sin θ
    saturation      w ~ N(0, 1), chroma gain 2^(w·saturation_std)      w

Pixel blitting (xflip, yflip, rotate_int, translate_int) permutes pixels exactly; translate_int reads
mirrored pixels outside the image (reflection without edge repeat, x_src = x − t_x but y_src = y + t_y,
as in the official code). The geometric ops compose one inverse map G⁻¹ per example (output pixel →
input pixel, image-centred pixel coordinates, G⁻¹ ← G⁻¹·op⁻¹ in the order of the table), and the
image is resampled once, as in EDM: reflect padding (here always the W−1 / H−1 pixels that are
EDM's maximum padding), 2× upsampling with the sym6 wavelet low-pass filter h, bilinear sampling at
2× resolution (zeros outside) at u = 2·G⁻¹((o + ½)/2) − ½ (o the 2× output coordinate, centred), and
2× downsampling with h. Since Σ_k h_k h_{k+2n} = δ_n, the chain is the identity for G⁻¹ = I (to float
rounding), and examples whose geometric parameters are all zero are returned unchanged (EDM resamples
them too, with the same identity result). Along a reversed axis the delays of the asymmetric h add
instead of cancelling, so a quarter or half turn through rotate_frac reads its source
δ = Σk·h_k/√2 − 5 = 0.098 px off np.rot90's pixels along each reversed axis (EDM's result as well).
The filters (with the padding) are small constant matrices applied as matmuls, the bilinear step a
4-tap gather per 2× output pixel. The colour ops compose one 4×4 affine colour matrix M
(M ← op·M) applied to RGB values in [−1, 1] (grey images: the mean of its first three rows).

Differences from the official code, all deliberate:
* EDM pads each batch by its largest needed margin (capped at W−1 / H−1); a static W−1 / H−1 is used
  here, so an example's result does not depend on the rest of its batch. Against a transcription of
  EDM's algorithm with its batch-wide margins (tests/test_augment.py) the results agree to float32
  rounding (≤ 5e-6 measured, per-example or batch-wide margins alike).
* Randomness is per example: example i uses ``fold_in(key, i)`` and each op its own
  ``fold_in(·, op_index)``, so the result for example i depends only on (key, i) — not on the batch
  size, the sharding, or which other ops are enabled.

Images are NHWC (EDM: NCHW), any float dtype (computed in float32 and cast back). The pipe is a
frozen dataclass (hashable, a valid static argument), and ``__call__`` is pure and jit/vmap-able.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError

# Op names in EDM's label order, and the number of labels each appends.
OPS = ("xflip", "yflip", "rotate_int", "translate_int", "scale", "rotate_frac", "aniso", "translate_frac",
       "brightness", "contrast", "lumaflip", "hue", "saturation")
LABELS = {"xflip": ("xflip",), "yflip": ("yflip",), "rotate_int": ("rotate_int_x", "rotate_int_y"),
          "translate_int": ("translate_int_x", "translate_int_y"), "scale": ("scale",),
          "rotate_frac": ("rotate_frac_cos", "rotate_frac_sin"), "aniso": ("aniso_cos", "aniso_sin"),
          "translate_frac": ("translate_frac_x", "translate_frac_y"), "brightness": ("brightness",),
          "contrast": ("contrast",), "lumaflip": ("lumaflip",), "hue": ("hue_cos", "hue_sin"),
          "saturation": ("saturation",)}
GEOMETRIC = ("scale", "rotate_frac", "aniso", "translate_frac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")

# Low-pass decomposition filter of the Symlet-6 wavelet (12 taps; Σh = √2, Σ h_k h_{k+2n} = δ_n).
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
_HZ_PAD = len(SYM6) // 4  # 3: the margin (original pixels) kept around the image while resampling

_HI = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
  """EDM's augmentation pipe; fields and defaults as the official ``AugmentPipe`` (all ops off).

  EDM CIFAR-10 config F: ``AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1,
  translate_frac=1)`` (``label_dim`` 9); FFHQ / AFHQv2 64²: the same with p=0.15.
  """
  p: float = 1.0                    # overall probability multiplier
  # Pixel blitting.
  xflip: float = 0.0
  yflip: float = 0.0
  rotate_int: float = 0.0
  translate_int: float = 0.0
  translate_int_max: float = 0.125  # range of integer translation, relative to the image size
  # Geometric transformations.
  scale: float = 0.0
  rotate_frac: float = 0.0
  aniso: float = 0.0
  translate_frac: float = 0.0
  scale_std: float = 0.2            # log2 standard deviation of isotropic scaling
  rotate_frac_max: float = 1.0      # range of fractional rotation, 1 = full circle
  aniso_std: float = 0.2            # log2 standard deviation of anisotropic scaling
  aniso_rotate_prob: float = 0.5    # probability of a rotated frame for the anisotropic scaling
  translate_frac_std: float = 0.125 # standard deviation of fractional translation, relative to the size
  # Colour transformations.
  brightness: float = 0.0
  contrast: float = 0.0
  lumaflip: float = 0.0
  hue: float = 0.0
  saturation: float = 0.0
  brightness_std: float = 0.2
  contrast_std: float = 0.5         # log2
  hue_max: float = 1.0              # 1 = full circle
  saturation_std: float = 1.0       # log2

  def __post_init__(self):
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      try:
        v = float(v)
      except (TypeError, ValueError):
        raise ConfigError(f"augment {f.name}={v!r} is not a number: set it to a float >= 0.") from None
      if not math.isfinite(v) or v < 0:
        raise ConfigError(f"augment {f.name}={v!r} must be finite and >= 0 (a probability multiplier "
                          "or a spread): fix task.augment.")
      object.__setattr__(self, f.name, v)
    if self.aniso_rotate_prob > 1:
      raise ConfigError(f"augment aniso_rotate_prob={self.aniso_rotate_prob} is a probability: use a value "
                        "in [0, 1].")

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any] | None) -> "AugmentPipe":
    """The pipe of a config dict (``task.augment``); unknown keys are an error."""
    d = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else (cfg or {}))
    names = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(d) - names)
    if bad:
      raise ConfigError(f"augment option {bad[0]!r} is unknown: use the ops {', '.join(OPS)} and their "
                        "spreads (e.g. scale_std), as in EDM's AugmentPipe.")
    return cls(**d)

  # --- static structure ----------------------------------------------------------------------
  @property
  def enabled_ops(self) -> tuple[str, ...]:
    """The ops with a nonzero strength, in label order."""
    return tuple(op for op in OPS if getattr(self, op) > 0)

  @property
  def label_names(self) -> tuple[str, ...]:
    return tuple(n for op in self.enabled_ops for n in LABELS[op])

  @property
  def label_dim(self) -> int:
    """The length of the augmentation label vector (the network's ``augment_dim``)."""
    return len(self.label_names)

  @property
  def active(self) -> bool:
    """Whether the pipe can change anything (p > 0 and some op enabled)."""
    return self.p > 0 and bool(self.enabled_ops)

  # --- random parameters ---------------------------------------------------------------------
  def sample_params(self, key, batch_size: int) -> dict[str, jax.Array]:
    """The random parameters of ``batch_size`` examples: {op: [B] or [B, 2]}, zero where the op does not
    fire. Example i draws from ``fold_in(key, i)`` only."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch_size, dtype=jnp.uint32))
    return jax.vmap(self._sample_one)(keys)

  def _sample_one(self, key) -> dict[str, jax.Array]:
    f32 = jnp.float32
    out = {}
    for idx, op in enumerate(OPS):
      strength = getattr(self, op)
      if strength <= 0:
        continue
      k_fire, k_w, k_r, k_rfire = jax.random.split(jax.random.fold_in(key, idx), 4)
      fire = jax.random.uniform(k_fire, (), f32) < strength * self.p
      if op in ("xflip", "yflip", "lumaflip"):
        w = jax.random.randint(k_w, (), 0, 2).astype(f32)
      elif op == "rotate_int":
        w = jax.random.randint(k_w, (), 0, 4).astype(f32)
      elif op == "translate_int":
        w = jax.random.uniform(k_w, (2,), f32, -1.0, 1.0)
      elif op == "translate_frac":
        w = jax.random.normal(k_w, (2,), f32)
      elif op in ("rotate_frac", "hue"):
        spread = self.rotate_frac_max if op == "rotate_frac" else self.hue_max
        w = jax.random.uniform(k_w, (), f32, -1.0, 1.0) * (np.pi * spread)
      elif op == "aniso":
        r = jax.random.uniform(k_r, (), f32, -1.0, 1.0) * np.pi
        r = jnp.where(jax.random.uniform(k_rfire, (), f32) < self.aniso_rotate_prob, r, 0.0)
        w = jnp.stack([jax.random.normal(k_w, (), f32), r])
        out[op] = w * jnp.stack([fire, True]).astype(f32)   # r is drawn whether or not the op fires
        continue
      else:  # scale, brightness, contrast, saturation
        w = jax.random.normal(k_w, (), f32)
      out[op] = jnp.where(fire, w, jnp.zeros_like(w))
    return out

  # --- application ---------------------------------------------------------------------------
  def __call__(self, key, images) -> tuple[jax.Array, jax.Array]:
    """(augmented images, augmentation labels [B, label_dim] float32) of NHWC ``images``."""
    self._check(images)
    return _call(self, key, images)

  def apply(self, images, params: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Applies explicit per-example parameters (as ``sample_params`` returns them; deterministic)."""
    self._check(images)
    return _apply(self, images, dict(params))

  def labels(self, params: Mapping[str, jax.Array], image_size: tuple[int, int] | None = None) -> jax.Array:
    """The label vectors [B, label_dim] of per-example parameters; ``image_size`` (H, W) is needed only
    by translate_int, whose labels are the rounded pixel shifts over (size·translate_int_max)."""
    if self.translate_int > 0 and image_size is None:
      raise ConfigError("translate_int labels depend on the image size: pass image_size=(H, W).")
    return jax.vmap(lambda q: self._labels_one(q, image_size))(dict(params))

  def _check(self, images):
    shape = getattr(images, "shape", ())
    if len(shape) != 4:
      raise ConfigError(f"AugmentPipe takes NHWC image batches, got shape {tuple(shape)}.")
    n, h, w, c = shape
    if shape[1] in (1, 3) and c not in (1, 3):
      raise ConfigError(f"images of shape {tuple(shape)} look NCHW: AugmentPipe takes NHWC (transpose them).")
    if self.rotate_int > 0 and h != w:
      raise ConfigError(f"rotate_int needs square images, got {h}×{w}: set rotate_int=0.")
    if any(getattr(self, op) > 0 for op in COLOR) and c not in (1, 3):
      raise ConfigError(f"the colour ops need RGB or grey images, got {c} channels: disable them.")

  def _labels_one(self, prm, shape) -> jax.Array:
    out = []
    for op in self.enabled_ops:
      w = prm[op]
      if op == "rotate_int":
        out += [(w == 1) | (w == 2), (w == 2) | (w == 3)]
      elif op == "translate_int":
        out += list(_int_shift(w, shape, self.translate_int_max, normalized=True))
      elif op in ("rotate_frac", "hue"):
        out += [jnp.cos(w) - 1.0, jnp.sin(w)]
      elif op == "aniso":
        out += [w[0] * jnp.cos(w[1]), w[0] * jnp.sin(w[1])]
      elif op == "translate_frac":
        out += [w[0], w[1]]
      else:
        out += [w]
    if not out:
      return jnp.zeros((0,), jnp.float32)
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in out])

  def _apply_one(self, img, prm):
    h, w, c = img.shape
    labels = self._labels_one(prm, (h, w))
    # Pixel blitting.
    if self.xflip > 0:
      img = jnp.where(prm["xflip"] == 1, img[:, ::-1], img)
    if self.yflip > 0:
      img = jnp.where(prm["yflip"] == 1, img[::-1], img)
    if self.rotate_int > 0:
      r = prm["rotate_int"]
      img = jnp.where((r == 1) | (r == 2), img[:, ::-1], img)
      img = jnp.where((r == 2) | (r == 3), img[::-1], img)
      img = jnp.where((r == 1) | (r == 3), jnp.swapaxes(img, 0, 1), img)
    if self.translate_int > 0:
      tx, ty = _int_shift(prm["translate_int"], (h, w), self.translate_int_max)
      img = img[_mirror(jnp.arange(h) + ty, h)][:, _mirror(jnp.arange(w) - tx, w)]
    # Geometric transformations: one inverse map, one resampling.
    if any(getattr(self, op) > 0 for op in GEOMETRIC):
      g = self._geometric_matrix(prm, (h, w))
      moved = jnp.any(jnp.stack([jnp.any(prm[op][:1] != 0 if op == "aniso" else prm[op] != 0)
                                 for op in GEOMETRIC if getattr(self, op) > 0]))
      img = jnp.where(moved, resample_one(img, g), img)
    # Colour transformations.
    if any(getattr(self, op) > 0 for op in COLOR):
      m = self._color_matrix(prm)
      if c == 3:
        img = jnp.einsum("ij,hwj->hwi", m[:3, :3], img, precision=_HI) + m[:3, 3]
      else:
        row = jnp.mean(m[:3], axis=0)
        img = img * jnp.sum(row[:3]) + row[3]
    return img, labels

  def _geometric_matrix(self, prm, shape) -> jax.Array:
    """G⁻¹ (3×3): output pixel → input pixel, image-centred coordinates."""
    h, w = shape
    g = jnp.eye(3, dtype=jnp.float32)
    if self.scale > 0:
      s = jnp.exp2(prm["scale"] * self.scale_std)
      g = g @ _scale2d(1.0 / s, 1.0 / s)
    if self.rotate_frac > 0:
      g = g @ _rotate2d(prm["rotate_frac"])
    if self.aniso > 0:
      a, r = prm["aniso"][0], prm["aniso"][1]
      s = jnp.exp2(a * self.aniso_std)
      g = g @ _rotate2d(-r) @ _scale2d(1.0 / s, s) @ _rotate2d(r)
    if self.translate_frac > 0:
      t = prm["translate_frac"]
      g = g @ _translate2d(-t[0] * w * self.translate_frac_std, -t[1] * h * self.translate_frac_std)
    return g

  def _color_matrix(self, prm) -> jax.Array:
    """M (4×4) acting on homogeneous RGB colours."""
    eye = jnp.eye(4, dtype=jnp.float32)
    luma = jnp.asarray([1.0, 1.0, 1.0, 0.0], jnp.float32) / np.sqrt(3.0)
    outer = jnp.outer(luma, luma)
    m = eye
    if self.brightness > 0:
      b = prm["brightness"] * self.brightness_std
      m = eye.at[:3, 3].set(b) @ m
    if self.contrast > 0:
      cgain = jnp.exp2(prm["contrast"] * self.contrast_std)
      m = jnp.diag(jnp.stack([cgain, cgain, cgain, 1.0])) @ m
    if self.lumaflip > 0:
      m = (eye - 2.0 * outer * prm["lumaflip"]) @ m
    if self.hue > 0:
      m = _rotate3d(luma[:3], prm["hue"]) @ m
    if self.saturation > 0:
      m = (outer + (eye - outer) * jnp.exp2(prm["saturation"] * self.saturation_std)) @ m
    return m


# --- helpers -------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=0)
def _call(pipe: AugmentPipe, key, images):
  return _apply(pipe, images, pipe.sample_params(key, images.shape[0]))


@functools.partial(jax.jit, static_argnums=0)
def _apply(pipe: AugmentPipe, images, params):
  x = jnp.asarray(images)
  out, labels = jax.vmap(pipe._apply_one)(x.astype(jnp.float32), params)
  return out.astype(x.dtype), labels


def _int_shift(w, shape, max_frac, normalized: bool = False):
  """Integer shifts t = round(w·size·max_frac) (half to even, as torch.round), or t/(size·max_frac)."""
  h, wd = shape
  tx = jnp.round(w[0] * (wd * max_frac))
  ty = jnp.round(w[1] * (h * max_frac))
  if normalized:
    return tx / (wd * max_frac), ty / (h * max_frac)
  return tx.astype(jnp.int32), ty.astype(jnp.int32)


def _mirror(i, n: int):
  """Index i reflected into [0, n) without repeating the edge (period 2n − 2)."""
  period = max(2 * n - 2, 1)
  return (n - 1) - jnp.abs((n - 1) - jnp.mod(i, period))


def _translate2d(tx, ty):
  one, zero = jnp.ones_like(tx), jnp.zeros_like(tx)
  return jnp.stack([jnp.stack([one, zero, tx]), jnp.stack([zero, one, ty]), jnp.stack([zero, zero, one])])


def _scale2d(sx, sy):
  zero = jnp.zeros_like(sx)
  return jnp.stack([jnp.stack([sx, zero, zero]), jnp.stack([zero, sy, zero]),
                    jnp.stack([zero, zero, jnp.ones_like(sx)])])


def _rotate2d(theta):
  c, s, zero = jnp.cos(theta), jnp.sin(theta), jnp.zeros_like(theta)
  return jnp.stack([jnp.stack([c, -s, zero]), jnp.stack([s, c, zero]),
                    jnp.stack([zero, zero, jnp.ones_like(theta)])])


def _rotate3d(v, theta):
  """4×4 homogeneous rotation by θ about the unit axis v (Rodrigues)."""
  c, s = jnp.cos(theta), jnp.sin(theta)
  k = jnp.asarray([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], jnp.float32)
  r = c * jnp.eye(3) + s * k + (1.0 - c) * jnp.outer(v, v)
  return jnp.eye(4, dtype=jnp.float32).at[:3, :3].set(r)


@functools.lru_cache(maxsize=None)
def _up_matrix(n: int) -> np.ndarray:
  """[2(n + 2P), n]: reflect padding by P = n − 1 then 2× upsampling (zero insertion, filter h).

  up[u] = Σ_q h[u − 2q + 5]·pad[q], u ∈ [0, 2(n + 2P)), the padded signal zero beyond its ends.
  """
  pad = n - 1
  m = n + 2 * pad
  reflect = np.zeros((m, n), np.float64)
  reflect[np.arange(m), _mirror_np(np.arange(m) - pad, n)] = 1.0
  hz = np.asarray(SYM6, np.float64)
  up = np.zeros((2 * m, m), np.float64)
  for q in range(m):
    for k in range(len(hz)):
      u = 2 * q + k - 5
      if 0 <= u < 2 * m:
        up[u, q] = hz[k]
  return (up @ reflect).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _down_matrix(n: int) -> np.ndarray:
  """[n, 2(n + 2·3)]: 2× downsampling with h and the crop back to n pixels.

  out[x] = Σ_o h[o − 2x − 1]·a[o] (the stride-2 filter output at x + 3, its first 3 outputs cropped).
  """
  size = 2 * (n + 2 * _HZ_PAD)
  hz = np.asarray(SYM6, np.float64)
  down = np.zeros((n, size), np.float64)
  for x in range(n):
    for k in range(len(hz)):
      o = 2 * x + k + 1
      if 0 <= o < size:
        down[x, o] = hz[k]
  return down.astype(np.float32)


def _mirror_np(i, n):
  period = max(2 * n - 2, 1)
  return (n - 1) - np.abs((n - 1) - np.mod(i, period))


def resample_one(img, g_inv) -> jax.Array:
  """Resamples one HWC float32 image through the inverse map ``g_inv`` (3×3, output → input pixel,
  image-centred coordinates) as EDM does: reflect padding, sym6 2× upsampling, bilinear sampling at
  2× resolution (zeros outside), sym6 2× downsampling. The identity map returns the image (to float
  rounding). The filters are matrices (matmuls); the bilinear step is a gather of 4 taps."""
  h, w, c = img.shape
  ah, aw = jnp.asarray(_up_matrix(h)), jnp.asarray(_up_matrix(w))
  dh, dw = jnp.asarray(_down_matrix(h)), jnp.asarray(_down_matrix(w))
  up = jnp.einsum("vx,yxc->yvc", aw, img, precision=_HI)
  up = jnp.einsum("uy,yvc->uvc", ah, up, precision=_HI)          # [Hu, Wu, C]
  hu, wu = up.shape[0], up.shape[1]
  ho, wo = 2 * (h + 2 * _HZ_PAD), 2 * (w + 2 * _HZ_PAD)
  # u = 2·G⁻¹((O + ½)/2) − ½ in centred 2× coordinates, i.e. G2 = T(−½)·S(2)·G⁻¹·S(½)·T(½).
  g = jnp.asarray(g_inv, jnp.float32)
  lin = g[:2, :2]
  off = 2.0 * (0.25 * jnp.sum(lin, axis=1) + g[:2, 2]) - 0.5
  ox = jnp.arange(wo, dtype=jnp.float32) - (wo - 1) / 2
  oy = jnp.arange(ho, dtype=jnp.float32) - (ho - 1) / 2
  ux = lin[0, 0] * ox[None, :] + lin[0, 1] * oy[:, None] + off[0] + (wu - 1) / 2
  uy = lin[1, 0] * ox[None, :] + lin[1, 1] * oy[:, None] + off[1] + (hu - 1) / 2
  x0, y0 = jnp.floor(ux), jnp.floor(uy)
  fx, fy = ux - x0, uy - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  flat = up.reshape(hu * wu, c)
  out = jnp.zeros((ho, wo, c), jnp.float32)
  for dy, wy in ((0, 1.0 - fy), (1, fy)):
    for dx, wx in ((0, 1.0 - fx), (1, fx)):
      xi, yi = x0 + dx, y0 + dy
      valid = (xi >= 0) & (xi < wu) & (yi >= 0) & (yi < hu)
      idx = jnp.clip(yi, 0, hu - 1) * wu + jnp.clip(xi, 0, wu - 1)
      weight = jnp.where(valid, wx * wy, 0.0)
      out = out + weight[..., None] * flat[idx]
  out = jnp.einsum("xo,poc->pxc", dw, out, precision=_HI)
  return jnp.einsum("yp,pxc->yxc", dh, out, precision=_HI)
