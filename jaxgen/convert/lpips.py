"""Converts LPIPS-VGG weights (torchvision ``vgg16`` + the lpips package's lin layers) to ``.npz``.

    python -m jaxgen.convert.lpips vgg16-397923af.pth lpips/weights/v0.1/vgg.pth lpips_vgg.npz

Inputs (read with ``torch.load(..., weights_only=True)``, never unpickling code; ``.npz`` files of the same
state dicts work without torch):
- torchvision's ``vgg16`` ImageNet state dict (``features.{i}.weight/bias``; ``classifier.*`` is ignored),
  or a whole lpips ``LPIPS`` module's state dict (``net.slice{s}.{i}.weight/bias``, same indices i);
- the lpips package's ``weights/v0.1/vgg.pth`` (``lin{l}.model.1.weight`` [1, C, 1, 1]; ``model.0`` when saved
  without dropout). taming-transformers' ``vgg.pth`` (its LPIPS download) has the same keys.
Mapping (every tensor used once): the conv at ``features`` index i (0, 2 | 5, 7 | 10, 12, 14 | 17, 19, 21 |
24, 26, 28) → ``params/vgg/conv{b}_{j}/kernel`` [3, 3, I, O] (from [O, I, 3, 3]) and ``.../bias``;
``lin{l}`` → ``params/lin{l}/kernel`` [1, 1, C, 1]. A ``scaling_layer`` shift/scale, if present, must equal
LPIPS' constants. The result is checked against ``jaxgen.models.lpips.LPIPS`` (names and shapes).
"""

from __future__ import annotations

import re
import sys
from typing import Sequence

import numpy as np

__all__ = ["convert_state_dicts", "to_state_dicts", "CONV_INDICES", "main"]

# torchvision vgg16.features index of each conv, block by block
CONV_INDICES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
_CONV_NAME = {i: f"conv{b + 1}_{j + 1}" for b, block in enumerate(CONV_INDICES) for j, i in enumerate(block)}


def _numpy(v) -> np.ndarray:
  return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)


def _map_key(key: str):
  """torch key → (flat key, kind) ; None for ignored tensors."""
  m = re.fullmatch(r"(?:features|net\.slice\d)\.(\d+)\.(weight|bias)", key)
  if m:
    idx, leaf = int(m.group(1)), m.group(2)
    if idx not in _CONV_NAME:
      raise KeyError(f"tensor {key!r}: features index {idx} is not a conv of VGG16; is this a vgg16 "
                     "state dict?")
    return f"params/vgg/{_CONV_NAME[idx]}/{'kernel' if leaf == 'weight' else 'bias'}", leaf
  m = re.fullmatch(r"lin(\d)\.model\.[01]\.weight", key)
  if m:
    return f"params/lin{m.group(1)}/kernel", "lin"
  if key.startswith("classifier.") or key.startswith("scaling_layer."):
    return None
  raise KeyError(f"unexpected tensor {key!r}: expected torchvision vgg16 (features.*) and lpips lin weights "
                 "(lin{l}.model.1.weight).")


def convert_state_dicts(*state_dicts, widths: Sequence[int] | None = None) -> dict[str, np.ndarray]:
  """{torch name: tensor/array} dicts → {flat key: float32 array}, checked against ``LPIPS(widths)``."""
  from jaxgen.models import lpips as lp

  out: dict[str, np.ndarray] = {}
  for sd in state_dicts:
    for key, value in sd.items():
      if key.startswith("scaling_layer."):
        want = np.asarray(lp.SHIFT if key.endswith("shift") else lp.SCALE, np.float32)
        if not np.allclose(_numpy(value).reshape(-1), want, atol=1e-6):
          raise ValueError(f"{key} = {_numpy(value).reshape(-1)} differs from LPIPS' constant {want}.")
        continue
      mapped = _map_key(key)
      if mapped is None:
        continue
      flat, kind = mapped
      v = _numpy(value)
      if kind == "weight":
        v = v.transpose(2, 3, 1, 0)            # [O, I, kh, kw] → [kh, kw, I, O]
      elif kind == "lin":
        v = v.transpose(2, 3, 1, 0)            # [1, C, 1, 1] → [1, 1, C, 1]
      if flat in out:
        raise ValueError(f"two tensors map to {flat!r} (the inputs overlap).")
      out[flat] = np.ascontiguousarray(v)
  lp.unflatten(out, tuple(widths or lp.VGG16_WIDTHS), source="the converted state dicts")   # checks
  return out


def to_state_dicts(flat: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """The inverse: (torchvision-style vgg16 ``features`` dict, lpips lin dict), numpy arrays."""
  index = {name: i for i, name in _CONV_NAME.items()}
  vgg, lin = {}, {}
  for k, v in flat.items():
    parts = k.split("/")
    v = np.asarray(v)
    if parts[1] == "vgg":
      i = index[parts[2]]
      if parts[3] == "kernel":
        vgg[f"features.{i}.weight"] = v.transpose(3, 2, 0, 1)
      else:
        vgg[f"features.{i}.bias"] = v
    else:
      lin[f"{parts[1]}.model.1.weight"] = v.transpose(3, 2, 0, 1)
  return vgg, lin


def _read(path: str) -> dict:
  if path.endswith(".npz"):
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  try:
    import torch
  except ImportError:
    raise SystemExit("reading a .pth file needs torch (pip install 'jaxgen[convert]'), or pass .npz "
                     "state dicts.")
  sd = torch.load(path, map_location="cpu", weights_only=True)
  if not hasattr(sd, "items"):
    raise SystemExit(f"{path} does not hold a state dict.")
  return sd["state_dict"] if "state_dict" in sd else sd


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 3:
    print(__doc__.strip().splitlines()[2].strip())
    return 2
  vgg_path, lin_path, dst = argv
  flat = convert_state_dicts(_read(vgg_path), _read(lin_path))
  np.savez(dst, **flat)
  print(f"wrote {len(flat)} arrays ({sum(v.size for v in flat.values()):,} weights) to {dst}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
