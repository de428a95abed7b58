"""EDM (Karras et al. 2022) Table 2, config F: unconditional AFHQv2 64², DDPM++ at 64² (cres 1,2,2,2).

    python -m jaxgen.main --config experiments/edm/afhqv2_64.py --workdir runs/edm_afhqv2_64 --config.data.data_dir=/path/afhqv2-64x64.zip

Hardware: 8 GPUs (EDM: 8 V100s); ≈2.6× the CIFAR-10 step cost per image. Expected: FID 1.96
[docs/reference.md §1] (50k samples, min of 3 seed sets, Heun 40 steps, NFE 79).
Recipe (EDM README): --arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4 --dropout=0.25 --augment=0.15,
200 Mimg, EMA half-life 500 kimg (ramp-up 0.05), lr ramp-up 10 Mimg, EDM precond/loss; data: the
AFHQv2 64×64 zip made by EDM's dataset_tool (``image_folder``; no dataset x-flips: the README's
command leaves train.py's --xflip at False, the pipe's labelled flips stand in).
Non-leaky augmentation: ``task.augment`` = EDM's pipe at p = 0.15 (x-flip 1e8, y-flip, scale, rotate_frac,
aniso, translate_frac; 9 labels to map_augment, ``jaxgen.diffusion.AugmentPipe``).
Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="image_folder", model="ddpmpp_64", batch=256, mimg=200, lr=2e-4, precond="edm",
                     loss="edm", sampler="heun", num_steps=40, overrides=dict(dropout=0.25), resolution=64,
                     random_flip=False)
  c.evals.fid.fid_ref = "fid_refs/afhqv2_64.npz"
  c.task.augment = dict(p=0.15, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)  # EDM README --augment=0.15
  if arg == "smoke":
    p.smoke_variant(c)
  return c
