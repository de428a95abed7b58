"""WGAN-GP on a 2-D toy (Gulrajani et al. 2017, §5.1 / gan_toy.py).

python -m jaxgen.main --config experiments/gan/toy2d_wgan_gp.py:8gaussians --workdir runs/toy2d_wgan_gp_8g
Variants: 8gaussians (default), 25gaussians, swiss_roll; toy_script; one_sided (max(0, ‖∇f‖ − 1)² penalty); smoke.
Hardware: one CPU core or any GPU; 20k critic steps (4k generator steps) take minutes.
Settings: Adam 1e-4, β = (0, 0.9), λ = 10, n_critic = 5 (Algorithm 1's defaults), batch 256,
3×512 ReLU MLPs, 2-D noise. Variant ``toy_script``: λ = 0.1 and β = (0.5, 0.9), the settings of the
authors' gan_toy.py ("smaller lambda seems to help for toy tasks"). No paper number exists (Fig. 2
shows critics against a *fixed* generator).
Measured (jaxgen, 20k critic steps, eval on 2,500 samples, exact W1 by LP on 1,000 points):
  default λ = 10: the generator outruns the critic (its KR estimate turns negative) and diverges:
    8gaussians 0/8 modes, W1 1.84; 25gaussians 0/25, W1 2.77; swiss_roll W1 0.39 (H100).
    With β1 = 0.5 still 0/8 (W1 1.46) and 0/25 (W1 1.63).
  toy_script (λ = 0.1): 8gaussians 8/8 modes, 32% high-quality, W1 0.19; 25gaussians 12/25, 24%,
    W1 0.49; swiss_roll W1 0.13. λ = 1, β1 = 0.5: 8/8, 41%, W1 0.16 (H200).
Plots: python scripts/gan_toy_plots.py runs/toy2d_wgan_gp_8g
"""

from jaxgen.recipes.gan import task_config, toy2d_base, toy2d_smoke, toy2d_variants

EXTRA = ("one_sided", "toy_script")


def get_config(arg=None):
  toy, parts = toy2d_variants(arg, default="8gaussians", extra=EXTRA)
  c = toy2d_base(toy)
  c.num_train_steps = 20_000            # critic steps (4,000 generator steps)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.9
  task_config(c, critic="gan_mlp_d", loss="wasserstein", latent_dim=2)
  c.task.n_critic = 5
  c.task.gp_weight = 10.0
  if "toy_script" in parts:
    c.task.gp_weight = 0.1
    c.optimizer.b1 = c.task.critic_optimizer.b1 = 0.5
  if "one_sided" in parts:
    c.task.gp_one_sided = True
  if "smoke" in parts:
    toy2d_smoke(c)
  return c
