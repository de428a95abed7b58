"""WGAN with weight clipping (Arjovsky et al. 2017, Alg. 1) with DCGAN nets on CIFAR-10 at 32².

python -m jaxgen.main --config experiments/gan/cifar10_wgan.py --workdir runs/cifar10_wgan \
    --config.evals.fid.inception_weights=inception_fid.npz --config.evals.fid.fid_ref=cifar10_train.npz
(the Inception weights from ``python -m jaxgen.convert.inception``, the reference statistics from
``python -m jaxgen.eval.fid --data cifar10 --split train --weights inception_fid.npz --out cifar10_train.npz``)
Variants: smoke (substitutes the embedded 8×8 digits, one channel, for CIFAR-10: no download in tests).
Hardware: one GPU.
Settings (Alg. 1 and the authors' code): RMSProp 5e-5 (decay 0.99 as PyTorch's) for both nets,
clip 0.01, n_critic 5 with the authors' schedule (100 critic iterations for the first 25 generator
steps and every 500th), batch 64, DCGAN G and a DCGAN critic (batch norm, as in the WGAN code).
Reference: Gulrajani et al. 2017 (Fig. 3) show weight-clipped WGAN converging more slowly and to a
lower CIFAR-10 Inception Score than WGAN-GP with the same DCGAN nets; they give no table value for
it, so this config reproduces a curve, not a number.
"""

from jaxgen.configs import base_config, smoke
from jaxgen.recipes.gan import digits_smoke_evals, fid_evals, task_config


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  c = base_config()
  c.batch_size = 64
  c.num_train_steps = 1_000_000        # critic steps (≈ 190k generator steps with the schedule)
  c.log_every_steps = 1000
  c.eval_every_steps = 100_000
  c.sample_every_steps = 20_000
  c.checkpoint_every_steps = 20_000
  c.num_grid_samples = 100
  c.data.name = "cifar10"
  c.model.name = "dcgan32_g"
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 5e-5
  c.optimizer.rms_decay = 0.99
  task_config(c, critic="dcgan32_d", loss="wasserstein", latent_dim=100)
  c.task.n_critic = 5
  c.task.n_critic_schedule = "wgan"
  c.task.clip_value = 0.01
  fid_evals(c, num_samples=50_000)      # IS / FID: needs --config.evals.fid.inception_weights and .fid_ref
  if arg == "smoke":
    smoke(c)
    c.num_grid_samples = 16
    c.data.name = "digits"
    c.data.resolution = 0               # native 8×8: one DCGAN stage keeps the smoke run cheap
    c.model.overrides.resolution = 8
    c.task.critic.overrides.resolution = 8
    c.model.overrides.base = 8
    c.model.overrides.channels = 1
    c.task.critic.overrides.base = 8
    c.task.critic.overrides.channels = 1
    c.task.n_critic_schedule = "constant"
    c.task.n_critic = 2
    digits_smoke_evals(c, num_samples=64)   # digits stand-in: the digits FD, no Inception in tests
  return c
