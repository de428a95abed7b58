"""Shared experiment builders: functions that fill a ``jaxgen.configs.base_config()`` for a family.

Experiment files (``experiments/<family>/<name>.py``) state their recipe through these helpers so the
numbers every experiment of a family shares are written once. They are not tasks (``jaxgen.tasks`` holds
only modules that define ``Task``) and they only build configs: nothing here trains or evaluates.

  jaxgen.recipes.diffusion        paper_config / smoke_variant (EDM, score_sde, DDPM, NCSN), toy2d_config
  jaxgen.recipes.gan              task_config (every ``task.*`` key of the GAN task), the 2-D toy builders
  jaxgen.recipes.classification   imagenet_config / smoke_config (the efficient-CNN experiments)
"""
