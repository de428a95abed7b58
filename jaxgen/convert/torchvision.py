"""Converts torchvision classification weights (MobileNetV2/V3, ShuffleNetV2, GoogLeNet) to jaxgen ``.npz``.

    python -m jaxgen.convert.torchvision mobilenet_v2-7ebf99e0.pth mobilenet_v2.npz --model mobilenet_v2

Input: a torchvision state dict as ``.pth``/``.pt`` (``torch.save``; read with
``torch.load(weights_only=True)`` when torch is installed, else by ``read_pth``, this module's reader of the
zip and the legacy (pre-1.6) formats, which unpickles nothing but tensors, ``OrderedDict`` and plain data),
``.safetensors`` (read with numpy) or ``.npz``. A full-model checkpoint dict is accepted when it holds the state dict under
``state_dict``/``model``. ``--model`` names the jaxgen registry network: ``mobilenet_v2``,
``mobilenet_v3_large``, ``mobilenet_v3_small``, ``shufflenet_v2_x0_5|x1_0|x1_5|x2_0``, ``googlenet``.

Mapping (torchvision → jaxgen; every conv is bias-free and followed by BatchNorm):

  Conv2d.weight [O, I/g, k, k]    → <module>/conv/kernel [k, k, I/g, O]
  BatchNorm2d weight / bias       → params <module>/bn/scale / bias
  BatchNorm2d running_mean / _var → batch_stats <module>/bn/mean / var   (num_batches_tracked dropped)
  Linear.weight [out, in] / bias  → <module>/kernel [in, out] / bias

  mobilenet_v2   features.0 → stem; features.i (i ≥ 1) → block{i−1}/{expand, depthwise, project} (no expand
                 when t = 1); features.18 → head; classifier.1 → classifier
  mobilenet_v3   features.0 → stem; features.i.block.j → block{i−1}/{expand, depthwise, se/{reduce,expand}
                 (fc1, fc2), project}; last features → head; classifier.0 → pre_logits, classifier.3 →
                 classifier
  shufflenet_v2  conv1 → features/stem; stage{s}.i.branch1.{0,1,2,3} → features/stage{s}_i/proj_dw,
                 proj_pw; branch2.{0,1,3,4,5,6} → main_pw1, main_dw, main_pw2; conv5 → features/conv5;
                 fc → classifier. jaxgen's network is built with ``downsample='torchvision'`` and
                 its channels permuted (below).
  googlenet      conv1..3 → conv1..3; inception{m}.branch1 / branch2.0 / branch2.1 / branch3.0 / branch3.1 /
                 branch4.1 → inception{m}/b1 / b2_reduce / b2_conv / b3_reduce / b3_conv / b4_proj;
                 aux{1,2}.conv / fc1 / fc2 → aux{1,2}/conv / fc1 / fc2 (kept only with ``--aux_logits``:
                 torchvision's released aux heads are untrained and unused at eval; fc1's inputs reordered
                 from torch's NCHW flatten to jaxgen's NHWC one); fc → fc

ShuffleNetV2: torchvision concatenates the two branches, shuffles (interleaves) the channels and the next
unit takes the first half through and the second half into its branch; jaxgen (Megvii's order) concatenates
and the next unit takes the even channels through and the odd ones into its branch. Both route every
channel from the conv that makes it (a branch's last 1×1 conv) to the conv that reads it (the next branch's
first 1×1 conv, or the end of the stage), and within a stage the number of channels on each such route is
the same in both networks, so jaxgen's network with (a) each producing conv's output channels and (b) each
reading conv's input channels permuted computes torchvision's function exactly. ``shufflenet_permutations``
derives the permutations by following the channel positions through both networks.

Inputs: torchvision's weights expect ``Normalize(mean, std)`` of [0, 1] images; the converted networks get
``input_norm='imagenet'`` (jaxgen.models.mobilenet.normalize_input) so they take jaxgen's [−1, 1] images.
GoogLeNet's released weights run with ``transform_input=True``, which maps that normalized input back to
jaxgen's [−1, 1] scale: its default is ``input_norm='none'`` (``--no_transform_input`` for a network
trained without it).

Output ``.npz``: ``params/<path>`` and ``batch_stats/<path>`` float32 arrays and ``meta`` (JSON: source,
model, overrides); shapes are checked against ``models.init_shapes(model, **overrides)``. Start a
classification run from it with ``--config.model.name=<model> --config.model.init_from=OUT`` and the
printed ``model.overrides`` set in the experiment file; ``check_network`` refuses a configured network that
differs in what shapes cannot show (BatchNorm ε, ``input_norm``). Tolerance and the audit of every op
against torchvision's: docs/convert.md "## torchvision backbones".
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict
from typing import Callable

import numpy as np

from jaxgen.convert import _common

MODELS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
          "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "googlenet")


class TorchvisionConvertError(ValueError):
  """The file or state dict is not the torchvision network asked for (the message says what is wrong)."""


# ------------------------------------------------------------------------------------------------
# Reading state dicts.

# torch storage class → little-endian numpy dtype (what torch.save writes for each storage)
_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
                   "ByteStorage": "u1", "BoolStorage": "?"}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C     # torch/serialization.py MAGIC_NUMBER (pre-1.6 format)


class _StorageType:
  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
  """A storage whose bytes may arrive after the pickle (legacy format): ``data`` is set once read."""

  def __init__(self, stype: _StorageType, numel: int):
    self.stype, self.numel, self.data = stype, int(numel), None


class _Tensor:
  """``_rebuild_tensor_v2``'s arguments, turned into an array by ``_resolve`` once the storages are read."""

  def __init__(self, storage, offset, size, stride, *_):
    if not isinstance(storage, (_Storage, tuple)):
      raise TorchvisionConvertError("a tensor without a storage: the file is corrupt.")
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)

  def array(self) -> np.ndarray:
    st, base = (self.storage, 0) if isinstance(self.storage, _Storage) else self.storage[:2]
    view_numel = st.numel if isinstance(self.storage, _Storage) else self.storage[2]
    data = st.data[base:base + view_numel]
    size, stride, offset = self.size, self.stride, self.offset
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
      raise TorchvisionConvertError("a tensor with negative or inconsistent sizes/strides: the file is corrupt.")
    end = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if end > data.size:
      raise TorchvisionConvertError("a tensor reaches past its storage: the file is corrupt.")
    out = np.array(np.lib.stride_tricks.as_strided(data[offset:], size, [s * data.itemsize for s in stride]))
    return (out.astype(np.uint32) << 16).view(np.float32) if st.stype.name == "BFloat16Storage" else out


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
  return data


