"""Converts DDPM U-Net weights in diffusers' safetensors layout (google/ddpm-cifar10-32) to jaxgen ``.npz``.

    python -m jaxgen.convert.ddpm diffusion_pytorch_model.safetensors ddpm_cifar10.npz [--config config.json]

No torch: a ``.safetensors`` file is an 8-byte little-endian header length N, N bytes of JSON
(``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}``) and the raw little-endian
tensor bytes, read here with numpy (F64/F32/F16/BF16 become float32).

google/ddpm-cifar10-32 is Ho et al.'s CIFAR-10 network (diffusers ``UNet2DModel``: block_out_channels
128,256,256,256, layers_per_block 2, attention in the 16² down/up blocks, GroupNorm(32, 1e-6),
downsample_padding 0 = TF 'SAME', [sin, cos] embedding with freq_shift 1) = ``jaxgen.models.unet_ddpm``.
Mapping (diffusers → ``ddpm_cifar10``; n levels, up_blocks run from the lowest resolution):

  conv_in / conv_out (conv [O,I,3,3])     → conv_in/conv / conv_out/conv   kernel [3,3,I,O], bias
  time_embedding.linear_1 / linear_2      → temb_dense0 / temb_dense1      kernel [in, out], bias
  down_blocks.L.resnets.i.{norm1,conv1,time_emb_proj,norm2,conv2,conv_shortcut}
                                          → down_L_block_i/{norm1/norm,conv1/conv,temb_proj,norm2/norm,
                                            conv2/conv,nin_shortcut} (the 1×1 conv_shortcut → Dense)
  down_blocks.L.attentions.i.{group_norm, to_q|query, to_k|key, to_v|value, to_out.0|proj_attn}
                                          → down_L_attn_i/{norm/norm, q, k, v, proj_out}
  down_blocks.L.downsamplers.0.conv       → down_L_downsample/conv
  mid_block.resnets.0 / attentions.0 / resnets.1 → mid_block_1 / mid_attn_1 / mid_block_2
  up_blocks.(n−1−L).{resnets,attentions}.i → up_L_block_i / up_L_attn_i;  upsamplers.0.conv → up_L_upsample
  conv_norm_out                           → norm_out/norm                  (GroupNorm weight → scale)

Both diffusers attention namings (``to_q``/``to_k``/``to_v``/``to_out.0`` of current diffusers;
``query``/``key``/``value``/``proj_attn`` of older files) are accepted. The configuration (ch, ch_mult,
num_res_blocks, attention levels) is inferred from the shapes. The image resolution is not in the file (it
only places the attention levels): ``--resolution``, else the ``config.json`` beside the file (or
``--config``), else 32. That config is checked: other embeddings, paddings, norms or block types than Ho et
al.'s are refused, not silently mis-converted. Output: ``params/<path>`` float32 arrays and ``meta`` (JSON:
model, overrides, precond 'ddpm' with the linear β schedule 1e-4…0.02 of T=1000 steps, eps prediction);
``load(path) -> (variables, meta)`` checks every shape against the registry network.
"""

from __future__ import annotations

import json
import re
import struct
import sys

import numpy as np

from jaxgen.convert import _common

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?"}


class DdpmConvertError(ValueError):
  """The file is not a DDPM U-Net in diffusers' layout (the message says what is wrong)."""


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict]:
  """``({name: array}, metadata)``; floating tensors as float32 (BF16 widened exactly)."""
  with open(path, "rb") as f:
    raw = f.read()
  if len(raw) < 8:
    raise DdpmConvertError(f"{path} is too short to be a safetensors file.")
  (n,) = struct.unpack("<Q", raw[:8])
  if n > len(raw) - 8:
    raise DdpmConvertError(f"{path}: header length {n} exceeds the file: not a safetensors file.")
  try:
    header = json.loads(raw[8:8 + n])
  except ValueError:
    raise DdpmConvertError(f"{path}: the header is not JSON: not a safetensors file.") from None
  meta = header.pop("__metadata__", {}) or {}
  body = memoryview(raw)[8 + n:]
  out = {}
  for name, info in header.items():
    begin, end = info["data_offsets"]
    dt, shape = info["dtype"], tuple(info["shape"])
    if dt == "BF16":
      a = (np.frombuffer(body[begin:end], "<u2").astype(np.uint32) << 16).view(np.float32)
    elif dt in _DTYPES:
      a = np.frombuffer(body[begin:end], _DTYPES[dt])
    else:
      raise DdpmConvertError(f"{name}: safetensors dtype {dt} is not supported.")
    if a.size != int(np.prod(shape)):
      raise DdpmConvertError(f"{name}: {end - begin} bytes do not hold a {dt} tensor of shape {shape}.")
    a = a.reshape(shape)
    out[name] = a.astype(np.float32) if a.dtype.kind == "f" else a.copy()
  return out, meta


