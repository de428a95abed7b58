"""Minimax GAN (Goodfellow et al. 2014: G minimizes E log(1 − D(G(z)))) on a 2-D toy.

python -m jaxgen.main --config experiments/gan/toy2d_gan.py:8gaussians --workdir runs/toy2d_gan_8g
Variants: 8gaussians (default), 25gaussians, swiss_roll; smoke.
Hardware: one CPU core or any GPU (minutes). Settings: Adam 2e-4, β = (0.5, 0.999) for both nets
(the DCGAN recipe), one D step per G step, batch 256, 3×512 ReLU MLPs, 2-D noise.
No paper number. Measured (jaxgen, 20k steps, H100; 2,500 samples, exact W1 by LP on 1,000 points):
8gaussians 8/8 modes, 70% high-quality, W1 0.19; 25gaussians 16/25 modes, 55%, W1 1.08.
Plots: python scripts/gan_toy_plots.py runs/toy2d_gan_8g
"""

from jaxgen.recipes.gan import task_config, toy2d_base, toy2d_smoke, toy2d_variants

EXTRA = ()


def get_config(arg=None):
  toy, parts = toy2d_variants(arg, default="8gaussians", extra=EXTRA)
  c = toy2d_base(toy)
  c.num_train_steps = 20_000
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.5
  task_config(c, critic="gan_mlp_d", loss="minimax", latent_dim=2)
  if "smoke" in parts:
    toy2d_smoke(c)
  return c
