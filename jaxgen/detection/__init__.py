"""Two-stage detection library (Faster R-CNN / Light-Head R-CNN / ThunderNet building blocks).

    from jaxgen import detection
    anchors = detection.generate_anchors((20, 20), 16)                  # [20·20·25, 4]
    labels, targets, weights = detection.rpn_targets(anchors, gt_boxes, gt_mask, key)
    boxes, scores, valid = detection.proposals(logits, deltas, anchors, (320, 320))
    pooled = detection.psroi_align(sam_features, boxes, output_size=7, channels=5)
    out = detection.detections(cls_logits, box_deltas, boxes, (320, 320))  # the 'detect' dict

Greedy NMS is ``detection.nms.nms`` (``detection.nms`` is the module; ``batched_nms`` and ``soft_nms``
are re-exported here). Boxes are xyxy float32 pixels; everything is jit-able with static shapes and
handles one image — batch with ``jax.vmap``. Part of the pure core: imports only jax and numpy.
Evaluation (VOC AP, COCO AP) is in ``jaxgen.eval.detection``; the model in ``jaxgen.models.thundernet``;
the task in ``jaxgen.tasks.detection``; see docs/thundernet.md.
"""

from jaxgen.detection import anchors, boxes, losses, nms, postprocess, roi, targets
from jaxgen.detection.anchors import base_anchors, generate_anchors, inside_image, num_anchors
from jaxgen.detection.boxes import area, clip, decode, elementwise_iou, encode, iou
from jaxgen.detection.losses import (masked_mean, masked_sum, rcnn_loss, rpn_loss, sigmoid_cross_entropy,
                                     smooth_l1, softmax_cross_entropy)
from jaxgen.detection.nms import batched_nms, soft_nms
from jaxgen.detection.postprocess import detections, proposals
from jaxgen.detection.roi import psroi_align
from jaxgen.detection.targets import rcnn_targets, rpn_targets

__all__ = ["anchors", "area", "base_anchors", "batched_nms", "boxes", "clip", "decode", "detections",
           "elementwise_iou", "encode", "generate_anchors", "inside_image", "iou", "losses", "masked_mean",
           "masked_sum", "nms", "num_anchors", "postprocess", "proposals", "psroi_align", "rcnn_loss",
           "rcnn_targets", "roi", "rpn_loss", "rpn_targets", "sigmoid_cross_entropy", "smooth_l1",
           "soft_nms", "softmax_cross_entropy", "targets"]
