"""VE / SMLD (Song et al. 2021, in EDM Table 1's frame): VE preconditioning (c_noise = ln(σ/2)), the VE
loss (ln σ ~ U(ln 0.02, ln 100), λ = 1/σ²) and EDM's general Heun sampler in VE time (σ = √t), 64
steps.

    python -m jaxgen.main --config experiments/toy2d/ve.py:8gaussians --workdir runs/toy2d_ve_8gaussians
    python experiments/toy2d/_plots.py --config experiments/toy2d/ve.py:8gaussians --workdir runs/toy2d_ve_8gaussians

Variants (comma-separated): the toy, 8gaussians (default) | 25gaussians | swiss_roll | checkerboard |
two_moons | rings, and smoke. Network: toy_mlp (128 wide, 3 residual blocks); batch 512, 20k Adam
steps (lr 1e-3, cosine), EMA 0.999 (see ``jaxgen.recipes.diffusion.toy2d_config``).
Hardware: one CPU core (a few minutes) or any accelerator.
Metrics (metrics.jsonl at the end; config.evals, jaxgen.eval.evaluators): sw1 / mmd / w1 (sliced W1,
Gaussian-kernel MMD² of 2000 samples and exact W1 by LP on 1000 of them, against exact draws) next to
sw1_floor / mmd_floor / w1_floor (two exact draws: the floor), w1_x / w1_y, modes_hit / hq_fraction for
the mixtures, log_likelihood (PF-ODE, exact trace, 256 exact points) next to log_prob_exact (their true
mean log-density), eval_loss. Expected:
sw1 and mmd at the exact-vs-exact floor and log_likelihood a few hundredths of a nat below
log_prob_exact (the model density is a slightly smoothed version of the data's). Our numbers, not a
paper's: 8gaussians, seed 0, jax 0.10.2 on CPU: sw1 0.070, mmd 4.2e−4, log_likelihood 2.889 (4.6
CPU-min), against sw1_floor 0.056, mmd_floor −2.9e−5, log_prob_exact 2.915 nats: the likelihood is
as good as EDM's, the samples slightly worse (cause not investigated).
The plot script draws samples, PF-ODE trajectories and, for the Gaussian mixtures, the samples of
the mixture's ideal denoiser with the same sampler.
"""

from jaxgen.recipes.diffusion import toy2d_config


def get_config(arg=None):
  return toy2d_config(arg, precond="ve", loss="ve", sampler="ode", num_steps=64,
                      sampler_options={"solver": "heun"})
