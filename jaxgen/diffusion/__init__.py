"""jaxgen.diffusion: EDM's unified diffusion framework as pure JAX functions (no Flax).

Schedules (σ(t), s(t), discretizations, p_train, λ(σ)), preconditioning (raw network → denoiser),
conversions between denoiser / score / ε / v / x₀ / velocity, training losses, ODE integrators,
PF-ODE log-likelihood, and (samplers.py, sde.py, guidance.py) the samplers.
A denoiser is ``denoise_fn(x, sigma[B]) -> D(x; σ)`` in EDM's σ-space (Karras et al. 2022).
"""

from jaxgen.diffusion.schedules import (DDPMSchedule, EDMSchedule, FlowMatchingSchedule, IDDPMSchedule,
                                        VESchedule, VPSchedule, edm_sigmas, iddpm_sigmas, iddpm_u,
                                        karras_sigmas, ve_sigmas, vp_sigmas)
from jaxgen.diffusion.precond import Precond, precondition, training_target
