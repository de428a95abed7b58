"""Converts EDM network pickles (Karras et al. 2022, NVlabs/edm) to jaxgen ``.npz`` variables, without torch.

    python -m jaxgen.convert.edm edm-cifar10-32x32-cond-vp.pkl edm_cifar10_cond_vp.npz [--model NAME]

EDM's snapshots (``network-snapshot-*.pkl`` and the released ``edm-*.pkl``) are plain pickles of
``dict(ema=net, loss_fn=..., augment_pipe=..., dataset_kwargs=...)`` whose modules are
``torch_utils.persistence`` objects: each carries the *source code* of its Python module and is rebuilt
by ``_reconstruct_persistent_obj``, which ``exec``s that source. This reader never does: a restricted
``pickle.Unpickler`` resolves only the allow-listed globals below and turns every persistent object into
a plain record (class name, constructor kwargs, parameters, buffers, submodules); the embedded source is
ignored. A pickle asking for any other global is refused with ``EdmPickleError`` naming it.

Allow-list (module, name):

  torch_utils.persistence  _reconstruct_persistent_obj  → record of class_name + state (source not run)
  torch.storage            _load_from_bytes             → the nested legacy ``torch.save`` of one storage,
                                                          parsed here (pickle header + raw little-endian data)
  torch._utils             _rebuild_tensor_v2, _rebuild_parameter[_with_state] → numpy arrays
  torch                    {Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage → dtypes
  torch.nn.modules.container ModuleDict / ModuleList / Sequential, torch.nn.modules.module Module
                                                        → plain records
  collections OrderedDict; dnnlib.util EasyDict; numpy dtype / scalar / ndarray reconstruction (no objects)

Mapping (EDM ``training/networks.py`` → ``jaxgen.models.unet_song`` / ``unet_adm``; the module names are
EDM's, ``enc.16x16_block0`` becoming ``enc_16x16_block0``):

  Linear.weight [out, in]          → <name>/kernel [in, out];   .bias → <name>/bias
  Conv2d.weight [O, I, k, k]       → <name>/kernel [k, k, I, O] (HWIO); .bias → <name>/bias
  Conv2d.resample_filter (buffer)  → checked against the network's ``resample_filter``, not stored
  GroupNorm.weight / .bias         → <name>/norm/scale / bias
  FourierEmbedding.freqs (NCSN++)  → constants/map_noise_freqs (the trained frequencies; docs in unet_song)

Networks: SongUNet with ``embedding_type='positional'`` → ``ddpmpp_cifar10`` (32²) / ``ddpmpp_64``,
``'fourier'`` → ``ncsnpp_cifar10``; DhariwalUNet → ``adm_imagenet64``. The network's constructor kwargs
are all written as ``model.overrides`` (so the registry name only picks the class). Preconditioning:
VPPrecond → task.precond 'vp', VEPrecond → 've', EDMPrecond → 'edm' (sigma_data), iDDPMPrecond → 'iddpm'
(its constants are compared with jaxgen's schedule defaults; a difference is an error). EDM's
CIFAR-10 networks were trained with ``augment_dim=9``: pass the augmentation labels as zeros (EDM's
``generate.py`` passes none, which is the same since ``map_augment`` has no bias).

Output ``.npz``: ``params/<path>`` and ``constants/<path>`` arrays (float32) and ``meta`` (JSON: source,
model, overrides, precond and its constants, class names). ``load(path) -> (variables, meta)`` reads it
back and checks every shape against ``models.init_shapes(meta['model'], **meta['overrides'])``;
``load_into(path, variables)`` fills a task's initialised variables tree (what ``model.init_from`` uses).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
from collections import OrderedDict
from typing import Any

import numpy as np

from jaxgen.convert import _common


class EdmPickleError(ValueError):
  """The file is not an EDM network pickle this reader accepts (the message names what and why)."""


# ------------------------------------------------------------------------------------------------
# Plain records standing in for the pickled objects.


class PersistentObject:
  """An EDM persistent module as data: ``class_name`` and its pickled ``state`` (the module ``__dict__``)."""

  def __init__(self, class_name: str, state: dict, version: int):
    self.class_name, self.state, self.version = class_name, dict(state), version

  @property
  def init_kwargs(self) -> dict:
    return dict(self.state.get("_init_kwargs") or {})

  def __repr__(self):
    return f"PersistentObject({self.class_name})"


class _Record:
  """A non-persistent torch module (ModuleDict, ...) or EasyDict-like object: keeps its pickled state."""

  def __init__(self, *args, **kwargs):
    self.state: dict = {}

  def __setstate__(self, state):
    self.state = dict(state) if isinstance(state, dict) else {"_state": state}


class _EasyDict(dict):
  def __setstate__(self, state):
    if isinstance(state, dict):
      self.update(state)


class _NdarrayStub:
  """numpy's ndarray pickle protocol (``_reconstruct`` then ``__setstate__``) for non-object dtypes only."""

  def __init__(self, *args):
    self.array = None

  def __setstate__(self, state):
    _, shape, dtype, fortran, raw = state[:5]
    dtype = np.dtype(dtype)
    if dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
      raise EdmPickleError("the pickle holds a numpy array of Python objects: refused (only numeric arrays).")
    a = np.frombuffer(bytes(raw), dtype)
    self.array = a.reshape(shape, order="F" if fortran else "C").copy()


