"""ThunderNet (Qin et al., ICCV 2019): a two-stage detector for 320×320 images on an SNet backbone.

docs/thundernet.md describes the whole detector and its training; docs/reference.md §5 has the numbers.
The layers (paper §3–4; the released code github qinzheng93/ThunderNet settles the details the paper leaves
open, noted "released"):

* backbone: SNet49/146/535 (``jaxgen.models.snet``), C4 = stage 3 (stride 16), C5 = stage 4 or conv5 (SNet49).
* CEM (context enhancement): 1×1 conv (with bias) on C4, on C5 nearest-upsampled to C4's size, and on
  global-average-pooled C5 (broadcast), each to 245 = 5·7·7 channels, summed (no activation, released).
* RPN: 5×5 depthwise conv → BN → ReLU → 1×1 conv to 256 → BN → ReLU (released), then 1×1 convs to one
  objectness logit (sigmoid, released ``use_sigmoid=True``) and 4 box deltas per anchor; 25 anchors per
  position (sizes 32…512 × ratios 1:2, 3:4, 1:1, 4:3, 2:1) at stride 16.
* SAM (spatial attention): F_SAM = F_CEM · sigmoid(BN(1×1 conv(F_RPN))), 256 → 245 channels.
* PSRoI align of F_SAM to 7×7 bins × 5 channels (``jaxgen.detection.roi.psroi_align``), flattened to 245.
* R-CNN subnet: one 1024-d fully-connected layer + ReLU (paper §4.2; the released mmdet config uses two,
  ``rcnn_fcs=2``), then class scores (num_classes + 1, index 0 = background) and box deltas.
  Box deltas are **class-agnostic** ``[B, R, 4]`` by default: the paper's VOC→COCO FLOPs step (250 → 262,
  461 → 473, 1287 → 1300 MFLOPs) is exactly 200 RoIs × 1024 × 60 more class logits, so its regressor does
  not grow with the classes. ``class_agnostic_boxes=False`` gives per-class deltas ``[B, R, C + 1, 4]``
  (the released config's ``reg_class_agnostic=False``).

Module API (the ``detection`` task builds on it)::

    out = model.apply(variables, images, train=False, rois=None, sample_rois=None)

``images [B, H, W, 3]`` (normalized by the data pipeline; H, W multiples of 32 keep the strides exact).
The dict ``out`` holds ``rpn_logits [B, A]`` (A = H/16·W/16·25, position-major then anchor, the order of
``jaxgen.detection.anchors.generate_anchors``), ``rpn_deltas [B, A, 4]``, ``anchors [A, 4]`` (xyxy pixels),
``proposals [B, P, 4]`` / ``proposal_scores [B, P]`` / ``proposal_valid [B, P]`` (when computed),
``rois [B, R, 4]``, ``roi_valid [B, R]``, ``cls_logits [B, R, C + 1]``, ``box_deltas [B, R, 4]`` (or
``[B, R, C + 1, 4]``). RoIs are, in order of
precedence: ``rois`` when given (``roi_valid`` all true unless ``roi_valid=`` is passed too); else proposals
from the RPN (``jaxgen.detection.postprocess.proposals``: top ``pre_nms`` by objectness, NMS 0.7, the best
``post_nms`` — 200 at test as the paper, ``post_nms_train`` when ``train``), passed through
``sample_rois(proposals, proposal_valid) -> (rois, roi_valid)`` when given (the task's R-CNN target
sampling, computed under ``stop_gradient``). Proposals never carry gradients (Faster R-CNN's approximate
joint training). ``rpn_only=True`` stops after the RPN (no proposals, no R-CNN).

The methods ``backbone_rpn(images, train)`` and ``rcnn(features, rois, train)`` expose the two halves
(``model.apply(v, x, method='backbone_rpn')``).

Depthwise convolutions: ``depthwise='xla'`` (default) uses XLA's grouped convolution; ``'shift'`` computes
every depthwise conv of the backbone and RPN as k·k shifted, per-channel-scaled copies of the input
(``jaxgen.models.cnn_layers.shift_depthwise`` through ``depthwise_context``, on the same ``nn.Conv`` modules and
parameters), which
is several times faster on XLA's CPU backend (benchmarks/detector_throughput.py, docs/thundernet.md);
``'auto'`` picks 'shift' on CPU. The default stays 'xla' because ``jaxgen.flops`` counts convolutions and
dot products only: traced with 'shift', the depthwise multiply-adds would not be counted.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxgen.errors import ConfigError
from jaxgen.models import register
from jaxgen.models.cnn_layers import ConvBN, depthwise_context, shift_depthwise, to_dtype  # noqa: F401 (re-export)
from jaxgen.models.snet import SNET_CONFIGS, c4_c5, snet_backbone

SIZES = (32, 64, 128, 256, 512)
RATIOS = (0.5, 0.75, 1.0, 4 / 3, 2.0)
STRIDE = 16


def nearest_resize(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """Nearest-neighbour resize of NHWC ``x`` to ``hw`` (PyTorch ``F.interpolate(mode='nearest')``: source
  index floor(i · in/out)); for an exact ×2 it repeats every pixel twice."""
  h, w = x.shape[1:3]
  oh, ow = hw
  if (oh, ow) == (2 * h, 2 * w):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  iy = (jnp.arange(oh) * h) // oh
  ix = (jnp.arange(ow) * w) // ow
  return x[:, iy][:, :, ix]


class CEM(nn.Module):
  """Context Enhancement Module: conv1×1(C4) + up(conv1×1(C5)) + conv1×1(GAP(C5)) → ``features`` channels."""

  features: int = 245
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, c4, c5):
    init = nn.initializers.xavier_uniform()
    conv = lambda name: nn.Conv(self.features, (1, 1), dtype=self.dtype, kernel_init=init, name=name)
    f4 = conv("c4")(c4)
    f5 = nearest_resize(conv("c5")(c5), f4.shape[1:3])
    glb = conv("glb")(jnp.mean(c5, axis=(1, 2), keepdims=True))
    return f4 + f5 + glb


class RPN(nn.Module):
  """Light RPN: 5×5 depthwise + 1×1 to ``features``; objectness logits [B,H,W,A] and deltas [B,H,W,A,4]."""

  num_anchors: int = 25
  features: int = 256
  kernel: int = 5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dtype=self.dtype)
    h = ConvBN(x.shape[-1], self.kernel, groups=-1, name="dw", **kw)(x, train)
    h = ConvBN(self.features, 1, name="pw", **kw)(h, train)
    init = nn.initializers.normal(0.01)
    logits = nn.Conv(self.num_anchors, (1, 1), dtype=self.dtype, kernel_init=init, name="cls")(h)
    deltas = nn.Conv(self.num_anchors * 4, (1, 1), dtype=self.dtype, kernel_init=init, name="reg")(h)
    b, hh, ww = deltas.shape[:3]
    return h, logits, deltas.reshape(b, hh, ww, self.num_anchors, 4)


class SAM(nn.Module):
  """Spatial Attention Module: F_CEM · sigmoid(BN(conv1×1(F_RPN)))."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, f_cem, f_rpn, train: bool = False):
    att = ConvBN(f_cem.shape[-1], 1, act="sigmoid", dtype=self.dtype, name="att")(f_rpn, train)
    return f_cem * att


