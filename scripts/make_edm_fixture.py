"""Builds EDM's own networks (NVlabs/edm ``training/networks.py``) with random weights, pickles them the way
EDM's training loop does, and saves inputs and denoiser outputs for tests/convert/test_edm_convert.py.

    git clone --bare https://github.com/NVlabs/edm edm.git     (the source is not vendored)
    python scripts/make_edm_fixture.py --repo GITDIR [--out tests/fixtures/edm]

The official ``dnnlib``, ``torch_utils`` and ``training`` packages are written from the repository
(``git show HEAD:<file>``) into a temporary directory and imported from there, so the pickles carry EDM's
``torch_utils.persistence`` records with the embedded module source exactly as released snapshots do
(``dict(ema=net, loss_fn=..., augment_pipe=..., dataset_kwargs=...)``; training_loop.py). ``dnnlib/util.py``
imports ``requests`` for downloads only; a stub module stands in for it.

Cases (tiny: 16², 8/16 channels, one block per level; float32, eval mode):

  ddpmpp_vp_cond_aug   VPPrecond(SongUNet DDPM++), label_dim 10, augment_dim 9, attention at 8²
  ncsnpp_ve            VEPrecond(SongUNet NCSN++: Fourier embedding, residual encoder, [1,3,3,1] FIR)
  adm_edm_cond_aug     EDMPrecond(DhariwalUNet), label_dim 10, augment_dim 9 (16 channels: DhariwalUNet's
                       64 channels per head give no attention head below 64 channels, and a 64-channel
                       level would make the pickle > 2 MB; its attention is the UNetBlock's, checked by
                       the SongUNet cases and by block_heads2)
  adm_iddpm            iDDPMPrecond(DhariwalUNet), unconditional (EDM's baseline ADM pickles: learned-variance
                       output of 2× the channels, c_noise from the nearest of the 1000 u_j)
  block_heads2         one EDM UNetBlock with num_heads=2 (multi-head channel layout), state dict only

and ``released_shapes.json``: the constructor kwargs and state-dict shapes of the released networks
(edm-{cifar10-32x32-{cond-vp,uncond-ve}, ffhq-64x64-uncond-vp, afhqv2-64x64-uncond-ve,
imagenet-64x64-cond-adm}.pkl, from train.py's settings in EDM's README), built on torch's meta device.

All parameters are redrawn (weights N(0, 1/fan_in), GroupNorm scales 1 + N(0, 0.1²), biases N(0, 0.1²)),
so the zero-initialised output layers carry signal; NCSN++'s Fourier frequencies keep EDM's randn·16.
Each case writes ``<case>.pkl`` and ``<case>.npz`` with x, sigma, labels (one-hot), augment_labels and
D (the preconditioned denoiser's output; with and without class labels and augmentation labels).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import types

import numpy as np
import torch

from _upstream import import_sources  # scripts/_upstream.py

FILES = ["dnnlib/__init__.py", "dnnlib/util.py", "torch_utils/__init__.py", "torch_utils/persistence.py",
         "torch_utils/misc.py", "torch_utils/training_stats.py", "torch_utils/distributed.py",
         "training/__init__.py", "training/networks.py", "training/loss.py", "training/augment.py"]


def import_edm(repo: str, tmp: str):
  import_sources(repo, tmp, FILES)
  sys.modules.setdefault("requests", types.ModuleType("requests"))   # dnnlib.util's download helper only
  import dnnlib  # noqa: F401
  from training import augment, loss, networks
  return networks, loss, augment


def randomize(module: torch.nn.Module, seed: int):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      if p.ndim >= 2:
        fan_in = int(np.prod(p.shape[1:]))
        p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(fan_in))
      elif name.endswith("weight"):   # GroupNorm scale
        p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=g))


TINY = dict(img_resolution=16, img_channels=3, model_channels=8, channel_mult=[1, 2], num_blocks=1,
            attn_resolutions=[8], dropout=0.0)
CASES = {
    "ddpmpp_vp_cond_aug": ("VPPrecond", dict(TINY, model_type="SongUNet", label_dim=10, augment_dim=9,
                                            embedding_type="positional", encoder_type="standard",
                                            decoder_type="standard", channel_mult_noise=1,
                                            resample_filter=[1, 1])),
    "ncsnpp_ve": ("VEPrecond", dict(TINY, model_type="SongUNet", embedding_type="fourier",
                                    encoder_type="residual", decoder_type="standard", channel_mult_noise=2,
                                    resample_filter=[1, 3, 3, 1])),
    "adm_edm_cond_aug": ("EDMPrecond", dict(TINY, model_type="DhariwalUNet", label_dim=10, augment_dim=9)),
    "adm_iddpm": ("iDDPMPrecond", dict(TINY, model_type="DhariwalUNet")),
}
BATCH = 3


def make_case(networks, loss, augment, name, precond, kw, out, seed):
  torch.manual_seed(seed)
  net = getattr(networks, precond)(**kw).eval().requires_grad_(False)
  randomize(net, seed)
  g = torch.Generator().manual_seed(seed + 100)
  res, ch = kw["img_resolution"], kw["img_channels"]
  x = torch.randn([BATCH, ch, res, res], generator=g) * 2.0
  sigma = torch.tensor([0.05, 1.3, 30.0])
  arrays = {"x": x.numpy(), "sigma": sigma.numpy()}
  label_dim, aug_dim = kw.get("label_dim", 0), kw.get("augment_dim", 0)
  labels = None
  if label_dim:
    labels = torch.nn.functional.one_hot(torch.tensor([0, 3, 7]), label_dim).float()
  aug = torch.randn([BATCH, aug_dim], generator=g) if aug_dim else None
  with torch.no_grad():
    arrays["D"] = net(x, sigma, labels, augment_labels=aug).numpy()
    if label_dim:
      arrays["labels"] = labels.numpy()
      arrays["D_nolabels"] = net(x, sigma, None, augment_labels=aug).numpy()
    if aug_dim:
      arrays["augment_labels"] = aug.numpy()
      arrays["D_noaug"] = net(x, sigma, labels).numpy()
  loss_fn = {"VPPrecond": loss.VPLoss, "VEPrecond": loss.VELoss}.get(precond, loss.EDMLoss)()
  pipe = augment.AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)
  snapshot = dict(ema=net, loss_fn=loss_fn, augment_pipe=pipe if aug_dim else None,
                  dataset_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="tiny.zip"))
  with open(os.path.join(out, f"{name}.pkl"), "wb") as f:
    pickle.dump(snapshot, f)
  np.savez(os.path.join(out, f"{name}.npz"), **arrays)
  n = sum(p.numel() for p in net.parameters())
  print(f"{name}: {n:,} parameters, |D| max {np.abs(arrays['D']).max():.3f}, "
        f"pkl {os.path.getsize(os.path.join(out, name + '.pkl')):,} bytes")


def make_block(networks, out, seed=7):
  """An attention UNetBlock with two heads of 8 channels (the channel layout of EDM's qkv reshape)."""
  torch.manual_seed(seed)
  blk = networks.UNetBlock(in_channels=8, out_channels=16, emb_channels=12, attention=True, num_heads=2,
                           skip_scale=np.sqrt(0.5), eps=1e-6).eval().requires_grad_(False)
  randomize(blk, seed)
  g = torch.Generator().manual_seed(seed + 1)
  x = torch.randn([2, 8, 4, 4], generator=g)
  emb = torch.randn([2, 12], generator=g)
  with torch.no_grad():
    y = blk(x, emb)
  sd = {f"sd/{k}": v.numpy() for k, v in blk.state_dict().items()}
  np.savez(os.path.join(out, "block_heads2.npz"), x=x.numpy(), emb=emb.numpy(), y=y.numpy(), **sd)
  print(f"block_heads2: |y| max {y.abs().max():.3f}")


DDPMPP = dict(model_type="SongUNet", embedding_type="positional", encoder_type="standard",
              decoder_type="standard", channel_mult_noise=1, resample_filter=[1, 1], model_channels=128,
              channel_mult=[2, 2, 2])
NCSNPP = dict(model_type="SongUNet", embedding_type="fourier", encoder_type="residual",
              decoder_type="standard", channel_mult_noise=2, resample_filter=[1, 3, 3, 1], model_channels=128,
              channel_mult=[2, 2, 2])
ADM = dict(model_type="DhariwalUNet", model_channels=192, channel_mult=[1, 2, 3, 4])
# The released networks' constructor arguments: train.py's --arch/--precond/--cres/--dropout/--augment/--fp16
# settings of the README's table (augment > 0 sets augment_dim=9).
RELEASED = {
    "edm-cifar10-32x32-cond-vp": ("VPPrecond", dict(DDPMPP, img_resolution=32, img_channels=3, label_dim=10,
                                                    augment_dim=9, dropout=0.13, use_fp16=False)),
    "edm-cifar10-32x32-uncond-ve": ("VEPrecond", dict(NCSNPP, img_resolution=32, img_channels=3, label_dim=0,
                                                      augment_dim=9, dropout=0.13, use_fp16=False)),
    "edm-ffhq-64x64-uncond-vp": ("VPPrecond", dict(DDPMPP, channel_mult=[1, 2, 2, 2], img_resolution=64,
                                                   img_channels=3, label_dim=0, augment_dim=9, dropout=0.05,
                                                   use_fp16=False)),
    "edm-afhqv2-64x64-uncond-ve": ("VEPrecond", dict(NCSNPP, channel_mult=[1, 2, 2, 2], img_resolution=64,
                                                     img_channels=3, label_dim=0, augment_dim=9, dropout=0.25,
                                                     use_fp16=False)),
    "edm-imagenet-64x64-cond-adm": ("EDMPrecond", dict(ADM, img_resolution=64, img_channels=3, label_dim=1000,
                                                       dropout=0.10, use_fp16=True)),
}


def released_shapes(networks, out):
  """Constructor kwargs, state-dict shapes and parameter counts of the released networks, built on the
  meta device (no memory, no weights): ``released_shapes.json``."""
  import json
  rows = {}
  for name, (precond, kw) in RELEASED.items():
    # The precond's constructor evaluates σ(t) with .item(), impossible on meta: build its network as
    # VPPrecond/VEPrecond/EDMPrecond do (model_type, img_channels → in/out_channels; use_fp16 stays).
    net_kw = {k: v for k, v in kw.items() if k not in ("model_type", "img_channels", "use_fp16")}
    net_kw.update(in_channels=kw["img_channels"], out_channels=kw["img_channels"])
    with torch.device("meta"):
      net = getattr(networks, kw["model_type"])(**net_kw)
    rows[name] = dict(precond_class=precond, precond_kwargs=dict(kw), net_class=kw["model_type"],
                      net_kwargs=dict(net.init_kwargs),
                      shapes={k: list(v.shape) for k, v in net.state_dict().items()},
                      num_params=sum(p.numel() for p in net.parameters()))
    print(f"{name}: {rows[name]['num_params']:,} parameters")
  with open(os.path.join(out, "released_shapes.json"), "w") as f:
    json.dump(rows, f, indent=0, sort_keys=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repo", required=True,
                  help="a git clone of github.com/NVlabs/edm")
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "edm"))
  args = ap.parse_args()
  os.makedirs(args.out, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix="edm_src_")
  networks, loss, augment = import_edm(args.repo, tmp)
  for i, (name, (precond, kw)) in enumerate(CASES.items()):
    make_case(networks, loss, augment, name, precond, kw, args.out, seed=i)
  make_block(networks, args.out)
  released_shapes(networks, args.out)


if __name__ == "__main__":
  main()
