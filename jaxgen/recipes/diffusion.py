"""Builders of the diffusion experiment configs: the paper reproductions and the 2-D toys.

Each file in experiments/{edm,score_sde,ddpm,ncsn}/ imports this module
(``from jaxgen.recipes import diffusion as p``) and states its own recipe through ``paper_config``;
``smoke_variant`` turns any of them into the tiny test variant, ``check_variant`` rejects unknown variant
names, ``steps_for`` converts a duration in images to optimizer steps. experiments/toy2d/*.py call
``toy2d_config`` with their preconditioning, loss and sampler.

Evaluation (``config.evals``, ``jaxgen.eval.evaluators``): the paper configs compute the FID of
``eval_samples`` samples (``evals.fid``; TF-FID Inception weights and reference statistics are local
files) and the eval loss when ``data.eval_split`` is set (``evals.loss``); the toy configs the toy2d
sample metrics (``evals.toy2d``), the PF-ODE log-likelihood (``evals.likelihood``) and the eval loss.
"""

from __future__ import annotations

import ml_collections

from jaxgen import configs
from jaxgen.errors import ConfigError

MIMG = 1_000_000


def steps_for(mimg: float, batch: int) -> int:
  """Training duration in images → optimizer steps."""
  return int(round(mimg * MIMG / batch))


def paper_config(*, data: str, model: str, batch: int, mimg: float, lr: float, precond: str, loss: str,
                 sampler: str, num_steps: int, overrides: dict | None = None, resolution: int = 0,
                 warmup_mimg: float = 10.0, ema_halflife_kimg: float = 500.0, ema_rampup_ratio: float = 0.05,
                 ema_decay: float = 0.0, class_conditional: bool = False, num_classes: int = 10,
                 sampler_options: dict | None = None, random_flip: bool = False, dtype: str = "bfloat16",
                 eval_samples: int = 50_000, grad_clip: float = 0.0, data_dir: str = "", **task):
  c = configs.base_config()
  c.batch_size = batch
  c.num_train_steps = steps_for(mimg, batch)
  c.log_every_steps = 1000
  c.checkpoint_every_steps = 20_000
  c.eval_every_steps = 0
  c.sample_every_steps = 20_000
  c.num_grid_samples = 64
  c.data.name = data
  c.data.split = "train"
  c.data.eval_split = ""
  c.data.resolution = resolution
  c.data.random_flip = random_flip
  c.data.data_dir = data_dir
  c.model.name = model
  c.model.dtype = dtype
  for k, v in (overrides or {}).items():
    setattr(c.model.overrides, k, v)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = lr
  c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-8
  c.optimizer.warmup_steps = steps_for(warmup_mimg, batch)
  c.optimizer.clip_grad_norm = grad_clip
  if ema_decay:
    c.optimizer.ema_decay = ema_decay
  else:
    c.optimizer.ema_halflife_kimg = ema_halflife_kimg
    c.optimizer.ema_rampup_ratio = ema_rampup_ratio
  c.task.name = "diffusion"
  c.task.precond = precond
  c.task.loss = loss
  c.task.sampler = sampler
  c.task.num_steps = num_steps
  c.task.sampler_options = dict(sampler_options or {})
  c.task.class_conditional = class_conditional
  c.task.num_classes = num_classes
  c.task.sample_batch_size = 500
  for k, v in task.items():
    setattr(c.task, k, v)
  # FID with the TF-FID Inception (jaxgen.eval.fid): weights and reference statistics are local files.
  c.evals.fid = dict(type="fid", num_samples=eval_samples, inception_weights="inception_fid.npz",
                     fid_ref=f"fid_refs/{data.split('/')[0]}_train.npz", batch_size=500)
  c.evals.loss = dict(type="eval_loss")   # on data.eval_split, when one is set
  return c