class RCNNHead(nn.Module):
  """R-CNN subnet on flattened PSRoI features: ``fcs`` × (Dense(hidden) → ReLU) → class logits, deltas."""

  num_classes: int = 20
  hidden: int = 1024
  fcs: int = 1
  class_agnostic_boxes: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    for i in range(self.fcs):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f"fc{i + 1}")(x))
    cls = nn.Dense(self.num_classes + 1, dtype=self.dtype, kernel_init=nn.initializers.normal(0.01),
                   name="cls")(x)
    nbox = 1 if self.class_agnostic_boxes else self.num_classes + 1
    box = nn.Dense(4 * nbox, dtype=self.dtype, kernel_init=nn.initializers.normal(0.001), name="box")(x)
    box = box.reshape(*box.shape[:-1], nbox, 4)
    return cls.astype(jnp.float32), (box[..., 0, :] if self.class_agnostic_boxes else box).astype(jnp.float32)


class ThunderNet(nn.Module):
  """The detector (module docstring). Submodules: ``snet`` (the SNet features; ImageNet weights go in with
  ``with_pretrained_backbone``), ``cem``, ``rpn``, ``sam``, ``head`` (R-CNN subnet)."""

  backbone: str = "snet146"
  backbone_overrides: Any = None    # dict of ShuffleNetV2Features fields (e.g. tiny widths for tests)
  num_classes: int = 20
  cem_channels: int = 245          # = roi_size² · roi_channels
  rpn_channels: int = 256
  roi_size: int = 7
  roi_channels: int = 5
  sampling_ratio: int = 2
  rcnn_hidden: int = 1024
  rcnn_fcs: int = 1
  class_agnostic_boxes: bool = True
  anchor_sizes: Sequence[float] = SIZES
  anchor_ratios: Sequence[float] = RATIOS
  pre_nms: int = 2000
  post_nms: int = 200               # test proposals (paper)
  post_nms_train: int = 1000        # released train config (rpn_proposal max_per_img)
  nms_iou: float = 0.7
  min_size: float = 0.0
  depthwise: str = "xla"            # 'xla' (grouped conv) | 'shift' (shift_depthwise) | 'auto' (shift on CPU)
  dtype: Any = jnp.float32

  def setup(self):
    if self.depthwise not in ("auto", "xla", "shift"):
      raise ConfigError(f"depthwise={self.depthwise!r} is unknown: use 'auto', 'xla' or 'shift'.")
    if self.cem_channels != self.roi_size ** 2 * self.roi_channels:
      raise ConfigError(f"cem_channels={self.cem_channels} must equal roi_size²·roi_channels = "
                        f"{self.roi_size ** 2 * self.roi_channels}; change one of the three.")
    dtype = to_dtype(self.dtype)
    self.snet = snet_backbone(self.backbone, dtype=dtype, **dict(self.backbone_overrides or {}))
    self.cem = CEM(self.cem_channels, dtype=dtype)
    self.rpn = RPN(len(self.anchor_sizes) * len(self.anchor_ratios), self.rpn_channels, dtype=dtype)
    self.sam = SAM(dtype=dtype)
    self.head = RCNNHead(self.num_classes, self.rcnn_hidden, self.rcnn_fcs, self.class_agnostic_boxes,
                         dtype=dtype)

  def anchors(self, feature_hw: tuple[int, int]) -> jax.Array:
    from jaxgen.detection.anchors import generate_anchors
    return generate_anchors(tuple(feature_hw), STRIDE, tuple(self.anchor_sizes), tuple(self.anchor_ratios))

  def backbone_rpn(self, images, train: bool = False) -> dict:
    """Backbone, CEM, RPN and SAM: dict(features [B,h,w,245] (F_SAM), rpn_logits [B,A], rpn_deltas
    [B,A,4], anchors [A,4])."""
    with _depthwise_context(self.depthwise):
      c4, c5 = c4_c5(self.snet(images, train))
      f_cem = self.cem(c4, c5)
      f_rpn, logits, deltas = self.rpn(f_cem, train)
    feats = self.sam(f_cem, f_rpn, train)
    b, h, w = logits.shape[:3]
    return dict(features=feats, rpn_logits=logits.reshape(b, -1).astype(jnp.float32),
                rpn_deltas=deltas.reshape(b, -1, 4).astype(jnp.float32), anchors=self.anchors((h, w)))

  def rcnn(self, features, rois, train: bool = False):
    """PSRoI align of ``features`` [B,h,w,k·k·C] at ``rois`` [B,R,4] (image pixels) → R-CNN subnet →
    (cls_logits [B,R,C+1], box_deltas)."""
    del train  # the R-CNN subnet has no BatchNorm or dropout
    from jaxgen.detection.roi import psroi_align
    pool = lambda f, r: psroi_align(f, r, output_size=self.roi_size, channels=self.roi_channels,
                                    spatial_scale=1.0 / STRIDE, sampling_ratio=self.sampling_ratio)
    pooled = jax.vmap(pool)(features, rois.astype(jnp.float32))          # [B, R, k, k, C]
    return self.head(pooled.reshape(*pooled.shape[:2], -1).astype(features.dtype))

  def proposals(self, out: dict, image_hw: tuple[int, int], train: bool = False):
    """RPN proposals per image, without gradient: (boxes [B, P, 4], scores [B, P], valid [B, P])."""
    from jaxgen.detection.postprocess import proposals
    post = self.post_nms_train if train else self.post_nms
    fn = lambda lg, dl: proposals(lg, dl, out["anchors"], tuple(image_hw), pre_nms=self.pre_nms,
                                  post_nms=post, nms_iou=self.nms_iou, min_size=self.min_size)
    boxes, scores, valid = jax.vmap(fn)(jax.lax.stop_gradient(out["rpn_logits"]),
                                        jax.lax.stop_gradient(out["rpn_deltas"]))
    return jax.lax.stop_gradient(boxes), jax.lax.stop_gradient(scores), valid

  def __call__(self, images, train: bool = False, rois=None, roi_valid=None,
               sample_rois: Callable | None = None, rpn_only: bool = False):
    out = self.backbone_rpn(images, train)
    if rpn_only:
      return {k: v for k, v in out.items() if k != "features"}
    if rois is None:
      props, pscores, pvalid = self.proposals(out, images.shape[1:3], train)
      out.update(proposals=props, proposal_scores=pscores, proposal_valid=pvalid)
      rois, roi_valid = props, pvalid
      if sample_rois is not None:
        rois, roi_valid = sample_rois(props, pvalid)
        rois = jax.lax.stop_gradient(rois)
    elif roi_valid is None:
      roi_valid = jnp.ones(rois.shape[:2], bool)
    cls_logits, box_deltas = self.rcnn(out.pop("features"), rois, train)
    out.update(rois=rois, roi_valid=roi_valid, cls_logits=cls_logits, box_deltas=box_deltas)
    return out


