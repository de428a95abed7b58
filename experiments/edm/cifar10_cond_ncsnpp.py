"""EDM (Karras et al. 2022) Table 2, config F: class-conditional CIFAR-10 32², NCSN++ (the "VE" column).

    python -m jaxgen.main --config experiments/edm/cifar10_cond_ncsnpp.py --workdir runs/edm_cifar10_cond_ncsnpp

Hardware: one H200 (measured 3,076 img/s for DDPM++ training in bf16 at batch 512: ≈18 h for 200 Mimg);
EDM trained on 8 V100s. Expected: FID 1.79 [paper, Table 2 row F, conditional "VE" column] (50k samples, minimum over 3 seed sets, Heun, 18 steps,
NFE 35; ``jaxgen.eval.fid.evaluate_protocol``).
Recipe (EDM train.py defaults, docs/reference.md §1): network ``ncsnpp_cifar10`` (EDM's --arch), batch 512,
200 Mimg (390,625 steps), Adam lr 1e-3 β (0.9, 0.999) ε 1e-8, lr ramp-up 10 Mimg, EMA half-life
500 kimg with ramp-up ratio 0.05, dropout 0.13, EDM preconditioning and loss (P_mean −1.2,
P_std 1.2, σ_d 0.5), no x-flips.
Non-leaky augmentation (config F): ``task.augment`` = EDM's train.py pipe, p = 0.12 with x-flip 1e8
(always on, a labelled fair coin), y-flip, scale, rotate_frac, aniso and translate_frac at strength 1
(``jaxgen.diffusion.AugmentPipe``), applied on device each step; its 9 labels feed the network's
map_augment (``augment_dim`` = 9 is set by the task; sampling uses zero labels).
Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ncsnpp_cifar10", batch=512, mimg=200, lr=1e-3, precond="edm", loss="edm",
                     sampler="heun", num_steps=18, overrides=dict(dropout=0.13, label_dim=10), class_conditional=True)
  c.task.augment = dict(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)  # EDM train.py --augment=0.12
  if arg == "smoke":
    p.smoke_variant(c)
  return c
