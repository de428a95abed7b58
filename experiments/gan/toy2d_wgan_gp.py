"""WGAN-GP on a 2-D toy (Gulrajani et al. 2017, §5.1 / gan_toy.py).

python -m jaxgen.main --config experiments/gan/toy2d_wgan_gp.py:8gaussians --workdir runs/toy2d_wgan_gp_8g
Variants: 8gaussians (default), 25gaussians, swiss_roll; one_sided (max(0, ‖∇f‖ − 1)² penalty); smoke.
Hardware: one CPU core or any GPU; 20k critic steps (4k generator steps) take minutes.
Expected: all 8 (25) modes covered with most samples high-quality; the critic's KR estimate tracks
the exact W1 (jaxgen.ot, LP on 1000 points) from above by the soft-constraint bias s ≈ 1 + W1/(2λ)
(paper: Fig. 2 shows WGAN-GP fitting all three toys; no number is given).
Settings: Adam 1e-4, β = (0, 0.9), λ = 10, n_critic = 5, batch 256, 3×512 ReLU MLPs, 2-D noise.
(The paper's toy script used λ = 0.1 and β1 = 0.5; λ = 10 follows the paper's Algorithm 1 default.)
Plots: python scripts/gan_toy_plots.py runs/toy2d_wgan_gp_8g
"""

from jaxgen.configs import base_config, smoke
from jaxgen.tasks.gan import task_config

TOYS = ("8gaussians", "25gaussians", "swiss_roll")
EXTRA = ("one_sided",)


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
  c.num_train_steps = 20_000            # critic steps (4,000 generator steps)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.9
  task_config(c, critic="gan_mlp_d", loss="wasserstein", latent_dim=2)
  c.task.n_critic = 5
  c.task.gp_weight = 10.0
  if "one_sided" in parts:
    c.task.gp_one_sided = True
  if "smoke" in parts:
    _smoke(c)
  return c