def infer_config(sd: dict[str, np.ndarray], resolution: int = 32) -> dict:
  """``ddpm_cifar10`` overrides from the shapes of a diffusers UNet2DModel state dict."""
  if "conv_in.weight" not in sd or "time_embedding.linear_1.weight" not in sd:
    raise DdpmConvertError("no conv_in / time_embedding weights: not a diffusers UNet2DModel state dict.")
  ch = int(sd["conv_in.weight"].shape[0])
  levels = sorted({int(m.group(1)) for k in sd for m in [re.match(r"down_blocks\.(\d+)\.", k)] if m})
  ch_mult, attn = [], []
  for lvl in levels:
    out_ch = int(sd[f"down_blocks.{lvl}.resnets.0.conv1.weight"].shape[0])
    if out_ch % ch:
      raise DdpmConvertError(f"down_blocks.{lvl} has {out_ch} channels, not a multiple of {ch}.")
    ch_mult.append(out_ch // ch)
    if any(k.startswith(f"down_blocks.{lvl}.attentions.") for k in sd):
      attn.append(resolution >> lvl)
  num_res = len({k.split(".")[3] for k in sd if k.startswith("down_blocks.0.resnets.")})
  return dict(img_resolution=resolution, in_channels=int(sd["conv_in.weight"].shape[1]),
              out_channels=int(sd["conv_out.weight"].shape[0]), ch=ch, ch_mult=ch_mult,
              num_res_blocks=num_res, attn_resolutions=attn,
              resamp_with_conv=any(k.startswith("down_blocks.0.downsamplers.0.conv") for k in sd))


# diffusers UNet2DModel config.json fields and the values jaxgen's DDPMUNet implements (Ho et al.'s network).
SUPPORTED_CONFIG = dict(act_fn=("silu",), attention_head_dim=(None,), center_input_sample=(False,),
                        downsample_padding=(0,), flip_sin_to_cos=(False,), freq_shift=(1,),
                        mid_block_scale_factor=(1,), norm_eps=(1e-6,), norm_num_groups=(32,),
                        time_embedding_type=("positional",), resnet_time_scale_shift=("default",),
                        class_embed_type=(None,), num_class_embeds=(None,), upsample_type=("conv",),
                        downsample_type=("conv",), add_attention=(True,), attn_norm_num_groups=(None, 32),
                        time_embedding_dim=(None,), mid_block_type=(None, "UNetMidBlock2D"))


def check_config(cfg: dict) -> int:
  """Checks a diffusers ``config.json`` against the DDPM network; returns its ``sample_size``."""
  if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
    raise DdpmConvertError(f"config.json describes a {cfg['_class_name']}, not a UNet2DModel.")
  for k, allowed in SUPPORTED_CONFIG.items():
    if k in cfg and cfg[k] not in allowed:
      raise DdpmConvertError(f"config.json has {k}={cfg[k]!r}; jaxgen's DDPM U-Net implements "
                             f"{' or '.join(map(repr, allowed))} (Ho et al.'s network, "
                             "google/ddpm-cifar10-32): not convertible.")
  blocks = list(cfg.get("down_block_types", [])) + list(cfg.get("up_block_types", []))
  known = ("DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D")
  odd = sorted({b for b in blocks if b not in known})
  if odd:
    raise DdpmConvertError(f"config.json uses blocks {odd}; only (Attn)DownBlock2D / (Attn)UpBlock2D "
                           "convert.")
  size = cfg.get("sample_size", 32)
  return int(size[0] if isinstance(size, (list, tuple)) else size)


_ATTN = {"group_norm": "norm/norm", "to_q": "q", "query": "q", "to_k": "k", "key": "k", "to_v": "v",
         "value": "v", "to_out.0": "proj_out", "proj_attn": "proj_out"}
_RES = {"norm1": "norm1/norm", "conv1": "conv1/conv", "time_emb_proj": "temb_proj", "norm2": "norm2/norm",
        "conv2": "conv2/conv", "conv_shortcut": "nin_shortcut"}


def _module_path(mod: str, n_levels: int) -> str:
  top = {"conv_in": "conv_in/conv", "conv_out": "conv_out/conv", "conv_norm_out": "norm_out/norm",
         "time_embedding.linear_1": "temb_dense0", "time_embedding.linear_2": "temb_dense1"}
  if mod in top:
    return top[mod]
  m = re.fullmatch(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", mod)
  if m:
    kind, lvl, sub, i, rest = m.groups()
    lvl = int(lvl) if kind == "down_blocks" else n_levels - 1 - int(lvl)
    side = "down" if kind == "down_blocks" else "up"
    table = _RES if sub == "resnets" else _ATTN
    if rest not in table:
      raise DdpmConvertError(f"unexpected layer {mod}.")
    return f"{side}_{lvl}_{'block' if sub == 'resnets' else 'attn'}_{i}/{table[rest]}"
  m = re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", mod)
  if m:
    return f"down_{m.group(1)}_downsample/conv"
  m = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", mod)
  if m:
    return f"up_{n_levels - 1 - int(m.group(1))}_upsample/conv"
  m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", mod)
  if m:
    sub, i, rest = m.groups()
    if sub == "resnets" and i in ("0", "1") and rest in _RES:
      return f"mid_block_{int(i) + 1}/{_RES[rest]}"
    if sub == "attentions" and i == "0" and rest in _ATTN:
      return f"mid_attn_1/{_ATTN[rest]}"
  raise DdpmConvertError(f"unexpected layer {mod}: not the DDPM UNet2DModel layout.")


def convert_state_dict(sd: dict[str, np.ndarray], resolution: int = 32, model: str = "ddpm_cifar10"):
  """``({'params/...': float32 array}, meta)`` of a diffusers UNet2DModel state dict (module docstring)."""
  overrides = infer_config(sd, resolution)
  n = len(overrides["ch_mult"])
  flat = {}
  for key, v in sd.items():
    mod, leaf = key.rsplit(".", 1)
    path = "params/" + _module_path(mod, n)
    v = np.asarray(v, np.float32)
    if leaf == "bias":
      flat[path + "/bias"] = v
    elif leaf != "weight":
      raise DdpmConvertError(f"unexpected tensor {key}.")
    elif path.endswith("/norm"):
      flat[path + "/scale"] = v
    elif v.ndim == 4 and path.endswith("nin_shortcut"):
      flat[path + "/kernel"] = v[:, :, 0, 0].T
    elif v.ndim == 4:
      flat[path + "/kernel"] = v.transpose(2, 3, 1, 0)
    elif v.ndim == 2:
      flat[path + "/kernel"] = v.T
    else:
      raise DdpmConvertError(f"unexpected {v.ndim}-d weight {key}.")
  meta = {"source": "diffusers_ddpm", "model": model, "overrides": overrides,
          "precond": {"name": "ddpm", "ddpm_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
                      "T": 1000, "prediction": "eps"}}
  check_shapes(flat, meta)
  return flat, meta


def check_shapes(flat: dict[str, np.ndarray], meta: dict) -> None:
  """Every variable of the registry network ``meta`` names, with its shape; else ``DdpmConvertError``."""
  _common.check_shapes(flat, meta, DdpmConvertError)


unflatten = _common.unflatten


def load(path) -> tuple[dict, dict]:
  """``(variables {'params': ...}, meta)`` of a converted file, shapes checked."""
  return _common.load(path, DdpmConvertError, "jaxgen.convert.ddpm")


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.ddpm", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="diffusion_pytorch_model.safetensors (diffusers UNet2DModel)")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--model", default="ddpm_cifar10", help="jaxgen registry name (default ddpm_cifar10)")
  ap.add_argument("--resolution", type=int, default=None,
                  help="training resolution (default: config.json's sample_size, else 32)")
  ap.add_argument("--config", default=None,
                  help="diffusers config.json to check (default: config.json beside the input, if any)")
  args = ap.parse_args(argv)
  import os
  cfg_path = args.config or os.path.join(os.path.dirname(os.path.abspath(args.input)), "config.json")
  try:
    resolution = 32
    if os.path.exists(cfg_path):
      with open(cfg_path) as f:
        resolution = check_config(json.load(f))
    elif args.config:
      raise DdpmConvertError(f"--config {args.config} does not exist.")
    sd, _ = read_safetensors(args.input)
    flat, meta = convert_state_dict(sd, args.resolution or resolution, args.model)
  except (DdpmConvertError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  _common.save(args.output, flat, meta)
  n = sum(v.size for v in flat.values())
  print(f"{args.output}: {meta['model']}, {n:,} parameters; model.overrides={json.dumps(meta['overrides'])}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
