"""EDM (Karras et al. 2022) Table 2, config F: class-conditional ImageNet 64², ADM retrained with EDM.

    python -m jaxgen.main --config experiments/edm/imagenet64_adm.py --workdir runs/edm_imagenet64_adm

Hardware: a multi-host pod (EDM: 32 A100s for ≈13 days); the network is ``adm_imagenet64``
(295,899,267 params). Expected: FID 1.36 [docs/reference.md §1] (50k samples, min of 3 seed sets,
stochastic EDM sampler: 256 steps, S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003, NFE 511).
Recipe (EDM README): --arch=adm --batch=4096 --duration=2500 (Mimg) --lr=1e-4 --ema=50 (Mimg half-life)
--dropout=0.10 --augment=0 --fp16=1 --ls=100; here bf16 compute (no loss scaling needed), lr ramp-up
10 Mimg, EMA ramp-up 0.05, EDM precond/loss; TFDS imagenet2012 resized to 64².
Variants: smoke (digits 8×8, a one-level ADM, 2 steps).
"""

from jaxgen.recipes import diffusion as p


def get_config(arg=None):
  p.check_variant(arg)
  c = p.paper_config(data="imagenet2012", model="adm_imagenet64", batch=4096, mimg=2500, lr=1e-4, precond="edm",
                     loss="edm", sampler="edm", num_steps=256, overrides=dict(dropout=0.10), resolution=64,
                     ema_halflife_kimg=50_000, class_conditional=True, num_classes=1000,
                     sampler_options=dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003))
  if arg == "smoke":
    p.smoke_variant(c, label_dim=1000, model_kind="adm")
    c.task.num_classes = 10
    c.model.overrides.label_dim = 10
  return c
