"""Inference throughput of the small backbones: images/s at batch 1 and 64 (224×224, random input).

  python benchmarks/backbone_throughput.py                       # CPU (or the default JAX device)
  python benchmarks/backbone_throughput.py --models mobilenet_v2 efficientnet_b0 --batch 1 64 --dtype bfloat16
  python benchmarks/backbone_throughput.py --depthwise shift     # depthwise convs as shifted multiply-adds

One jitted inference ``apply`` per (model, batch); reported: compile seconds, median milliseconds per
batch over ``--iters`` timed calls after ``--warmup`` calls, images/s = batch / median, and the
MAC count (``jaxgen.flops``) so GMAC/s can be compared across devices. ``--depthwise`` runs the
depthwise convolutions through ``jaxgen.models.cnn_layers.depthwise_context`` ('xla': XLA's grouped conv,
'shift': shifted multiply-adds, the same numbers; docs/speed.md). Numbers are measurements,
never asserted by tests. On CPU, ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true`` (default) uses all
cores; restrict with ``taskset`` to compare fairly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp

import jaxgen.models as models
from jaxgen import flops
from jaxgen.models.cnn_layers import DEPTHWISE_KINDS, depthwise_context

SMALL = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v1_g3",
         "mobilenet_v3_large", "mobilenet_v2", "mobilenet_v1", "efficientnet_b0")


def measure(name: str, batch: int, resolution: int, dtype: str, iters: int, warmup: int,
            depthwise: str = "xla") -> dict:
  overrides = {} if dtype == "float32" else {"dtype": dtype}
  module = models.create(name, **overrides)
  x = jax.random.normal(jax.random.key(0), (batch, resolution, resolution, 3), jnp.float32)
  variables = jax.jit(module.init)(jax.random.key(1), x[:1])

  def apply(v, x):
    with depthwise_context(depthwise):
      return module.apply(v, x)

  fn = jax.jit(apply)
  t0 = time.perf_counter()
  compiled = fn.lower(variables, x).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    compiled(variables, x).block_until_ready()
  times = []
  for _ in range(iters):
    t = time.perf_counter()
    compiled(variables, x).block_until_ready()
    times.append(time.perf_counter() - t)
  med = statistics.median(times)
  macs = flops.count_macs(name, resolution)
  return {"model": name, "batch": batch, "resolution": resolution, "dtype": dtype, "compile_s": round(compile_s, 2),
          "ms_per_batch": round(med * 1e3, 2), "images_per_s": round(batch / med, 1),
          "gmacs_per_s": round(macs * batch / med / 1e9, 1), "depthwise": depthwise,
          "device": str(jax.devices()[0].device_kind)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=list(SMALL))
  p.add_argument("--batch", nargs="+", type=int, default=[1, 64])
  p.add_argument("--resolution", type=int, default=224)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
  p.add_argument("--depthwise", default="xla", choices=list(DEPTHWISE_KINDS))
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--json", default="", help="also write the rows to this JSON file")
  args = p.parse_args(argv)
  unknown = [m for m in args.models if m not in models.names()]
  if unknown:
    p.error(f"unknown model(s) {', '.join(unknown)}: choose from jaxgen.models.names().")
  rows = []
  print(f"{'model':22s} {'batch':>5s} {'compile s':>9s} {'ms/batch':>9s} {'img/s':>9s} {'GMAC/s':>7s}")
  for name in args.models:
    for b in args.batch:
      r = measure(name, b, args.resolution, args.dtype, args.iters, args.warmup, args.depthwise)
      rows.append(r)
      print(f"{name:22s} {b:5d} {r['compile_s']:9.2f} {r['ms_per_batch']:9.2f} {r['images_per_s']:9.1f} "
            f"{r['gmacs_per_s']:7.1f}", flush=True)
  print(f"device: {rows[0]['device'] if rows else jax.devices()[0]}  dtype: {args.dtype}  depthwise: {args.depthwise}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)
  return rows


if __name__ == "__main__":
  main()
