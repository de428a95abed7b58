"""WGAN with weight clipping (Arjovsky et al. 2017, Algorithm 1) on a 2-D toy.

python -m jaxgen.main --config experiments/gan/toy2d_wgan.py:swiss_roll --workdir runs/toy2d_wgan_swiss
Variants: 8gaussians, 25gaussians, swiss_roll (default); paper_schedule (100 critic iterations for
the first 25 generator steps and every 500th, as in the authors' code); smoke.
Hardware: one CPU core or any GPU. Settings (Alg. 1): RMSProp lr 5e-5 for both nets, clip 0.01,
n_critic 5, batch 256 (paper: 64), 3×512 ReLU MLPs, 2-D noise; RMSProp decay 0.99 as PyTorch's.
Expected: the critic's estimate is W1 up to the (unknown) Lipschitz constant K of the clipped
critic, so w1_critic / w1 is roughly constant over training (Arjovsky et al., Fig. 3 shows
the estimate correlating with sample quality); w1_critic_normalized divides by a measured K.
Measured (jaxgen, 50k critic steps = 10k generator steps, H100): slow, as clipping is: 8gaussians
3/8 modes, 8% high-quality, W1 0.31 (a ring through the modes); 25gaussians 0/25, 6%, W1 0.77.
Plots: python scripts/gan_toy_plots.py runs/toy2d_wgan_swiss
"""

from jaxgen.recipes.gan import task_config, toy2d_base, toy2d_smoke, toy2d_variants

EXTRA = ("paper_schedule",)


def get_config(arg=None):
  toy, parts = toy2d_variants(arg, default="swiss_roll", extra=EXTRA)
  c = toy2d_base(toy)
  c.num_train_steps = 50_000
  c.optimizer.name = "rmsprop"
  c.optimizer.learning_rate = 5e-5
  c.optimizer.rms_decay = 0.99
  task_config(c, critic="gan_mlp_d", loss="wasserstein", latent_dim=2)
  c.task.n_critic = 5
  c.task.clip_value = 0.01
  if "paper_schedule" in parts:
    c.task.n_critic_schedule = "wgan"
  if "smoke" in parts:
    toy2d_smoke(c)
  return c
