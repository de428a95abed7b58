"""jaxgen.diffusion: EDM's unified diffusion framework as pure JAX functions (no Flax).

Schedules (σ(t), s(t), discretizations, p_train, λ(σ)), preconditioning (raw network → denoiser),
conversions between denoiser / score / ε / v / x₀ / velocity, training losses, ODE integrators,
PF-ODE log-likelihood, and (samplers.py, sde.py, guidance.py) the samplers.
A denoiser is ``denoise_fn(x, sigma[B]) -> D(x; σ)`` in EDM's σ-space (Karras et al. 2022).

Contracts a caller can rely on:
- every sampler is ``sample_*(denoise_fn, x, sigmas, key=None, *, indices=None, return_nfe=False,
  return_trajectory=False, **options)`` with ``x = latents·sigmas[0]`` (samplers.py);
- ``LOSSES[name](net, x, key, *, schedule=None, sigmas=None, labels=None, augment_labels=None,
  preconditioned=False, reduce=None)`` for name in edm, vp, subvp, ve, eps, v, x0, fm, dsm (losses.py);
- every schedule gives σ(t), s(t), derivatives, σ⁻¹, ``time_steps``/``sigma_steps``, p_train, λ(σ) and
  ``precond``; the score SDEs (sde.py) are derived from them.
"""

from jaxgen.diffusion.schedules import (DDPMSchedule, EDMSchedule, FlowMatchingSchedule, IDDPMSchedule,
                                        SubVPSchedule, VESchedule, VPSchedule, iddpm_sigmas, iddpm_u,
                                        karras_sigmas, ve_sigmas, vp_sigmas)
from jaxgen.diffusion.schedules import NCSNSchedule
from jaxgen.diffusion.precond import Precond, precondition, training_target
from jaxgen.diffusion.conversions import (as_denoiser, as_prediction, convert, denoiser_from_eps,
                                          denoiser_from_score, denoiser_from_v, denoiser_from_velocity,
                                          eps_from_denoiser, pf_ode_drift, v_from_denoiser,
                                          velocity_from_denoiser)
# (the array-level score conversion is jaxgen.diffusion.conversions.score_from_denoiser; the public
# name jaxgen.diffusion.score_from_denoiser is the samplers' denoiser -> score-function wrapper)
from jaxgen.diffusion.losses import (LOSSES, ddpm_loss, denoising_loss, dsm_loss, edm_loss, eps_loss,
                                     flow_matching_loss, get_loss, ncsn_sigmas, sliced_score_matching_loss,
                                     subvp_loss, v_loss, ve_loss, vp_loss, x0_loss)
from jaxgen.diffusion.ode import ODESolution, odeint_fixed, odeint_rk45
from jaxgen.diffusion.likelihood import bits_per_dim, dequantize, log_likelihood
# Samplers, SDEs and guidance (samplers engineer).
from jaxgen.diffusion.samplers import (ancestral_step, per_sample_noise, sample_ancestral,
                                       sample_annealed_langevin, sample_ddim, sample_dpmpp_2m,
                                       sample_edm, sample_euler, sample_euler_maruyama, sample_heun,
                                       sample_ode, sample_pc, sample_pf_ode, score_from_denoiser)
# k-diffusion's other samplers, DPM-Solver(-fast/-adaptive) and the few-step multistep solvers.
from jaxgen.diffusion.samplers_k import (lms_coefficients, sample_dpm_2, sample_dpm_2_ancestral,
                                         sample_dpmpp_2s_ancestral, sample_euler_ancestral, sample_lms)
from jaxgen.diffusion.samplers_adaptive import fast_plan, sample_dpm_adaptive, sample_dpm_fast
from jaxgen.diffusion.brownian import BrownianPath
from jaxgen.diffusion.samplers_sde import sample_dpmpp_2m_sde, sample_dpmpp_3m_sde, sample_dpmpp_sde
from jaxgen.diffusion.samplers_ddpm import VARIANCES, ddpm_step_coefficients, sample_ddpm
from jaxgen.diffusion.samplers_multistep import (deis_coefficients, sample_deis, sample_ipndm, sample_unipc,
                                                 unipc_coefficients)
from jaxgen.diffusion.sde import (EDMSDE, SDE, ReverseSDE, SubVPSDE, VESDE, VPSDE, langevin_correct,
                                  sample_reverse_sde)
from jaxgen.diffusion.guidance import cfg_denoiser
from jaxgen.diffusion.augment import AugmentPipe