def _persistent(meta):
  if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
    raise EdmPickleError("a torch_utils.persistence record is not of type 'class': "
                         "not an EDM network pickle.")
  return PersistentObject(str(meta["class_name"]), meta.get("state") or {}, int(meta.get("version", 0)))


def _np_scalar(dtype, raw=None):
  dtype = np.dtype(dtype)
  if dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
    raise EdmPickleError("the pickle holds a numpy object scalar: refused.")
  return np.frombuffer(bytes(raw), dtype)[0]


def _np_reconstruct(cls, shape, dtype_code):
  return _NdarrayStub()


def _np_dtype(name, align=False, copy=False):
  dt = np.dtype(name)
  if dt.hasobject:
    raise EdmPickleError("the pickle asks for a numpy object dtype: refused.")
  return dt


class _StorageType:
  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
             "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
             "BoolStorage": "?"}


def _storage_type(name):
  if name == "BFloat16Storage":
    return _StorageType("<u2")   # converted to float32 in _rebuild_tensor
  return _StorageType(_STORAGES[name])


class _Storage:
  def __init__(self, data: np.ndarray, bf16: bool = False):
    self.data, self.bf16 = data, bf16


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
  if not isinstance(storage, _Storage):
    raise EdmPickleError("a tensor without a storage: not a torch tensor pickle this reader understands.")
  data = storage.data
  size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
  if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0 or offset > data.size:
    raise EdmPickleError("a tensor with negative or inconsistent sizes/strides: the file is corrupt.")
  if not size:
    out = data[offset:offset + 1].reshape(())
  else:
    end = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if end > data.size:
      raise EdmPickleError("a tensor reaches past its storage: the file is corrupt.")
    out = np.lib.stride_tricks.as_strided(data[offset:], size, [s * data.itemsize for s in stride])
  out = np.array(out)
  if storage.bf16:
    out = (out.astype(np.uint32) << 16).view(np.float32)
  return out


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
  return data


# Legacy torch.save format of one storage (what torch.storage.TypedStorage.__reduce__ writes):
# pickle(magic) pickle(protocol) pickle(sys_info) pickle(obj; storages by persistent id)
# pickle(sorted storage keys) then per key: int64 numel + numel·itemsize little-endian bytes.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _LegacyUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if module == "torch" and (name in _STORAGES or name == "BFloat16Storage"):
      return _storage_type(name)
    raise EdmPickleError(f"a storage record asks for {module}.{name}, which is not allow-listed.")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise EdmPickleError(f"unknown persistent id {pid!r:.60} in a storage record.")
    _, stype, key, _location, numel, view = pid
    if view is not None:
      raise EdmPickleError("storage views are not supported.")
    if not isinstance(stype, _StorageType):
      raise EdmPickleError("a storage record without a storage type.")
    self.storages.setdefault(str(key), (stype.dtype, int(numel)))
    return ("storage_ref", str(key))


