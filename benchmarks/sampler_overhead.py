"""Sampler overhead of ``jaxgen.diffusion.sample_heun`` (not a test; issue #3 "Benchmark").

    python benchmarks/sampler_overhead.py                 # CPU defaults: batch 16, 32×32×3, 3 conv layers
    python benchmarks/sampler_overhead.py --batch 64 --res 64 --channels 64    # larger network

Two numbers, with the targets of the issue:
1. overhead = wall time of a full Heun sampler (EDM Algorithm 1, N = 18 steps, NFE = 2N − 1 = 35,
   σ 80 → 0.002, ρ = 7) / (NFE × wall time of one denoiser call); target ≤ 1.05. "One denoiser call" is
   measured two ways: (a) a jitted call on its own (includes one dispatch), and (b) inside one compiled
   program that chains NFE calls (``lax.fori_loop``), which is what the sampler pays per evaluation.
2. compile-time ratio = compile time (lower + compile) of the sampler with 256 steps / with 18 steps;
   target ≤ 1.5 (one ``lax.scan`` over the σ grid, so the program does not grow with the steps).

The network is a few Flax conv layers with a noise embedding, preconditioned with EDM's
``precondition(net, EDMSchedule())``. Every timing is the minimum over ``--repeats`` runs (the machine
may be shared), after a warm-up. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxgen import diffusion as dif  # noqa: E402


class SmallNet(nn.Module):
  """conv3×3 → (+ Dense(c_noise) embedding) → SiLU → conv3×3 → SiLU → conv3×3 back to the image channels."""
  channels: int = 32
  layers: int = 3

  @nn.compact
  def __call__(self, x, c_noise, labels=None):
    h = nn.Conv(self.channels, (3, 3))(x)
    h = h + nn.Dense(self.channels)(c_noise[:, None])[:, None, None, :]
    for _ in range(self.layers - 2):
      h = nn.Conv(self.channels, (3, 3))(nn.silu(h))
    return nn.Conv(x.shape[-1], (3, 3))(nn.silu(h))


def _best(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return min(times)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--res", type=int, default=32)
  p.add_argument("--channels", type=int, default=32)
  p.add_argument("--layers", type=int, default=3)
  p.add_argument("--steps", type=int, default=18)
  p.add_argument("--long-steps", type=int, default=256)
  p.add_argument("--repeats", type=int, default=7)
  args = p.parse_args(argv)

  model = SmallNet(args.channels, args.layers)
  x = jax.random.normal(jax.random.key(0), (args.batch, args.res, args.res, 3), jnp.float32)
  params = model.init(jax.random.key(1), x, jnp.zeros((args.batch,)))
  net = lambda x_in, c_noise, labels: model.apply(params, x_in, c_noise)
  denoise = dif.precondition(net, dif.EDMSchedule())
  sigmas = dif.karras_sigmas(args.steps)
  nfe = 2 * args.steps - 1
  latents = x * sigmas[0]

  # (a) one jitted denoiser call
  call = jax.jit(denoise)
  sig = jnp.full((args.batch,), 1.0, jnp.float32)
  jax.block_until_ready(call(latents, sig))
  t_call = _best(lambda: call(latents, sig), 5 * args.repeats)

  # (b) NFE chained calls inside one program
  def chain(x):
    return jax.lax.fori_loop(0, nfe, lambda i, x: denoise(x, sig), x)
  chain = jax.jit(chain)
  jax.block_until_ready(chain(latents))
  t_chain = _best(lambda: chain(latents), args.repeats) / nfe

  heun = jax.jit(lambda x, s: dif.sample_heun(denoise, x, s, return_nfe=True))
  out, n_eval = heun(latents, sigmas)
  assert int(n_eval) == nfe, (int(n_eval), nfe)
  t_heun = _best(lambda: heun(latents, sigmas)[0], args.repeats)

  def compile_time(n):
    s = dif.karras_sigmas(n)
    best = float("inf")
    for _ in range(3):
      f = jax.jit(lambda x, s: dif.sample_heun(denoise, x, s))   # a new function: no cache hit
      t = time.perf_counter()
      f.lower(latents, s).compile()
      best = min(best, time.perf_counter() - t)
    return best

  c_short, c_long = compile_time(args.steps), compile_time(args.long_steps)
  res = {
      "device": str(jax.devices()[0].device_kind), "batch": args.batch, "res": args.res,
      "channels": args.channels, "layers": args.layers, "steps": args.steps, "nfe": nfe,
      "denoiser_call_ms": 1e3 * t_call, "denoiser_in_program_ms": 1e3 * t_chain, "heun_ms": 1e3 * t_heun,
      "overhead_vs_call": t_heun / (nfe * t_call), "overhead_vs_in_program": t_heun / (nfe * t_chain),
      "compile_s_short": c_short, "compile_s_long": c_long, "compile_ratio": c_long / c_short,
  }
  print(f"device {res['device']}; batch {args.batch}, {args.res}²×3, {args.layers} conv layers × {args.channels} ch")
  print(f"one denoiser call (jit, alone)      {res['denoiser_call_ms']:9.3f} ms")
  print(f"one denoiser call (in one program)  {res['denoiser_in_program_ms']:9.3f} ms")
  print(f"Heun, {args.steps} steps (NFE {nfe})           {res['heun_ms']:9.3f} ms")
  print(f"overhead = Heun / (NFE × call)      {res['overhead_vs_call']:9.3f} (alone)   "
        f"{res['overhead_vs_in_program']:.3f} (in program)   target ≤ 1.05")
  print(f"compile {args.long_steps} steps / {args.steps} steps        {res['compile_ratio']:9.3f} "
        f"({c_long:.2f} s / {c_short:.2f} s)   target ≤ 1.5")
  print(json.dumps(res))
  return res


if __name__ == "__main__":
  main()
