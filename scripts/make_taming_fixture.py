"""Builds taming-transformers' own VQGAN modules in torch with random weights and saves a small fixture.

    git clone --bare https://github.com/CompVis/taming-transformers taming.git   (the source is not vendored)
    python scripts/make_taming_fixture.py --repo GITDIR [--out tests/fixtures/taming]
    python scripts/make_taming_fixture.py --repo GITDIR --counts      # parameter counts only

The official modules are imported from the repository's own source (``git show HEAD:<file>`` into a temporary
package; taming/models/vqgan.py needs pytorch_lightning, so the ``VQModel`` composition — encoder,
quant_conv, VectorQuantizer2, post_quant_conv, decoder, as in its ``encode``/``decode`` — is assembled here
from taming's modules). Written to ``vqgan.npz`` (float32, NCHW tensors as torch has them):

  sd/<key>            a taming VQModel state dict (``encoder.*``, ``decoder.*``, ``quant_conv.*``,
                      ``post_quant_conv.*``, ``quantize.embedding.weight``) plus ``loss.discriminator.*``
                      (BatchNorm NLayerDiscriminator with random running statistics)
  sd_actnorm/<key>    an ActNorm NLayerDiscriminator (``main.*``) after its data-dependent initialisation on x
  config              JSON of the tiny configuration
  x [B,3,H,W]         input images in [-1, 1]
  h                   encoder output;  z: after quant_conv;  indices [B,h,w]; qloss (legacy β placement)
  z_q                 quantised latent;  xrec: decode(z_q)
  d_eval / d_train    BatchNorm discriminator logits on x in eval / train mode
  d_actnorm           ActNorm discriminator logits on x (after its initialisation)

``--counts`` prints the parameter counts of taming's modules for the registry's configurations (the numbers
tests/models/test_vqgan.py states).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
import torch

from _upstream import import_sources  # scripts/_upstream.py

FILES = ["taming/modules/diffusionmodules/model.py", "taming/modules/vqvae/quantize.py",
         "taming/modules/discriminator/model.py", "taming/modules/util.py"]

# ch_mult (2, 1): both a widening (encoder) and a narrowing (decoder) 1×1 nin_shortcut, attention at the 8²
# level, and a 32-wide middle keeps the fixture under 2 MB.
TINY = dict(ch=32, out_ch=3, ch_mult=(2, 1), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0,
            resamp_with_conv=True, in_channels=3, resolution=16, z_channels=8, double_z=False)
EMBED_DIM, N_EMBED, BATCH = 8, 16, 2
DISC = dict(input_nc=3, ndf=8, n_layers=2)


def import_taming(repo: str, tmp: str):
  import_sources(repo, tmp, FILES)
  for d, _, _ in os.walk(os.path.join(tmp, "taming")):
    open(os.path.join(d, "__init__.py"), "a").close()
  import taming.modules.diffusionmodules.model as model
  import taming.modules.discriminator.model as disc
  import taming.modules.vqvae.quantize as quantize
  return model, quantize, disc


def build_vqmodel(model, quantize, dd, n_embed, embed_dim):
  m = torch.nn.Module()
  m.encoder = model.Encoder(**dd)
  m.decoder = model.Decoder(**dd)
  m.quantize = quantize.VectorQuantizer2(n_embed, embed_dim, beta=0.25, legacy=True)
  m.quant_conv = torch.nn.Conv2d(dd["z_channels"], embed_dim, 1)
  m.post_quant_conv = torch.nn.Conv2d(embed_dim, dd["z_channels"], 1)
  return m


def nparams(m) -> int:
  return sum(p.numel() for p in m.parameters())


def counts(model, quantize, disc):
  imagenet = dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,),
                  dropout=0.0, in_channels=3, resolution=256, z_channels=256, double_z=False)
  tiny = dict(ch=32, out_ch=3, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0,
              in_channels=3, resolution=32, z_channels=16, double_z=False)
  for name, dd, k, e in [("imagenet_f16_1024", imagenet, 1024, 256),
                         ("imagenet_f16_16384", imagenet, 16384, 256), ("tiny", tiny, 64, 16)]:
    m = build_vqmodel(model, quantize, dd, k, e)
    print(name, "total", nparams(m), {n: nparams(getattr(m, n)) for n in
                                      ("encoder", "decoder", "quantize", "quant_conv", "post_quant_conv")})
  print("patchgan batchnorm", nparams(disc.NLayerDiscriminator(3, 64, 3, use_actnorm=False)))
  print("patchgan actnorm", nparams(disc.NLayerDiscriminator(3, 64, 3, use_actnorm=True)))
  # Multiply-adds at 256² (torch's FlopCounterMode on meta tensors: shapes only; FLOPs = 2·MACs) of the
  # networks; the quantizer's distance matmul (N·K·D = 256·1024·256 for f16_1024) is not included.
  from torch.utils.flop_counter import FlopCounterMode

  with torch.device("meta"):
    m = build_vqmodel(model, quantize, imagenet, 1024, 256)
    d = disc.NLayerDiscriminator(3, 64, 3)
    x = torch.zeros(1, 3, 256, 256)
    z = torch.zeros(1, 256, 16, 16)
    for name, f in [("encoder+quant_conv", lambda: m.quant_conv(m.encoder(x))),
                    ("post_quant_conv+decoder", lambda: m.decoder(m.post_quant_conv(z))),
                    ("patchgan", lambda: d(x))]:
      with FlopCounterMode(display=False) as fc:
        f()
      print(f"MACs at 256: {name} {fc.get_total_flops() // 2}")


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--repo", required=True,
                  help="a git clone of github.com/CompVis/taming-transformers")
  ap.add_argument("--out", default="tests/fixtures/taming")
  ap.add_argument("--counts", action="store_true")
  args = ap.parse_args()
  torch.manual_seed(0)
  with tempfile.TemporaryDirectory() as tmp:
    model, quantize, disc = import_taming(args.repo, tmp)
    if args.counts:
      counts(model, quantize, disc)
      return
    vq = build_vqmodel(model, quantize, TINY, N_EMBED, EMBED_DIM).eval()
    with torch.no_grad():
      # Non-trivial GroupNorm affines and a codebook on the scale of z (taming's U(±1/K) init would send
      # every latent to one code); everything else keeps torch's random init.
      for name, p in vq.named_parameters():
        if "norm" in name:
          p.add_(0.1 * torch.randn_like(p))
      x = torch.rand(BATCH, 3, TINY["resolution"], TINY["resolution"]) * 2 - 1
      h = vq.encoder(x)
      z = vq.quant_conv(h)
      zf = z.permute(0, 2, 3, 1).reshape(-1, EMBED_DIM)
      for _ in range(1000):      # a codebook without near ties, so float reassociation cannot flip an index
        vq.quantize.embedding.weight.copy_(zf[torch.randperm(zf.shape[0])[:N_EMBED]] +
                                           0.3 * zf.std() * torch.randn(N_EMBED, EMBED_DIM))
        d2 = torch.cdist(zf, vq.quantize.embedding.weight).pow(2).sort(dim=1).values
        gap = float((d2[:, 1] - d2[:, 0]).min())
        if gap > 1e-3 * float(d2[:, 0].mean()):
          break
      else:
        raise SystemExit("no codebook without near ties found; change the seed")
      z_q, qloss, (_, _, ind) = vq.quantize(z)
      ind = ind.reshape(BATCH, z.shape[2], z.shape[3])
      xrec = vq.decode(z_q) if hasattr(vq, "decode") else vq.decoder(vq.post_quant_conv(z_q))

      d = disc.NLayerDiscriminator(**DISC, use_actnorm=False)
      d.apply(disc.weights_init)
      for mod in d.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
          mod.running_mean.normal_(0, 0.1)
          mod.running_var.uniform_(0.5, 1.5)
          mod.bias.normal_(0, 0.1)
      d.eval()
      d_eval = d(x)
      sd_d = {f"loss.discriminator.{k}": v.clone() for k, v in d.state_dict().items()}
      d.train()
      d_train = d(x)

      da = disc.NLayerDiscriminator(**DISC, use_actnorm=True)
      da.apply(disc.weights_init)
      da.train()
      da(x)                                   # ActNorm's data-dependent initialisation
      d_act = da(x)

    sd = {**vq.state_dict(), **sd_d}
    arrays = {f"sd/{k}": v.numpy() for k, v in sd.items()}
    arrays.update({f"sd_actnorm/{k}": v.numpy() for k, v in da.state_dict().items()})
    cfg = {**TINY, "embed_dim": EMBED_DIM, "n_embed": N_EMBED, "disc": DISC}
    arrays.update(config=np.array(json.dumps(cfg)), x=x.numpy(), h=h.numpy(), z=z.numpy(),
                  indices=ind.numpy(), qloss=qloss.numpy(), z_q=z_q.numpy(), xrec=xrec.numpy(),
                  d_eval=d_eval.numpy(),
                  d_train=d_train.numpy(), d_actnorm=d_act.numpy(), min_code_gap=np.float32(gap))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "vqgan.npz")
    np.savez_compressed(path, **{k: (v.astype(np.float32) if v.dtype == np.float64 else v)
                                 for k, v in arrays.items()})
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB, {len(sd)} state-dict tensors, "
          f"{nparams(vq)} VQ params, min code gap {gap:.3g})")


if __name__ == "__main__":
  main()
