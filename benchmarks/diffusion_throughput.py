"""Diffusion training and sampling throughput of EDM's DDPM++ CIFAR-10 network (not a test).

    python benchmarks/diffusion_throughput.py                      # accelerator: batch 512, fp32 + bf16
    python benchmarks/diffusion_throughput.py --batch 8 --sample-batch 8 --steps 2 --tiny   # CPU, ~1 min
    python benchmarks/diffusion_throughput.py --check-bf16 --tiny  # bf16-vs-fp32 loss curves (CPU)
    python benchmarks/diffusion_throughput.py --dtype bfloat16 --no-norm-remat   # A/B the GroupNorm remat

Measures, per compute dtype, what jaxgen's diffusion task runs: training img/s of one EDM step (the
batch mean of ``jaxgen.diffusion.edm_loss`` through ``precondition`` with ``EDMSchedule()``: P_mean −1.2,
P_std 1.2, σ_d 0.5; Adam lr 1e-3; dropout 0.13; 9 augmentation labels as config F; jit with the
params and optimizer state donated; random data resident on the device), Heun sampling img/s
(``jaxgen.diffusion.sample_heun``, EDM Algorithm 1, 18 steps = 35 NFE on ``karras_sigmas``: σ 80 →
0.002, ρ 7; one compiled ``lax.scan``), and achieved TFLOP/s two ways: XLA's cost analysis of the
lowered step (121.0 GFLOP/image for training, 40.3 per denoiser evaluation), and the ≈127 GFLOP/image
figure of docs/reference.md §6 (3 × 2 × 21.2 GMAC). Reference (docs/reference.md §6, one H200): EDM's
PyTorch code 1,791 img/s training and 130.6 img/s sampling in fp16. Where the time goes:
``benchmarks/diffusion_roofline.py``.

Imports only jax, flax, optax, numpy, jaxgen.models and jaxgen.diffusion (no ml_collections / grain / tfds).

Measured on one NVIDIA H200 (2026-11-26, jax 0.11.2, default flags, batch 512, random data; the
inlined EDM loss/sampler of that version and the GroupNorm *before* its remat (commit 28638e6): rerun;
TFLOP/s from XLA's count, 121.0 GFLOP per training image and 40.3 per denoiser evaluation):

  | what            | dtype    | img/s | TFLOP/s | EDM PyTorch on an H200       |
  |-----------------|----------|-------|---------|------------------------------|
  | train           | bfloat16 | 3,076 |   372   | 1,791 (fp16)                 |
  | train           | float32* | 1,443 |   175   | 371 (fp32) / 1,053 (TF32)    |
  | Heun-18 (35 NFE)| bfloat16 |   275 |   388   | 130.6 (fp16)                 |
  | Heun-18 (35 NFE)| float32* |   158 |   222   | 25.6 (fp32)                  |

  * XLA's default float32 precision on GPUs uses TF32 tensor cores.
Short of the targets (4,300 / 390 img/s): ≈47–49% of the card's 788 TFLOP/s bf16 matmul rate; the
rest goes to memory-bound GroupNorm/SiLU/residual passes between the convolutions (accounted, not yet
profiled, in benchmarks/diffusion_roofline.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxgen.diffusion as dfn  # noqa: E402
import jaxgen.models as M  # noqa: E402
from jaxgen.models import unet_song  # noqa: E402

GFLOP_PER_IMAGE_TRAIN = 127.0   # docs/reference.md §6: forward ≈ 21.2 GMAC, ×2 FLOP/MAC, ×3 fwd+bwd
SCHEDULE = dfn.EDMSchedule()    # σ_d 0.5, P_mean −1.2, P_std 1.2; σ 80 → 0.002, ρ 7
AUGMENT_DIM = 9                 # EDM config F's augmentation labels (zeros here: no augmentation)
TINY = dict(model_channels=32, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(16,))


def denoiser(net, params, train=False, dropout_key=None):
  """D(x; σ) of ``jaxgen.diffusion.precondition`` around ``net.apply`` (EDM preconditioning, σ math in
  float32), as the diffusion task builds it: 9 zero augmentation labels, dropout from ``dropout_key``."""

  def raw(x_in, c_noise, labels, **kw):
    aug = jnp.zeros((x_in.shape[0], AUGMENT_DIM), jnp.float32)
    rngs = {"dropout": dropout_key} if train else None
    return net.apply({"params": params}, x_in, c_noise, labels, augment_labels=aug, train=train, rngs=rngs, **kw)

  return dfn.precondition(raw, SCHEDULE)


def train_loss(net, params, images, key):
  """The diffusion task's EDM objective: mean over the batch of ``jaxgen.diffusion.edm_loss`` (per
  example λ(σ)‖D(y + σn; σ) − y‖² summed over pixels, ln σ ~ N(P_mean, P_std²), λ = (σ²+σ_d²)/(σσ_d)²)."""
  k_loss, k_drop = jax.random.split(key)
  D = denoiser(net, params, train=True, dropout_key=k_drop)
  return jnp.mean(dfn.edm_loss(D, images, k_loss, schedule=SCHEDULE, preconditioned=True))


def heun_sampler(net, params, latents, num_steps=18):
  """``jaxgen.diffusion.sample_heun`` (EDM Algorithm 1, 2N − 1 NFE) on ``karras_sigmas(N)`` (σ 80 → 0.002,
  ρ 7, then 0): one compiled ``lax.scan``."""
  sigmas = SCHEDULE.time_steps(num_steps)
  return dfn.sample_heun(denoiser(net, params), latents.astype(jnp.float32) * sigmas[0], sigmas)


def random_params(model, overrides, seed=0):
  """Random float32 params of the model's shapes, drawn with numpy (no PRNG compilation; timing on
  zeros would flatter the hardware): kernels N(0, 1/fan_in), norm scales ≈ 1, biases ≈ 0."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    if s.ndim >= 2:
      return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1])), jnp.float32)
    base = 1.0 if "scale" in jax.tree_util.keystr(path) else 0.0
    return jnp.asarray(base + 0.01 * rng.normal(size=s.shape), jnp.float32)

  shapes = M.param_shapes(model, augment_dim=AUGMENT_DIM, dropout=0.13, **overrides)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _flops(lowered) -> float:
  """XLA's FLOP count of the *lowered* (pre-backend) HLO: on GPU the compiled module's count misses the
  cuDNN convolution custom calls (seen on an H200: 4.4 instead of 121 GFLOP/image)."""
  try:
    ca = lowered.cost_analysis()
    if isinstance(ca, (list, tuple)):
      ca = ca[0]
    return float(ca.get("flops", float("nan")))
  except Exception:  # cost analysis is optional on some backends
    return float("nan")


