"""NCSN (Song & Ermon 2019): denoising score matching over a σ ladder + annealed Langevin, CIFAR-10.

    python -m jaxgen.main --config experiments/ncsn/cifar10_ncsn.py --workdir runs/ncsn_cifar10

Recipe (paper §5): L = 10 noise levels, geometric σ 1 → 0.01 on [0, 1] data = 2 → 0.02 on jaxgen's
[−1, 1] (task.ncsn_sigma_max/min/levels), loss ½σ²‖s + n/σ‖² (task.loss 'dsm', s = F/σ through the VE
preconditioner), batch 128, Adam lr 1e-3, 200k steps; annealed Langevin with T = 100 steps per level and
ε = 2e-5 on [0, 1] data, i.e. step_lr = 8e-5 here (α_i = ε σ_i²/σ_L² scales with the data's square).
Expected: IS 8.87, FID 25.32 [paper] with NCSN's RefineNet; jaxgen has no RefineNet, so the network is
``ddpmpp_cifar10`` (a stronger network: the number is a reference, not a tight target).
Hardware: one GPU. Variants: smoke (digits 8×8, a one-level network, 2 Langevin steps per level).
"""

from jaxgen.tasks import diffusion_configs as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ddpmpp_cifar10", batch=128, mimg=200_000 * 128 / 1e6, lr=1e-3,
                     precond="ve", loss="dsm", sampler="annealed_langevin", num_steps=10,
                     overrides=dict(dropout=0.0), warmup_mimg=0.0, ema_decay=0.999,
                     sampler_options=dict(n_steps_each=100, step_lr=8e-5),
                     ncsn_sigma_max=2.0, ncsn_sigma_min=0.02, ncsn_levels=10)
  if arg == "smoke":
    p.smoke_variant(c)
  return c
