"""Builders of the VQGAN stage-1 experiment configs (experiments/vqgan/*.py; docs/vqgan.md).

``task_config`` writes every ``task.*`` key of the VQGAN task (``jaxgen.tasks.vqgan.VqganConfig``, where
each default is stated) into a config, so an experiment sets only what differs and every key can be
overridden on the command line. ``taming_optimizers`` sets taming's optimizers: Adam with β = (0.5, 0.9)
for both networks and the learning rate taming's main.py derives, accumulate_grad_batches · #GPUs ·
batch · base_lr. ``reconstruction_evals`` adds the ``reconstruction`` evaluator
(``jaxgen.eval.evaluators_vqgan``); ``smoke_config`` shrinks a config to the ``:smoke`` variant (the
tiny VQGAN on 16×16 digits, no perceptual loss).
"""

from __future__ import annotations

import copy
import dataclasses

import ml_collections

from jaxgen import configs


def task_config(c, *, disc: str = "patchgan", **overrides):
  """Fills ``c.task`` with every key of the VQGAN task (defaults from ``VqganConfig``), the discriminator
  ``disc`` and its optimizer (a copy of ``c.optimizer``), then ``overrides``."""
  from jaxgen.tasks import vqgan as vqgan_task  # noqa: PLC0415 (the task's own defaults)

  t = c.task
  t.name = "vqgan"
  for f in dataclasses.fields(vqgan_task.VqganConfig):
    if f.name not in ("disc", "disc_optimizer"):
      setattr(t, f.name, f.default)
  t.disc = ml_collections.ConfigDict(dict(name=disc, overrides=ml_collections.ConfigDict()))
  t.disc_optimizer = copy.deepcopy(c.optimizer)
  for k, v in overrides.items():
    setattr(t, k, v)
  return c


def taming_optimizers(c, *, base_lr: float = 4.5e-6, batch_size: int, accumulate: int = 1, gpus: int = 1):
  """Adam(β 0.5, 0.9) at lr = accumulate · gpus · batch · base_lr for the autoencoder and (the same) for
  the discriminator, as taming's ``VQModel.configure_optimizers`` and main.py. Call after task_config."""
  lr = accumulate * gpus * batch_size * base_lr
  for opt in (c.optimizer, c.task.disc_optimizer):
    opt.name = "adam"
    opt.learning_rate = lr
    opt.b1, opt.b2 = 0.5, 0.9
    opt.eps = 1e-8
  return c


def reconstruction_evals(c, *, lpips_weights: str = "", rfid: bool = False, inception_weights: str = "",
                         limit: int = 0):
  """``c.evals.recon``: PSNR / SSIM / code usage (and LPIPS with ``lpips_weights``, rFID with ``rfid``)
  over the eval split."""
  c.evals.recon = dict(type="reconstruction", lpips_weights=lpips_weights, rfid=rfid,
                       inception_weights=inception_weights, limit=limit)
  return c


def smoke_config(c):
  """The ``:smoke`` variant: 2 steps on the 16×16 digits with a tiny f2 VQGAN (32 codes), a small PatchGAN,
  no perceptual loss (no LPIPS file), the discriminator from step 1, no rFID; cheap evaluation."""
  configs.smoke(c)
  c.num_grid_samples = 8
  c.eval_batch_size = 0
  c.data.name = "digits"
  c.data.split = "train"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.data.eval_size = 16
  c.data.data_dir = ""
  c.data.crop = ""
  c.data.crop_fraction = 0.0
  c.data.resize_method = ""
  c.data.random_flip = False
  c.model.name = "vqgan_tiny"
  c.model.overrides = ml_collections.ConfigDict(dict(
      ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(), z_channels=8, embed_dim=8, n_embed=32,
      resolution=16, in_channels=1, out_ch=1))
  c.task.disc.overrides = ml_collections.ConfigDict(dict(input_nc=1, ndf=8, n_layers=1))
  c.task.perceptual_weight = 0.0
  c.task.lpips_weights = ""
  c.task.disc_start = 1
  c.evals = ml_collections.ConfigDict()
  reconstruction_evals(c)
  return c
