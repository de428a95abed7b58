"""EDM (Karras et al. 2022) Table 2, config F: unconditional CIFAR-10 32², NCSN++ (the "VE" column).

    python -m jaxgen.main --config experiments/edm/cifar10_uncond_ncsnpp.py --workdir runs/edm_cifar10_uncond_ncsnpp

Hardware: one H200 (measured 3,076 img/s for DDPM++ training in bf16 at batch 512: ≈18 h for 200 Mimg);
EDM trained on 8 V100s. Expected: FID 1.98 [paper, Table 2 row F, unconditional "VE" column] (50k samples, minimum over 3 seed sets, Heun, 18 steps,
NFE 35; ``jaxgen.eval.fid.evaluate_protocol``).
Recipe (EDM train.py defaults, REFERENCE.md §1): network ``ncsnpp_cifar10`` (EDM's --arch), batch 512,
200 Mimg (390,625 steps), Adam lr 1e-3 β (0.9, 0.999) ε 1e-8, lr ramp-up 10 Mimg, EMA half-life
500 kimg with ramp-up ratio 0.05, dropout 0.13, EDM preconditioning and loss (P_mean −1.2,
P_std 1.2, σ_d 0.5), no x-flips.
Deviation: config F's non-leaky augmentation (p = 0.12, 9 augmentation labels fed to the network's
map_augment) needs ``batch['augment_labels']`` from EDM's augmentation pipeline, which jaxgen.data does
not provide yet; until it does, this file trains the same recipe without augmentation (``augment_dim``
0), i.e. Table 2's row E, and the FID is expected slightly above the row-F number.
Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.tasks import diffusion_configs as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ncsnpp_cifar10", batch=512, mimg=200, lr=1e-3, precond="edm", loss="edm",
                     sampler="heun", num_steps=18, overrides=dict(dropout=0.13), class_conditional=False)
  if arg == "smoke":
    p.smoke_variant(c)
  return c