def _time(fn, n):
  t0 = time.perf_counter()
  out = None
  for _ in range(n):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / n


def make_optimizer():
  """EDM's optimizer: Adam, lr 1e-3, β (0.9, 0.999), ε 1e-8 (no warm-up or EMA inside the timed step)."""
  return optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)


def make_train_step(net, opt, batch, accum=1):
  """``step(params, opt_state, images, key) -> (params, opt_state, loss)``: one EDM training step of
  ``train_loss`` with ``opt`` (optionally over ``accum`` micro-batches of the same global batch)."""

  def step(params, opt_state, images, key):
    if accum == 1:
      loss, grads = jax.value_and_grad(lambda p: train_loss(net, p, images, key))(params)
    else:   # gradient accumulation over `accum` micro-batches (memory), same global batch
      micro = images.reshape(accum, batch // accum, *images.shape[1:])

      def body(carry, inp):
        l, g = jax.value_and_grad(lambda p: train_loss(net, p, inp[0], inp[1]))(params)
        return jax.tree_util.tree_map(jnp.add, carry, (l, g)), None

      zero = (jnp.zeros(()), jax.tree_util.tree_map(jnp.zeros_like, params))
      (loss, grads), _ = jax.lax.scan(body, zero, (micro, jax.random.split(key, accum)))
      loss, grads = jax.tree_util.tree_map(lambda v: v / accum, (loss, grads))
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def bench_train(model, overrides, dtype, batch, steps, warmup, accum=1):
  net = M.create(model, dtype=dtype, augment_dim=AUGMENT_DIM, dropout=0.13, **overrides)
  res = net.img_resolution
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, res, res, 3)), jnp.float32)
  params = random_params(model, overrides)
  opt = make_optimizer()
  opt_state = opt.init(params)
  step = make_train_step(net, opt, batch, accum)

  t0 = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, images, jax.random.key(2))
  compiled = lowered.compile()
  t_compile = time.perf_counter() - t0
  flops = _flops(lowered)
  state = [params, opt_state]
  keys = iter(jax.random.split(jax.random.key(3), warmup + steps + 1))

  def run():
    state[0], state[1], loss = compiled(state[0], state[1], images, next(keys))
    return loss

  _time(run, warmup)
  dt = _time(run, steps)
  loss = float(run())
  if not np.isfinite(loss):
    raise FloatingPointError(f"non-finite training loss in {dtype}")
  return dict(img_s=batch / dt, step_s=dt, flops=flops, compile_s=t_compile, loss=loss)


