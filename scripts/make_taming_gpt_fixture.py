"""Builds taming-transformers' own minGPT in torch with random weights and saves a small fixture.

    git clone --bare https://github.com/CompVis/taming-transformers taming.git   (the source is not vendored)
    python scripts/make_taming_gpt_fixture.py --repo GITDIR [--out DIR]
    python scripts/make_taming_gpt_fixture.py --repo GITDIR --counts     # parameter counts only

The module is taming/modules/transformer/mingpt.py from the repository (``git show HEAD:<file>``); its one
import of HuggingFace ``transformers`` (``top_k_top_p_filtering``, used only by its sampler) is replaced by
a stub, nothing else is changed. Net2NetTransformer (taming/models/cond_transformer.py) needs
pytorch_lightning, so its ``forward`` / ``shared_step`` — prepend the cond tokens, run
``transformer(cz[:, :-1])``, cut ``logits[:, c_len - 1:]``, cross-entropy against the codes — is written out
here in its three lines. Written to ``gpt.npz``:

  sd/transformer.<key>  the GPT state dict as a Net2NetTransformer checkpoint holds it (incl. attn.mask)
  config                JSON of the tiny configuration (n_unmasked 0) ; config_unmasked (n_unmasked 3)
  sd_unmasked/<key>     a second GPT with n_unmasked=3 (the same weights; only the mask buffer differs)
  idx [B,T]             token sequences;  logits [B,T,V]: GPT(idx);  logits_unmasked: the n_unmasked GPT
  past_logits [B,V]     forward_with_past on the last token given the cache of idx[:, :-1]
  cond [B,1], codes [B,N]   a class token and code sequences;  n2n_logits, n2n_loss: Net2Net's forward
  counts_<name>         sum(p.numel()) of taming's GPT for the released configs (meta device, no memory)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn.functional as F

from _upstream import import_sources  # scripts/_upstream.py

TINY = dict(vocab_size=24, block_size=12, n_layer=2, n_head=2, n_embd=16)
RELEASED = {  # taming's configs of the released transformers (docs/vqgan.md, stage 2)
    "gpt_ffhq": dict(vocab_size=1024, block_size=256, n_layer=24, n_head=16, n_embd=1664),
    "gpt_imagenet_cin": dict(vocab_size=16384, block_size=256, n_layer=48, n_head=24, n_embd=1536),
}
BATCH = 3


def import_mingpt(repo: str, tmp: str):
  stub = types.ModuleType("transformers")
  stub.top_k_top_p_filtering = None
  sys.modules.setdefault("transformers", stub)
  import_sources(repo, tmp, {"taming/modules/transformer/mingpt.py": "mingpt.py"})
  import mingpt
  return mingpt


def counts(mingpt) -> dict:
  out = {}
  with torch.device("meta"):
    for name, cfg in RELEASED.items():
      out[name] = sum(p.numel() for p in mingpt.GPT(**cfg).parameters())
  return out


def main(argv=None):
  ap = argparse.ArgumentParser()
  ap.add_argument("--repo", required=True,
                  help="a git clone of github.com/CompVis/taming-transformers")
  ap.add_argument("--out", default="tests/fixtures/taming_gpt")
  ap.add_argument("--counts", action="store_true")
  args = ap.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    mingpt = import_mingpt(args.repo, tmp)
    c = counts(mingpt)
    if args.counts:
      for k, v in c.items():
        print(f"{k}: {v:,}")
      return
    torch.manual_seed(0)
    gpt = mingpt.GPT(**TINY).eval()
    with torch.no_grad():   # random LayerNorm affine and position embeddings (they start at 1/0 and 0)
      for n, p in gpt.named_parameters():
        if "ln" in n or n == "pos_emb":
          p.add_(0.3 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, TINY["vocab_size"], (BATCH, TINY["block_size"]), generator=gen)
    out = {}
    with torch.no_grad():
      logits, _ = gpt(idx)
      # KV-cache path: prefix through forward_with_past, then the last token with the past
      _, _, present = gpt.forward_with_past(idx[:, :-1])
      past_logits, _, _ = gpt.forward_with_past(idx[:, -1:], past=[present],
                                                past_length=TINY["block_size"] - 1)
      unm = mingpt.GPT(**TINY, n_unmasked=3).eval()
      unm.load_state_dict({k: v for k, v in gpt.state_dict().items() if not k.endswith("attn.mask")},
                          strict=False)
      logits_unmasked, _ = unm(idx)
      # Net2NetTransformer.forward (pkeep = 1) and shared_step's loss, class-conditional (Labelator)
      cond = torch.randint(0, 10, (BATCH, 1), generator=gen)
      codes = torch.randint(0, TINY["vocab_size"], (BATCH, TINY["block_size"]), generator=gen)
      cz = torch.cat((cond, codes), dim=1)
      n2n_logits, _ = gpt(cz[:, :-1])
      n2n_logits = n2n_logits[:, cond.shape[1] - 1:]
      n2n_loss = F.cross_entropy(n2n_logits.reshape(-1, n2n_logits.size(-1)), codes.reshape(-1))
    for k, v in gpt.state_dict().items():
      out[f"sd/transformer.{k}"] = v.numpy()
    for k, v in unm.state_dict().items():
      out[f"sd_unmasked/transformer.{k}"] = v.numpy()
    out.update(config=np.array(json.dumps(TINY)),
               config_unmasked=np.array(json.dumps({**TINY, "n_unmasked": 3})),
               idx=idx.numpy().astype(np.int32), logits=logits.numpy(),
               past_logits=past_logits[:, -1].numpy(),
               logits_unmasked=logits_unmasked.numpy(), cond=cond.numpy().astype(np.int32),
               codes=codes.numpy().astype(np.int32), n2n_logits=n2n_logits.numpy(),
               n2n_loss=np.float32(n2n_loss.item()))
    for k, v in c.items():
      out[f"counts_{k}"] = np.int64(v)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpt.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({os.path.getsize(path):,} bytes); counts {c}")


if __name__ == "__main__":
  main()