def smoke_variant(c, *, label_dim: int = 0, model_kind: str = "song"):
  """The tiny variant every experiment runs in the tests: digits 8×8×1, a one-level network (its middle
  block keeps one attention layer), 2 steps, 3 sampling steps, no FID."""
  configs.smoke(c)
  c.num_grid_samples = 8
  c.data.name = "digits"
  c.data.resolution = 0
  c.data.eval_split = ""
  c.data.random_flip = False
  c.model.dtype = "float32"
  c.optimizer.warmup_steps = 1
  c.optimizer.ema_halflife_kimg = 0.0
  c.optimizer.ema_rampup_ratio = 0.0
  c.optimizer.ema_decay = 0.9
  c.model.overrides = ml_collections.ConfigDict()
  o = c.model.overrides
  if model_kind == "ddpm":
    o.img_resolution, o.in_channels, o.out_channels = 8, 1, 1
    o.ch, o.ch_mult, o.num_res_blocks, o.attn_resolutions = 16, (1,), 1, ()
  elif model_kind == "adm":
    o.img_resolution, o.in_channels, o.out_channels = 8, 1, 1
    o.model_channels, o.channel_mult, o.num_blocks, o.attn_resolutions = 64, (1,), 1, ()
    o.label_dim = label_dim
  else:
    o.img_resolution, o.in_channels, o.out_channels = 8, 1, 1
    o.model_channels, o.channel_mult, o.num_blocks, o.attn_resolutions = 16, (1,), 1, ()
  c.task.num_steps = min(int(c.task.num_steps), 3)
  c.task.sample_batch_size = 8
  if "fid" in c.evals:
    del c.evals["fid"]
  if "sampler_options" in c.task and "n_steps_each" in c.task.sampler_options:
    c.task.sampler_options = dict(c.task.sampler_options, n_steps_each=2)
  return c


def check_variant(arg, allowed=("smoke",)):
  if arg not in (None, "") and arg not in allowed:
    raise ConfigError(f"unknown variant {arg!r}: use {' or '.join(allowed)} (or nothing).")


# --- the 2-D toys (experiments/toy2d/*.py) --------------------------------------------------------
TOYS = ("8gaussians", "25gaussians", "swiss_roll", "checkerboard", "two_moons", "rings")
# σ_data per toy: the RMS coordinate of 100k exact samples (EDM's σ_d is the data's standard deviation).
TOY_SIGMA_DATA = {"8gaussians": 1.41, "25gaussians": 2.83, "swiss_roll": 0.92, "checkerboard": 2.31,
                  "two_moons": 1.44, "rings": 1.45}


def toy2d_config(arg, *, precond: str, loss: str, sampler: str, num_steps: int,
                 sampler_options: dict | None = None, default_toy: str = "8gaussians"):
  """The whole config of a toy2d diffusion experiment; ``arg``: comma-separated toy name and/or 'smoke'.

  toy_mlp (128 wide, 3 residual blocks), batch 512, 20k Adam steps (lr 1e-3, cosine to 5%, warm-up
  200), EMA 0.999; evaluation: the toy2d metrics of 2000 samples against exact draws (sliced W1, MMD²,
  exact W1 on 1000 points, their exact-vs-exact floors, mode coverage for the mixtures), the PF-ODE
  log-likelihood of 256 exact points (exact trace) next to their true mean log-density, and the loss on
  the eval points.
  """
  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in TOYS + ("smoke",)]
  if bad:
    raise ConfigError(f"unknown variant {bad[0]!r}: use a toy ({', '.join(TOYS)}) and/or smoke, "
                      "comma-separated (e.g. ':swiss_roll,smoke').")
  toy = next((p for p in parts if p in TOYS), default_toy)
  c = configs.base_config()
  c.batch_size = 512
  c.num_train_steps = 20_000
  c.log_every_steps = 1000
  c.checkpoint_every_steps = 10_000
  c.num_grid_samples = 2000
  c.data.name = "toy2d"
  c.data.toy = toy
  c.data.eval_split = "test"
  c.data.eval_size = 2048
  c.model.name = "toy_mlp"
  c.model.overrides.hidden = 128
  c.model.overrides.num_layers = 3
  c.model.overrides.emb_dim = 64
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.end_lr_factor = 0.05
  c.optimizer.warmup_steps = 200
  c.optimizer.ema_decay = 0.999
  c.task.name = "diffusion"
  c.task.precond = precond
  c.task.loss = loss
  c.task.sigma_data = TOY_SIGMA_DATA[toy]
  c.task.sampler = sampler
  c.task.num_steps = num_steps
  c.task.sampler_options = dict(sampler_options or {})
  c.task.sample_batch_size = 2000
  c.evals.loss = dict(type="eval_loss")
  c.evals.toy2d = dict(type="toy2d", num_samples=2000)
  c.evals.likelihood = dict(type="toy2d_likelihood", num_points=256)
  if "smoke" in parts:
    configs.smoke(c)
    c.num_grid_samples = 16
    c.data.eval_size = 32
    c.model.overrides.hidden = 16
    c.model.overrides.num_layers = 1
    c.model.overrides.emb_dim = 8
    c.task.num_steps = min(num_steps, 4)
    c.task.sample_batch_size = 64
    c.evals.toy2d.num_samples = 64
    del c.evals["likelihood"]
  return c
