"""NCSN (Song & Ermon 2019): the conditional RefineNet trained by denoising score matching over a σ
ladder, sampled by annealed Langevin dynamics, CIFAR-10.

    python -m jaxgen.main --config experiments/ncsn/cifar10_ncsn.py --workdir runs/ncsn_cifar10

Recipe (the official code, ermongroup/ncsn configs/anneal.yml with the CIFAR-10 lines): network
``ncsn_cifar10`` (CondRefineNetDilated, ngf 128, 30,117,635 params, float32 as the official run), L = 10
noise levels σ 1 → 0.01 on [0, 1] data = 2 → 0.02 on jaxgen's [−1, 1] (task.ncsn_sigma_max/min/levels);
task.precond 'ncsn' (D = x + σ²·s, the network gets the level index) with task.loss 'dsm'
(½σ²‖s + n/σ‖², anneal_power 2, levels uniform: the official objective, whose value does not change with
the data's scale); batch 128, Adam lr 1e-3 (β 0.9, 0.999, no warm-up, no weight decay), 200k iterations,
random horizontal flips, no EMA (NCSN v1 has none).
Sampling: annealed Langevin, T = 100 steps per level, no final denoising step. The official sampler
runs x ← x + a·s + √(2a)·z with a = step_lr·σ_i²/σ_L², step_lr = 2e-5 on [0, 1] data; jaxgen's sampler
writes x ← x + (α/2)·s + √α·z, so α = 2a, and on [−1, 1] (x = 2u − 1) α is 4× larger: step_lr =
8·2e-5 = 1.6e-4 here. (The paper's Algorithm 1 states ε = 2e-5 for α itself; the numbers come from the
code.) Chains start from uniform images as the official sampler's (task.langevin_init 'uniform': U(0, 1)
there, U(−1, 1) here); training images are uniformly dequantized, (k + U[0, 1))/256 as the official
data loader's (task.dequantize).
Expected: Inception score 8.87, FID 25.32 [paper, Table 1] (evals.fid: FID of 50k samples).
Hardware: one GPU (the official run: one GPU). Variants: smoke (digits 8×8, ngf 8, 2 Langevin steps
per level).
"""

from jaxgen.recipes import diffusion as p

LEVELS = 10


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ncsn_cifar10", batch=128, mimg=200_000 * 128 / 1e6, lr=1e-3,
                     precond="ncsn", loss="dsm", sampler="annealed_langevin", num_steps=LEVELS,
                     overrides=dict(ngf=128, num_levels=LEVELS, channels=3), dtype="float32",
                     warmup_mimg=0.0, ema_decay=0.0, ema_halflife_kimg=0.0, ema_rampup_ratio=0.0,
                     random_flip=True,
                     sampler_options=dict(n_steps_each=100, step_lr=1.6e-4, denoise=False),
                     ncsn_sigma_max=2.0, ncsn_sigma_min=0.02, ncsn_levels=LEVELS)
  c.task.langevin_init = "uniform"
  c.task.dequantize = True
  if arg == "smoke":
    p.smoke_variant(c)
    c.model.overrides = dict(ngf=8, num_levels=LEVELS, channels=1, img_resolution=8)
  return c
