"""EDM (Karras et al. 2022) Table 2, config A ("baseline"): unconditional CIFAR-10, the original VE setup.

    python -m jaxgen.main --config experiments/edm/cifar10_baseline_ve.py --workdir runs/edm_cifar10_baseline_ve

Config A is Song et al.'s (2021) continuous VE model as published: network ``ncsnpp_cifar10_scoresde`` (channel_mult
1,2,2,2, 4 blocks, dropout 0.1), VE preconditioning and loss of EDM Table 1 (task.precond = task.loss =
've'), batch 128, Adam lr 2e-4 with 5,000 warm-up steps, gradient clipping at norm 1, EMA 0.999,
x-flips, 200 Mimg; sampled with EDM's Algorithm 1 in the schedule's own time (Heun, 18 steps, NFE 35).
Hardware: 4–8 GPUs (score_sde: TPU v3-8). Expected: FID 3.77 [paper, Table 2 row A, unconditional CIFAR-10 "VE" column].
Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ncsnpp_cifar10_scoresde", batch=128, mimg=200, lr=2e-4, precond="ve", loss="ve",
                     sampler="ode", num_steps=18, overrides=dict(dropout=0.1), warmup_mimg=5000 * 128 / 1e6,
                     grad_clip=1.0, ema_decay=0.999, random_flip=True, sampler_options=dict(solver="heun"))
  if arg == "smoke":
    p.smoke_variant(c)
  return c
