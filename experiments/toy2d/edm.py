"""EDM (Karras et al. 2022): EDM preconditioning with σ_data = the toy's RMS coordinate, the EDM loss
and Heun's method (Algorithm 1) on the ρ = 7 grid, 18 steps (NFE 35).

    python -m jaxgen.main --config experiments/toy2d/edm.py:8gaussians --workdir runs/toy2d_edm_8gaussians
    python experiments/toy2d/_plots.py --config experiments/toy2d/edm.py:8gaussians --workdir runs/toy2d_edm_8gaussians

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
paper's: 8gaussians, seed 0, jax 0.10.2 on CPU: sw1 0.050, mmd −1.2e−5, log_likelihood 2.877 (4.8
CPU-min), against sw1_floor 0.056, mmd_floor −2.9e−5, log_prob_exact 2.915 nats.
The plot script draws samples, PF-ODE trajectories and, for the Gaussian mixtures, the samples of
the mixture's ideal denoiser with the same sampler.
"""

from jaxgen.recipes.diffusion import toy2d_config


def get_config(arg=None):
  return toy2d_config(arg, precond="edm", loss="edm", sampler="heun", num_steps=18)
