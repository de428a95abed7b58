"""jaxgen: diffusion, GANs, VQGAN and efficient vision networks in one JAX codebase.

Subpackages are imported on demand, and each layer needs only its own dependencies (docs/design.md §1):

  jaxgen.diffusion, jaxgen.gan, jaxgen.ot   the pure core: jax and numpy (``pip install jaxgen``)
  jaxgen.models                             + flax (``pip install 'jaxgen[models]'``)
  jaxgen.tasks, jaxgen.eval, jaxgen.train   + the trainer's stack (``pip install 'jaxgen[train]'``)

``tests/test_packaging.py`` checks that importing the pure core loads no Flax, optax or TensorFlow.
"""

__version__ = "0.1.0"
