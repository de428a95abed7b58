"""Runs torchvision's own classification networks with synthetic weights and saves what
tests/convert/test_torchvision.py compares jaxgen's converted networks against.

    /work/torchenv/bin/python scripts/make_torchvision_fixture.py [--out tests/fixtures]

Needs torch and torchvision (the 'convert' extra; torchvision 0.29.1 made the committed fixture). The
networks are torchvision's default builders (``torchvision.models.<name>(weights=None)``: full width, 1000
classes, GoogLeNet with its auxiliary heads and ``transform_input=True`` as its released weights), in eval
mode. Their weights are ``jaxgen.convert.torchvision.synthetic_state_dict(shapes, seed)``: random convs and
linears plus non-trivial BatchNorm running statistics, drawn from PCG64's raw bit stream so the test rebuilds
the same tensors from the shapes alone; the fixture therefore holds no weights and stays small.

``torchvision_nets.npz`` holds, per case ``<name>``: ``<name>/shapes`` (JSON {state-dict key: shape}, in
state-dict order), ``<name>/checksum`` (Σ|w| over the state dict, float64: the test's guard that it rebuilt the
same weights), ``<name>/logits`` (float32 [B, 1000]), and the shared ``images`` (uint8 [B, 72, 72, 3]; torch
sees ``Normalize(mean, std)`` of ``images/255``, jaxgen ``images/127.5 − 1``; 72 = 9·8 so the later stages
have odd sizes, where stride-2 padding and ceil-mode pooling differ if they are wrong), and
``googlenet/aux{1,2}_<side>``: torchvision's eval-mode auxiliary heads on ``synthetic_array`` feature maps
(``AUX_INPUTS``; they run only in training inside the network).

``torchvision_pth.npz`` checks jaxgen's torch-free reader of ``torch.save`` files: ``pth`` and ``pth_legacy``
(the bytes of a ``torch.save`` in the zip and in the pre-1.6 legacy format of a small state dict with float32, float16, bfloat16, int64 and bool tensors, a transposed
(non-contiguous) view and two views of one storage) and ``ref/<key>`` (each tensor as float32/int numpy).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxgen.convert.torchvision import synthetic_array, synthetic_state_dict  # noqa: E402  (numpy only)

SEED = 0
RESOLUTION = 72
BATCH = 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CASES = {
    "mobilenet_v2": dict(),
    "mobilenet_v3_large": dict(),
    "mobilenet_v3_small": dict(),
    "shufflenet_v2_x0_5": dict(),
    "shufflenet_v2_x1_0": dict(),
    "googlenet": dict(aux_logits=True, transform_input=True, init_weights=False),
}
# GoogLeNet aux head inputs: (channels, side) — 14 is the 224² network's 4a/4d map (adaptive pooling with
# overlapping 4-wide cells), 9 an odd side, 8 the divisible case
AUX_INPUTS = {"aux1_14": (512, 14), "aux1_9": (512, 9), "aux2_8": (528, 8)}


def make_images() -> np.ndarray:
  rng = np.random.default_rng(1234)
  # smooth random images (a coarse grid upsampled) plus noise: natural-ish statistics, full [0, 255] range
  coarse = rng.uniform(0, 255, (BATCH, 9, 9, 3))
  up = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
  return np.clip(up + rng.normal(0, 20, up.shape), 0, 255).astype(np.uint8)


def torch_input(images: np.ndarray) -> torch.Tensor:
  x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
  return torchvision.transforms.functional.normalize(x, MEAN, STD)


def run_case(name: str, kwargs: dict, images: np.ndarray) -> dict[str, np.ndarray]:
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
  shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
  sd = synthetic_state_dict(shapes, SEED)
  net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
  with torch.no_grad():
    logits = net(torch_input(images)).numpy()
  checksum = sum(float(np.abs(v.astype(np.float64)).sum()) for v in sd.values())
  extra = {}
  if name == "googlenet":   # the auxiliary heads (eval mode) on synthetic 4a/4d feature maps, NCHW
    for key, (c, n) in AUX_INPUTS.items():
      feat = synthetic_array(SEED, f"googlenet/{key}", (BATCH, c, n, n), 0.0, 2.0)
      with torch.no_grad():
        extra[f"googlenet/{key}"] = getattr(net, key.split("_")[0])(torch.from_numpy(feat)).numpy()
  print(f"{name}: {sum(int(np.prod(s)) for k, s in shapes.items() if 'running' not in k and 'num_batches' not in k):,}"
        f" params, logits std {logits.std():.3f}, argmax {logits.argmax(-1).tolist()}")
  return {f"{name}/shapes": np.asarray(json.dumps(shapes)), f"{name}/checksum": np.float64(checksum),
          f"{name}/logits": logits.astype(np.float32), **extra}


def make_pth() -> dict[str, np.ndarray]:
  g = torch.Generator().manual_seed(0)
  base = torch.randn(6, 4, generator=g)
  shared = torch.randn(10, generator=g)
  sd = {"conv.weight": torch.randn(3, 2, 3, 3, generator=g), "half": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(), "bn.num_batches_tracked": torch.tensor(17),
        "mask": torch.tensor([True, False, True]), "transposed": base.t(),
        "view_a": shared[2:6], "view_b": shared[5:].view(5, 1)}
  buf, legacy = io.BytesIO(), io.BytesIO()
  torch.save(sd, buf)
  torch.save(sd, legacy, _use_new_zipfile_serialization=False)   # the format of torchvision's older files
  out = {"pth": np.frombuffer(buf.getvalue(), np.uint8), "pth_legacy": np.frombuffer(legacy.getvalue(), np.uint8)}
  for k, v in sd.items():
    out[f"ref/{k}"] = v.float().numpy() if v.is_floating_point() else v.numpy()
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
  args = ap.parse_args()
  torch.set_num_threads(1)
  images = make_images()
  out = {"images": images, "meta": np.asarray(json.dumps(dict(
      torch=torch.__version__, torchvision=torchvision.__version__, seed=SEED, cases=CASES)))}
  for name, kw in CASES.items():
    out.update(run_case(name, kw, images))
  np.savez_compressed(os.path.join(args.out, "torchvision_nets.npz"), **out)
  np.savez_compressed(os.path.join(args.out, "torchvision_pth.npz"), **make_pth())


if __name__ == "__main__":
  main()
