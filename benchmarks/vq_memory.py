"""Memory of the nearest-code step of ``jaxgen.vq`` (not a test; issue #10): chunked vs unchunked distances.

    python benchmarks/vq_memory.py                        # K 16384, batch 64 at 16×16 codes, D 256
    python benchmarks/vq_memory.py --time                 # also wall time per call on this backend

The VQGAN f16 ImageNet model with K = 16384 quantises N = 64·16·16 = 16384 vectors of D = 256 per batch of
64; the distance matrix ‖z‖² + ‖e‖² − 2 z·e is N × K float32 = 1 GiB if built at once. ``nearest_code``
builds ``chunk_size × K`` blocks inside ``lax.map`` instead. For each chunk size this prints what XLA reports
for the compiled program (``jax.jit(f).lower(...).compile().memory_analysis()``, nothing is allocated):
temp (scratch) bytes, argument and output bytes, and "peak" = temp + arguments + outputs, for
1. ``distance``: ``nearest_code(z, codebook)`` alone (the step the issue asks about), and
2. ``quantize fwd+bwd``: value and gradient of ``quantize(...).loss + Σ z_q·w`` w.r.t. z and the codebook
   (what a training step holds for the quantiser; the argmin has no gradient, so no N × K residual is kept).
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import vq  # noqa: E402

MiB = 2 ** 20


def _memory(fn, *args) -> dict:
  compiled = jax.jit(fn).lower(*args).compile()
  m = compiled.memory_analysis()
  temp, arg, out = m.temp_size_in_bytes, m.argument_size_in_bytes, m.output_size_in_bytes
  return dict(temp=temp, args=arg, out=out, peak=temp + arg + out, compiled=compiled)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
  p.add_argument("--codes", type=int, default=16384)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--grid", type=int, default=16)
  p.add_argument("--dim", type=int, default=256)
  p.add_argument("--chunks", default="0,8192,4096,2048,1024", help="0 = unchunked")
  p.add_argument("--time", action="store_true", help="time each compiled call (min of --repeats)")
  p.add_argument("--repeats", type=int, default=3)
  a = p.parse_args(argv)
  n = a.batch * a.grid * a.grid
  z = jax.ShapeDtypeStruct((n, a.dim), jnp.float32)
  e = jax.ShapeDtypeStruct((a.codes, a.dim), jnp.float32)
  zq = jax.ShapeDtypeStruct((a.batch, a.grid, a.grid, a.dim), jnp.float32)
  full = n * a.codes * 4
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}); N = {n} vectors, K = {a.codes}, "
        f"D = {a.dim}; full N×K float32 distance matrix = {full / MiB:.0f} MiB")
  rows = []
  if a.time:
    rng = np.random.default_rng(0)
    zv = jnp.asarray(rng.normal(size=(n, a.dim)), jnp.float32)
    ev = jnp.asarray(rng.normal(size=(a.codes, a.dim)), jnp.float32)
    wv = jnp.asarray(rng.normal(size=zq.shape), jnp.float32)
  for c in [int(s) for s in a.chunks.split(",")]:
    chunk = None if c == 0 else c
    dist = _memory(lambda z, e, chunk=chunk: vq.nearest_code(z, e, chunk_size=chunk), z, e)

    def step(z, e, w, chunk=chunk):
      def f(z, e):
        q = vq.quantize(z, e, chunk_size=chunk)
        return q.loss + jnp.sum(q.z_q * w)
      return jax.value_and_grad(f, argnums=(0, 1))(z, e)

    train = _memory(step, zq, e, zq)
    row = dict(chunk=c or "none", dist_temp_MiB=dist["temp"] / MiB, dist_peak_MiB=dist["peak"] / MiB,
               step_temp_MiB=train["temp"] / MiB, step_peak_MiB=train["peak"] / MiB)
    if a.time:
      runs = {"dist_ms": (dist, (zv, ev)), "step_ms": (train, (zv.reshape(zq.shape), ev, wv))}
      for key, (m, args) in runs.items():
        jax.block_until_ready(m["compiled"](*args))
        best = float("inf")
        for _ in range(a.repeats):
          t0 = time.perf_counter()
          jax.block_until_ready(m["compiled"](*args))
          best = min(best, time.perf_counter() - t0)
        row[key] = best * 1e3
    rows.append(row)
  cols = list(rows[0])
  print(" | ".join(f"{k:>14}" for k in cols))
  for r in rows:
    print(" | ".join(f"{v:>14.1f}" if isinstance(v, float) else f"{v!s:>14}" for v in r.values()))
  print(json.dumps(dict(backend=jax.default_backend(), n=n, codes=a.codes, dim=a.dim, rows=rows)))


if __name__ == "__main__":
  main()
