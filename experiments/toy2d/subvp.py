"""sub-VP (Song et al. 2021, eq. 30, in EDM's frame: s(t) = e^{−B/2}, σ(t) = 2 sinh(B/2), B = ∫₀ᵗβ):
score_sde's sub-VP parameterization (c_in = s, c_out = −σ, c_noise = 999·t), its continuous loss
(t ~ U(1e-5, 1), λ = 1/σ²) and EDM's general Heun sampler in sub-VP time, 32 steps from t = 1 to 1e-3.

    python -m jaxgen.main --config experiments/toy2d/subvp.py:8gaussians --workdir runs/toy2d_subvp_8gaussians
    python experiments/toy2d/_plots.py --config experiments/toy2d/subvp.py:8gaussians --workdir runs/toy2d_subvp_8gaussians

Variants (comma-separated): the toy, 8gaussians (default) | 25gaussians | swiss_roll | checkerboard |
two_moons | rings, and smoke. Network, batch, steps, EMA and metrics as experiments/toy2d/vp.py
(``jaxgen.recipes.diffusion.toy2d_config``). Hardware: one CPU core (a few minutes) or any accelerator.
Expected: sw1 and mmd at the exact-vs-exact floor (sw1_floor, mmd_floor) and log_likelihood a few
hundredths of a nat below log_prob_exact, as for the VP run. Measured numbers: README (toy2d table).
"""

from jaxgen.recipes.diffusion import toy2d_config


def get_config(arg=None):
  return toy2d_config(arg, precond="subvp", loss="subvp", sampler="ode", num_steps=32,
                      sampler_options={"solver": "heun"})
