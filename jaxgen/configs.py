"""The config skeleton every experiment starts from (``ml_collections.ConfigDict``).

An experiment file ``experiments/<family>/<name>.py`` defines ``get_config(arg=None)``, starting from
``base_config()`` and filling in its blocks; ``arg`` is the variant after the colon
(``--config experiments/x.py:smoke``). The launcher locks the config, so a mistyped
``--config.key=value`` is an error. Keys here mean the same thing in every family; ``task`` holds the
family's own keys (read by the task's typed config) and ``evals`` the evaluations
(``jaxgen.eval.evaluators``).

These are the only keys an experiment file may set outside ``task``, ``evals`` and
``model.overrides`` (the model's constructor keywords): a misspelt ``c.batch_sise = 4`` is refused by
``jaxgen.train.validate_config`` with a did-you-mean, as on the command line. Exceptions: the optional
keys of ``jaxgen.train._OPTIONAL_KEYS`` (read with a default, e.g. ``optimizer.rms_initial_scale``)
and the ``data`` keys of a data module named by its path (``data.name = 'jaxgen.data.detection'``),
which that module reads.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 128                 # global batch (all devices, all processes)
  c.num_train_steps = 1000           # completed updates at the end of training
  c.log_every_steps = 100            # metrics logged at multiples of this and at the end
  c.checkpoint_every_steps = 1000    # checkpoints at multiples of this and at the end
  c.eval_every_steps = 0             # 0: evaluate only at the end of training
  c.sample_every_steps = 0           # sample grids (generators); 0: only at the end
  c.keep_checkpoints = 3             # the last N checkpoints are kept ...
  c.keep_checkpoint_every_steps = 0  # ... plus every multiple of this (0: none)
  c.eval_batch_size = 0              # global batch of evaluation (0: batch_size)
  c.num_grid_samples = 64            # samples in each workdir/samples/step_<N>.png (generators; 0: none)
  c.distributed = False              # call jax.distributed.initialize() (also when JAX_COORDINATOR_ADDRESS is set)

  # Device mesh and sharded state (jaxgen.sharding, docs/pods.md "Sharded state"): axis sizes, -1 = the
  # devices left over. The batch is split over data x fsdp; the state's large tensors over fsdp (FSDP).
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.model = 1
  c.sharding = ml_collections.ConfigDict()
  c.sharding.rules = ()              # ((regex, spec), ...): first re.search of a leaf path wins; else 'fsdp'
  c.sharding.fsdp_min_size = 2**16   # the 'fsdp' rule splits tensors of at least this many elements

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"             # see jaxgen.data
  c.data.split = "train"
  c.data.eval_split = ""             # '' : no evaluation data
  c.data.resolution = 0              # 0 : native resolution
  c.data.random_flip = False
  c.data.data_dir = ""               # TFDS data_dir / image folder or zip ('' : TFDS default)
  c.data.toy = "8gaussians"          # toy2d: 8gaussians | 25gaussians | swiss_roll | checkerboard | two_moons | rings
  c.data.eval_size = 0               # eval examples: 0 = the whole eval split (toy2d: 10000 fixed samples); n: the first n
  c.data.crop = ""                   # '' (data set default) | none | center | random | inception (random-resized crop)
  c.data.crop_size = 0               # side in pixels of the square center/random crop (0: from crop_fraction)
  c.data.crop_fraction = 0.0         # crop side / min(H, W) (0: data set default, e.g. 0.875 for ImageNet eval)
  c.data.crop_padding = 0            # 'random' crop: zero-pad every side by this many pixels first (CIFAR: 4)
  c.data.resize_method = ""          # PIL filter: bicubic | bilinear | lanczos | box | nearest ("": data set default)
  c.data.augment = ""                # '' | randaugment | autoaugment (jaxgen.data.randaugment), training only
  c.data.augment_layers = 2          # RandAugment: number of ops per image (N)
  c.data.augment_magnitude = 9       # RandAugment: magnitude (M, 0..30)
  c.data.num_threads = 4             # grain prefetch threads per process
  c.data.prefetch = 8                # batches buffered ahead per process
  c.data.num_workers = 0             # grain worker processes (0: threads in the main process only)

  c.model = ml_collections.ConfigDict()
  c.model.name = ""                  # a name in jaxgen.models.names()
  c.model.dtype = "float32"          # compute dtype (params stay float32)
  c.model.overrides = ml_collections.ConfigDict()   # keyword overrides for jaxgen.models.create
  c.model.init_from = ""             # converted weights (.npz of jaxgen.convert.edm / .ddpm) to start from

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"          # adam | adamw | sgd | rmsprop | lamb
  c.optimizer.learning_rate = 1e-3
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.momentum = 0.0
  c.optimizer.nesterov = False
  c.optimizer.rms_decay = 0.9
  c.optimizer.centered = False
  c.optimizer.weight_decay = 0.0
  c.optimizer.schedule = "constant"  # constant | cosine | linear | exponential
  c.optimizer.warmup_steps = 0
  c.optimizer.end_lr_factor = 0.0
  c.optimizer.decay_steps = 1
  c.optimizer.decay_rate = 1.0
  c.optimizer.staircase = True
  c.optimizer.clip_grad_norm = 0.0   # 0: no clipping
  c.optimizer.grad_accum_steps = 1
  c.optimizer.ema_halflife_kimg = 0.0  # EDM-style half-life in thousands of images (0: use ema_decay)
  c.optimizer.ema_rampup_ratio = 0.0
  c.optimizer.ema_decay = 0.0        # constant EMA decay when no half-life is given (0: no EMA)

  c.task = ml_collections.ConfigDict()
  c.task.name = ""                   # a module of jaxgen.tasks

  # Evaluations run at eval_every_steps and at the end: name -> dict(type=<evaluator>, **options)
  # (jaxgen.eval.evaluators), e.g. c.evals.fd = dict(type="digits_fd", num_samples=0).
  c.evals = ml_collections.ConfigDict()
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks run-length keys for the ``:smoke`` variant (the experiment then shrinks its model)."""
  c.num_train_steps = 2
  c.log_every_steps = 1
  c.checkpoint_every_steps = 2
  c.eval_every_steps = 0
  c.sample_every_steps = 0
  c.batch_size = 16
  return c
