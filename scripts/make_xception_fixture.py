"""Writes tests/fixtures/xception/tiny_xception.npz: a narrow random timm ``legacy_xception`` and its outputs.

    /work/torchenv/bin/python scripts/make_xception_fixture.py      # torch + timm (pip install --no-deps timm)

The network is timm's ``Xception`` class (``timm.models.xception``, its ``forward`` unchanged) with 10
classes, whose layers are replaced by timm's own ``Block`` / ``SeparableConv2d`` at 1/16 of the channels
(jaxgen's ``width=1/16``: 2, 4, 8, 16, 45, 64, 96, 128 for 32, 64, 128, 256, 728, 1024, 1536, 2048) and with
block6–block11 set to ``nn.Identity`` (two middle-flow blocks: the converter maps the blocks it finds).
Random weights (timm's init, then random BatchNorm γ, β, running means, running variances in [0.01, 2]
and classifier bias), eval mode. Input 75×75: entry block 2's max pool then sees an even 18×18 map, where
timm's symmetric pool padding and Keras' "SAME" differ (as at 299², where it sees 74×74).

Saved: ``pth`` (the bytes of ``torch.save(state_dict)``), ``x`` [2, 75, 75, 3] NHWC network input in
[−1, 1], ``logits`` [2, 10], ``versions`` (JSON).
"""

import io
import json
import os
import sys

import numpy as np
import timm
import torch
from timm.models.xception import Block, SeparableConv2d
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
                   "xception", "tiny_xception.npz")
W, RES, CLASSES = 1 / 16, 75, 10


def w(c):
  return max(1, int(c * W))


def tiny_xception():
  net = timm.create_model("legacy_xception", pretrained=False, num_classes=CLASSES)
  net.conv1 = nn.Conv2d(3, w(32), 3, 2, 0, bias=False)
  net.bn1 = nn.BatchNorm2d(w(32))
  net.conv2 = nn.Conv2d(w(32), w(64), 3, bias=False)
  net.bn2 = nn.BatchNorm2d(w(64))
  net.block1 = Block(w(64), w(128), 2, 2, start_with_relu=False)
  net.block2 = Block(w(128), w(256), 2, 2)
  net.block3 = Block(w(256), w(728), 2, 2)
  net.block4 = Block(w(728), w(728), 3, 1)
  net.block5 = Block(w(728), w(728), 3, 1)
  for i in range(6, 12):
    setattr(net, f"block{i}", nn.Identity())
  net.block12 = Block(w(728), w(1024), 2, 2, grow_first=False)
  net.conv3 = SeparableConv2d(w(1024), w(1536), 3, 1, 1)
  net.bn3 = nn.BatchNorm2d(w(1536))
  net.conv4 = SeparableConv2d(w(1536), w(2048), 3, 1, 1)
  net.bn4 = nn.BatchNorm2d(w(2048))
  net.fc = nn.Linear(w(2048), CLASSES)
  return net.eval()


def main():
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  net = tiny_xception()
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        c = m.num_features
        m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
        m.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, c).astype(np.float32)))
        m.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.2, c).astype(np.float32)))
        m.running_var.copy_(torch.from_numpy(rng.uniform(0.01, 2.0, c).astype(np.float32)))
    net.fc.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, CLASSES).astype(np.float32)))
  x = rng.uniform(-1, 1, size=(2, RES, RES, 3)).astype(np.float32)
  with torch.no_grad():
    logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy().astype(np.float32)
  buf = io.BytesIO()
  torch.save(net.state_dict(), buf)
  versions = {"torch": torch.__version__, "timm": timm.__version__, "width": W, "middle_blocks": 2,
              "resolution": RES, "num_classes": CLASSES}
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, pth=np.frombuffer(buf.getvalue(), np.uint8), x=x, logits=logits,
                      versions=np.asarray(json.dumps(versions)))
  print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e3:.0f} kB); logits std {logits.std():.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
