"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023): x_t = (1−t)x₀ + tε, velocity
loss ‖v̂ − (ε − x₀)‖² with t ~ U(t_eps, 1), t_eps = 1e-5 (``task.fm_p_train='logit_normal'``: Esser et
al.'s logit-normal t instead), and Heun in t from 0.999 to 0, 24 steps (the general EDM sampler with
s(t) = 1 − t, σ(t) = t/(1 − t)).

    python -m jaxgen.main --config experiments/toy2d/fm.py:8gaussians --workdir runs/toy2d_fm_8gaussians
    python experiments/toy2d/_plots.py --config experiments/toy2d/fm.py:8gaussians --workdir runs/toy2d_fm_8gaussians

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
paper's: 8gaussians, seed 0, jax 0.10.2 on CPU: sw1 0.051, mmd 2.0e−5, log_likelihood 2.894 (4.2
CPU-min), against sw1_floor 0.056, mmd_floor −2.9e−5, log_prob_exact 2.915 nats.
The plot script draws samples, PF-ODE trajectories and, for the Gaussian mixtures, the samples of
the mixture's ideal denoiser with the same sampler.
"""

from jaxgen.recipes.diffusion import toy2d_config


def get_config(arg=None):
  return toy2d_config(arg, precond="fm", loss="fm", sampler="ode", num_steps=24,
                      sampler_options={"solver": "heun"})
