"""Writes tests/fixtures/lpips/tiny_lpips.npz: a tiny random LPIPS-VGG computed in PyTorch.

    python scripts/make_lpips_fixture.py      # torch (CPU) and numpy; no torchvision

The network is torchvision's ``vgg16().features`` layout written out in plain torch (``nn.Sequential`` named
``features`` so the state-dict keys are torchvision's, ``features.{i}.weight``), with the block widths cut to
(4, 8, 8, 16, 16) to keep the file small, random weights (He-normal kernels so the deep taps do not
vanish, small non-zero biases) and the lpips package's metric on top, rebuilt from its
``lpips/lpips.py`` (v0.1): ScalingLayer (x − shift) / scale; taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; each tap divided by
(sqrt(Σ_c f²) + 1e-10); squared difference; ``NetLinLayer`` = Dropout + bias-free 1×1 conv to 1 channel
(state key ``lin{l}.model.1.weight``), random non-negative weights; spatial mean; sum over the five layers.
Saved: ``vgg/<key>`` and ``lin/<key>`` (torch layout), ``x``/``y`` [2, 32, 32, 3] NHWC in [−1, 1],
``d`` [2] and ``per_layer`` [5, 2] (float32), ``widths``.
"""

import os

import numpy as np
import torch
from torch import nn

WIDTHS = (4, 8, 8, 16, 16)
DEPTHS = (2, 2, 3, 3, 3)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "lpips",
                   "tiny_lpips.npz")


def vgg16_features(widths):
  """torchvision's vgg16 ``features`` list: [conv, relu] × depth per block, max pool after each block."""
  layers, cin = [], 3
  for width, depth in zip(widths, DEPTHS):
    for _ in range(depth):
      layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=False)]
      cin = width
    layers.append(nn.MaxPool2d(2, 2))
  return nn.Sequential(*layers)


class TinyLPIPS(nn.Module):
  def __init__(self, widths):
    super().__init__()
    self.features = vgg16_features(widths)
    self.register_buffer("shift", torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1))
    self.register_buffer("scale", torch.tensor([.458, .448, .450]).view(1, 3, 1, 1))
    self.lins = nn.ModuleList(nn.Sequential(nn.Dropout(), nn.Conv2d(w, 1, 1, bias=False)) for w in widths)
    # the relu after the last conv of each block (torchvision indices 3, 8, 15, 22, 29)
    self.taps = {3, 8, 15, 22, 29}

  def tap_features(self, x):
    out = []
    for i, layer in enumerate(self.features):
      x = layer(x)
      if i in self.taps:
        out.append(x)
      if len(out) == len(self.taps):
        break
    return out

  def forward(self, x, y):
    fx = self.tap_features((x - self.shift) / self.scale)
    fy = self.tap_features((y - self.shift) / self.scale)
    per_layer = []
    for a, b, lin in zip(fx, fy, self.lins):
      a = a / (torch.sqrt(torch.sum(a ** 2, dim=1, keepdim=True)) + 1e-10)
      b = b / (torch.sqrt(torch.sum(b ** 2, dim=1, keepdim=True)) + 1e-10)
      per_layer.append(lin((a - b) ** 2).mean(dim=(2, 3)).view(-1))
    per_layer = torch.stack(per_layer)
    return per_layer.sum(0), per_layer


def main():
  torch.manual_seed(0)
  net = TinyLPIPS(WIDTHS).eval()
  with torch.no_grad():
    for m in net.features:
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        m.bias.uniform_(-0.05, 0.05)
    for lin in net.lins:
      lin[1].weight.uniform_(0.0, 1.0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    d, per_layer = net(x, y)
  arrays = {f"vgg/{k}": v.numpy() for k, v in net.features.state_dict().items()}
  arrays = {k.replace("vgg/", "vgg/features."): v for k, v in arrays.items()}
  arrays.update({f"lin/lin{i}.model.1.weight": lin[1].weight.detach().numpy()
                 for i, lin in enumerate(net.lins)})
  arrays.update(x=x.permute(0, 2, 3, 1).numpy(), y=y.permute(0, 2, 3, 1).numpy(), d=d.numpy(),
                per_layer=per_layer.numpy(), widths=np.asarray(WIDTHS))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, **arrays)
  print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes); d = {d.numpy()}")


if __name__ == "__main__":
  main()
