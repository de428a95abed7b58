"""Builders of the GAN experiment configs (experiments/gan/*.py).

``task_config`` writes every ``task.*`` key of the GAN task (``jaxgen.tasks.gan.GanConfig``, where each
default is stated) into a config, so an experiment sets only what differs and every key can be
overridden on the command line. The 2-D toy experiments share ``toy2d_variants`` (variant parsing),
``toy2d_base`` (run length, data, generator and evaluation: the toy2d metrics and the critic's W1
estimate of 2,500 samples, exact W1 by LP on 1,000 points) and ``toy2d_smoke``.
"""

from __future__ import annotations

import copy
import dataclasses

import ml_collections

from jaxgen import configs
from jaxgen.errors import ConfigError


def task_config(c, *, critic: str, loss: str = "non_saturating", latent_dim: int = 2):
  """Fills ``c.task`` of a ``jaxgen.configs.base_config()`` with every key of the GAN task.

  Defaults come from ``jaxgen.tasks.gan.GanConfig``; the critic optimizer starts as a copy of
  ``c.optimizer``; experiments then set what differs.
  """
  from jaxgen.tasks import gan as gan_task  # noqa: PLC0415 (the task's own defaults)

  t = c.task
  t.name = "gan"
  for f in dataclasses.fields(gan_task.GanConfig):
    if f.name not in ("critic", "critic_optimizer"):
      setattr(t, f.name, f.default)
  t.loss = loss
  t.latent_dim = latent_dim
  t.critic = ml_collections.ConfigDict(dict(name=critic, overrides=ml_collections.ConfigDict()))
  t.critic_optimizer = copy.deepcopy(c.optimizer)
  return c


def fid_evals(c, num_samples: int = 50_000):
  """``c.evals.fid``: FID / IS of ``num_samples`` samples; the two local files are given on the command
  line (``--config.evals.fid.inception_weights=... --config.evals.fid.fid_ref=...``)."""
  c.evals.fid = dict(type="fid", num_samples=num_samples, inception_weights="", fid_ref="", batch_size=500)
  return c


def digits_smoke_evals(c, num_samples: int = 64):
  """The image experiments' smoke variants train on the embedded digits: the digits FD instead of FID."""
  if "fid" in c.evals:
    del c.evals["fid"]
  c.evals.fd = dict(type="digits_fd", num_samples=num_samples)
  return c


# --- 2-D toy experiment builders (experiments/gan/toy2d_*.py) -----------------------------------
TOYS = ("8gaussians", "25gaussians", "swiss_roll")


def toy2d_variants(arg, *, default: str, extra: tuple = ()):
  """Parses a comma-separated variant ('25gaussians,smoke', ...): returns (toy, parts)."""
  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in TOYS + tuple(extra) + ("smoke",)]
  if bad:
    raise ConfigError(f"unknown variant {bad[0]!r}: use one of {', '.join(TOYS + tuple(extra))} and/or "
                      "smoke (comma-separated).")
  return next((p for p in parts if p in TOYS), default), parts


def toy2d_base(toy: str):
  """The run-length, data, generator and evaluation keys every 2-D toy GAN experiment shares."""
  c = configs.base_config()
  c.batch_size = 256
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.sample_every_steps = 5000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 1000
  c.data.name = "toy2d"
  c.data.toy = toy
  c.model.name = "gan_mlp_g"
  c.evals.toy2d = dict(type="toy2d", num_samples=2500, lp_samples=1000, num_projections=256, hq_num_std=3.0,
                       min_mode_count=20)
  c.evals.critic = dict(type="critic_w1", num_samples=2500, lp_samples=1000)
  return c


def toy2d_smoke(c):
  """The ``:smoke`` variant of a 2-D toy GAN experiment: tiny MLPs, cheap evaluation."""
  configs.smoke(c)
  c.num_grid_samples = 16
  c.model.overrides.hidden = 16
  c.task.critic.overrides.hidden = 16
  c.task.n_critic = min(c.task.n_critic, 2)
  c.evals.toy2d.num_samples = 64
  c.evals.toy2d.lp_samples = 64
  c.evals.toy2d.num_projections = 16
  c.evals.critic.num_samples = 64
  c.evals.critic.lp_samples = 64
  return c
