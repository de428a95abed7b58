"""VQGAN stage 2 (Esser, Rombach & Ommer, CVPR 2021): an autoregressive GPT over the codes of a frozen VQGAN.

Each training batch is encoded on the fly by the frozen first stage into its code grid (h×w indices, row
major: taming's identity permuter), a conditioning prefix is put in front — the start token ``sos_token``
(unconditional; taming's ``SOSProvider``) or the class label (``conditional``; taming's ``Labelator``, the
label as a token of the same vocabulary) — and the GPT (``config.model``, ``jaxgen.models.gpt``) learns
p(z_i | z_<i, c) with cross-entropy, as taming's ``Net2NetTransformer.forward`` / ``shared_step``:

  logits = GPT(concat(c, z)[:, :-1])[:, len(c) − 1:]            loss = CE(logits, z), mean over codes

``pkeep`` < 1 replaces each input code by a uniformly random one with probability 1 − pkeep (taming's
``pkeep``; targets stay the true codes). The optimizer is taming's ``configure_optimizers``: AdamW with
β = (0.9, 0.95) and weight decay 0.01 on Linear weights only (no decay of biases, LayerNorm, embeddings,
``pos_emb``: ``jaxgen.models.gpt.weight_decay_mask``) when ``optimizer.name='adamw'`` (the recipe's
default); other optimizer names go through ``jaxgen.optim.make_optimizer`` unchanged.

The first stage comes from exactly one of
  task.stage1_workdir   a jaxgen ``vqgan`` run: its ``config.json`` gives the network and the latest
                        checkpoint its EMA weights (restored read-only, as ``--mode sample`` restores);
  task.stage1_weights   a taming checkpoint converted by ``python -m jaxgen.convert.taming`` (.npz);
  task.stage1_model     a registry name (with ``stage1_overrides``) with random weights drawn by ``init``
                        (``_random_like``): only for tests and ``:smoke`` configs (the codes are meaningless).
Its variables are frozen and live in ``state.model_state['stage1']`` (so a checkpoint of stage 2 holds the
first stage it was trained on, as taming's checkpoints hold ``first_stage_model``).

Sampling (``sample``, the 'sample' evaluator function): the EMA GPT draws the h·w codes after the prefix
in one compiled ``lax.scan`` with a key/value cache (``jaxgen.vq.sampling.sample_tokens``), with
``temperature``, ``top_k``, ``top_p`` (taming's FFHQ/CelebA-HQ recipe: k = 250, p = 1; ImageNet: k = 600,
p = 0.92), and the first stage decodes them to images in [−1, 1]. Sample i uses ``fold_in(key, i)`` with a
global index i, and in class-conditional models the class ``i mod num_classes`` (or ``sample_classes``
cycled), so it never depends on the batch. ``sample_grid`` (h, w) samples code grids of another size than
the training grid (the decoder is convolutional); grids larger than the GPT's window (``window`` = (wh, ww))
are sampled by sliding a wh×ww window as taming's ``sample_conditional.py`` (full recomputation per token).

Evaluation functions: 'sample', 'loss' (per-example mean code NLL in nats, EMA GPT, no pkeep) and 'data',
so ``fid``, ``digits_fd`` and ``eval_loss`` apply. docs/vqgan.md (stage 2).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import config_schema, models, optim
from jaxgen import sampling as sampling_mesh   # the sharding of draws over the trainer's mesh
from jaxgen.config_schema import option
from jaxgen.errors import ConfigError
from jaxgen.tasks import base
from jaxgen.vq import sampling

log = logging.getLogger("jaxgen")

__all__ = ["TransformerConfig", "Task", "sequence_logits", "sequence_loss", "load_stage1_workdir"]


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """``config.task`` of the stage-2 task: every key with its default (stated only here)."""

  stage1_workdir: str = ""
  stage1_weights: str = ""
  stage1_model: str = ""
  stage1_overrides: dict = option({})
  conditional: bool = False                       # class-conditional: the label is the prefix token
  num_classes: int = option(0, min=0)             # classes of a conditional model (sampling cycles them)
  sample_classes: tuple = ()                      # classes to cycle when sampling (empty: all)
  sos_token: int = option(0, min=0)               # the prefix of unconditional models (taming: 0)
  pkeep: float = option(1.0, min=0.0, max=1.0)
  temperature: float = option(1.0, min=0.0)
  top_k: int = option(0, min=0)
  top_p: float = option(1.0, above=0.0, max=1.0)
  sample_grid: tuple = (0, 0)                     # code grid of samples (h, w); (0, 0): the training grid
  window: tuple = (0, 0)                          # sliding-window sampling (wh, ww); (0, 0): whole grid
  sample_batch_size: int = option(64, min=1)

  def __post_init__(self):
    given = [k for k in ("stage1_workdir", "stage1_weights", "stage1_model") if getattr(self, k)]
    if len(given) != 1:
      raise ConfigError("the stage-2 task needs exactly one first stage: set task.stage1_workdir (a jaxgen "
                        "vqgan run), task.stage1_weights (a converted taming .npz) or task.stage1_model "
                        f"(random, tests only); got {given or 'none'}.")
    if self.conditional and self.num_classes < 1:
      raise ConfigError("task.conditional=True needs task.num_classes (e.g. 1000 for ImageNet).")
    for k in ("window", "sample_grid"):
      if len(tuple(getattr(self, k))) != 2:
        raise ConfigError(f"task.{k}={getattr(self, k)} must be (height, width) in codes, or (0, 0).")


def sequence_logits(logits_fn, cond, codes):
  """taming's Net2NetTransformer.forward: logits of ``codes [B, N]`` given the prefix ``cond [B, P]``.

  ``logits_fn(seq [B, P + N − 1]) -> [B, P + N − 1, V]``; returns ``[B, N, V]``, row i predicting code i.
  """
  seq = jnp.concatenate([cond, codes], axis=1)[:, :-1]
  return logits_fn(seq)[:, cond.shape[1] - 1:]


def sequence_loss(logits_fn, cond, codes, targets=None):
  """Per-example mean cross-entropy (nats per code) of ``targets`` (default ``codes``) -> ``[B]``.

  ``codes`` are the transformer's inputs (after pkeep corruption), ``targets`` the true codes.
  """
  logits = sequence_logits(logits_fn, cond, codes).astype(jnp.float32)
  targets = codes if targets is None else targets
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), targets[..., None], axis=-1)[..., 0]
  return nll.mean(axis=1)


# ----------------------------------------------------------------------------------- first stage
def load_stage1_workdir(workdir: str):
  """(VQModel, variables) of the latest checkpoint of a jaxgen ``vqgan`` run (EMA params, read-only)."""
  from jaxgen import checkpoint as ckpt_lib  # noqa: PLC0415 (the trainer layer, only for this option)

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ConfigError(f"task.stage1_workdir={workdir!r} has no config.json: point it at the workdir of a "
                      "jaxgen vqgan run (python -m jaxgen.main --config experiments/vqgan/...).")
  with open(path, encoding="utf-8") as f:
    cfg1 = ml_collections.ConfigDict(json.load(f))
  if str(config_schema.lookup(cfg1, "task.name", "")) != "vqgan":
    raise ConfigError(f"task.stage1_workdir={workdir!r} is a {cfg1.task.name!r} run, not a vqgan run: point "
                      "it at a stage-1 (vqgan) workdir.")
  overrides = config_schema.to_dict(config_schema.lookup(cfg1, "model.overrides", None))
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
  model = models.create(cfg1.model.name, **overrides)
  checkpointer = ckpt_lib.Checkpointer(workdir, read_only=True)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise ConfigError(f"task.stage1_workdir={workdir!r} holds no checkpoint: train stage 1 first.")
    restored = checkpointer.manager.restore(int(step), args=_raw_restore_args())
  finally:
    checkpointer.close()
  state = restored["state"]
  variables = {"params": state["ema_params"], **(state.get("model_state") or {})}
  variables = jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)), variables)
  log.info("stage 1: %s step %d (%s)", workdir, step, cfg1.model.name)
  return model, variables


def _raw_restore_args():
  import orbax.checkpoint as ocp  # noqa: PLC0415

  from jaxgen import checkpoint as ckpt_lib  # noqa: PLC0415

  return ocp.args.Composite(state=ocp.args.StandardRestore(), data=ckpt_lib.DataStateRestore())


def _load_stage1(cfg: TransformerConfig):
  if cfg.stage1_workdir:
    return load_stage1_workdir(cfg.stage1_workdir)
  if cfg.stage1_weights:
    from jaxgen.convert.taming import load_vqgan  # noqa: PLC0415
    from jaxgen.models.vqgan import VQModel  # noqa: PLC0415

    overrides, variables = load_vqgan(cfg.stage1_weights)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return VQModel(**overrides), jax.tree_util.tree_map(jnp.asarray, variables)
  model = models.create(cfg.stage1_model, **config_schema.to_dict(cfg.stage1_overrides))
  return model, None          # initialised inside ``Task.init`` (one compiled program with the GPT's init)


def _random_like(key, abstract):
  """Random variables with the shapes of ``abstract`` from ONE uniform draw (a first stage for tests and
  smoke runs: the module's own ``init`` costs a random-number program per parameter, ~10 CPU-s to compile
  for a tiny VQGAN). Kernels (ndim ≥ 2) U(±1/√fan_in) as torch's default, ``scale`` 1, ``bias`` 0, other
  leaves (the codebook) U(±1/K)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  sizes = [int(np.prod(l.shape)) for _, l in leaves]
  flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
  out, start = [], 0
  for (path, leaf), size in zip(leaves, sizes):
    u = flat[start:start + size].reshape(leaf.shape)
    start += size
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "scale":
      v = jnp.ones(leaf.shape)
    elif name == "bias":
      v = jnp.zeros(leaf.shape)
    elif name == "kernel" and len(leaf.shape) >= 2:
      v = u / np.sqrt(max(int(np.prod(leaf.shape[:-1])), 1))
    else:
      v = u / max(int(leaf.shape[0]), 1)
    out.append(v.astype(leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


class Task(base.LossTask):
  """Stage-2 GPT training on the codes of a frozen VQGAN (module docstring for the config keys)."""

  EVAL_FUNCTIONS = ("sample", "loss", "data")

  def __init__(self, config):
    super().__init__(config)
    self.cfg = cfg = config_schema.from_block(TransformerConfig, config.task)
    self.net = self.create_model(needs="decode_step", otherwise="is not a stage-2 GPT: use gpt_tiny, "
                                 "gpt_ffhq, gpt_imagenet_cin or another jaxgen.models.gpt.GPT.")
    res = int(config_schema.lookup(config, "data.resolution", 0))
    if res <= 0:
      raise ConfigError("the stage-2 task needs data.resolution (the first stage's image size).")
    self.resolution = res
    self.stage1_model, self._stage1_vars = _load_stage1(cfg)
    chans = int(getattr(self.stage1_model, "in_channels", 3))
    x = jax.ShapeDtypeStruct((1, res, res, chans), jnp.float32)
    abstract = self._stage1_abstract = jax.eval_shape(self.stage1_model.init, jax.random.key(0), x)
    codes = jax.eval_shape(lambda v, x: self.stage1_model.apply(v, x, method="encode")[1], abstract, x)
    self.grid = tuple(int(s) for s in codes.shape[1:])
    self.num_codes = int(self.stage1_model.n_embed)
    n = self.grid[0] * self.grid[1]
    vocab, block = int(self.net.vocab_size), int(self.net.block_size)
    if vocab < self.num_codes:
      raise ConfigError(f"the GPT's vocab_size {vocab} is smaller than the first stage's {self.num_codes} "
                        f"codes: set model.overrides.vocab_size={self.num_codes}.")
    prefix_max = cfg.num_classes - 1 if cfg.conditional else cfg.sos_token
    if prefix_max >= vocab:
      raise ConfigError(f"prefix token {prefix_max} is outside the GPT's vocabulary ({vocab}): raise "
                        "model.overrides.vocab_size or lower task.sos_token / task.num_classes.")
    if n > block:
      raise ConfigError(f"the {self.grid[0]}×{self.grid[1]} code grid needs block_size ≥ {n} but the GPT has "
                        f"{block}: set model.overrides.block_size={n} or train on smaller images.")
    sh, sw = (int(v) for v in cfg.sample_grid)
    self.sample_grid = (sh, sw) if sh > 0 and sw > 0 else self.grid
    wh, ww = (int(v) for v in cfg.window)
    self.window = (wh, ww) if wh > 0 and ww > 0 else None
    if self.window is None and self.sample_grid[0] * self.sample_grid[1] > block:
      raise ConfigError(f"task.sample_grid={cfg.sample_grid} has more codes than block_size {block}: set "
                        "task.window (e.g. the training grid) to sample it with a sliding window.")
    if self.window and (wh * ww > block or wh > self.sample_grid[0] or ww > self.sample_grid[1]):
      raise ConfigError(f"task.window={cfg.window} must fit the sample grid {self.sample_grid} and hold at "
                        f"most block_size={block} codes: shrink it.")

  # ------------------------------------------------------------------------------------ stage 1
  def _codes(self, stage1_vars, images):
    """images [B, H, W, C] → code indices [B, h·w] int32 (row major)."""
    _, idx, _ = self.stage1_model.apply(stage1_vars, jnp.asarray(images, jnp.float32), method="encode")
    return jax.lax.stop_gradient(idx.reshape(idx.shape[0], -1).astype(jnp.int32))

  def _cond(self, batch, n):
    if self.cfg.conditional:
      if "label" not in batch:
        raise ConfigError(f"task.conditional=True needs labelled batches ('label'), got keys "
                          f"{sorted(batch)}: use a labelled data set or task.conditional=False.")
      return jnp.asarray(batch["label"], jnp.int32).reshape(n, 1)
    return jnp.full((n, 1), self.cfg.sos_token, jnp.int32)

  # ------------------------------------------------------------------------------------ training
  @property
  def optimizer(self) -> optax.GradientTransformation:
    opt = self.config.optimizer
    if str(opt.name) != "adamw":
      return optim.make_optimizer(opt, self.config.num_train_steps)
    from jaxgen.models.gpt import weight_decay_mask  # noqa: PLC0415

    sched = optim.make_schedule(opt, self.config.num_train_steps)
    parts = []
    clip = float(opt.get("clip_grad_norm", 0.0))
    if clip > 0:
      parts.append(optax.clip_by_global_norm(clip))
    parts.append(optax.adamw(sched, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps),
                             weight_decay=float(opt.get("weight_decay", 0.0)), mask=weight_decay_mask))
    return optax.chain(*parts)

  def init_variables(self, key, batch):
    n = int(np.shape(batch["image"])[0])
    k_gpt, k_stage1 = jax.random.split(key)
    variables = dict(self.net.init({"params": k_gpt}, jnp.zeros((n, self.grid[0] * self.grid[1]), jnp.int32)))
    if self._stage1_vars is None:            # task.stage1_model: a random first stage (tests, smoke)
      variables["stage1"] = _random_like(k_stage1, self._stage1_abstract)
    else:
      variables["stage1"] = self._stage1_vars
    return variables

  def _logits_fn(self, params, train, key=None):
    rngs = {"dropout": key} if (train and key is not None) else None
    return lambda seq: self.net.apply({"params": params}, seq, train=train, rngs=rngs)

  def loss(self, params, model_state, batch, key, train: bool):
    images = batch["image"]
    n = images.shape[0]
    codes = self._codes(model_state["stage1"], images)
    cond = self._cond(batch, n)
    inputs = codes
    k_mask, k_rand, k_drop = jax.random.split(key, 3)
    if train and self.cfg.pkeep < 1.0:
      keep = jax.random.bernoulli(k_mask, self.cfg.pkeep, codes.shape)
      rand = jax.random.randint(k_rand, codes.shape, 0, int(self.net.vocab_size), jnp.int32)
      inputs = jnp.where(keep, codes, rand)
    per = sequence_loss(self._logits_fn(params, train, k_drop), cond, inputs, codes)
    mask = batch.get("mask") if isinstance(batch, dict) else None
    if mask is not None:
      m = jnp.asarray(mask, jnp.float32)
      loss = jnp.sum(per * m) / jnp.maximum(jnp.sum(m), 1.0)
    else:
      loss = per.mean()
    return loss, dict(bits_per_code=loss / jnp.log(2.0)), model_state

  # ------------------------------------------------------------------------------------ sampling
  @functools.cached_property
  def _sample_codes(self):
    cfg, grid = self.cfg, self.sample_grid
    n_codes = grid[0] * grid[1]
    opts = dict(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)

    def run(params, stage1_vars, key, idx, cond):
      idx, cond = sampling_mesh.shard_batch_dim((idx, cond))   # split over the mesh of jax.set_mesh
      if self.window is None:
        step_fn = lambda c, tok, pos: self.net.apply({"params": params}, tok, pos, c, method="decode_step")
        codes = sampling.sample_tokens(step_fn, self.net.init_cache(idx.shape[0]), cond, n_codes, key,
                                       indices=idx, **opts).reshape((-1,) + grid)
      else:
        codes = sampling.sample_sliding_window(self._logits_fn(params, False), cond, grid, self.window, key,
                                               indices=idx, **opts)
      codes = jnp.minimum(codes, self.num_codes - 1)      # tokens past the codebook (class/sos ids) clipped
      images = self.stage1_model.apply(stage1_vars, codes, method="decode_code")
      return sampling_mesh.shard_batch_dim((jnp.clip(images.astype(jnp.float32), -1.0, 1.0), codes))
    return jax.jit(run)

  def sample_classes(self, idx: np.ndarray) -> np.ndarray:
    """Class of global sample index i: ``sample_classes[i mod len]`` or ``i mod num_classes``."""
    classes = np.asarray(self.cfg.sample_classes or np.arange(self.cfg.num_classes), np.int32)
    return classes[np.asarray(idx) % len(classes)]

  def sample_with_codes(self, state, key, n: int, start_index: int = 0):
    """(images [n, H, W, C] in [−1, 1], codes [n, h, w]); sample i from ``fold_in(key, start_index + i)``."""
    n = int(n)
    if n <= 0:
      raise ConfigError(f"sample needs a positive number of samples, got {n}.")
    chunk = sampling_mesh.round_up(max(1, min(self.cfg.sample_batch_size, n)))   # a multiple of the devices
    images, codes = [], []
    for s in range(0, n, chunk):
      idx = np.arange(start_index + s, start_index + s + chunk, dtype=np.int32)   # fixed chunk shape
      cond = (self.sample_classes(idx) if self.cfg.conditional
              else np.full(idx.shape, self.cfg.sos_token, np.int32))[:, None]
      x, c = self._sample_codes(state.ema_params, state.model_state["stage1"], key, jnp.asarray(idx),
                                jnp.asarray(cond, jnp.int32))
      x, c = sampling_mesh.to_host((x, c))
      images.append(x)
      codes.append(c)
    return np.concatenate(images)[:n], np.concatenate(codes)[:n]

  def sample(self, state, key, n: int, start_index: int = 0):
    """Images decoded by the first stage from sampled codes (see ``sample_with_codes``)."""
    return self.sample_with_codes(state, key, n, start_index)[0]

  def sample_shape(self, state) -> tuple[int, ...]:
    """The shape of one sampled image, traced abstractly (``jax.eval_shape``: no decoding)."""
    images, _ = jax.eval_shape(self._sample_codes, state.ema_params, state.model_state["stage1"],
                               jax.random.key(0), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 1), jnp.int32))
    return tuple(images.shape[1:])

  # ------------------------------------------------------------------------------------ evaluation
  @functools.cached_property
  def _eval_loss(self):
    def f(params, model_state, batch):
      n = batch["image"].shape[0]
      codes = self._codes(model_state["stage1"], batch["image"])
      return sequence_loss(self._logits_fn(params, False), self._cond(batch, n), codes)
    return jax.jit(f)

  def eval_functions(self, state) -> dict:
    """sample (EMA GPT + first-stage decoder), loss (per-example nats per code) and data."""
    data = self.config.data
    facts = dict(name=str(config_schema.lookup(data, "name", "")).split("/")[0], resolution=self.resolution,
                 num_codes=self.num_codes, grid=self.grid)

    def loss(batch, key):
      del key
      b = {k: v for k, v in batch.items() if k in ("image", "label")}
      return self._eval_loss(state.ema_params, state.model_state, b)

    return dict(sample=lambda key, n, start_index=0: self.sample(state, key, n, start_index), loss=loss,
                data=facts)
