"""EDM (Karras et al. 2022) Table 2, config F: unconditional FFHQ 64², DDPM++ at 64² (cres 1,2,2,2).

    python -m jaxgen.main --config experiments/edm/ffhq64.py --workdir runs/edm_ffhq64 --config.data.data_dir=/path/ffhq-64x64.zip

Hardware: 8 GPUs (EDM: 8 V100s); ≈2.6× the CIFAR-10 step cost per image. Expected: FID 2.39
[REFERENCE.md §1] (50k samples, min of 3 seed sets, Heun 40 steps, NFE 79).
Recipe (EDM README): --arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4 --dropout=0.05 --augment=0.15,
200 Mimg, EMA half-life 500 kimg (ramp-up 0.05), lr ramp-up 10 Mimg, EDM precond/loss; data: the
FFHQ 64×64 zip made by EDM's dataset_tool (``image_folder``; x-flips enabled there with --xflip).
Deviation: the non-leaky augmentation (p = 0.15) needs ``batch['augment_labels']`` from an augmentation
pipeline jaxgen.data does not provide yet; until then the run is augmentation-free (row E's recipe).
Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.tasks import diffusion_configs as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="image_folder", model="ddpmpp_64", batch=256, mimg=200, lr=2e-4, precond="edm",
                     loss="edm", sampler="heun", num_steps=40, overrides=dict(dropout=0.05), resolution=64,
                     random_flip=True)
  c.task.eval["fid_ref"] = "fid_refs/ffhq64.npz"
  if arg == "smoke":
    p.smoke_variant(c)
  return c
