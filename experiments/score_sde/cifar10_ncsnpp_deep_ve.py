"""score_sde (Song et al. 2021): NCSN++ cont. deep, VE SDE, unconditional CIFAR-10 — FID 2.20, IS 9.89.

    python -m jaxgen.main --config experiments/score_sde/cifar10_ncsnpp_deep_ve.py --workdir runs/sde_ncsnpp_deep_ve

Recipe (score_sde configs/ve/cifar10_ncsnpp_deep_continuous.py): network ``ncsnpp_deep_cifar10_scoresde``
(107,586,947 params: 8 blocks, channel_mult 1,2,2,2, Fourier embedding scale 16, progressive_input
'residual' = encoder_type 'residual', FIR [1,3,3,1], skip rescale), VE SDE σ 0.01→50 on [0, 1] data =
σ 0.02→100 on jaxgen's [−1, 1] (EDM Table 1 VE; task.precond = task.loss = 've'), batch 128, Adam
lr 2e-4, 5,000 warm-up steps, gradient clipping at 1, EMA 0.999, dropout 0.1, x-flips, 950k steps.
Sampling: predictor–corrector, reverse-diffusion predictor + Langevin corrector, snr 0.16, 1000 steps
(NFE 2000). Expected: FID 2.20, IS 9.89 (docs/reference.md §2; 50k samples).
Hardware: TPU v3-8 / 8 GPUs (≈ a week). Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ncsnpp_deep_cifar10_scoresde", batch=128, mimg=950_000 * 128 / 1e6,
                     lr=2e-4, precond="ve", loss="ve", sampler="pc", num_steps=1000, overrides=dict(dropout=0.1),
                     warmup_mimg=5000 * 128 / 1e6, grad_clip=1.0, ema_decay=0.999, random_flip=True,
                     sampler_options=dict(predictor="reverse_diffusion", corrector="langevin", snr=0.16))
  if arg == "smoke":
    p.smoke_variant(c)
  return c
