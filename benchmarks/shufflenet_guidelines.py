"""ShuffleNet V2's four guidelines (Ma et al. 2018, §2, Tables 1–4) re-measured on this machine with jaxgen layers.

    python benchmarks/shufflenet_guidelines.py              # all four, writes results/shufflenet_guidelines.json
    python benchmarks/shufflenet_guidelines.py --only g1 g2 --rounds 5 --out /tmp/g.json
    python -m jaxgen.tables shufflenet_guidelines           # the table, read from the results file

Each experiment stacks 10 identical blocks (the paper's benchmark networks stack 10 building blocks) built
from ``jaxgen.models.cnn_layers.ConvBN`` in inference form (BatchNorm folded: conv + bias, ``use_bn=False``)
on a 56×56 feature map (our choice: the paper's input sizes for these benchmarks were not re-checked), and
keeps the multiply-adds of a row equal to the first row's (the paper's "fixed FLOPs"):

  G1  "equal channel width minimizes memory access cost": two 1×1 convs per block, c1→c2→c1, with
      c1·c2 = s·128² and c1:c2 = 1:1, 1:2, 1:6, 1:12 (s = 1, 2, 4: the paper's ×1/×2/×4 columns).
  G2  "excessive group convolution increases MAC": one 1×1 group conv c→c per block, c²/g = s·128²,
      g = 1, 2, 4, 8.
  G3  "network fragmentation reduces the degree of parallelism": per block one 1×1 conv c→c (1-fragment);
      n 1×1 convs in series, c/√n channels (n-fragment-series, n = 2, 4); n parallel 1×1 convs c→c/n whose
      outputs are concatenated (n-fragment-parallel, n = 2, 4); c = √s·128.
  G4  "element-wise operations are non-negligible": a ResNet bottleneck (1×1 4c→c, 3×3 c→c, 1×1 c→4c) with
      and without its ReLUs and its identity shortcut, c = 32, 64, 128.

Timing: one ``jax.jit`` per row; within a cell (experiment, size, batch) the rows are timed in turn, round
after round (``--rounds``, ``--iters`` calls each), and each row's median over all calls is reported as
images/s — alternation and medians because this machine's cores are shared with other jobs (the load
average before and after is stored). Batch 1 (the paper's ARM setting) and 8 (its GPU batch); a cell whose
largest row needs more than ``--max-gmac`` multiply-adds per call is measured at batch 1 only. The results
JSON (machine, date, load, jax version, rows) is what ``jaxgen.tables.shufflenet_guidelines`` renders; a
measurement, never asserted by tests (docs/speed.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from jaxgen.eval.results import cpu_name, load_average as _load  # noqa: E402
from jaxgen.models.cnn_layers import ConvBN  # noqa: E402

BLOCKS = 10
SIZE = 56
BASE = 128
SCALES = (1, 2, 4)
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "shufflenet_guidelines.json")


def conv(features, kernel=1, groups=1, act=None, name=None):
  """A folded-BatchNorm conv (conv + bias) of jaxgen's backbones."""
  return ConvBN(features, kernel, groups=groups, act=act, use_bn=False, name=name)


class G1Block(nn.Module):
  c1: int
  c2: int

  @nn.compact
  def __call__(self, x):
    return conv(self.c1)(conv(self.c2)(x))


class G2Block(nn.Module):
  c: int
  groups: int

  @nn.compact
  def __call__(self, x):
    return conv(self.c, groups=self.groups)(x)


