"""jaxgen: diffusion, GANs, VQGAN and efficient vision networks in one JAX codebase.

Subpackages are imported on demand: ``import jaxgen.diffusion`` needs only jax and numpy,
``import jaxgen.models`` only jax, flax and numpy.
"""

__version__ = "0.1.0"
