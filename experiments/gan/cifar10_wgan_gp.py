"""WGAN-GP with the ResNet generator and critic on CIFAR-10 (Gulrajani et al. 2017, §5.3, App. F).

python -m jaxgen.main --config experiments/gan/cifar10_wgan_gp.py --workdir runs/cifar10_wgan_gp \
    --config.evals.fid.inception_weights=inception_fid.npz --config.evals.fid.fid_ref=cifar10_train.npz
(the Inception weights from ``python -m jaxgen.convert.inception``, the reference statistics from
``python -m jaxgen.eval.fid --data cifar10 --split train --weights inception_fid.npz --out cifar10_train.npz``)
Variants: smoke (substitutes the embedded 8×8 digits, one channel, for CIFAR-10: no download in tests).
Hardware: one modern GPU (the paper's code ran 100k generator iterations on 2 GPUs). Measured: the
compiled float32 step runs 139 critic steps/s on one H100 (8.9k critic images/s), so the 500k critic
steps take about an hour plus evaluation.
Reproduces: Inception Score 7.86 ± 0.07 (unsupervised, Table 3 of the paper), with jaxgen's IS/FID.
Settings (gan_cifar_resnet.py, unconditional): wgan_resnet_g / wgan_resnet_d (128 channels, 3
residual blocks each, BN in G only), z ~ N(0, I_128), critic batch 64, generator batch 128
(GEN_BS_MULTIPLE = 2), Adam 2e-4, β = (0, 0.9) for both nets with the learning rate decayed linearly
to 0 over training, λ = 10, n_critic = 5, 100k generator iterations = 500k critic steps.
Not reproduced: the reference code's uniform dequantization noise (U[0, 1/128)) on real images.
"""

from jaxgen.configs import base_config, smoke
from jaxgen.recipes.gan import digits_smoke_evals, fid_evals, task_config


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use smoke or nothing.")
  c = base_config()
  c.batch_size = 64
  c.num_train_steps = 500_000          # critic steps; 100k generator steps
  c.log_every_steps = 500
  c.eval_every_steps = 50_000
  c.sample_every_steps = 10_000
  c.checkpoint_every_steps = 10_000
  c.num_grid_samples = 100
  c.data.name = "cifar10"
  c.data.split = "train"
  c.model.name = "wgan_resnet_g"
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.9
  c.optimizer.schedule = "linear"
  c.optimizer.end_lr_factor = 0.0
  task_config(c, critic="wgan_resnet_d", loss="wasserstein", latent_dim=128)
  c.task.n_critic = 5
  c.task.gp_weight = 10.0
  c.task.generator_batch_size = 128
  fid_evals(c, num_samples=50_000)      # IS / FID: needs --config.evals.fid.inception_weights and .fid_ref
  if arg == "smoke":
    smoke(c)
    c.num_grid_samples = 16
    c.data.name = "digits"
    c.data.resolution = 0               # native 8×8 with one up-block (4 → 8) keeps the smoke run cheap
    c.model.overrides.num_blocks = 1
    c.model.overrides.dim = 8
    c.model.overrides.channels = 1
    c.task.critic.overrides.dim = 8
    c.task.n_critic = 2
    c.task.generator_batch_size = 16
    digits_smoke_evals(c, num_samples=64)   # digits stand-in: the digits FD, no Inception in tests
  return c