def _resolve(obj):
  if isinstance(obj, _Tensor):
    return obj.array()
  if isinstance(obj, dict):
    return type(obj)((k, _resolve(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v) for v in obj)
  return obj


_ALLOWED = {("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _Tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}


def _unpickler(f, path, storages: dict) -> pickle.Unpickler:
  """An unpickler that resolves only ``_ALLOWED`` and torch storage types, recording storages by key."""

  class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
      if module == "torch" and name in _STORAGE_DTYPES:
        return _StorageType(name)
      fn = _ALLOWED.get((module, name))
      if fn is None:
        raise TorchvisionConvertError(f"{path} asks for {module}.{name}, which this reader does not allow (it "
                                      "unpickles only tensors and plain containers): give a state dict.")
      return fn

    def persistent_load(self, pid):
      if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
              and isinstance(pid[1], _StorageType)):
        raise TorchvisionConvertError(f"{path}: unknown persistent id {pid!r:.60}: not a state dict file.")
      stype, key, numel = pid[1], str(pid[2]), int(pid[4])
      st = storages.setdefault(key, _Storage(stype, numel))
      view = pid[5] if len(pid) == 6 else None
      if view is None:
        return st
      _view_key, offset, view_numel = view       # legacy storage views: a slice of the root storage
      return (st, int(offset), int(view_numel))

  return Unpickler(f)


def read_pth(path) -> dict:
  """The object of a ``torch.save`` file without torch, in the zip format (torch ≥ 1.6) or the legacy one
  (most of torchvision's older weight files): a restricted unpickler resolves only ``OrderedDict`` and
  torch's tensor-rebuild functions (tensors become numpy arrays, bfloat16 widened to float32); any other
  global is a ``TorchvisionConvertError`` naming it, so no pickled code runs."""
  storages: dict[str, _Storage] = {}
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as zf:
      pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
      if len(pkl) != 1:
        raise TorchvisionConvertError(f"{path} has no single data.pkl: not a torch.save file.")
      root = pkl[0][:-len("data.pkl")]
      obj = _unpickler(io.BytesIO(zf.read(pkl[0])), path, storages).load()
      for key, st in storages.items():
        raw = zf.read(f"{root}data/{key}")
        if len(raw) < st.numel * st.stype.dtype.itemsize:
          raise TorchvisionConvertError(f"{path}: storage {key} is truncated.")
        st.data = np.frombuffer(raw, st.stype.dtype)[:st.numel]
    return _resolve(obj)
  with open(path, "rb") as f:
    try:
      magic = _unpickler(f, path, storages).load()
    except TorchvisionConvertError:
      raise
    except Exception:  # noqa: BLE001 - any unpickling failure of the header
      magic = None
    if magic != _LEGACY_MAGIC:
      raise TorchvisionConvertError(f"{path} is not a torch.save file (neither the zip format nor the legacy "
                                    "one): give the .pth of a state dict, or a .safetensors file.")
    _unpickler(f, path, storages).load()                       # protocol version
    info = _unpickler(f, path, storages).load()
    if not isinstance(info, dict) or not info.get("little_endian", True):
      raise TorchvisionConvertError(f"{path}: a big-endian torch.save file is not supported.")
    obj = _unpickler(f, path, storages).load()
    keys = _unpickler(f, path, storages).load()
    for key in keys:                                           # int64 numel, then the raw elements
      st = storages.get(str(key))
      head = f.read(8)
      if st is None or len(head) != 8:
        raise TorchvisionConvertError(f"{path}: storage {key} is missing or truncated.")
      (numel,) = struct.unpack("<q", head)
      raw = f.read(numel * st.stype.dtype.itemsize)
      if numel < st.numel or len(raw) != numel * st.stype.dtype.itemsize:
        raise TorchvisionConvertError(f"{path}: storage {key} is truncated.")
      st.data = np.frombuffer(raw, st.stype.dtype)
  if any(st.data is None for st in storages.values()):
    raise TorchvisionConvertError(f"{path}: a tensor's storage is missing: the file is corrupt.")
  return _resolve(obj)


def read_state_dict(path) -> dict[str, np.ndarray]:
  """``{name: numpy array}`` of a torchvision state dict in ``.pth``/``.pt`` (torch.load(weights_only=True) if
  torch imports, else ``read_pth``), ``.safetensors`` or ``.npz``."""
  if not os.path.isfile(path):
    raise TorchvisionConvertError(f"{path} is not a file: download the torchvision weights first.")
  ext = os.path.splitext(str(path))[1].lower()
  if ext == ".safetensors":
    from jaxgen.convert.ddpm import read_safetensors  # noqa: PLC0415
    try:
      sd = read_safetensors(path)[0]
    except ValueError as e:
      raise TorchvisionConvertError(str(e)) from None
  elif ext == ".npz":
    with np.load(path, allow_pickle=False) as z:
      sd = {k: np.asarray(z[k]) for k in z.files}
  else:
    try:
      import torch  # noqa: PLC0415  (optional: the 'convert' extra)
    except ImportError:
      obj = read_pth(path)
    else:
      try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
      except Exception as e:  # noqa: BLE001 - torch's unpickling errors name the offending global
        raise TorchvisionConvertError(f"{path}: torch.load(weights_only=True) refused it ({str(e).splitlines()[0]}): "
                                      "give the .pth of a state dict.") from None
    for key in ("state_dict", "model"):
      if isinstance(obj, dict) and isinstance(obj.get(key), dict):
        obj = obj[key]
    if not isinstance(obj, dict):
      raise TorchvisionConvertError(f"{path} holds a {type(obj).__name__}, not a state dict.")
    sd = {}
    for k, v in obj.items():
      if hasattr(v, "detach"):   # a torch tensor
        v = v.detach().float().numpy() if v.is_floating_point() else v.detach().numpy()
      sd[k] = np.asarray(v)
  return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------
# Mapping.


class StateDictMapper:
  """Moves torch-layout tensors into the flat jaxgen dict and records which source keys were used (the
  torchvision, EfficientNet and timm converters); a missing key raises ``error`` with ``hint``."""

  def __init__(self, sd: dict[str, np.ndarray], error: type[Exception] = TorchvisionConvertError,
               hint: str = "not the torchvision network asked for (check --model)"):
    self.sd, self.out, self.used, self.error, self.hint = sd, {}, set(), error, hint

  def get(self, key: str) -> np.ndarray:
    if key not in self.sd:
      raise self.error(f"the state dict has no {key}: {self.hint}.")
    self.used.add(key)
    return np.asarray(self.sd[key], np.float32)

  def has(self, key: str) -> bool:
    return key in self.sd

  def conv(self, src: str, dst: str, out_perm=None, in_perm=None, bias: bool = False):
    w = self.get(f"{src}.weight")                       # [O, I/g, kh, kw]
    if out_perm is not None:
      w = w[np.asarray(out_perm)]
    if in_perm is not None:
      w = w[:, np.asarray(in_perm)]
    self.out[f"params/{dst}/kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    if bias:
      b = self.get(f"{src}.bias")
      self.out[f"params/{dst}/bias"] = b if out_perm is None else b[np.asarray(out_perm)]

  def bn(self, src: str, dst: str, perm=None):
    p = (lambda a: a) if perm is None else (lambda a: a[np.asarray(perm)])
    self.out[f"params/{dst}/scale"] = p(self.get(f"{src}.weight"))
    self.out[f"params/{dst}/bias"] = p(self.get(f"{src}.bias"))
    self.out[f"batch_stats/{dst}/mean"] = p(self.get(f"{src}.running_mean"))
    self.out[f"batch_stats/{dst}/var"] = p(self.get(f"{src}.running_var"))
    if self.has(f"{src}.num_batches_tracked"):
      self.used.add(f"{src}.num_batches_tracked")

  def conv_bn(self, conv: str, bn: str, dst: str, out_perm=None, in_perm=None):
    """A jaxgen ConvBN ``dst`` (``dst/conv``, ``dst/bn``) from a torch conv and its BatchNorm."""
    self.conv(conv, f"{dst}/conv", out_perm, in_perm)
    self.bn(bn, f"{dst}/bn", out_perm)

  def dense(self, src: str, dst: str, in_perm=None):
    w = self.get(f"{src}.weight")                       # [out, in]
    if in_perm is not None:
      w = w[:, np.asarray(in_perm)]
    self.out[f"params/{dst}/kernel"] = np.ascontiguousarray(w.T)
    self.out[f"params/{dst}/bias"] = self.get(f"{src}.bias")

  def indices(self, prefix: str) -> list[int]:
    """The sorted integer children ``i`` of ``prefix.i.…`` keys."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return sorted({int(m.group(1)) for k in self.sd for m in [pat.match(k)] if m})

  def unused(self, ignore: Callable[[str], bool] = lambda k: False) -> list[str]:
    return sorted(k for k in self.sd if k not in self.used and not ignore(k))


def _mobilenet_v2(m: StateDictMapper, overrides: dict, options: dict) -> None:
  feats = m.indices("features")
  if not feats or feats != list(range(len(feats))):
    raise TorchvisionConvertError("no features.0 … features.N: not a torchvision MobileNetV2 state dict.")
  m.conv_bn("features.0.0", "features.0.1", "stem")
  for i in feats[1:-1]:
    p = f"features.{i}.conv"
    if m.has(f"{p}.3.weight"):          # expand (t ≠ 1), depthwise, project conv, project BN
      m.conv_bn(f"{p}.0.0", f"{p}.0.1", f"block{i - 1}/expand")
      dw, proj = f"{p}.1", (f"{p}.2", f"{p}.3")
    else:
      dw, proj = f"{p}.0", (f"{p}.1", f"{p}.2")
    m.conv_bn(f"{dw}.0", f"{dw}.1", f"block{i - 1}/depthwise")
    m.conv_bn(*proj, f"block{i - 1}/project")
  m.conv_bn(f"features.{feats[-1]}.0", f"features.{feats[-1]}.1", "head")
  m.dense("classifier.1", "classifier")
  overrides.setdefault("num_classes", int(m.sd["classifier.1.weight"].shape[0]))


def _mobilenet_v3(m: StateDictMapper, overrides: dict, options: dict) -> None:
  feats = m.indices("features")
  if not feats or feats != list(range(len(feats))):
    raise TorchvisionConvertError("no features.0 … features.N: not a torchvision MobileNetV3 state dict.")
  m.conv_bn("features.0.0", "features.0.1", "stem")
  for i in feats[1:-1]:
    p, dst = f"features.{i}.block", f"block{i - 1}"
    parts = m.indices(p)
    convs = [j for j in parts if m.has(f"{p}.{j}.0.weight")]
    se = [j for j in parts if m.has(f"{p}.{j}.fc1.weight")]
    if len(convs) not in (2, 3) or len(se) > 1:
      raise TorchvisionConvertError(f"{p} has {len(convs)} convs: not a torchvision MobileNetV3 block.")
    names = (["expand"] if len(convs) == 3 else []) + ["depthwise", "project"]
    for j, name in zip(convs, names):
      m.conv_bn(f"{p}.{j}.0", f"{p}.{j}.1", f"{dst}/{name}")
    if se:
      m.conv(f"{p}.{se[0]}.fc1", f"{dst}/se/reduce", bias=True)
      m.conv(f"{p}.{se[0]}.fc2", f"{dst}/se/expand", bias=True)
  m.conv_bn(f"features.{feats[-1]}.0", f"features.{feats[-1]}.1", "head")
  m.dense("classifier.0", "pre_logits")
  m.dense("classifier.3", "classifier")
  overrides.setdefault("num_classes", int(m.sd["classifier.3.weight"].shape[0]))


def _stage_routes(n: int, units: int, layout: str) -> list[tuple]:
  """Every channel route of one ShuffleNetV2 stage with ``units`` units of 2n output channels:
  ``(producer, consumer)`` with producer ``('proj'|'main', unit, index)`` (the output channel of a branch's
  last 1×1 conv) and consumer ``(unit, index)`` (the input channel of a later unit's first 1×1 conv) or
  ``('end', position)`` (the stage output), for torchvision's (shuffle, then halves) or jaxgen's (concat,
  then even/odd) ``layout``."""
  if layout == "torchvision":       # after the down-sampling unit: shuffle(concat(branch1, branch2))
    pos = [None] * (2 * n)
    for j in range(n):
      pos[2 * j], pos[2 * j + 1] = ("proj", 0, j), ("main", 0, j)
  else:
    pos = [("proj", 0, j) for j in range(n)] + [("main", 0, j) for j in range(n)]
  routes = []
  for u in range(1, units):
    if layout == "torchvision":     # x1 = first half passes, x2 = second half enters the branch
      keep, into = pos[:n], pos[n:]
      routes += [(p, (u, i)) for i, p in enumerate(into)]
      pos = [None] * (2 * n)
      for i in range(n):
        pos[2 * i], pos[2 * i + 1] = keep[i], ("main", u, i)
    else:                           # even channels pass, odd channels enter the branch
      keep, into = pos[0::2], pos[1::2]
      routes += [(p, (u, i)) for i, p in enumerate(into)]
      pos = keep + [("main", u, i) for i in range(n)]
  return routes + [(p, ("end", q)) for q, p in enumerate(pos)]


def shufflenet_permutations(n: int, units: int) -> dict:
  """The channel relabelling that makes jaxgen's ShuffleNetV2 stage (2n channels, ``units`` units, the
  first one down-sampling) compute torchvision's: ``{('proj'|'main', u): out_perm, ('in', u): in_perm,
  'end': end_perm}`` where jaxgen's channel j of that conv output / conv input / stage output is torchvision's
  channel ``perm[j]``. Routes of both networks are paired by (producer branch and unit, consumer unit)."""
  def route_type(r):
    (branch, u, _), c = r
    return branch, u, c[0] if c[0] == "end" else ("unit", c[0])

  groups: dict = {}
  for layout in ("torchvision", "jaxgen"):
    for r in _stage_routes(n, units, layout):
      groups.setdefault(route_type(r), {}).setdefault(layout, []).append(r)
  perms: dict = {}
  for kind, both in groups.items():
    tv, jx = both.get("torchvision", []), both.get("jaxgen", [])
    if len(tv) != len(jx):
      raise TorchvisionConvertError(f"ShuffleNetV2 stage with {2 * n} channels and {units} units: {len(tv)} "
                                    f"torchvision but {len(jx)} jaxgen channels route {kind}; no relabelling.")
    for (p_tv, c_tv), (p_jx, c_jx) in zip(tv, jx):
      perms.setdefault((p_jx[0], p_jx[1]), {})[p_jx[2]] = p_tv[2]
      key = "end" if c_jx[0] == "end" else ("in", c_jx[0])
      perms.setdefault(key, {})[c_jx[1]] = c_tv[1]
  return {k: np.asarray([v[j] for j in range(len(v))]) for k, v in perms.items()}


def _shufflenet_v2(m: StateDictMapper, overrides: dict, options: dict) -> None:
  if not m.has("conv1.0.weight") or not m.has("fc.weight"):
    raise TorchvisionConvertError("no conv1 / fc weights: not a torchvision ShuffleNetV2 state dict.")
  m.conv_bn("conv1.0", "conv1.1", "features/stem")
  channels, repeats, in_perm = [], [], None
  for s in (2, 3, 4):
    units = m.indices(f"stage{s}")
    if not units:
      raise TorchvisionConvertError(f"no stage{s}.*: not a torchvision ShuffleNetV2 state dict.")
    n = int(m.sd[f"stage{s}.0.branch2.5.weight"].shape[0])
    channels.append(2 * n)
    repeats.append(len(units))
    perms = shufflenet_permutations(n, len(units))
    for u in units:
      p, dst = f"stage{s}.{u}", f"features/stage{s}_{u}"
      if u == 0:   # down-sampling unit: both branches read the whole (permuted) stage input
        m.conv_bn(f"{p}.branch1.0", f"{p}.branch1.1", f"{dst}/proj_dw", out_perm=in_perm)
        m.conv_bn(f"{p}.branch1.2", f"{p}.branch1.3", f"{dst}/proj_pw", out_perm=perms[("proj", 0)], in_perm=in_perm)
        m.conv_bn(f"{p}.branch2.0", f"{p}.branch2.1", f"{dst}/main_pw1", in_perm=in_perm)
      else:
        m.conv_bn(f"{p}.branch2.0", f"{p}.branch2.1", f"{dst}/main_pw1", in_perm=perms[("in", u)])
      m.conv_bn(f"{p}.branch2.3", f"{p}.branch2.4", f"{dst}/main_dw")
      m.conv_bn(f"{p}.branch2.5", f"{p}.branch2.6", f"{dst}/main_pw2", out_perm=perms[("main", u)])
    in_perm = perms["end"]
  m.conv_bn("conv5.0", "conv5.1", "features/conv5", in_perm=in_perm)
  m.dense("fc", "classifier")
  overrides.update(downsample="torchvision", num_classes=int(m.sd["fc.weight"].shape[0]))
  stem, conv5 = int(m.sd["conv1.0.weight"].shape[0]), int(m.sd["conv5.0.weight"].shape[0])
  from jaxgen.models.shufflenet import V2_CONFIGS
  size = options["model"][len("shufflenet_v2_"):]
  if (tuple(channels), conv5) != tuple(V2_CONFIGS[size]):
    overrides.update(stage_channels=channels, conv5_channels=conv5)
  if tuple(repeats) != (4, 8, 4):
    overrides["stage_repeats"] = repeats
  if stem != 24:
    overrides["stem_channels"] = stem


_INCEPTION_BRANCHES = (("branch1", "b1"), ("branch2.0", "b2_reduce"), ("branch2.1", "b2_conv"),
                       ("branch3.0", "b3_reduce"), ("branch3.1", "b3_conv"), ("branch4.1", "b4_proj"))


def _googlenet(m: StateDictMapper, overrides: dict, options: dict) -> None:
  from jaxgen.models.googlenet import INCEPTION
  basic = lambda src, dst: m.conv_bn(f"{src}.conv", f"{src}.bn", dst)
  for c in ("conv1", "conv2", "conv3"):
    basic(c, c)
  blocks = [b for b in INCEPTION if m.has(f"inception{b}.branch1.conv.weight")]
  for b in blocks:
    for src, dst in _INCEPTION_BRANCHES:
      basic(f"inception{b}.{src}", f"inception{b}/{dst}")
  if options.get("aux_logits"):
    if not m.has("aux1.conv.conv.weight"):
      raise TorchvisionConvertError("--aux_logits: the state dict has no aux1/aux2 heads.")
    for a in ("aux1", "aux2"):
      basic(f"{a}.conv", f"{a}/conv")
      # fc1 reads torch.flatten of [N, C, 4, 4] (index c·16 + h·4 + w); jaxgen flattens NHWC ((h·4 + w)·C + c)
      c = int(m.sd[f"{a}.conv.conv.weight"].shape[0])
      m.dense(f"{a}.fc1", f"{a}/fc1", in_perm=np.arange(16 * c).reshape(c, 4, 4).transpose(1, 2, 0).reshape(-1))
      m.dense(f"{a}.fc2", f"{a}/fc2")
    overrides["aux_logits"] = True
  m.dense("fc", "fc")
  overrides.setdefault("num_classes", int(m.sd["fc.weight"].shape[0]))
  if blocks != list(INCEPTION):
    overrides.setdefault("blocks", blocks)
  overrides.setdefault("input_norm", "none" if options.get("transform_input", True) else "imagenet")


_MAPPERS = {"mobilenet_v2": _mobilenet_v2, "mobilenet_v3_large": _mobilenet_v3, "mobilenet_v3_small": _mobilenet_v3,
            "shufflenet_v2_x0_5": _shufflenet_v2, "shufflenet_v2_x1_0": _shufflenet_v2,
            "shufflenet_v2_x1_5": _shufflenet_v2, "shufflenet_v2_x2_0": _shufflenet_v2, "googlenet": _googlenet}


def convert(sd: dict[str, np.ndarray], model: str, overrides: dict | None = None, *, aux_logits: bool = False,
            transform_input: bool = True) -> tuple[dict[str, np.ndarray], dict]:
  """``(flat {'params/…', 'batch_stats/…': float32 array}, meta)`` of a torchvision state dict for the registry
  network ``model``; ``overrides`` are extra ``models.create`` keywords (e.g. ``width`` for a MobileNet
  trained with a width multiplier). Every source tensor must be used (GoogLeNet's aux heads are dropped
  unless ``aux_logits``) and every jaxgen variable filled with its shape."""
  if model not in _MAPPERS:
    raise TorchvisionConvertError(f"--model {model!r} is not converted from torchvision: use one of "
                                  f"{', '.join(MODELS)}.")
  overrides = dict(overrides or {})
  if not model.startswith("googlenet"):
    overrides.setdefault("input_norm", "imagenet")
  m = StateDictMapper(sd)
  _MAPPERS[model](m, overrides, dict(model=model, aux_logits=aux_logits, transform_input=transform_input))
  dropped = (lambda k: k.startswith("aux")) if model == "googlenet" and not aux_logits else (lambda k: False)
  extra = m.unused(lambda k: dropped(k) or k.endswith("num_batches_tracked"))
  if extra:
    raise TorchvisionConvertError(f"{len(extra)} tensors of the state dict have no place in {model} (e.g. "
                                  f"{extra[:3]}): not the torchvision network asked for (check --model).")
  meta = {"source": "torchvision", "model": model, "overrides": overrides}
  _common.check_shapes(m.out, meta, TorchvisionConvertError)
  return m.out, meta


def convert_file(path, model: str, overrides: dict | None = None, **options) -> tuple[dict, dict]:
  flat, meta = convert(read_state_dict(path), model, overrides, **options)
  meta["file"] = os.path.basename(str(path))
  return flat, meta


save = _common.save


def load(path) -> tuple[dict, dict]:
  """``(variables {'params', 'batch_stats'}, meta)`` of a converted file, shapes checked."""
  return _common.load(path, TorchvisionConvertError, "jaxgen.convert.torchvision")


def load_into(path, like: dict) -> dict:
  """``like`` (a variables tree) filled from a converted file (jaxgen.convert.edm.load_into)."""
  from jaxgen.convert.edm import load_into as _load_into
  return _load_into(path, like)


#: module fields that do not change what a converted network computes at evaluation
TRAINING_ONLY_FIELDS = ("dtype", "dropout", "drop_connect_rate", "bn_momentum", "aux_logits", "parent", "name")


def _plain(v):
  return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def check_network(meta: dict, name: str, overrides: dict) -> None:
  """A ``ConfigError`` when the configured network (``model.name`` ``name`` with ``model.overrides``
  ``overrides``) would compute something else than the converted one of ``meta``: another registry name,
  or a module field that differs (``bn_eps``, ``input_norm``, widths, ...; shapes alone do not show an ε or
  a normalization). Fields in ``TRAINING_ONLY_FIELDS`` may differ. What ``model.init_from`` should call
  before loading a converted file (docs/convert.md)."""
  import dataclasses

  from jaxgen import models
  from jaxgen.errors import ConfigError
  fix = (f"set model.name={meta['model']!r} and model.overrides={json.dumps(meta['overrides'])} as "
         "the converter printed")
  if name != meta["model"]:
    raise ConfigError(f"model.init_from holds a converted {meta['model']} but model.name is {name!r}: {fix}.")
  want, got = models.create(meta["model"], **meta["overrides"]), models.create(name, **dict(overrides))
  diff = [f"{f.name}={getattr(got, f.name)!r} (converted: {getattr(want, f.name)!r})"
          for f in dataclasses.fields(want)
          if f.name not in TRAINING_ONLY_FIELDS and _plain(getattr(want, f.name)) != _plain(getattr(got, f.name))]
  if diff:
    raise ConfigError(f"model.init_from: the configured {name} differs from the converted network in "
                      f"{', '.join(diff)}: {fix}.")


# ------------------------------------------------------------------------------------------------
# Synthetic weights (tests and fixtures).


def synthetic_array(seed: int, key: str, shape: tuple, low: float, high: float) -> np.ndarray:
  """U(low, high) float32 from PCG64's raw 64-bit stream (stable across numpy versions, unlike the
  distribution methods) seeded by (seed, crc32(key))."""
  bits = np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(key.encode())])).random_raw(
      int(np.prod(shape, dtype=np.int64)))
  u = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
  return (low + (high - low) * u).astype(np.float32).reshape(shape)


def synthetic_state_dict(shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights for a torchvision state dict's ``{name: shape}`` with non-trivial BatchNorm statistics:
  conv / linear weights U(±√(6/fan_in)) (He-uniform), biases and BN offsets U(±0.2), BN scales U(0.5, 1.5),
  running means U(±0.2), running variances U(0.5, 2); ``num_batches_tracked`` 1000. The same on any
  machine (scripts/make_torchvision_fixture.py loads them into torchvision's module; the tests rebuild
  them from the fixture's shapes)."""
  out = {}
  for k, shape in shapes.items():
    shape = tuple(int(s) for s in shape)
    leaf = k.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
      out[k] = np.asarray(1000, np.int64)
    elif leaf == "running_var":
      out[k] = synthetic_array(seed, k, shape, 0.5, 2.0)
    elif leaf == "running_mean" or leaf == "bias":
      out[k] = synthetic_array(seed, k, shape, -0.2, 0.2)
    elif len(shape) == 1:              # BatchNorm weight
      out[k] = synthetic_array(seed, k, shape, 0.5, 1.5)
    else:
      a = float(np.sqrt(6.0 / max(1, int(np.prod(shape[1:])))))
      out[k] = synthetic_array(seed, k, shape, -a, a)
  return out


# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.torchvision", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="torchvision weights: .pth/.pt (torch.save state dict), .safetensors or .npz")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--model", required=True, choices=MODELS, help="jaxgen registry name of the network")
  ap.add_argument("--overrides", default="{}", help="JSON of extra model keywords, e.g. '{\"width\": 0.5}'")
  ap.add_argument("--aux_logits", action="store_true", help="googlenet: keep the auxiliary heads")
  ap.add_argument("--no_transform_input", action="store_true",
                  help="googlenet: the network was trained with transform_input=False (input_norm='imagenet')")
  args = ap.parse_args(argv)
  try:
    overrides = json.loads(args.overrides)
    if not isinstance(overrides, dict):
      raise ValueError
  except ValueError:
    print(f"error: --overrides {args.overrides!r} is not a JSON object.", file=sys.stderr)
    return 2
  try:
    flat, meta = convert_file(args.input, args.model, overrides, aux_logits=args.aux_logits,
                              transform_input=not args.no_transform_input)
  except TorchvisionConvertError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  save(args.output, flat, meta)
  n = sum(v.size for k, v in flat.items() if k.startswith("params/"))
  print(f"{args.output}: {meta['model']}, {n:,} parameters; start a classification run from it with "
        f"--config.model.name={meta['model']} --config.model.init_from={args.output} and, in the experiment "
        f"file, c.model.overrides.update({json.dumps(meta['overrides'])})")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
