"""VQGAN stage 1 at CPU scale: the embedded 8×8 digits upsampled to 16×16, a small f2 VQGAN (8×8 codes).

python -m jaxgen.main --config experiments/vqgan/digits_vqgan.py --workdir runs/vqgan_digits
Variants: gan (500 more steps with the adversarial loss), smoke.
Hardware: two CPU cores; about 20 minutes for the default 1000 steps on a shared machine (docs/vqgan.md).
Settings: VQModel ch 32, ch_mult (1, 2) (f = 2), one ResnetBlock per level, no attention outside the
middle block, z/embed 16, 128 codes (β 0.25, taming's legacy placement), 1 channel; no perceptual loss
(LPIPS's VGG is for larger RGB images; the digits carry 8×8 pixels of information); Adam β (0.5, 0.9),
lr 4e-4 for both networks (taming's rule 4.5e-6 · batch is far too small for a run of minutes); batch 32;
dead codes (fewer than 1 use in 100 steps) restarted from encoder outputs every 100 steps. The PatchGAN
(ndf 32, n_layers 2, BatchNorm, hinge loss, adaptive weight × 0.8) starts at step 1000 (``disc_start``):
after the default run; the ``gan`` variant trains 500 steps with it, and its first 1000 steps are the
default run (same seed, data order and updates). From step 1000 the ``gan`` variant's autoencoder lr is
4e-5 (a 10× stair of the exponential schedule) while the new discriminator keeps 4e-4: at 4e-4 the
autoencoder overran the discriminator within 10 steps and lost 10 dB PSNR (docs/vqgan.md).
Metric: the ``reconstruction`` evaluator on the 297 test digits: ``psnr`` (dB, data range 2), ``ssim``,
``code_usage`` (share of the 128 codes used on the test split), ``perplexity``. Measured (docs/vqgan.md):
step 1000 PSNR 33.5 dB, SSIM 0.949, 97.7% of the codes in use; the ``gan`` variant at step 1500
38.7 dB, SSIM 0.983 (mostly the smaller lr: its discriminator stays near chance on these digits). The stage-2
transformer (experiments/vqgan/transformer.py) trains on the codes of the default run.
"""

import ml_collections

from jaxgen.configs import base_config
from jaxgen.recipes.vqgan import reconstruction_evals, smoke_config, task_config


def get_config(arg=None):
  if arg not in (None, "", "gan", "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use gan, smoke or nothing.")
  c = base_config()
  c.batch_size = 32
  c.num_train_steps = 1500 if arg == "gan" else 1000
  c.log_every_steps = 100
  c.eval_every_steps = 500
  c.sample_every_steps = 500
  c.checkpoint_every_steps = 500
  c.num_grid_samples = 64
  c.data.name = "digits"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.model.name = "vqgan_tiny"
  c.model.overrides = ml_collections.ConfigDict(dict(
      ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), z_channels=16, embed_dim=16,
      n_embed=128, resolution=16, in_channels=1, out_ch=1))
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 4e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.9
  task_config(c, disc="patchgan", perceptual_weight=0.0, disc_start=1000, restart_every=100)
  c.task.disc_optimizer.learning_rate = 4e-4
  c.task.disc.overrides = ml_collections.ConfigDict(dict(input_nc=1, ndf=32, n_layers=2))
  if arg == "gan":
    # two time scales once the discriminator starts: the autoencoder's lr drops 10× at step 1000 (the
    # exponential schedule's first stair, so steps 0–999 are the default run's), the discriminator keeps 4e-4
    c.optimizer.schedule = "exponential"
    c.optimizer.decay_steps = 1000
    c.optimizer.decay_rate = 0.1
    c.optimizer.staircase = True
  reconstruction_evals(c)
  if arg == "smoke":
    smoke_config(c)
  return c
