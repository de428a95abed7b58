"""Converts pytorch-fid's FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``) to ``.npz``.

    python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth inception_fid.npz

The state dict uses torchvision's Inception-v3 names. Mapping (every tensor is used exactly once,
``num_batches_tracked`` counters excepted):

  <block>.conv.weight [O, I, kh, kw]   → params/<block>/conv/kernel [kh, kw, I, O]
  <block>.bn.weight / .bn.bias          → params/<block>/bn/scale / bias
  <block>.bn.running_mean / running_var → batch_stats/<block>/bn/mean / var
  fc.weight [1008, 2048] / fc.bias      → params/fc/kernel [2048, 1008] / bias

where <block> is ``Conv2d_1a_3x3`` or ``Mixed_6b.branch7x7_2`` (dots become '/'). The output keys are
the '/'-joined flax paths that ``jaxgen.models.inception_v3.load_variables`` reads back with shape checks.
torch is needed only to read a ``.pth`` file; ``convert_state_dict`` works on numpy arrays.
"""

from __future__ import annotations

import sys

import numpy as np


def _map_key(key: str) -> tuple[str, str] | None:
  """torch key → (flax flat key, kind) or None for ignored counters."""
  if key.endswith("num_batches_tracked"):
    return None
  parts = key.split(".")
  if parts[0] == "fc":
    return {"weight": ("params/fc/kernel", "dense"), "bias": ("params/fc/bias", "copy")}[parts[1]]
  *block, layer, leaf = parts
  base = "/".join(block)
  if layer == "conv" and leaf == "weight":
    return f"params/{base}/conv/kernel", "conv"
  if layer == "bn":
    table = {"weight": ("params", "scale"), "bias": ("params", "bias"),
             "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
    if leaf in table:
      col, name = table[leaf]
      return f"{col}/{base}/bn/{name}", "copy"
  raise KeyError(f"unexpected tensor {key!r} in the Inception state dict: is this pytorch-fid's "
                 "pt_inception-2015-12-05 file?")


def convert_state_dict(state_dict) -> dict[str, np.ndarray]:
  """{torch name: array} → {flax flat key: float32 array}; checks that every network variable is filled."""
  from jaxgen.models.inception_v3 import flatten_variables, variable_shapes

  ref = flatten_variables(variable_shapes())
  out: dict[str, np.ndarray] = {}
  for key, value in state_dict.items():
    m = _map_key(key)
    if m is None:
      continue
    flat, kind = m
    v = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, np.float32)
    if kind == "conv":
      v = v.transpose(2, 3, 1, 0)
    elif kind == "dense":
      v = v.T
    if flat not in ref:
      raise KeyError(f"tensor {key!r} maps to {flat!r}, which the Flax Inception does not have.")
    if tuple(v.shape) != tuple(ref[flat].shape):
      raise ValueError(f"tensor {key!r} has shape {v.shape} after conversion, expected {ref[flat].shape}.")
    if flat in out:
      raise ValueError(f"two tensors map to {flat!r}.")
    out[flat] = v
  missing = sorted(set(ref) - set(out))
  if missing:
    raise ValueError(f"the state dict lacks {len(missing)} tensors (first: {missing[0]!r}); it is not the full "
                     "FID Inception.")
  return out


def to_state_dict(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The inverse of ``convert_state_dict`` (torch layout, numpy arrays)."""
  sd = {}
  for k, v in flat.items():
    col, *path, leaf = k.split("/")
    v = np.asarray(v)
    if path == ["fc"]:
      sd[f"fc.{'weight' if leaf == 'kernel' else 'bias'}"] = v.T if leaf == "kernel" else v
      continue
    base = ".".join(path[:-1])
    if leaf == "kernel":
      sd[f"{base}.conv.weight"] = v.transpose(3, 2, 0, 1)
    else:
      name = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}[leaf]
      sd[f"{base}.bn.{name}"] = v
  return sd


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 2:
    print(__doc__.strip().splitlines()[2].strip())
    return 2
  src, dst = argv
  if src.endswith(".npz"):
    with np.load(src) as f:
      sd = {k: f[k] for k in f.files}
  else:
    try:
      import torch
    except ImportError:
      raise SystemExit("reading a .pth file needs torch (pip install torch), or pass an .npz of the state dict.")
    sd = torch.load(src, map_location="cpu", weights_only=True)
  flat = convert_state_dict(sd)
  np.savez(dst, **flat)
  print(f"wrote {len(flat)} arrays to {dst}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