def _load_from_bytes(b: bytes) -> _Storage:
  f = io.BytesIO(b)
  if b[:2] == b"PK":
    raise EdmPickleError("a storage in the zip format: re-save the pickle with EDM's own torch version.")
  magic = _LegacyUnpickler(f).load()
  if magic != _LEGACY_MAGIC:
    raise EdmPickleError("a storage record without torch's legacy magic number.")
  _LegacyUnpickler(f).load()   # protocol version
  info = _LegacyUnpickler(f).load()
  if not isinstance(info, dict) or not info.get("little_endian", True):
    raise EdmPickleError("a big-endian storage record: not supported.")
  up = _LegacyUnpickler(f)
  up.storages = {}
  ref = up.load()
  keys = _LegacyUnpickler(f).load()
  arrays = {}
  for key in keys:
    (numel,) = struct.unpack("<q", f.read(8))
    dtype = up.storages[str(key)][0]
    raw = f.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
      raise EdmPickleError("a storage record is truncated.")
    arrays[str(key)] = np.frombuffer(raw, dtype).copy()
  if not (isinstance(ref, tuple) and ref[0] == "storage_ref"):
    raise EdmPickleError("a storage record does not hold a storage.")
  return _Storage(arrays[ref[1]], bf16=up.storages[ref[1]][0] == np.dtype("<u2"))


ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.modules.container", "ModuleDict"): _Record,
    ("torch.nn.modules.container", "ModuleList"): _Record,
    ("torch.nn.modules.container", "Sequential"): _Record,
    ("torch.nn.modules.module", "Module"): _Record,
    ("collections", "OrderedDict"): OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): _NdarrayStub,
}


class _RestrictedUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    fn = ALLOWED.get((module, name))
    if fn is None:
      raise EdmPickleError(f"the pickle asks for {module}.{name}, which is not on jaxgen.convert.edm's "
                           "allow-list (it never imports or runs pickled code): not an EDM network pickle.")
    return fn

  def persistent_load(self, pid):
    raise EdmPickleError("the pickle uses persistent ids (a torch.save file?): give an EDM network pickle.")


def read_pickle(path_or_file) -> Any:
  """The pickle's content with persistent modules as ``PersistentObject`` records (no code executed)."""
  is_path = isinstance(path_or_file, (str, bytes)) or hasattr(path_or_file, "__fspath__")
  f = open(path_or_file, "rb") if is_path else path_or_file
  try:
    return _RestrictedUnpickler(f).load()
  finally:
    if f is not path_or_file:
      f.close()


# ------------------------------------------------------------------------------------------------
# Module tree → flat tensors.


def _children(obj) -> dict:
  state = obj.state
  return dict(state.get("_modules") or {})


def flat_tensors(obj, prefix: str = "") -> dict[str, np.ndarray]:
  """``{dotted.name: array}`` of every parameter and buffer under ``obj`` (torch's state-dict names)."""
  out = {}
  state = obj.state
  for coll in ("_parameters", "_buffers"):
    for k, v in (state.get(coll) or {}).items():
      if v is None:
        continue
      if isinstance(v, _NdarrayStub):
        v = v.array
      out[prefix + k] = np.asarray(v)
  for k, child in _children(obj).items():
    if child is not None:
      out.update(flat_tensors(child, f"{prefix}{k}."))
  return out