class G3Block(nn.Module):
  c: int
  fragments: int
  parallel: bool

  @nn.compact
  def __call__(self, x):
    if self.parallel:
      return jnp.concatenate([conv(self.c // self.fragments)(x) for _ in range(self.fragments)], axis=-1)
    for _ in range(self.fragments):
      x = conv(x.shape[-1])(x)
    return x


class G4Block(nn.Module):
  c: int
  relu: bool
  shortcut: bool

  @nn.compact
  def __call__(self, x):
    act = "relu" if self.relu else None
    h = conv(self.c, 1, act=act)(x)
    h = conv(self.c, 3, act=act)(h)
    h = conv(4 * self.c, 1)(h)
    if self.shortcut:
      h = h + x
    return nn.relu(h) if self.relu else h


class Stack(nn.Module):
  block: type
  kw: dict

  @nn.compact
  def __call__(self, x):
    for i in range(BLOCKS):
      x = self.block(**self.kw, name=f"block{i}")(x)
    return x


def _ch(v: float) -> int:
  return max(1, int(round(v)))


def experiments(only=("g1", "g2", "g3", "g4")) -> list[dict]:
  """Every row: experiment, scale (or c for G4), label, block class, kwargs, input channels, MACs/image."""
  rows = []
  hw = SIZE * SIZE
  for s in SCALES:
    k = s * BASE * BASE                         # c1·c2 (G1), c²/g (G2), c² (G3) fixed per scale
    if "g1" in only:
      for r in (1, 2, 6, 12):
        c1 = _ch(math.sqrt(k / r))
        c2 = _ch(c1 * r)
        rows.append(dict(exp="g1", cell=f"×{s}", label=f"1:{r}", cfg=f"c1={c1}, c2={c2}", block=G1Block,
                         kw=dict(c1=c1, c2=c2), cin=c1, macs=BLOCKS * 2 * hw * c1 * c2))
    if "g2" in only:
      for g in (1, 2, 4, 8):
        c = _ch(math.sqrt(k * g) / g) * g           # divisible by g
        rows.append(dict(exp="g2", cell=f"×{s}", label=f"g={g}", cfg=f"c={c}", block=G2Block,
                         kw=dict(c=c, groups=g), cin=c, macs=BLOCKS * hw * c * c // g))
    if "g3" in only:
      c = _ch(math.sqrt(k) / 4) * 4
      for n, par in ((1, False), (2, False), (4, False), (2, True), (4, True)):
        label = "1-fragment" if n == 1 else f"{n}-fragment-{'parallel' if par else 'series'}"
        if par or n == 1:
          rows.append(dict(exp="g3", cell=f"×{s}", label=label, cfg=f"c={c}", block=G3Block,
                           kw=dict(c=c, fragments=n, parallel=par), cin=c,
                           macs=BLOCKS * hw * c * (c // n) * n))
        else:
          cs = _ch(c / math.sqrt(n))
          rows.append(dict(exp="g3", cell=f"×{s}", label=label, cfg=f"c={cs}", block=G3Block,
                           kw=dict(c=cs, fragments=n, parallel=False), cin=cs, macs=BLOCKS * hw * cs * cs * n))
  if "g4" in only:
    for c in (32, 64, 128):
      for relu, sc in ((True, True), (False, True), (True, False), (False, False)):
        label = f"ReLU {'yes' if relu else 'no'}, shortcut {'yes' if sc else 'no'}"
        rows.append(dict(exp="g4", cell=f"c={c}", label=label, cfg=f"{4 * c}→{c}→{c}→{4 * c}", block=G4Block,
                         kw=dict(c=c, relu=relu, shortcut=sc), cin=4 * c,
                         macs=BLOCKS * hw * (4 * c * c * 2 + 9 * c * c)))
  return rows


def _compile(row, batch):
  model = Stack(row["block"], row["kw"])
  x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, SIZE, SIZE, row["cin"])), jnp.float32)
  v = jax.jit(model.init)(jax.random.key(0), x[:1])
  fn = jax.jit(model.apply).lower(v, x).compile()
  fn(v, x).block_until_ready()
  return lambda: fn(v, x).block_until_ready()


def measure(rows, batches, rounds, iters, max_gmac=float("inf")) -> list[dict]:
  out = []
  cells = {}
  for r in rows:
    cells.setdefault((r["exp"], r["cell"]), []).append(r)
  for (exp, cell), group in cells.items():
    for b in batches:
      if b > 1 and max(r["macs"] for r in group) * b > max_gmac * 1e9:
        continue
      fns = [_compile(r, b) for r in group]
      times = [[] for _ in group]
      for _ in range(rounds):
        for i, fn in enumerate(fns):
          for _ in range(iters):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
      for r, ts in zip(group, times):
        med = statistics.median(ts)
        out.append(dict(exp=exp, cell=cell, label=r["label"], config=r["cfg"], batch=b, macs_per_image=r["macs"],
                        ms=round(med * 1e3, 3), images_per_s=round(b / med, 2), calls=len(ts)))
        print(f"{exp} {cell:>6} batch {b}: {r['label']:<32} {r['cfg']:<16} {med * 1e3:9.2f} ms "
              f"{b / med:9.1f} img/s  ({r['macs'] / 1e6:.0f} MMAC/img)", flush=True)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--only", nargs="+", default=["g1", "g2", "g3", "g4"], choices=["g1", "g2", "g3", "g4"])
  p.add_argument("--batch", nargs="+", type=int, default=[1, 8])
  p.add_argument("--rounds", type=int, default=5, help="alternation rounds per cell")
  p.add_argument("--iters", type=int, default=2, help="timed calls per row and round")
  p.add_argument("--max-gmac", type=float, default=9.0,
                 help="skip a cell at batch > 1 when one call would exceed this many GMAC (CPU time)")
  p.add_argument("--out", default=DEFAULT_OUT, help="results JSON (read by jaxgen.tables.shufflenet_guidelines)")
  a = p.parse_args(argv)
  load_before = _load()
  t0 = time.time()
  started = datetime.datetime.now(datetime.timezone.utc)
  rows = measure(experiments(tuple(a.only)), a.batch, a.rounds, a.iters, a.max_gmac)
  result = dict(
      benchmark="benchmarks/shufflenet_guidelines.py", argv=sys.argv[1:],
      date=started.strftime("%Y-%m-%d %H:%M UTC"),
      finished=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      machine=dict(cpu=cpu_name(), cores=os.cpu_count(), platform=platform.platform(),
                   jax_device=str(jax.devices()[0].device_kind), backend=jax.default_backend()),
      jax=jax.__version__, load_before=load_before, load_after=_load(), wall_s=round(time.time() - t0, 1),
      blocks=BLOCKS, size=SIZE, base_channels=BASE, rounds=a.rounds, iters=a.iters, max_gmac=a.max_gmac,
      rows=rows)
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  tmp = a.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, a.out)
  print(f"wrote {a.out} (load {load_before} → {result['load_after']}, {result['wall_s']} s)")


if __name__ == "__main__":
  main()
