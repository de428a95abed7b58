"""Builds a tiny diffusers ``UNet2DModel`` in google/ddpm-cifar10-32's configuration with random weights and
saves it as ``diffusion_pytorch_model.safetensors`` plus inputs/outputs for
tests/convert/test_ddpm_convert.py.

    pip install diffusers safetensors      (the official module and file format)
    python scripts/make_ddpm_fixture.py [--out tests/fixtures/ddpm]

The configuration is google/ddpm-cifar10-32's ``config.json`` (act silu, attention_head_dim null = one head,
downsample_padding 0, flip_sin_to_cos false, freq_shift 1, norm_eps 1e-6, norm_num_groups 32,
mid_block_scale_factor 1, positional time embedding, attention in the second down block and the matching
up block) scaled down: 16², block_out_channels (32, 64), layers_per_block 1.

Weights are redrawn (N(0, 1/fan_in); GroupNorm scales 1 + N(0, 0.1²); biases N(0, 0.1²)), rounded to
float16 and stored as F16 in the safetensors file (half the size; the converter widens F16/BF16 to float32,
the reference output is computed in float32 from the same rounded weights, so the rounding is not part of
the comparison). ``io.npz``: x [B,3,16,16] (NCHW), t [B] (integer DDPM steps), eps (the network output).
``config.json``: the module's diffusers config (beside the weights, as in a diffusers repository).
``released_shapes.json``: the state-dict shapes of the full google/ddpm-cifar10-32 network (meta device).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

CONFIG = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
              down_block_types=("DownBlock2D", "AttnDownBlock2D"),
              up_block_types=("AttnUpBlock2D", "UpBlock2D"), act_fn="silu", attention_head_dim=None,
              downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, norm_num_groups=32,
              mid_block_scale_factor=1, center_input_sample=False, time_embedding_type="positional")


# google/ddpm-cifar10-32's config.json (the fields that shape the network).
RELEASED = dict(CONFIG, sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


def released_shapes(out):
  """State-dict shapes and parameter count of the full google/ddpm-cifar10-32 network (meta device)."""
  import json
  from diffusers import UNet2DModel
  with torch.device("meta"):
    net = UNet2DModel(**RELEASED)
  row = dict(shapes={k: list(v.shape) for k, v in net.state_dict().items()},
             num_params=sum(p.numel() for p in net.parameters()))
  with open(os.path.join(out, "released_shapes.json"), "w") as f:
    json.dump(row, f, indent=0, sort_keys=True)
  print(f"google/ddpm-cifar10-32 layout: {row['num_params']:,} parameters")


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ddpm"))
  args = ap.parse_args()
  from diffusers import UNet2DModel
  from safetensors.torch import save_file

  os.makedirs(args.out, exist_ok=True)
  torch.manual_seed(0)
  net = UNet2DModel(**CONFIG).eval().requires_grad_(False)
  g = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in net.named_parameters():
      if p.ndim >= 2:
        p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(np.prod(p.shape[1:])))
      elif name.endswith("weight"):
        p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=g))
      p.copy_(p.half().float())
  x = torch.randn([3, 3, 16, 16], generator=g)
  t = torch.tensor([0, 417, 999])
  with torch.no_grad():
    eps = net(x, t).sample
  sd = {k: v.half().contiguous() for k, v in net.state_dict().items()}
  path = os.path.join(args.out, "diffusion_pytorch_model.safetensors")
  save_file(sd, path, metadata={"format": "pt"})
  np.savez(os.path.join(args.out, "io.npz"), x=x.numpy(), t=t.numpy(), eps=eps.numpy())
  with open(os.path.join(args.out, "config.json"), "w") as f:   # as a diffusers repository has it
    json.dump(dict(net.config), f, indent=2, sort_keys=True, default=list)
  n = sum(p.numel() for p in net.parameters())
  print(f"{n:,} parameters; {os.path.getsize(path):,} bytes; |eps| max {eps.abs().max():.3f}")
  released_shapes(args.out)


if __name__ == "__main__":
  main()
