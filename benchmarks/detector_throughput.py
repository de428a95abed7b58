"""ThunderNet inference throughput: images/s at 320×320, batch 1 and 8 (docs/thundernet.md).

  python benchmarks/detector_throughput.py                                  # SNet49/146/535, batch 1 and 8
  python benchmarks/detector_throughput.py --models thundernet_snet49 --batch 1 --parts
  python benchmarks/detector_throughput.py --depthwise xla shift            # compare depthwise formulations
  python benchmarks/detector_throughput.py --torch      # PyTorch, backbone+RPN only

One jitted program per (model, batch, depthwise formulation): the whole detector as deployed — SNet, CEM,
RPN, SAM, 200 proposals (top 2000 → NMS 0.7), PSRoI align, R-CNN, and the final per-class NMS
(``jaxgen.detection.postprocess.detections``, VOC: 20 classes, score > 0.05, 100 detections). Reported:
compile seconds, median and best milliseconds per batch over ``--iters`` timed calls after ``--warmup``
calls (on a shared machine the best is the better estimate of the uncontended time), images/s = batch /
median (and / best), and GMAC/s from ``jaxgen.flops``. ``--parts`` also times the backbone+RPN alone
(``method='backbone_rpn'``) and the rest (proposals, PSRoI align, R-CNN, final NMS) by difference of the best
times. Numbers are measurements, never asserted by tests; the paper's CPU anchor is 47.3 fps for
ThunderNet-SNet49 on an Intel Xeon CPU (docs/reference.md §5).

``--torch`` (run with a Python that has torch; jax is not imported then) times the same backbone+RPN part
(SNet, CEM, RPN, SAM; eval mode, ``torch.inference_mode``, NCHW float32) written in plain PyTorch here, with
``torch.set_num_threads(--threads or os.cpu_count())``, as the CPU reference for ``backbone_rpn_ms``. PSRoI
align and NMS need torchvision and are left out.

``--depthwise`` picks the formulation of the depthwise convolutions: ``auto`` (this script's default: shift on
CPU, XLA's grouped convolution elsewhere), ``xla`` (the model's default) or ``shift``. ``shift`` runs the same variables with every
depthwise convolution computed as a sum of k·k shifted, per-channel-scaled copies of the input
(``shift_depthwise``), which XLA's CPU backend fuses into one loop instead of its grouped-convolution path. It
is applied with ``flax.linen.intercept_methods`` to ``nn.Conv`` calls whose ``feature_group_count`` equals the
input channels, so the module and its parameters are unchanged; ``ThunderNet(depthwise='shift')`` applies the
same interception inside the model (``jaxgen.models.thundernet.shift_depthwise``)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

MODELS = ("thundernet_snet49", "thundernet_snet146", "thundernet_snet535")


def _timed(compiled, args, iters: int, warmup: int, sync=None) -> tuple[float, float]:
  if sync is None:
    import jax
    sync = jax.block_until_ready
  for _ in range(warmup):
    sync(compiled(*args))
  times = []
  for _ in range(iters):
    t = time.perf_counter()
    sync(compiled(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times), min(times)


def detector_fn(module, resolution: int):
  import jax

  from jaxgen.detection.postprocess import detections

  def run(variables, x):
    out = module.apply(variables, x)
    det = jax.vmap(lambda c, b, r, v: detections(c, b, r, (resolution, resolution), roi_valid=v))(
        out["cls_logits"], out["box_deltas"], out["rois"], out["roi_valid"])
    return det
  return run


def measure(name: str, batch: int, resolution: int, depthwise: str, iters: int, warmup: int,
            parts: bool) -> dict:
  import jax
  import jax.numpy as jnp

  import jaxgen.models as models
  from jaxgen import flops

  module = models.create(name, depthwise=depthwise)
  x = jax.random.normal(jax.random.key(0), (batch, resolution, resolution, 3), jnp.float32)
  variables = jax.jit(module.init)(jax.random.key(1), x[:1])
  t0 = time.perf_counter()
  compiled = jax.jit(detector_fn(module, resolution)).lower(variables, x).compile()
  compile_s = time.perf_counter() - t0
  med, best = _timed(compiled, (variables, x), iters, warmup)
  macs = flops.count_macs(name, resolution)
  row = {"model": name, "batch": batch, "resolution": resolution, "depthwise": depthwise,
         "compile_s": round(compile_s, 1), "ms_per_batch": round(med * 1e3, 1),
         "images_per_s": round(batch / med, 1), "best_ms": round(best * 1e3, 1),
         "images_per_s_best": round(batch / best, 1), "gmacs_per_s": round(macs * batch / med / 1e9, 2),
         "device": str(jax.devices()[0].device_kind), "cpus": os.cpu_count()}
  if parts:
    rpn = jax.jit(lambda v, x: module.apply(v, x, method="backbone_rpn")).lower(variables, x).compile()
    med_rpn, best_rpn = _timed(rpn, (variables, x), iters, warmup)
    row.update(backbone_rpn_ms=round(med_rpn * 1e3, 1), backbone_rpn_best_ms=round(best_rpn * 1e3, 1),
               rest_best_ms=round((best - best_rpn) * 1e3, 1))
  return row


def _snet_configs() -> dict:
  """``jaxgen.models.snet.SNET_CONFIGS`` read from the source (importing jaxgen.models needs jax and flax,
  which a torch-only Python lacks)."""
  import ast
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jaxgen", "models", "snet.py")
  for node in ast.parse(open(path, encoding="utf-8").read()).body:
    if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SNET_CONFIGS":
      return ast.literal_eval(node.value)
  raise RuntimeError(f"SNET_CONFIGS not found in {path}")


def torch_backbone_rpn(name: str):
  """SNet + CEM + RPN + SAM of ThunderNet-``name`` in plain PyTorch (the layers of jaxgen/models/snet.py and
  thundernet.py; random weights, eval mode)."""
  import torch
  from torch import nn

  stem, stages, conv5 = _snet_configs()[name]

  def cbr(cin, cout, k=1, s=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)

  class Unit(nn.Module):
    def __init__(self, cin, out, stride):
      super().__init__()
      self.stride = stride
      branch_in, mid = (cin, out // 2) if stride == 2 else (out // 2, out // 2)
      main_out = out - cin if stride == 2 else out - out // 2
      self.main = nn.Sequential(cbr(branch_in, mid), cbr(mid, mid, 5, stride, mid, relu=False),
                                cbr(mid, main_out))
      if stride == 2:
        self.proj = nn.Sequential(cbr(cin, cin, 5, 2, cin, relu=False), cbr(cin, cin))

    def forward(self, x):
      if self.stride == 2:
        return torch.cat([self.proj(x), self.main(x)], 1)
      keep, x = x[:, 0::2], x[:, 1::2]
      return torch.cat([keep, self.main(x)], 1)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem = nn.Sequential(cbr(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1))
      blocks, cin = [], stem
      for out, reps in zip(stages, (4, 8, 4)):
        units = [Unit(cin if i == 0 else out, out, 2 if i == 0 else 1) for i in range(reps)]
        blocks.append(nn.Sequential(*units))
        cin = out
      self.s2, self.s3, self.s4 = blocks
      self.conv5 = cbr(cin, conv5) if conv5 else nn.Identity()
      c5 = conv5 or cin
      self.cem4, self.cem5, self.glb = (nn.Conv2d(c, 245, 1) for c in (stages[1], c5, c5))
      self.rpn = nn.Sequential(cbr(245, 245, 5, 1, 245), cbr(245, 256))
      self.cls, self.reg = nn.Conv2d(256, 25, 1), nn.Conv2d(256, 100, 1)
      self.sam = cbr(256, 245, relu=False)

    def forward(self, x):
      c4 = self.s3(self.s2(self.stem(x)))
      c5 = self.conv5(self.s4(c4))
      f = self.cem4(c4) + nn.functional.interpolate(self.cem5(c5), size=c4.shape[2:], mode="nearest")
      f = f + self.glb(c5.mean((2, 3), keepdim=True))
      r = self.rpn(f)
      return self.cls(r), self.reg(r), f * torch.sigmoid(self.sam(r))

  return Net().eval()


def measure_torch(name: str, batch: int, resolution: int, iters: int, warmup: int, threads: int) -> dict:
  import torch
  torch.set_num_threads(threads)
  net = torch_backbone_rpn(name.replace("thundernet_", ""))
  x = torch.randn(batch, 3, resolution, resolution)
  with torch.inference_mode():
    med, best = _timed(net, (x,), iters, warmup, sync=lambda o: o)
  return {"model": name, "batch": batch, "resolution": resolution, "framework": f"torch {torch.__version__}",
          "backbone_rpn_ms": round(med * 1e3, 1), "backbone_rpn_best_ms": round(best * 1e3, 1),
          "threads": threads, "cpus": os.cpu_count()}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=list(MODELS))
  p.add_argument("--batch", nargs="+", type=int, default=[1, 8])
  p.add_argument("--resolution", type=int, default=320)
  p.add_argument("--depthwise", nargs="+", default=["auto"], choices=["auto", "xla", "shift"])
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--parts", action="store_true", help="also time backbone+RPN alone")
  p.add_argument("--torch", action="store_true", help="time the PyTorch backbone+RPN instead (needs torch)")
  p.add_argument("--threads", type=int, default=0, help="torch threads (default: all CPUs)")
  args = p.parse_args(argv)
  rows = []
  if args.torch:
    for name in args.models:
      for batch in args.batch:
        threads = args.threads or os.cpu_count()
        row = measure_torch(name, batch, args.resolution, args.iters, args.warmup, threads)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows
  for name in args.models:
    for batch in args.batch:
      for dw in args.depthwise:
        row = measure(name, batch, args.resolution, dw, args.iters, args.warmup, args.parts)
        print(json.dumps(row), flush=True)
        rows.append(row)
  return rows


if __name__ == "__main__":
  main()