def bench_sample(model, overrides, dtype, batch, num_steps, reps):
  net = M.create(model, dtype=dtype, augment_dim=AUGMENT_DIM, dropout=0.13, **overrides)
  res = net.img_resolution
  params = random_params(model, overrides)
  latents = jnp.asarray(np.random.default_rng(4).normal(size=(batch, res, res, 3)), jnp.float32)
  t0 = time.perf_counter()
  compiled = jax.jit(lambda p, z: heun_sampler(net, p, z, num_steps)).lower(params, latents).compile()
  t_compile = time.perf_counter() - t0
  # XLA counts a loop body once: FLOPs = NFE × one denoiser evaluation (lowered, not compiled).
  fwd = jax.jit(lambda p, z: denoiser(net, p)(z, jnp.ones((batch,)))).lower(params, latents)
  flops = _flops(fwd) * (2 * num_steps - 1)
  _time(lambda: compiled(params, latents), 1)
  dt = _time(lambda: compiled(params, latents), reps)
  return dict(img_s=batch / dt, run_s=dt, flops=flops, compile_s=t_compile)


def check_bf16(model, overrides, batch, steps, rtol):
  """Trains the same network from the same init on the same noise draws in fp32 and bf16."""
  curves = {}
  for dtype in ("float32", "bfloat16"):
    net = M.create(model, dtype=dtype, augment_dim=AUGMENT_DIM, dropout=0.0, **overrides)
    res = net.img_resolution
    data = jnp.asarray(np.tanh(np.random.default_rng(0).normal(size=(batch, res, res, 3))), jnp.float32)
    params = random_params(model, overrides, seed=1)
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, key):
      loss, grads = jax.value_and_grad(lambda p: train_loss(net, p, data, key))(params)
      updates, opt_state = opt.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for i in range(steps):
      params, opt_state, loss = step(params, opt_state, jax.random.key(100 + i))
      losses.append(float(loss))
    curves[dtype] = np.array(losses)
  a, b = curves["float32"], curves["bfloat16"]
  rel = np.abs(b - a) / np.abs(a)
  print(f"{'step':>5} {'fp32 loss':>10} {'bf16 loss':>10} {'rel diff':>9}")
  for i in range(0, steps, max(1, steps // 10)):
    print(f"{i:5d} {a[i]:10.5f} {b[i]:10.5f} {rel[i]:9.2e}")
  ok = bool(np.isfinite(b).all() and rel.max() <= rtol)
  print(f"max relative difference {rel.max():.2e} (tolerance {rtol}): {'OK' if ok else 'FAIL'}")
  return ok


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default="ddpmpp_cifar10")
  p.add_argument("--batch", type=int, default=512, help="training batch")
  p.add_argument("--sample-batch", type=int, default=512)
  p.add_argument("--steps", type=int, default=10, help="timed training steps per dtype")
  p.add_argument("--warmup", type=int, default=3, help="untimed training steps after compilation")
  p.add_argument("--accum", type=int, default=1, help="micro-batches per step (gradient accumulation, for memory)")
  p.add_argument("--sample-reps", type=int, default=1, help="timed sampling runs per dtype")
  p.add_argument("--num-steps", type=int, default=18, help="Heun steps (NFE = 2N − 1)")
  p.add_argument("--dtype", default="float32,bfloat16", help="comma-separated compute dtypes")
  p.add_argument("--sample-dtype", default=None, help="dtypes for sampling (default: --dtype)")
  p.add_argument("--tiny", action="store_true", help="a small DDPM++ (32 ch, mult 1,2, 1 block) for CPU runs")
  p.add_argument("--no-sample", action="store_true")
  p.add_argument("--no-norm-remat", action="store_true",
                 help="A/B: GroupNorm without jax.checkpoint (stores its float32 intermediates; same numbers)")
  p.add_argument("--check-bf16", action="store_true", help="only compare bf16 and fp32 loss curves")
  p.add_argument("--check-steps", type=int, default=40)
  p.add_argument("--check-rtol", type=float, default=0.05)
  a = p.parse_args(argv)
  overrides = dict(TINY) if a.tiny else {}
  unet_song.GROUPNORM_REMAT = not a.no_norm_remat
  dev = jax.devices()[0]
  print(f"jax {jax.__version__} on {len(jax.devices())}× {dev.platform}:{dev.device_kind}; model {a.model}"
        f"{' (tiny)' if a.tiny else ''}, "
        f"{M.count_params(M.param_shapes(a.model, augment_dim=AUGMENT_DIM, **overrides)):,} params, "
        f"GroupNorm remat {'on' if unet_song.GROUPNORM_REMAT else 'off'}")
  if a.check_bf16:
    return 0 if check_bf16(a.model, overrides, 8, a.check_steps, a.check_rtol) else 1

  rows = []
  for dt in a.dtype.split(","):
    r = bench_train(a.model, overrides, dt, a.batch, a.steps, a.warmup, a.accum)
    rows.append(("train", dt, a.batch, r["img_s"], r["step_s"], r["flops"], r["compile_s"]))
    print(f"  train {dt}: {r['img_s']:.1f} img/s, loss {r['loss']:.4f} (compile {r['compile_s']:.0f} s)", flush=True)
  if not a.no_sample:
    for dt in (a.sample_dtype or a.dtype).split(","):
      r = bench_sample(a.model, overrides, dt, a.sample_batch, a.num_steps, a.sample_reps)
      rows.append((f"heun{a.num_steps}", dt, a.sample_batch, r["img_s"], r["run_s"], r["flops"], r["compile_s"]))
      print(f"  sample {dt}: {r['img_s']:.1f} img/s (compile {r['compile_s']:.0f} s)", flush=True)

  print()
  nfe = 2 * a.num_steps - 1
  print(f"| {'what':<8} | {'dtype':<8} | {'batch':>5} | {'img/s':>9} | {'s/iter':>8} | {'GFLOP/img':>9} | "
        f"{'TFLOP/s (XLA)':>13} | {'TFLOP/s (127 GF)':>16} | {'compile s':>9} |")
  print("|" + "|".join("-" * w for w in (10, 10, 7, 11, 10, 11, 15, 18, 11)) + "|")
  for what, dt, b, img_s, s_it, flops, comp in rows:
    gf = flops / b / 1e9   # XLA's count (lowered HLO); the 127-GF column uses docs/reference.md §6's figure
    ref_gf = GFLOP_PER_IMAGE_TRAIN if what == "train" else GFLOP_PER_IMAGE_TRAIN / 3 * nfe
    ref_tf = ref_gf * img_s / 1e3 if not a.tiny else float("nan")
    print(f"| {what:<8} | {dt:<8} | {b:5d} | {img_s:9.1f} | {s_it:8.4f} | {gf:9.1f} | {gf * img_s / 1e3:13.1f} | "
          f"{ref_tf:16.1f} | {comp:9.1f} |")
  print("Reference (docs/reference.md §6, one H200, EDM PyTorch): train 371 (fp32) / 1,053 (TF32) / "
        "1,791 (fp16) img/s; Heun-18 sampling 25.6 (fp32) / 130.6 (fp16) img/s. Targets: ≥ 4,300 train, "
        "≥ 390 sampling img/s in bf16.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
