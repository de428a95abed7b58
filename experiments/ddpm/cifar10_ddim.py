"""DDIM (Song, Meng & Ermon 2021) sampling table on CIFAR-10: η = 0 with 10/20/50/100/1000 steps.

    python -m jaxgen.main --config experiments/ddpm/cifar10_ddim.py:50 --workdir runs/ddpm_cifar10 --mode sample

The DDPM model of ``experiments/ddpm/cifar10_ddpm.py`` (same training recipe: the discrete linear-β
schedule with T = 1000, task.precond 'ddpm', so a DDPM checkpoint can be sampled directly) with the DDIM
sampler, η = 0, on DDIM's own sub-sequence τ of the T = 1000 steps, built as the official code
(ermongroup/ddim ``runners/diffusion.py``; ``DDPMSchedule.ddim_steps``): task.sigma_grid
'ddim_quadratic', τ = ⌊linspace(0, √800, S)²⌋ (DDIM Appendix D.2: quadratic τ for CIFAR-10, linear for the
other data sets), or with the ``_uniform`` variants 'ddim_uniform', τ = range(0, 1000, 1000 // S) (the
official code's default skip_type; at S = 10 it starts at σ_900 ≈ 60.82). The last step goes to σ = 0
(ᾱ = 1), returning x̂₀.
Variants: 10 | 20 | 50 | 100 (default) | 1000 steps, each also as ``<S>_uniform``, and smoke.
Expected FID (DDIM Table 1, CIFAR-10, η = 0): 13.36 / 6.84 / 4.67 / 4.16 / 4.04 at S = 10 / 20 / 50 / 100 /
1000 steps (docs/reference.md §2). Hardware: one GPU for sampling (training as the DDPM file).
"""

from jaxgen.recipes import diffusion as p


EXPECTED_FID = {10: 13.36, 20: 6.84, 50: 4.67, 100: 4.16, 1000: 4.04}
STEPS = ("10", "20", "50", "100", "1000")


def get_config(arg=None):
  p.check_variant(arg, ("smoke",) + STEPS + tuple(f"{s}_uniform" for s in STEPS))
  name = arg if arg not in (None, "", "smoke") else "100"
  steps, _, skip = name.partition("_")
  c = p.paper_config(data="cifar10", model="ddpm_cifar10", batch=128, mimg=800_000 * 128 / 1e6, lr=2e-4,
                     precond="ddpm", loss="eps", sampler="ddim", num_steps=int(steps),
                     overrides=dict(dropout=0.1), warmup_mimg=5000 * 128 / 1e6, grad_clip=1.0,
                     ema_decay=0.9999, random_flip=True, sampler_options=dict(eta=0.0), ddpm_schedule="linear",
                     sigma_grid=f"ddim_{skip or 'quadratic'}")
  if arg == "smoke":
    p.smoke_variant(c, model_kind="ddpm")
  return c
