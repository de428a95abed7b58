"""VQGAN stage 2 (Esser et al. 2021): a GPT over the codes of a frozen VQGAN; the variant is the argument.

    python -m jaxgen.main --config experiments/vqgan/transformer.py:digits --workdir runs/vqgan_digits_gpt
    python -m jaxgen.main --config experiments/vqgan/transformer.py:ffhq --workdir runs/ffhq_gpt \
        --config.task.stage1_weights=ffhq_vqgan.npz --config.data.data_dir=/data/ffhq256.zip \
        --config.evals.fid.inception_weights=inception_fid.npz --config.evals.fid.fid_ref=fid_refs/ffhq256.npz

Variants:
  digits        CPU scale (two cores, ~12 minutes): class-conditional GPT (3 layers, 4 heads, width 96,
                dropout 0.1) on the 8×8 codes (128-entry codebook) of the stage-1 digits run
                ``experiments/vqgan/digits_vqgan.py`` in runs/vqgan_digits (``task.stage1_workdir``);
                the label is the prefix token; AdamW (0.9, 0.95), wd 0.01 on Linear weights, lr 1e-3 cosine
                with 100 warm-up steps (taming's 4.5e-6·batch is for days on GPUs), batch 32, 3000 steps,
                EMA 0.999; samples at t = 1, no top-k. Measured (docs/vqgan.md): ``digits_fd`` fd 0.74 on 297
                samples (classes cycled; test digits score fd_real 1.96, a Gaussian 2.87), held-out code NLL
                ``eval_loss`` 2.44 nats per code.
  ffhq          taming's FFHQ transformer (README: FID 9.6 vs train, k = 250, p = 1.0, t = 1.0): unconditional
                (start token 0), GPT 24 layers × 16 heads × 1664 (801.8M params, ``gpt_ffhq``) over the
                16×16 codes of a 1024-code f16 VQGAN at 256², converted with ``python -m
                jaxgen.convert.taming`` (``task.stage1_weights``); data: an FFHQ 256² ``image_folder``.
  celebahq      the same network for CelebA-HQ 256² (README: FID 10.2 vs train, same decoding).
  imagenet_cin  class-conditional ImageNet (README: FID 15.98 / 15.78 / 6.59 / 5.88 / 5.20 for different
                decoding settings; sampled with k = 600, p = 0.92, t = 1.0): GPT 48 layers × 24 heads × 1536
                (1.41B params, ``gpt_imagenet_cin``) over the 16×16 codes of the 16384-code ImageNet f16
                VQGAN (converted), the label 0..999 as the first token.
  smoke         2 steps with a random tiny first stage (the test suite's run).
Hardware (paper variants): GPUs/TPUs with bf16 (``--config.model.dtype=bfloat16``); taming trained them with
lr = accumulate · #GPUs · batch · 4.5e-6 (``jaxgen.recipes.vqgan_transformer.taming_optimizer``). The released
configurations do not state batch size or steps; the batch (16 × 8 accelerators here) and step counts of these
files are ours. FIDs: 50k samples against the training set's Inception statistics (``fid`` evaluator).
"""

import ml_collections

from jaxgen.configs import base_config
from jaxgen.recipes.vqgan_transformer import smoke_config, taming_optimizer, task_config

VARIANTS = ("digits", "ffhq", "celebahq", "imagenet_cin", "smoke")


def _paper(c, *, model, data, conditional, top_k, top_p, num_classes=0, steps=400_000):
  c.batch_size = 128
  c.num_train_steps = steps
  c.log_every_steps = 500
  c.checkpoint_every_steps = 10_000
  c.eval_every_steps = 0
  c.num_grid_samples = 64
  c.data.name = data
  c.data.resolution = 256
  c.model.name = model
  task_config(c, stage1_weights="", conditional=conditional, num_classes=num_classes, top_k=top_k,
              top_p=top_p, temperature=1.0, sample_batch_size=50)
  taming_optimizer(c, batch_size=c.batch_size)
  c.evals.fid = dict(type="fid", num_samples=50_000, inception_weights="", fid_ref="", batch_size=500)
  return c


def get_config(arg=None):
  arg = arg or "digits"
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}: use one of {', '.join(VARIANTS)}.")
  c = base_config()
  if arg == "ffhq" or arg == "celebahq":
    c = _paper(c, model=f"gpt_{arg}", data="image_folder", conditional=False, top_k=250, top_p=1.0)
    return c
  if arg == "imagenet_cin":
    c = _paper(c, model="gpt_imagenet_cin", data="imagenet2012", conditional=True, top_k=600, top_p=0.92,
               num_classes=1000)
    c.data.split = "train"
    return c
  # digits (CPU scale) and smoke
  c.batch_size = 32
  c.num_train_steps = 3000
  c.log_every_steps = 100
  c.eval_every_steps = 0
  c.sample_every_steps = 0
  c.checkpoint_every_steps = 500
  c.num_grid_samples = 100
  c.data.name = "digits"
  c.data.resolution = 16
  c.data.eval_split = "test"
  c.model.name = "gpt_tiny"
  c.model.overrides = ml_collections.ConfigDict(dict(vocab_size=128, block_size=64, n_layer=3, n_head=4,
                                                     n_embd=96, embd_pdrop=0.1, resid_pdrop=0.1,
                                                     attn_pdrop=0.1))
  task_config(c, stage1_workdir="runs/vqgan_digits", conditional=True, num_classes=10,
              sample_batch_size=100)
  taming_optimizer(c, batch_size=c.batch_size)
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 100
  c.optimizer.ema_decay = 0.999
  c.evals.fd = dict(type="digits_fd", num_samples=0)
  c.evals.nll = dict(type="eval_loss")
  if arg == "smoke":
    smoke_config(c)
  return c
