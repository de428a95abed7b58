"""DCGAN (non-saturating loss) on CIFAR-10 at 32² (Radford et al. 2016 recipe; WGAN-GP's baseline).

python -m jaxgen.main --config experiments/gan/cifar10_dcgan.py --workdir runs/cifar10_dcgan \
    --config.evals.fid.inception_weights=inception_fid.npz --config.evals.fid.fid_ref=cifar10_train.npz
(the Inception weights from ``python -m jaxgen.convert.inception``, the reference statistics from
``python -m jaxgen.eval.fid --data cifar10 --split train --weights inception_fid.npz --out cifar10_train.npz``)
Variants: smoke (substitutes the embedded 8×8 digits, one channel, for CIFAR-10: no download in tests).
Hardware: one GPU.
Reference: Gulrajani et al. 2017, Table 3 list DCGAN (Radford et al.) at IS 6.16 ± 0.07 on
unsupervised CIFAR-10; this config (dcgan32_g/d, ngf = ndf = 64, BN, Adam 2e-4, β = (0.5, 0.999),
batch 64, 100k steps) is the standard recipe, not the exact architecture behind that number.
"""

from jaxgen.configs import base_config, smoke
from jaxgen.recipes.gan import digits_smoke_evals, fid_evals, task_config


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  c = base_config()
  c.batch_size = 64
  c.num_train_steps = 100_000
  c.log_every_steps = 500
  c.eval_every_steps = 20_000
  c.sample_every_steps = 10_000
  c.checkpoint_every_steps = 10_000
  c.num_grid_samples = 100
  c.data.name = "cifar10"
  c.model.name = "dcgan32_g"
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.5
  task_config(c, critic="dcgan32_d", loss="non_saturating", latent_dim=100)
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
    digits_smoke_evals(c, num_samples=64)   # digits stand-in: the digits FD, no Inception in tests
  return c
