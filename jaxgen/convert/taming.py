"""Converts taming-transformers checkpoints (VQGAN first stage, PatchGAN, Net2NetTransformer) to ``.npz``.

    python -m jaxgen.convert.taming last.ckpt vqgan.npz [--resolution 256]

Input: a Lightning ``.ckpt`` / ``.pth`` (read with ``torch.load(weights_only=True)``, never unpickling code;
the ``state_dict`` entry is used when present) or an ``.npz`` of the state dict (no torch needed).

VQModel keys (docs/vqgan.md; taming's module names are kept by ``jaxgen.models.vqgan``, so this is a rename):

  encoder.down.1.block.0.conv1.weight [O, I, kh, kw] → vqgan/params/encoder/down_1/block_0/conv1/kernel
                                                       [kh, kw, I, O]
  <...>.norm1.weight / .bias (GroupNorm)             → <...>/norm1/scale / bias
  quant_conv.*, post_quant_conv.*, decoder.*         → the same rule ("X.N" → "X_N")
  quantize.embedding.weight [K, D]                   → vqgan/params/quantize/embedding [K, D]
  loss.discriminator.main.N.weight (conv / BN)       → discriminator/params/main_N/kernel / scale
  loss.discriminator.main.N.running_mean / _var      → discriminator/batch_stats/main_N/mean / var
  loss.discriminator.main.N.loc / .scale (ActNorm)   → discriminator/params/main_N/loc / scale  [C]
  loss.perceptual_loss.* (LPIPS)                     → skipped: convert LPIPS with jaxgen.convert.lpips

``num_batches_tracked``, ActNorm's ``initialized`` flag and an EMA quantizer's ``cluster_size``/``embed_avg``
statistics are dropped. The network configuration is inferred from the shapes and stored as JSON in
``vqgan/config`` / ``discriminator/config`` (``resolution`` is not in a state dict; it only places the
attention levels — each level with attention gets ``resolution / 2^level`` — so give the model's training
resolution, 256 for all released VQGANs). A Net2NetTransformer checkpoint (``transformer.*`` keys) also has
its first stage under ``first_stage_model.*`` (converted as above) and its GPT converted by
``jaxgen.convert.taming_gpt.convert_transformer`` under ``transformer/`` (its ``cond_stage_model.*`` and
``permuter.*`` are not converted). Gumbel-quantizer checkpoints are not supported.

Load with ``load_vqgan(path) -> (overrides, variables)`` (``jaxgen.models.vqgan.VQModel(**overrides)`` or
``models.create("vqgan_imagenet_f16_1024", **overrides)``) and ``load_patchgan(path)``; shapes are checked
against the network built from the stored configuration.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Mapping

import numpy as np

from jaxgen.convert import _common
from jaxgen.errors import ConfigError

VQ_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "quantize.")
_DROP = ("num_batches_tracked", "initialized", "cluster_size", "embed_avg")


def _np(v) -> np.ndarray:
  return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)


def _path(key: str) -> list[str]:
  """'down.1.block.0.conv1' → ['down_1', 'block_0', 'conv1'] (ModuleList indices joined to their name)."""
  out: list[str] = []
  for p in key.split("."):
    if p.isdigit() and out:
      out[-1] = f"{out[-1]}_{p}"
    else:
      out.append(p)
  return out


def _leaf(parts: list[str], v: np.ndarray) -> tuple[str, list[str], np.ndarray]:
  """(collection, flax path, array) for one tensor of a conv / norm / codebook."""
  *mod, leaf = parts
  if mod == ["quantize", "embedding"] and leaf == "weight":
    return "params", ["quantize", "embedding"], v
  if leaf == "weight":
    if v.ndim == 4:
      return "params", mod + ["kernel"], v.transpose(2, 3, 1, 0)
    return "params", mod + ["scale"], v
  if leaf == "bias":
    return "params", mod + ["bias"], v
  if leaf in ("running_mean", "running_var"):
    return "batch_stats", mod + [leaf[len("running_"):]], v
  if leaf in ("loc", "scale") and v.ndim == 4:      # ActNorm [1, C, 1, 1]
    return "params", mod + [leaf], v.reshape(-1)
  raise KeyError(leaf)


def infer_vq_config(sd: Mapping[str, np.ndarray], resolution: int = 256) -> dict[str, Any]:
  """VQModel overrides from a (prefix-free) VQModel state dict."""
  if any(k.startswith("quantize.proj.") for k in sd):
    raise ConfigError("this is a Gumbel-quantizer VQGAN (quantize.proj.*), which jaxgen does not implement: "
                      "use a VectorQuantizer2 checkpoint (e.g. vqgan_imagenet_f16_1024/16384).")
  need = ["encoder.conv_in.weight", "encoder.conv_out.weight", "decoder.conv_in.weight",
          "decoder.conv_out.weight", "quantize.embedding.weight"]
  missing = [k for k in need if k not in sd]
  if missing:
    raise ConfigError(f"not a taming VQModel state dict: {missing[0]!r} is missing; pass a VQGAN (or "
                      "Net2NetTransformer) checkpoint.")
  ch = sd["encoder.conv_in.weight"].shape[0]
  levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k))})
  ch_mult = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels)
  nrb = len({m.group(1) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))})
  attn = tuple(resolution // 2 ** i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in sd)
  z = sd["decoder.conv_in.weight"].shape[1]
  n_embed, embed_dim = sd["quantize.embedding.weight"].shape
  if sd["encoder.conv_out.weight"].shape[0] != z:
    raise ConfigError("the encoder outputs 2·z_channels (double_z=True, a KL autoencoder), not a VQGAN.")
  return dict(ch=int(ch), ch_mult=list(ch_mult), num_res_blocks=nrb, attn_resolutions=list(attn),
              resolution=int(resolution), in_channels=int(sd["encoder.conv_in.weight"].shape[1]),
              out_ch=int(sd["decoder.conv_out.weight"].shape[0]), z_channels=int(z), embed_dim=int(embed_dim),
              n_embed=int(n_embed))


def infer_disc_config(sd: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """PatchGAN overrides from a (prefix-free, ``main.*``) NLayerDiscriminator state dict."""
  convs = sorted(int(m.group(1)) for k, v in sd.items()
                 if (m := re.match(r"main\.(\d+)\.weight$", k)) and np.ndim(v) == 4)
  w0 = sd["main.0.weight"]
  return dict(input_nc=int(w0.shape[1]), ndf=int(w0.shape[0]), n_layers=len(convs) - 2,
              use_actnorm=any(k.endswith(".loc") for k in sd))


def _convert(sd: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
  out: dict[str, np.ndarray] = {}
  for key, v in sd.items():
    if key.endswith(_DROP):
      continue
    try:
      col, path, arr = _leaf(_path(key), np.asarray(v, np.float32))
    except KeyError:
      raise ConfigError(f"unexpected tensor {key!r} in the taming state dict; is this a VQGAN "
                        "checkpoint?") from None
    flat = "/".join([prefix, col, *path])
    if flat in out:
      raise ValueError(f"two tensors map to {flat!r}.")
    out[flat] = arr
  return out


def _check(flat: Mapping[str, np.ndarray], prefix: str, ref) -> None:
  """Same keys and shapes as ``ref`` (the network's variables as shape structs)."""
  ours = {k: v for k, v in flat.items() if k.startswith(prefix + "/") and not k.endswith("/config")}
  _common.check_flat(ours, _common.tree_shapes(ref, prefix), f"the {prefix} network", ValueError)


def _vq_shapes(cfg: dict):
  import jax
  import jax.numpy as jnp

  from jaxgen.models.vqgan import VQModel

  m = VQModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
  x = jnp.zeros((1, cfg["resolution"], cfg["resolution"], cfg["in_channels"]), jnp.float32)
  return jax.eval_shape(lambda: m.init(jax.random.key(0), x))


def _disc_shapes(cfg: dict):
  import jax
  import jax.numpy as jnp

  from jaxgen.models.vqgan import PatchGAN

  x = jnp.zeros((1, 64, 64, cfg["input_nc"]), jnp.float32)
  return jax.eval_shape(lambda: PatchGAN(**cfg).init(jax.random.key(0), x))


def convert_state_dict(state_dict: Mapping[str, Any], *, resolution: int = 256) -> dict[str, np.ndarray]:
  """{taming key: tensor} → {'vqgan/params/...', 'discriminator/...', 'transformer/...', '*/config': JSON}."""
  sd = {k: _np(v) for k, v in state_dict.items()}
  out: dict[str, np.ndarray] = {}
  first = "first_stage_model."
  is_gpt = any(k.startswith("transformer.") for k in sd)
  vq_sd = {k[len(first):]: v for k, v in sd.items() if k.startswith(first)} if is_gpt else \
      {k: v for k, v in sd.items() if k.startswith(VQ_PREFIXES)}
  d_sd = {k[len("loss.discriminator."):]: v for k, v in sd.items() if k.startswith("loss.discriminator.")}
  if vq_sd:
    cfg = infer_vq_config(vq_sd, resolution)
    flat = _convert(vq_sd, "vqgan")
    _check(flat, "vqgan", _vq_shapes(cfg))
    out.update(flat)
    out["vqgan/config"] = np.array(json.dumps(cfg))
  if d_sd:
    cfg = infer_disc_config(d_sd)
    flat = _convert(d_sd, "discriminator")
    _check(flat, "discriminator", _disc_shapes(cfg))
    out.update(flat)
    out["discriminator/config"] = np.array(json.dumps(cfg))
  if is_gpt:
    from jaxgen.convert.taming_gpt import convert_transformer   # H3's GPT converter (lazy: optional module)

    for k, v in convert_transformer(sd).items():
      out[k if k.startswith("transformer/") else f"transformer/{k}"] = v
  if not out:
    raise ConfigError("no taming VQGAN, discriminator or transformer tensors found (keys start with "
                      f"{sorted(sd)[:3]}); pass a taming-transformers checkpoint.")
  return out


def _unflatten(flat: Mapping[str, np.ndarray], prefix: str) -> dict:
  return _common.unflatten({k[len(prefix) + 1:]: v for k, v in flat.items()
                            if k.startswith(prefix + "/") and k != f"{prefix}/config"})


def _load(path: str, prefix: str, what: str) -> tuple[dict, dict, dict]:
  if not path or not os.path.exists(path):
    raise ConfigError(f"{what} weights {path!r} not found: convert a taming checkpoint with `python -m "
                      "jaxgen.convert.taming last.ckpt OUT.npz` and point the config at OUT.npz.")
  with np.load(path) as f:
    flat = {k: f[k] for k in f.files}
  if f"{prefix}/config" not in flat:
    raise ConfigError(f"{path!r} has no {what} (no {prefix}/config entry): was it written by "
                      "jaxgen.convert.taming from a checkpoint that contains one?")
  cfg = json.loads(str(flat[f"{prefix}/config"]))
  return cfg, _unflatten(flat, prefix), flat


def load_vqgan(path: str) -> tuple[dict, dict]:
  """(VQModel overrides, variables {'params'}) from an ``.npz`` of this converter; shapes checked."""
  cfg, tree, flat = _load(path, "vqgan", "VQGAN")
  _check(flat, "vqgan", _vq_shapes(cfg))
  return cfg, tree


def load_patchgan(path: str) -> tuple[dict, dict]:
  """(PatchGAN overrides, variables {'params', 'batch_stats'?}) from an ``.npz`` of this converter."""
  cfg, tree, flat = _load(path, "discriminator", "discriminator")
  _check(flat, "discriminator", _disc_shapes(cfg))
  return cfg, tree


def read_state_dict(path: str) -> dict[str, Any]:
  """A taming checkpoint's state dict: ``.npz`` (numpy) or ``.ckpt``/``.pth`` (torch, weights only)."""
  if path.endswith(".npz"):
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  try:
    import torch
  except ImportError:
    raise SystemExit("reading a .ckpt needs torch (pip install torch), or pass an .npz of the state dict.")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:   # pickled objects other than tensors (e.g. Lightning hyper-parameters)
    raise SystemExit(f"{path}: torch.load(weights_only=True) refused it ({type(e).__name__}); on a machine "
                     "you trust, save just the tensors: torch.save(torch.load(CKPT)['state_dict'], 'sd.pt') "
                     "and convert sd.pt.") from None
  return obj.get("state_dict", obj) if isinstance(obj, dict) else obj


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.taming", description=__doc__.splitlines()[0])
  ap.add_argument("ckpt")
  ap.add_argument("out")
  ap.add_argument("--resolution", type=int, default=256,
                  help="training resolution (places the attention levels); 256 for the released VQGANs")
  args = ap.parse_args(argv)
  try:
    flat = convert_state_dict(read_state_dict(args.ckpt), resolution=args.resolution)
  except ConfigError as e:
    raise SystemExit(str(e)) from None
  np.savez(args.out, **flat)
  parts = sorted({k.split("/")[0] for k in flat})
  print(f"wrote {len(flat)} arrays ({', '.join(parts)}) to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
