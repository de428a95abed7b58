"""score_sde (Song et al. 2021): DDPM++ cont. deep, unconditional CIFAR-10 likelihood — 2.99 bits/dim (sub-VP).

    python -m jaxgen.main --config experiments/score_sde/cifar10_ddpmpp_deep_subvp.py --workdir runs/sde_ddpmpp_deep

bits/dim on the test split (after training; uniform dequantization, PF-ODE, one Hutchinson probe):

    from jaxgen.eval.bpd import bits_per_dim_on_split   # with the task's denoiser and jaxgen.data.eval_dataset

Recipe (score_sde configs/subvp/cifar10_ddpmpp_deep_continuous.py): network
``ddpmpp_deep_cifar10_scoresde`` (106,632,579 params: 8 blocks, channel_mult 1,2,2,2, positional
embedding, skip rescale), β ∈ [0.1, 20], batch 128, Adam lr 2e-4, 5,000 warm-up steps, gradient
clipping at 1, EMA 0.9999, dropout 0.1, x-flips, 950k steps. Expected: 2.99 bits/dim (REFERENCE.md §2).
Deviation: jaxgen's diffusion task has no sub-VP preconditioner yet (task.precond: edm|vp|ve|iddpm|fm), so
this trains the VP SDE with the same network and recipe (score_sde reports 3.13 bits/dim [paper, Table 3;
recheck] for VP deep); switch task.precond/loss to 'subvp' once the task offers it.
Hardware: TPU v3-8 / 8 GPUs. Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.tasks import diffusion_configs as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ddpmpp_deep_cifar10_scoresde", batch=128, mimg=950_000 * 128 / 1e6,
                     lr=2e-4, precond="vp", loss="vp", sampler="ode", num_steps=18, overrides=dict(dropout=0.1),
                     warmup_mimg=5000 * 128 / 1e6, grad_clip=1.0, ema_decay=0.9999, random_flip=True,
                     sampler_options=dict(solver="heun"))
  c.data.eval_split = "test"
  if arg == "smoke":
    p.smoke_variant(c)
  return c
