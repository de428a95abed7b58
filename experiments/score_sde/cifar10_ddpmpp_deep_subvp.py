"""score_sde (Song et al. 2021): DDPM++ cont. deep, unconditional CIFAR-10 likelihood — 2.99 bits/dim (sub-VP).

    python -m jaxgen.main --config experiments/score_sde/cifar10_ddpmpp_deep_subvp.py --workdir runs/sde_ddpmpp_deep

bits/dim on the test split by score_sde's protocol (uniform dequantization, the PF-ODE from t = 1e-5 to 1 with
its N(0, I) prior, one Rademacher probe per image, 5 passes; docs/convert.md "## score_sde"):

    python -m jaxgen.eval.reproduce score_sde_nll --workdir runs/sde_ddpmpp_deep --data_dir ~/tensorflow_datasets
    # or jaxgen.eval.bpd.score_sde_nll(denoise_fn, dict(name='subvpsde', beta_min=0.1, beta_max=20.0), batches, key)

The released score_sde checkpoint converts with ``python -m jaxgen.convert.score_sde checkpoint_N.pth OUT
--config subvp/cifar10_ddpmpp_deep_continuous`` (its EMA weights).

Recipe (score_sde configs/subvp/cifar10_ddpmpp_deep_continuous.py): network
``ddpmpp_deep_cifar10_scoresde`` (106,632,579 params: 8 blocks, channel_mult 1,2,2,2, positional
embedding, skip rescale), β ∈ [0.1, 20], batch 128, Adam lr 2e-4, 5,000 warm-up steps, gradient
clipping at 1, EMA 0.9999, dropout 0.1, x-flips, 950k steps, sub-VP SDE (task.precond = task.loss =
'subvp': ``jaxgen.diffusion.SubVPSchedule``, score_sde's unweighted continuous loss averaged over pixels (reduce_mean), t ~ U(1e-5, 1)).
Expected: 2.99 bits/dim on the test split, FID 2.41 (PC sampler) / 2.92 (black-box ODE) — the score_sde
README's checkpoint table for subvp/cifar10_ddpmpp_deep_continuous (docs/reference.md §2); the VP SDE with the
same recipe gives 3.13 bits/dim there (vp/cifar10_ddpmpp_deep_continuous).
Hardware: TPU v3-8 / 8 GPUs. Variants: smoke (digits 8×8, a one-level network, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="cifar10", model="ddpmpp_deep_cifar10_scoresde", batch=128, mimg=950_000 * 128 / 1e6,
                     lr=2e-4, precond="subvp", loss="subvp", sampler="ode", num_steps=18, overrides=dict(dropout=0.1),
                     warmup_mimg=5000 * 128 / 1e6, grad_clip=1.0, ema_decay=0.9999, random_flip=True,
                     sampler_options=dict(solver="heun"))
  c.data.eval_split = "test"
  c.task.loss_reduce = "mean"   # score_sde's training.reduce_mean = True (matters with grad clipping at 1)
  if arg == "smoke":
    p.smoke_variant(c)
  return c