def _plain(v):
  """JSON-able constructor kwargs (numpy scalars → Python numbers, tuples → lists)."""
  if isinstance(v, dict):
    return {str(k): _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  if isinstance(v, np.generic):
    return v.item()
  if isinstance(v, (str, int, float, bool)) or v is None:
    return v
  raise EdmPickleError(f"a constructor argument of type {type(v).__name__} is not plain data.")


# ------------------------------------------------------------------------------------------------
# EDM → jaxgen.

PRECONDS = {"VPPrecond": "vp", "VEPrecond": "ve", "EDMPrecond": "edm", "iDDPMPrecond": "iddpm"}
NETWORKS = ("SongUNet", "DhariwalUNet")
# Constructor kwargs of EDM's networks that jaxgen's modules take under the same name.
SONG_KEYS = ("img_resolution", "in_channels", "out_channels", "label_dim", "augment_dim", "model_channels",
             "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout",
             "embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter")
ADM_KEYS = ("img_resolution", "in_channels", "out_channels", "label_dim", "augment_dim", "model_channels",
            "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout")
# EDM's defaults for the keys a pickle may omit (training/networks.py constructors).
SONG_DEFAULTS = dict(label_dim=0, augment_dim=0, model_channels=128, channel_mult=[1, 2, 2, 2],
                     channel_mult_emb=4, num_blocks=4, attn_resolutions=[16], dropout=0.10, label_dropout=0,
                     embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                     decoder_type="standard", resample_filter=[1, 1])
ADM_DEFAULTS = dict(label_dim=0, augment_dim=0, model_channels=192, channel_mult=[1, 2, 3, 4],
                    channel_mult_emb=4, num_blocks=3, attn_resolutions=[32, 16, 8], dropout=0.10,
                    label_dropout=0)
PRECOND_DEFAULTS = {
    "vp": dict(beta_d=19.9, beta_min=0.1, M=1000, epsilon_t=1e-5),
    "ve": dict(sigma_min=0.02, sigma_max=100),
    "edm": dict(sigma_min=0, sigma_max=float("inf"), sigma_data=0.5),
    "iddpm": dict(C_1=0.001, C_2=0.008, M=1000),
}


def _default_model(class_name: str, kw: dict) -> str:
  if class_name == "DhariwalUNet":
    return "adm_imagenet64"
  if kw.get("embedding_type", "positional") == "fourier":
    return "ncsnpp_cifar10"
  return "ddpmpp_64" if kw.get("img_resolution") == 64 else "ddpmpp_cifar10"


def _precond_info(top: PersistentObject) -> dict:
  name = PRECONDS[top.class_name]
  kw = top.init_kwargs
  consts = {k: kw.get(k, d) for k, d in PRECOND_DEFAULTS[name].items()}
  info = {"name": name, **{k: (v if v != float("inf") else "inf") for k, v in consts.items()}}
  # jaxgen's schedules (jaxgen/diffusion/schedules.py) use EDM's default constants; a pickle trained
  # with others would be evaluated with the wrong c_noise, so refuse it rather than guess.
  for k, d in PRECOND_DEFAULTS[name].items():
    if k in ("sigma_min", "sigma_max") and name == "edm":
      continue   # EDMPrecond's bounds are informational (the sampler's σ range), not in D(x; σ)
    if k in ("sigma_min", "sigma_max") and name == "ve":
      continue   # VE's c_* do not depend on them either
    if k == "sigma_data":
      continue   # task.sigma_data carries it
    if float(consts[k]) != float(d):
      raise EdmPickleError(f"{top.class_name} was built with {k}={consts[k]} but jaxgen's '{name}' schedule "
                           f"uses EDM's default {d}: not supported.")
  return info


def _check_filter(name: str, buf: np.ndarray, resample_filter) -> None:
  f = np.asarray(resample_filter, np.float32)
  want = np.outer(f, f) / np.square(f.sum())
  got = np.asarray(buf, np.float32).reshape(buf.shape[-2:])
  if got.shape != want.shape or not np.allclose(got, want, atol=1e-7):
    raise EdmPickleError(f"{name} is not the {list(resample_filter)} filter the constructor kwargs say.")


def convert_network(net: PersistentObject, tensors: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """``({'params/...' or 'constants/...': float32 array}, overrides)`` of a SongUNet / DhariwalUNet record
  (``tensors``: its state dict, by default collected from the record)."""
  if net.class_name not in NETWORKS:
    raise EdmPickleError(f"the network is an EDM {net.class_name}; supported: {', '.join(NETWORKS)}.")
  kw = net.init_kwargs
  keys, defaults = (SONG_KEYS, SONG_DEFAULTS) if net.class_name == "SongUNet" else (ADM_KEYS, ADM_DEFAULTS)
  unknown = set(kw) - set(keys)
  if unknown:
    raise EdmPickleError(f"{net.class_name} kwargs {sorted(unknown)} have no jaxgen counterpart.")
  overrides = {k: _plain(kw.get(k, defaults.get(k))) for k in keys}
  if any(v is None for v in overrides.values()):
    raise EdmPickleError(f"{net.class_name} lacks constructor kwargs "
                         f"{[k for k, v in overrides.items() if v is None]}.")
  tensors = flat_tensors(net) if tensors is None else tensors
  return map_tensors(tensors, overrides.get("resample_filter", [1, 1]), net.class_name), overrides


def map_tensors(tensors: dict, resample_filter=(1, 1), what: str = "network") -> dict[str, np.ndarray]:
  """EDM state-dict names and layouts → jaxgen ``params/...`` / ``constants/...`` (module docstring)."""
  flat = {}
  for name, v in tensors.items():
    parts = name.split(".")
    if parts[0] in ("enc", "dec"):
      parts = [f"{parts[0]}_{parts[1]}"] + parts[2:]
    leaf, mods = parts[-1], parts[:-1]
    v = np.asarray(v, np.float32)
    if leaf == "resample_filter":
      _check_filter(name, v, resample_filter)
      continue
    if leaf == "freqs" and mods == ["map_noise"]:
      flat["constants/map_noise_freqs"] = v
      continue
    if leaf not in ("weight", "bias"):
      raise EdmPickleError(f"unexpected tensor {name} in the {what}.")
    is_norm = "norm" in mods[-1]
    if is_norm:
      flat["params/" + "/".join(mods) + ("/norm/scale" if leaf == "weight" else "/norm/bias")] = v
    elif leaf == "bias":
      flat["params/" + "/".join(mods) + "/bias"] = v
    elif v.ndim == 2:
      flat["params/" + "/".join(mods) + "/kernel"] = v.T
    elif v.ndim == 4:
      flat["params/" + "/".join(mods) + "/kernel"] = v.transpose(2, 3, 1, 0)
    else:
      raise EdmPickleError(f"unexpected {v.ndim}-d weight {name}.")
  return flat


def convert_pickle(path, model: str | None = None, key: str = "ema") -> tuple[dict[str, np.ndarray], dict]:
  """(flat float32 arrays, meta) of an EDM network pickle; ``key`` picks the snapshot's entry."""
  data = read_pickle(path)
  if isinstance(data, dict):
    if key not in data:
      raise EdmPickleError(f"the pickle has entries {sorted(map(str, data))}, no {key!r}.")
    top = data[key]
  else:
    top = data
  if not isinstance(top, PersistentObject) or top.class_name not in PRECONDS:
    raise EdmPickleError(f"{key!r} is not an EDM preconditioned network (VPPrecond, VEPrecond, EDMPrecond, "
                         f"iDDPMPrecond) but {top!r:.80}.")
  net = _children(top).get("model")
  if not isinstance(net, PersistentObject):
    raise EdmPickleError(f"{top.class_name} has no 'model' submodule.")
  return convert_records(top, net, flat_tensors(net), model)


def convert_records(top: PersistentObject, net: PersistentObject, tensors: dict[str, np.ndarray],
                    model: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """(flat arrays, meta) from the preconditioner and network records and the network's tensors."""
  flat, overrides = convert_network(net, tensors)
  name = model or _default_model(net.class_name, overrides)
  from jaxgen.models import _spec
  spec = _spec(name)
  want = "unet_adm" if net.class_name == "DhariwalUNet" else "unet_song"
  if not spec.module.endswith(want):
    raise EdmPickleError(f"--model {name} is not a {net.class_name} network (it lives in {spec.module}).")
  meta = {"source": "edm", "model": name, "overrides": overrides, "precond": _precond_info(top),
          "network_class": net.class_name, "precond_class": top.class_name,
          "use_fp16": bool(top.init_kwargs.get("use_fp16", False))}
  check_shapes(flat, meta)
  return flat, meta


def check_shapes(flat: dict[str, np.ndarray], meta: dict) -> None:
  """Every variable of the registry network ``meta`` names, with its shape; else ``EdmPickleError``."""
  _common.check_shapes(flat, meta, EdmPickleError)


unflatten = _common.unflatten
save = _common.save


def load(path) -> tuple[dict, dict]:
  """``(variables {'params': ..., ['constants': ...]}, meta)`` of a converted file, shapes checked."""
  return _common.load(path, EdmPickleError, "jaxgen.convert.edm")


def load_into(path, like: dict) -> dict:
  """``like`` (a variables tree, e.g. a task's freshly initialised {'params', 'constants', ...}, arrays or
  ``jax.ShapeDtypeStruct``) with every leaf replaced by the converted file's array of the same
  ``<collection>/<module>/.../<name>`` key, cast to the leaf's dtype (host numpy arrays: the caller places
  them, e.g. ``jax.device_put(tree, sharding)``). Works for any converter writing that
  layout (this one, jaxgen.convert.ddpm). A missing key, a shape mismatch or an array the network does not
  have is a ``ConfigError`` naming the fix (the converter prints the model.name/model.overrides to use)."""
  import jax

  from jaxgen.errors import ConfigError
  with np.load(path, allow_pickle=False) as z:
    flat = {k: z[k] for k in z.files if k != "meta"}
    meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
  hint = ("convert with the config's model.name/overrides" if not meta else
          f"convert and train with the same network: model.name={meta.get('model')!r} and model.overrides="
          f"{json.dumps(meta.get('overrides'))}")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  out, used = [], set()
  for p, leaf in leaves:
    key = _common.path_key(p)
    if key not in flat:
      raise ConfigError(f"model.init_from={path} has no {key}: {hint}.")
    if tuple(flat[key].shape) != tuple(leaf.shape):
      raise ConfigError(f"model.init_from={path}: {key} is {flat[key].shape} but the network's is "
                        f"{tuple(leaf.shape)}: {hint}.")
    out.append(np.asarray(flat[key], dtype=leaf.dtype))
    used.add(key)
  extra = sorted(set(flat) - used)
  if extra:
    raise ConfigError(f"model.init_from={path} has {len(extra)} arrays the network lacks (e.g. {extra[:3]}): "
                      f"{hint}.")
  return jax.tree_util.tree_unflatten(treedef, out)


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.edm", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="EDM network pickle (edm-*.pkl or network-snapshot-*.pkl)")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--model", default=None, help="jaxgen registry name (default: from the network class)")
  ap.add_argument("--key", default="ema", help="snapshot entry holding the network (default ema)")
  args = ap.parse_args(argv)
  try:
    flat, meta = convert_pickle(args.input, args.model, args.key)
  except EdmPickleError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  save(args.output, flat, meta)
  n = sum(v.size for k, v in flat.items() if k.startswith("params/"))
  print(f"{args.output}: {meta['model']} ({meta['network_class']} in {meta['precond_class']}, task.precond="
        f"{meta['precond']['name']}), {n:,} parameters; model.overrides={json.dumps(meta['overrides'])}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