def with_pretrained_backbone(variables: dict, classifier_variables: dict) -> dict:
  """``variables`` of a ThunderNet with its ``snet`` subtree (params and batch_stats) replaced by the
  ``features`` subtree of an SNet classifier's variables (ImageNet pre-training, experiments/thundernet/
  imagenet_snet.py). Shapes must match: a different SNet is a ConfigError."""
  from jaxgen.models.snet import backbone_variables
  src = backbone_variables(classifier_variables)
  out = dict(variables)
  for col, tree in src.items():
    if col not in variables or "snet" not in variables[col]:
      continue
    want = jax.tree_util.tree_map(jnp.shape, variables[col]["snet"])
    got = jax.tree_util.tree_map(jnp.shape, tree)
    if want != got:
      raise ConfigError(f"the pretrained SNet's {col} do not fit this ThunderNet's backbone; load the "
                        f"classifier of the same SNet (model.backbone) as the detector.")
    out[col] = {**variables[col], "snet": tree}
  return out


def _depthwise_context(kind: str):
  """``jaxgen.models.cnn_layers.depthwise_context`` (the shared 'shift' path, docs/speed.md)."""
  return depthwise_context(kind)


def detector_inputs(default_resolution: int = 320):
  def inputs(batch: int = 1, resolution: int | None = None, channels: int = 3, **_: Any) -> tuple:
    r = default_resolution if resolution is None else int(resolution)
    if r % 32:
      raise ConfigError(f"ThunderNet needs an input side divisible by 32 (strides 16/32), got {r}; use e.g. "
                        f"{32 * max(1, round(r / 32))}.")
    return (jnp.zeros((batch, r, r, channels), jnp.float32),)

  return inputs


def _thundernet(backbone: str):
  def make(resolution: int | None = None, channels: int | None = None, **overrides) -> ThunderNet:
    del resolution, channels  # input-shape overrides (used by the registry inputs)
    return ThunderNet(**{"backbone": backbone, **overrides})

  make.__module__ = __name__
  make.__name__ = f"thundernet_{backbone}"
  return make


for _b in SNET_CONFIGS:
  register(f"thundernet_{_b}", inputs=detector_inputs(320))(_thundernet(_b))
