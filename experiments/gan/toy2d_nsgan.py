"""Non-saturating GAN (Goodfellow et al. 2014, §3: G minimizes −E log D(G(z))) on a 2-D toy.

python -m jaxgen.main --config experiments/gan/toy2d_nsgan.py:25gaussians --workdir runs/toy2d_nsgan_25g
Variants: 8gaussians, 25gaussians (default), swiss_roll; smoke.
Hardware: one CPU core or any GPU (minutes). Settings: Adam 2e-4, β = (0.5, 0.999), one D step per
G step, batch 256, 3×512 ReLU MLPs, 2-D noise.
No paper number; 25 gaussians is the mode-collapse benchmark of VEEGAN / PacGAN. Measured (jaxgen,
20k steps, H100; 2,500 samples, exact W1 by LP on 1,000 points): 8gaussians 8/8 modes, 85%
high-quality, W1 0.32; 25gaussians 11/25 modes, 64%, W1 1.26.
Plots: python scripts/gan_toy_plots.py runs/toy2d_nsgan_25g
"""

from jaxgen.recipes.gan import task_config, toy2d_base, toy2d_smoke, toy2d_variants

EXTRA = ()


def get_config(arg=None):
  toy, parts = toy2d_variants(arg, default="25gaussians", extra=EXTRA)
  c = toy2d_base(toy)
  c.num_train_steps = 20_000
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.5
  task_config(c, critic="gan_mlp_d", loss="non_saturating", latent_dim=2)
  if "smoke" in parts:
    toy2d_smoke(c)
  return c
