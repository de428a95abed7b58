"""Converts the GPT of a taming-transformers Net2NetTransformer checkpoint to ``jaxgen.models.gpt.GPT``.

``jaxgen.convert.taming`` (the CLI, ``python -m jaxgen.convert.taming last.ckpt out.npz``) calls
``convert_transformer(state_dict)`` for checkpoints with ``transformer.*`` keys and stores what it returns
under ``transformer/``; ``load_gpt(out.npz) -> (overrides, variables)`` reads it back with shape checks
(``jaxgen.models.create("gpt_tiny", **overrides)`` or ``GPT(**overrides)``). Key mapping (taming's
mingpt.py names are kept by jaxgen.models.gpt, so this is a rename plus a transpose of Linear weights):

  transformer.tok_emb.weight [V, C]                  → params/tok_emb/embedding [V, C]
  transformer.pos_emb [1, T, C]                      → params/pos_emb
  transformer.blocks.i.ln1/ln2.weight / .bias        → params/blocks_i/ln1|ln2/scale / bias
  transformer.blocks.i.attn.{key,query,value,proj}.weight [O, I] → params/blocks_i/attn/<name>/kernel [I, O]
  transformer.blocks.i.mlp.0.* / mlp.2.*             → params/blocks_i/mlp_fc/* / mlp_proj/*
  transformer.ln_f.*                                 → params/ln_f/*
  transformer.head.weight [V, C]                     → params/head/kernel [C, V]
  transformer.blocks.i.attn.mask [1, 1, T, T]        → not a parameter: gives ``n_unmasked``

vocab_size, block_size, n_layer, n_embd and n_unmasked come from the shapes and the mask buffer; the number of
heads is not in a state dict: pass ``n_head``, or the converter takes it from taming's released
configurations by width (1024 → 16, 1536 → 24 (ImageNet cIN), 1664 → 16 (FFHQ, CelebA-HQ)); otherwise it is
stored as 0 and ``load_gpt`` asks for it. Stored as ``config`` (JSON). docs/vqgan.md (stage 2).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

import numpy as np

from jaxgen.convert import _common
from jaxgen.errors import ConfigError

__all__ = ["convert_transformer", "load_gpt", "KNOWN_HEADS"]

# n_embd → n_head of taming's released transformer configs (configs/*.yaml and the released project.yaml).
KNOWN_HEADS = {1024: 16, 1536: 24, 1664: 16}

_LINEAR = {"attn.key": "attn/key", "attn.query": "attn/query", "attn.value": "attn/value",
           "attn.proj": "attn/proj", "mlp.0": "mlp_fc", "mlp.2": "mlp_proj"}


def _np(v) -> np.ndarray:
  return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)


def _gpt_keys(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
  pre = "transformer."
  if any(k.startswith(pre) for k in sd):
    return {k[len(pre):]: _np(v) for k, v in sd.items() if k.startswith(pre)}
  return {k: _np(v) for k, v in sd.items()}


def _n_unmasked(mask: np.ndarray) -> int:
  """taming sets mask[:n, :n] = 1 on a lower-triangular mask: n = the ones in row 0 when > 1."""
  row0 = int(np.asarray(mask).reshape(mask.shape[-2], mask.shape[-1])[0].sum())
  return row0 if row0 > 1 else 0


def convert_transformer(state_dict: Mapping[str, Any], *, n_head: int | None = None) -> dict[str, np.ndarray]:
  """{taming key: tensor} (``transformer.`` prefix optional) → {'params/...': array, 'config': JSON}."""
  sd = _gpt_keys(state_dict)
  if "tok_emb.weight" not in sd:
    raise ConfigError("no minGPT tensors (tok_emb.weight) in this state dict: pass a taming "
                      "Net2NetTransformer checkpoint or a mingpt.GPT state dict.")
  vocab, width = sd["tok_emb.weight"].shape
  block = sd["pos_emb"].shape[1]
  layers = sorted({int(m.group(1)) for k in sd for m in [re.match(r"blocks\.(\d+)\.", k)] if m})
  n_layer = len(layers)
  if layers != list(range(n_layer)):
    raise ConfigError(f"GPT blocks {layers} are not numbered 0..{n_layer - 1}: is the checkpoint complete?")
  masks = [sd[k] for k in sd if k.endswith("attn.mask")]
  heads = int(n_head) if n_head else KNOWN_HEADS.get(int(width), 0)
  cfg = dict(vocab_size=int(vocab), block_size=int(block), n_layer=n_layer, n_head=heads, n_embd=int(width),
             n_unmasked=_n_unmasked(masks[0]) if masks else 0)
  out: dict[str, np.ndarray] = {}
  used = set()

  def put(src, dst, transpose=False):
    v = np.asarray(sd[src], np.float32)
    out[f"params/{dst}"] = v.T.copy() if transpose else v
    used.add(src)

  put("tok_emb.weight", "tok_emb/embedding")
  put("pos_emb", "pos_emb")
  for i in layers:
    b = f"blocks.{i}."
    for ln in ("ln1", "ln2"):
      put(f"{b}{ln}.weight", f"blocks_{i}/{ln}/scale")
      put(f"{b}{ln}.bias", f"blocks_{i}/{ln}/bias")
    for src, dst in _LINEAR.items():
      put(f"{b}{src}.weight", f"blocks_{i}/{dst}/kernel", transpose=True)
      put(f"{b}{src}.bias", f"blocks_{i}/{dst}/bias")
    used.add(f"{b}attn.mask")
  put("ln_f.weight", "ln_f/scale")
  put("ln_f.bias", "ln_f/bias")
  put("head.weight", "head/kernel", transpose=True)
  extra = sorted(set(sd) - used)
  if extra:
    raise ConfigError(f"unexpected GPT tensors {extra[:4]}: this converter reads taming's mingpt.GPT only.")
  out["config"] = np.array(json.dumps(cfg))
  return out


def load_gpt(path: str, *, n_head: int | None = None) -> tuple[dict, dict]:
  """(GPT overrides, variables ``{'params': ...}``) from a converted ``.npz``; shapes checked."""
  if not path or not os.path.exists(path):
    raise ConfigError(f"GPT weights {path!r} not found: convert a taming Net2NetTransformer checkpoint with "
                      "`python -m jaxgen.convert.taming last.ckpt OUT.npz` and point the config at OUT.npz.")
  with np.load(path) as f:
    flat = {k: f[k] for k in f.files}
  prefix = "transformer/" if "transformer/config" in flat else ""
  if f"{prefix}config" not in flat:
    raise ConfigError(f"{path!r} holds no converted GPT (no transformer/config entry): convert a "
                      "Net2NetTransformer checkpoint with jaxgen.convert.taming.")
  cfg = json.loads(str(flat[f"{prefix}config"]))
  if n_head:
    cfg["n_head"] = int(n_head)
  if not cfg.get("n_head"):
    raise ConfigError(f"{path!r}: the GPT's number of heads is not in the checkpoint (width "
                      f"{cfg['n_embd']}); "
                      "pass it as load_gpt(path, n_head=...) from the model's config.yaml.")
  params = _common.unflatten({k[len(prefix) + len("params/"):]: v for k, v in flat.items()
                       if k.startswith(prefix + "params/")})
  _check(cfg, params)
  return cfg, {"params": params}


def _check(cfg: dict, params: dict) -> None:
  import jax
  import jax.numpy as jnp

  from jaxgen.models.gpt import GPT

  net = GPT(**cfg)
  want = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32)))["params"]
  flat_want = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(want)}
  flat_got = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(params)}
  if flat_want != flat_got:
    bad = sorted(set(flat_want.items()) ^ set(flat_got.items()))[:4]
    raise ConfigError(f"converted GPT does not match GPT({cfg}): differing entries {bad}; re-convert it.")
