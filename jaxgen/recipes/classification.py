"""Config builders of the classification experiments (``experiments/{efficientnet,mobilenet,...}``).

``imagenet_config(c, model=..., resolution=..., batch_size=..., epochs=...)`` fills a ``base_config()``
with the ImageNet pipeline of the TF efficient-CNN codebases and the ``accuracy`` evaluator;
``smoke_config(c, **model_overrides)`` turns such a config into its ``:smoke`` variant (the embedded
digits, a tiny network, 2 steps); ``steps_per_epoch(batch_size)`` converts the papers' epochs into
steps (``IMAGENET_TRAIN_IMAGES`` = 1,281,167 training images of ILSVRC-2012).
"""

from __future__ import annotations

IMAGENET_TRAIN_IMAGES = 1_281_167


def steps_per_epoch(batch_size: int, num_images: int = IMAGENET_TRAIN_IMAGES) -> float:
  return num_images / batch_size


def imagenet_config(c, *, model: str, resolution: int, batch_size: int, epochs: float,
                    crop_padding: int = 32, augment: str = ""):
  """Fills ``c`` (a ``base_config()``) with the ImageNet pipeline of the TF efficient-CNN codebases:
  Inception-style random-resized crops + flips for training, a central crop of fraction
  resolution/(resolution + crop_padding) for evaluation (224/256 = 0.875 at 224), top-1/top-5 on the
  50k validation images (``evals.accuracy``)."""
  c.batch_size = batch_size
  c.num_train_steps = int(round(epochs * steps_per_epoch(batch_size)))
  c.log_every_steps = 500
  c.checkpoint_every_steps = 5000
  c.eval_every_steps = int(round(5 * steps_per_epoch(batch_size)))
  c.data.name = "imagenet2012"
  c.data.split = "train"
  c.data.eval_split = "validation"
  c.data.resolution = resolution
  c.data.crop = "inception"
  c.data.crop_fraction = resolution / (resolution + crop_padding)
  c.data.random_flip = True
  c.data.augment = augment
  c.model.name = model
  c.task.name = "classification"
  c.task.num_classes = 1000
  c.evals.accuracy = dict(type="accuracy")
  return c


def smoke_config(c, **model_overrides):
  """The ``:smoke`` variant of an ImageNet recipe: the embedded digits at 16×16, a tiny network
  (``model_overrides``), 2 steps of batch 16, evaluation on the 297 test digits."""
  from jaxgen.configs import smoke  # noqa: PLC0415
  smoke(c)
  c.eval_batch_size = 304
  c.data.name = "digits"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.data.crop = ""
  c.data.crop_fraction = 0.0
  c.data.random_flip = False
  c.data.augment = ""
  c.task.num_classes = 10
  c.optimizer.warmup_steps = 0
  c.optimizer.decay_steps = 1
  for k, v in model_overrides.items():
    setattr(c.model.overrides, k, v)
  return c
