"""Minimax GAN (Goodfellow et al. 2014: G minimizes E log(1 − D(G(z)))) on a 2-D toy.

python -m jaxgen.main --config experiments/gan/toy2d_gan.py:8gaussians --workdir runs/toy2d_gan_8g
Variants: 8gaussians (default), 25gaussians, swiss_roll; smoke.
Hardware: one CPU core or any GPU (minutes). Settings: Adam 2e-4, β = (0.5, 0.999) for both nets
(the DCGAN recipe), one D step per G step, batch 256, 3×512 ReLU MLPs, 2-D noise.
No paper number. Measured (jaxgen, 20k steps, H100; 2,500 samples, exact W1 by LP on 1,000 points):
8gaussians 8/8 modes, 70% high-quality, W1 0.19; 25gaussians 16/25 modes, 55%, W1 1.08.
Plots: python scripts/gan_toy_plots.py runs/toy2d_gan_8g
"""

from jaxgen.configs import base_config, smoke
from jaxgen.tasks.gan import task_config

TOYS = ("8gaussians", "25gaussians", "swiss_roll")
EXTRA = ()


def _variants(arg):
  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in TOYS + EXTRA + ("smoke",)]
  if bad:
    raise ValueError(f"unknown variant {bad[0]!r}: use one of {', '.join(TOYS + EXTRA)} and/or smoke "
                     "(comma-separated).")
  return next((p for p in parts if p in TOYS), "8gaussians"), parts


def _toy_base(toy):
  c = base_config()
  c.batch_size = 256
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.sample_every_steps = 5000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 1000
  c.data.name = "toy2d"
  c.data.toy = toy
  c.model.name = "gan_mlp_g"
  return c


def _smoke(c):
  smoke(c)
  c.num_grid_samples = 16
  c.model.overrides.hidden = 16
  c.task.critic.overrides.hidden = 16
  c.task.n_critic = min(c.task.n_critic, 2)
  c.task.eval.num_samples = 64
  c.task.eval.lp_samples = 64
  c.task.eval.num_projections = 16
  return c


def get_config(arg=None):
  toy, parts = _variants(arg)
  c = _toy_base(toy)
  c.num_train_steps = 20_000
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.5
  task_config(c, critic="gan_mlp_d", loss="minimax", latent_dim=2)
  if "smoke" in parts:
    _smoke(c)
  return c
