"""Builders of the VQGAN stage-2 (transformer) experiment configs (experiments/vqgan/transformer.py).

``task_config`` writes every ``task.*`` key of the stage-2 task
(``jaxgen.tasks.transformer.TransformerConfig``, where each default is stated) into a config, so an experiment
sets only what differs and every key can be overridden on the command line. ``taming_optimizer`` sets
taming's ``Net2NetTransformer.configure_optimizers``:
AdamW, β = (0.9, 0.95), weight decay 0.01 on Linear weights, and the learning rate taming's main.py derives,
accumulate_grad_batches · #GPUs · batch · base_lr (base_lr 4.5e-6 in its transformer configs).
``smoke_config`` shrinks a config to the ``:smoke`` variant (a random tiny first stage on 16×16 digits and a
tiny GPT). docs/vqgan.md (stage 2).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxgen import configs


def task_config(c, **overrides):
  """Fills ``c.task`` with every key of the stage-2 task (defaults from ``TransformerConfig``), then
  ``overrides``."""
  from jaxgen.tasks import transformer as task_lib  # noqa: PLC0415 (the task's own defaults)

  t = c.task
  t.name = "transformer"
  for f in dataclasses.fields(task_lib.TransformerConfig):
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    setattr(t, f.name, ml_collections.ConfigDict(default) if isinstance(default, dict) else default)
  for k, v in overrides.items():
    setattr(t, k, ml_collections.ConfigDict(v) if isinstance(v, dict) else v)
  return c


def taming_optimizer(c, *, base_lr: float = 4.5e-6, batch_size: int, accumulate: int = 1, gpus: int = 1):
  """AdamW(β 0.9, 0.95, weight decay 0.01 on Linear weights) at lr = accumulate · gpus · batch · base_lr."""
  o = c.optimizer
  o.name = "adamw"
  o.learning_rate = accumulate * gpus * batch_size * base_lr
  o.b1, o.b2, o.eps = 0.9, 0.95, 1e-8
  o.weight_decay = 0.01
  return c


def smoke_config(c):
  """The ``:smoke`` variant: 2 steps on the 16×16 digits, a random tiny f4 first stage (4×4 = 16 codes of
  32) and a one-layer GPT; the digits_fd evaluator on 16 samples."""
  configs.smoke(c)
  c.num_grid_samples = 8
  c.data.name = "digits"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.data.eval_size = 16
  c.model.name = "gpt_tiny"
  c.model.overrides = ml_collections.ConfigDict(dict(vocab_size=32, block_size=16, n_layer=1, n_head=2,
                                                     n_embd=32))
  c.task.stage1_workdir = ""
  c.task.stage1_weights = ""
  c.task.stage1_model = "vqgan_tiny"
  c.task.stage1_overrides = ml_collections.ConfigDict(dict(
      ch=32, ch_mult=(1, 1, 1), num_res_blocks=1, attn_resolutions=(), z_channels=8, embed_dim=8,
      n_embed=32, resolution=16, in_channels=1, out_ch=1))
  c.task.conditional = False
  c.task.num_classes = 0
  c.task.sample_classes = ()
  c.task.sample_batch_size = 8
  c.evals = ml_collections.ConfigDict()
  c.evals.fd = dict(type="digits_fd", num_samples=16)
  c.evals.nll = dict(type="eval_loss")
  return c
