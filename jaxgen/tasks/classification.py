"""Image classification (``task.name = 'classification'``): the efficient-CNN papers' training.

Config: the ``task.*`` keys are the fields of ``ClassificationConfig`` (read with
``jaxgen.config_schema.from_block``: an unknown key or a wrong type is a one-line ``ConfigError``).

Loss: softmax cross-entropy against label-smoothed targets (1 − ε)·onehot + ε/K (``task.label_smoothing``,
0.1 in EfficientNet / MobileNet recipes), averaged over the unmasked examples; networks that return
auxiliary logits in train mode (GoogLeNet) add ``task.aux_loss_weight`` (0.3, the paper) times theirs.

BatchNorm: the loss runs the network with ``train=True`` and ``mutable=['batch_stats']``; the new
statistics are the task's ``model_state``. The trainer jit-compiles ``train_step`` with the batch
sharded over the mesh axis 'data', so the batch mean and variance are reductions over the *global*
batch (XLA inserts the cross-device all-reduce): synchronized BatchNorm, identical for any device
count. (TF's TPU EfficientNet normalizes per core; for per-device statistics use the batch size of
one device.) Evaluation uses the running averages (``train=False``).

Optimizer: ``jaxgen.optim.make_optimizer`` with two options of the efficient-CNN recipes. Weight decay
(``optimizer.weight_decay``) is coupled L2 added to the gradient before SGD / RMSProp / Adam (TF's
``weight_decay · Σ tf.nn.l2_loss(w)``) and skips the BatchNorm scale/offset (``optim.decay_mask``) unless
``task.decay_norm_params``; ``task.decay_biases`` (default True, as TF) decides the biases. AdamW / LAMB
keep their decoupled, unmasked decay. RMSProp is TF1's ``RMSPropOptimizer`` with the mean square started
at 1 (``optimizer.rms_initial_scale``, default 1.0 here; optax's default is 0). Schedules come from
``jaxgen.optim`` (exponential decay with staircase + linear warm-up, cosine for SGD). EMA of the weights:
``optimizer.ema_decay`` (0.9999 in the EfficientNet recipe).

Augmentation: data-pipeline augmentations (crops, flips, RandAugment) come from ``jaxgen.data``;
``task.random_shift`` > 0 adds an on-device random translation (for the embedded digits).

Evaluation: ``eval_functions(state)`` gives the evaluators of ``config.evals`` (``jaxgen.eval.evaluators``)
``'predict'`` (batch -> logits of the EMA weights when EMA is on and ``task.eval_ema``, else of the
weights; running BatchNorm statistics) and ``'data'``; the experiments list
``evals.accuracy = dict(type='accuracy')``: top-1 / top-5 accuracy and mean cross-entropy over
``data.eval_split`` (padding masked). Experiment builders live in ``jaxgen.recipes.classification``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

import jaxgen.models as models
from jaxgen import config_schema, optim
from jaxgen.config_schema import lookup, option
from jaxgen.errors import ConfigError
from jaxgen.eval import classification as cls_eval
from jaxgen.optim import decay_mask
from jaxgen.tasks.base import LossTask


@dataclasses.dataclass(frozen=True)
class ClassificationConfig:
  """The ``task.*`` keys of the classification task (``task.name`` selects the task)."""

  num_classes: int = option(0, min=0, help="> 0: the model's num_classes unless model.overrides sets it")
  label_smoothing: float = option(0.0, min=0.0, below=1.0, help="ε of the targets (1 − ε)·onehot + ε/K")
  aux_loss_weight: float = option(0.3, min=0.0, help="weight of the auxiliary heads' losses (GoogLeNet)")
  random_shift: int = option(0, min=0, help="on-device random translation of up to ± this many pixels")
  decay_norm_params: bool = option(False, help="weight decay on normalization parameters too")
  decay_biases: bool = option(True, help="weight decay on biases (TF's default)")
  eval_ema: bool = option(True, help="evaluate the EMA weights when optimizer EMA is on")


def random_translate(images: jax.Array, shift: int, key: jax.Array) -> jax.Array:
  """Per-example random translation by (dy, dx) ∈ [−shift, shift]², edge-replicated borders
  (``task.random_shift``: on-device augmentation for small data sets such as the digits)."""
  b, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
  offsets = jax.random.randint(key, (b, 2), 0, 2 * shift + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


class Task(LossTask):
  """Supervised classification with any registered backbone (see module docstring)."""

  EVAL_FUNCTIONS = ("predict", "data")

  def __init__(self, config):
    super().__init__(config)
    self.cfg = config_schema.from_block(ClassificationConfig, config.task)
    overrides = config_schema.to_dict(lookup(config, "model.overrides", None))
    if self.cfg.num_classes:
      overrides.setdefault("num_classes", self.cfg.num_classes)
    dtype = str(lookup(config, "model.dtype", "float32"))
    if dtype != "float32":
      overrides["dtype"] = dtype
    name = lookup(config, "model.name", "")
    if not name:
      raise ConfigError("config.model.name is empty: set --config.model.name to a classifier of "
                        "jaxgen.models.names() (e.g. 'mobilenet_v2').")
    self.model = models.create(name, **overrides)
    self._logits_fn = jax.jit(self.logits)

  # --- model ------------------------------------------------------------------------------------
  def init_variables(self, key, example_batch) -> dict:
    if "image" not in example_batch or "label" not in example_batch:
      raise ConfigError("the classification task needs batches with 'image' and 'label': choose a labelled "
                        "data set (digits, mnist, cifar10, imagenet2012, imagenette, image_folder with "
                        "classes) with --config.data.name.")
    k_param, k_drop = jax.random.split(key)
    x = jnp.asarray(example_batch["image"][:1])
    return dict(self.model.init({"params": k_param, "dropout": k_drop}, x, train=False))

  def logits(self, params, model_state, images):
    """Inference-mode logits (float32) with the running BatchNorm statistics."""
    return self.model.apply({"params": params, **model_state}, images, train=False)

  def loss(self, params, model_state, batch, key, train: bool):
    images, labels = batch["image"], batch["label"]
    shift = self.cfg.random_shift
    if train and shift:
      key, k_shift = jax.random.split(key)
      images = random_translate(images, shift, k_shift)
    if train:
      out, new_state = self.model.apply({"params": params, **model_state}, images, train=True,
                                        mutable=list(model_state.keys()), rngs={"dropout": key})
      new_state = dict(new_state)
    else:
      out, new_state = self.logits(params, model_state, images), model_state
    logits, aux = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
    mask = jnp.asarray(batch["mask"], jnp.float32) if "mask" in batch else jnp.ones(labels.shape, jnp.float32)
    denom = jnp.maximum(jnp.sum(mask), 1.0)
    smoothing = self.cfg.label_smoothing
    ce = cls_eval.cross_entropy(logits, labels, smoothing)
    loss = jnp.sum(ce * mask) / denom
    metrics = {"ce": loss, "accuracy": jnp.sum(cls_eval.topk_correct(logits, labels, 1) * mask) / denom}
    for i, a in enumerate(aux):
      aux_ce = jnp.sum(cls_eval.cross_entropy(a, labels, smoothing) * mask) / denom
      metrics[f"aux{i + 1}_ce"] = aux_ce
      loss = loss + self.cfg.aux_loss_weight * aux_ce
    return loss, metrics, new_state

  # --- optimizer: masked coupled weight decay, TF RMSProp ---------------------------------------
  @property
  def optimizer(self) -> optax.GradientTransformation:
    mask = functools.partial(decay_mask, decay_norm_params=self.cfg.decay_norm_params,
                             decay_biases=self.cfg.decay_biases)
    return optim.make_optimizer(self.config.optimizer, self.config.num_train_steps, decay_mask=mask,
                                rms_initial_scale=1.0)

  # --- evaluation -------------------------------------------------------------------------------
  def _uses_ema(self) -> bool:
    ema_on = (float(lookup(self.config, "optimizer.ema_decay", 0.0)) > 0
              or float(lookup(self.config, "optimizer.ema_halflife_kimg", 0.0)) > 0)
    return self.cfg.eval_ema and ema_on

  def eval_functions(self, state) -> dict:
    """``'predict'``: batch -> logits [B, K] (EMA weights when evaluated, see the module docstring);
    ``'data'``: the data set's base name, resolution and the number of classes."""
    params = state.ema_params if self._uses_ema() else state.params
    model_state = state.model_state
    logits_fn = self._logits_fn
    data = dict(name=str(lookup(self.config, "data.name", "")).split("/")[0],
                resolution=int(lookup(self.config, "data.resolution", 0)),
                num_classes=int(getattr(self.model, "num_classes", 0) or self.cfg.num_classes))
    return {"predict": lambda batch: logits_fn(params, model_state, batch["image"]), "data": data}
