"""VQGAN first stage (Esser et al. 2021) with taming-transformers' configs: ImageNet f16 (1024 / 16384 codes),
FFHQ and CelebA-HQ (faceshq_vqgan.yaml); docs/vqgan.md.

python -m jaxgen.main --config experiments/vqgan/vqgan_stage1.py:imagenet_f16_1024 --workdir runs/vq1024
  (with --config.task.lpips_weights=lpips_vgg.npz --config.evals.recon.inception_weights=inception.npz)
Variants: imagenet_f16_1024 (default), imagenet_f16_16384, ffhq, celebahq (``--config.data.data_dir`` = a
folder or .zip of the face images, e.g. 1024² PNGs; resized to 256²), smoke.
Files: the LPIPS weights (``python -m jaxgen.convert.lpips VGG16_PTH LIN_PTH lpips_vgg.npz``) and, for rFID,
the TF-FID Inception weights (``python -m jaxgen.convert.inception``).
Hardware: written for one data-parallel accelerator host; taming trained with batch 12 (ImageNet) / 3 (faces)
per GPU. Raise the batch with the learning rate, as taming's main.py: lr = batch · 4.5e-6 (accumulate ·
#GPUs · per-GPU batch · base_lr).
Recipe (configs/imagenet_vqgan.yaml, faceshq_vqgan.yaml, taming/models/vqgan.py): VQModel ch 128, ch_mult
(1, 1, 2, 2, 4), 2 res blocks, attention at 16, z/embed 256, β 0.25 (legacy placement); PatchGAN n_layers 3,
ndf 64, BatchNorm, hinge loss; L1 + LPIPS (weight 1) + codebook (weight 1); adaptive weight × disc_weight
0.8 from disc_start = 250,001 (ImageNet) / 30,001 (faces); Adam β (0.5, 0.9) for both networks.
Data: ImageNet resized (shorter side) and random-cropped to 256² for training, center-cropped for
evaluation, as taming's ImagePaths (SmallestMaxSize + RandomCrop/CenterCrop).
Run length: taming's configs do not fix one (PyTorch Lightning runs until stopped); 500k steps here.
Expected (taming README, reconstruction FID on the 50k ImageNet validation images): f16 1024 codes 7.94,
16384 codes 4.98 (``rfid`` of the ``reconstruction`` evaluator with data.eval_size 0).
"""

import ml_collections

from jaxgen.configs import base_config
from jaxgen.recipes.vqgan import reconstruction_evals, smoke_config, taming_optimizers, task_config

VARIANTS = ("imagenet_f16_1024", "imagenet_f16_16384", "ffhq", "celebahq")
EXPECTED_RFID = {"imagenet_f16_1024": 7.94, "imagenet_f16_16384": 4.98}


def get_config(arg=None):
  variant = arg or "imagenet_f16_1024"
  if variant not in (*VARIANTS, "smoke"):
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(VARIANTS)} or smoke.")
  faces = variant in ("ffhq", "celebahq")
  batch = 3 if faces else 12
  c = base_config()
  c.batch_size = batch
  c.num_train_steps = 500_000
  c.log_every_steps = 500
  c.eval_every_steps = 25_000
  c.sample_every_steps = 5000
  c.checkpoint_every_steps = 5000
  c.num_grid_samples = 16
  c.eval_batch_size = 48
  if faces:
    c.data.name = "image_folder"
    c.data.split = "train[:95%]"
    c.data.eval_split = "train[95%:]"
    c.data.resolution = 256
    c.data.random_flip = True
  else:
    c.data.name = "imagenet2012"
    c.data.split = "train"
    c.data.eval_split = "validation"
    c.data.resolution = 256
    c.data.crop = "random"
    c.data.crop_fraction = 1.0
    c.data.resize_method = "bicubic"
  c.model.name = "vqgan_imagenet_f16_16384" if variant == "imagenet_f16_16384" else "vqgan_imagenet_f16_1024"
  c.model.overrides = ml_collections.ConfigDict()
  task_config(c, disc="patchgan", perceptual_weight=1.0, codebook_weight=1.0, disc_weight=0.8,
              disc_start=30_001 if faces else 250_001, disc_loss="hinge")
  c.task.disc.overrides = ml_collections.ConfigDict(dict(input_nc=3, ndf=64, n_layers=3))
  taming_optimizers(c, base_lr=4.5e-6, batch_size=batch)
  reconstruction_evals(c, rfid=True)
  if variant == "smoke":
    smoke_config(c)
  return c
