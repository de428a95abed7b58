"""DCGAN (non-saturating loss, Radford et al. 2016 recipe) on the embedded 8×8 digits, upsampled to 16².

python -m jaxgen.main --config experiments/gan/digits_dcgan.py --workdir runs/digits_dcgan
Variants: smoke.
Hardware: one CPU core (tens of minutes) or any GPU (a minute or two).
Settings: dcgan32_g/d at resolution 16 (two stages, 1 channel, ngf = ndf = 64, BN, LeakyReLU 0.2),
Adam 2e-4, β = (0.5, 0.999) for both nets, batch 64, z ~ N(0, I_100), 20k steps.
Metric: the digits Fréchet distance (jaxgen.eval.digits_fd): ``fd`` of 297 samples (the test-split
size) against the train-split statistics, beside ``fd_real`` (held-out digits, the floor at that n)
and ``fd_gaussian`` (a Gaussian fitted to the pixels). No paper number exists for this data set:
a working GAN lands well below fd_gaussian and approaches fd_real.
"""

from jaxgen.configs import base_config, smoke
from jaxgen.recipes.gan import task_config


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  c = base_config()
  c.batch_size = 64
  c.num_train_steps = 20_000
  c.log_every_steps = 200
  c.eval_every_steps = 2000
  c.sample_every_steps = 2000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 64
  c.data.name = "digits"
  c.data.resolution = 16
  c.model.name = "dcgan32_g"
  c.model.overrides.resolution = 16
  c.model.overrides.channels = 1
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.5
  c.evals.fd = dict(type="digits_fd", num_samples=0)   # 0: the test-split size (297)
  task_config(c, critic="dcgan32_d", loss="non_saturating", latent_dim=100)
  c.task.critic.overrides.resolution = 16
  c.task.critic.overrides.channels = 1
  if arg == "smoke":
    smoke(c)
    c.num_grid_samples = 16
    c.data.resolution = 0               # native 8×8: one DCGAN stage keeps the smoke run cheap
    c.model.overrides.resolution = 8
    c.task.critic.overrides.resolution = 8
    c.model.overrides.base = 8
    c.task.critic.overrides.base = 8
    c.evals.fd.num_samples = 64
  return c
