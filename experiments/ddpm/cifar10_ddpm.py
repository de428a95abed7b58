"""DDPM (Ho et al. 2020): unconditional CIFAR-10 with L_simple — FID 3.17, IS 9.46.

    python -m jaxgen.main --config experiments/ddpm/cifar10_ddpm.py --workdir runs/ddpm_cifar10

Recipe (diffusion_tf scripts/run_cifar.py): network ``ddpm_cifar10`` (35,746,307 params: ch 128,
mult 1,2,2,2, 2 res blocks, attention at 16², dropout 0.1), ε-prediction with L_simple
(task.loss 'eps'), the discrete schedule itself: linear β 1e-4 → 0.02 over T = 1000 steps, the network
called with the integer step j (task.precond 'ddpm', task.ddpm_schedule 'linear':
``jaxgen.diffusion.DDPMSchedule``); batch 128, Adam lr 2e-4, 5,000 warm-up steps, gradient clipping
at 1, EMA 0.9999, x-flips, 800k steps. Sampling: DDPM's ancestral sampler (Algorithm 2) over the 1000
discrete steps (σ_999, …, σ_0, 0) with σ_t² = β_t (task.sampler 'ddpm', sampler_options variance='beta':
``jaxgen.diffusion.samplers_ddpm.sample_ddpm``), the official TF code's CIFAR-10 choice
(``model_var_type='fixedlarge'``; DDPM §3.2: β_t and β̃_t gave similar results; variance='beta_tilde' is
the other), with x̂₀ clipped to [−1, 1] as the official ``clip_denoised=True``.
Expected: FID 3.17, IS 9.46 (docs/reference.md §2; 50k samples). Hardware: TPU v3-8 (≈10.6 h per 100k steps
there) / 1–4 GPUs. Variants: smoke (digits 8×8, a one-level U-Net, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ddpm_cifar10", batch=128, mimg=800_000 * 128 / 1e6, lr=2e-4,
                     precond="ddpm", loss="eps", sampler="ddpm", num_steps=1000,
                     sampler_options=dict(variance="beta", clip_denoised=1.0),
                     overrides=dict(dropout=0.1),
                     warmup_mimg=5000 * 128 / 1e6, grad_clip=1.0, ema_decay=0.9999, random_flip=True,
                     ddpm_schedule="linear")
  if arg == "smoke":
    p.smoke_variant(c, model_kind="ddpm")
  return c
