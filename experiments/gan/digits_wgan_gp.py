"""WGAN-GP (Gulrajani et al. 2017, Alg. 1) with DCGAN-shaped nets on the embedded digits at 16².

python -m jaxgen.main --config experiments/gan/digits_wgan_gp.py --workdir runs/digits_wgan_gp
Variants: smoke.
Hardware: one CPU core (tens of minutes) or any GPU (minutes).
Settings: dcgan32_g (resolution 16, 1 channel, BN) and a dcgan32_d critic with layer norm instead of
batch norm (the GP needs per-sample critics), Adam 1e-4, β = (0, 0.9), λ = 10, n_critic 5, batch 64,
50k critic steps (10k generator steps).
Metric: the digits Fréchet distance (``fd`` vs ``fd_real`` and ``fd_gaussian``; see
digits_dcgan.py). No paper number exists for this data set.
"""

from jaxgen.configs import base_config, smoke
from jaxgen.recipes.gan import task_config


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  c = base_config()
  c.batch_size = 64
  c.num_train_steps = 50_000
  c.log_every_steps = 200
  c.eval_every_steps = 5000
  c.sample_every_steps = 5000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 64
  c.data.name = "digits"
  c.data.resolution = 16
  c.model.name = "dcgan32_g"
  c.model.overrides.resolution = 16
  c.model.overrides.channels = 1
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.9
  c.evals.fd = dict(type="digits_fd", num_samples=0)   # 0: the test-split size (297)
  task_config(c, critic="dcgan32_d", loss="wasserstein", latent_dim=100)
  c.task.critic.overrides.resolution = 16
  c.task.critic.overrides.channels = 1
  c.task.critic.overrides.norm = "layer"
  c.task.n_critic = 5
  c.task.gp_weight = 10.0
  if arg == "smoke":
    smoke(c)
    c.num_grid_samples = 16
    c.data.resolution = 0               # native 8×8: one DCGAN stage keeps the smoke run cheap
    c.model.overrides.resolution = 8
    c.task.critic.overrides.resolution = 8
    c.model.overrides.base = 8
    c.task.critic.overrides.base = 8
    c.task.n_critic = 2
    c.evals.fd.num_samples = 64
  return c
