"""Converts EfficientNet B0–B7 weights from torchvision and from Keras to jaxgen ``.npz`` variables.

    python -m jaxgen.convert.efficientnet efficientnet_b0_rwightman-7f5810bc.pth effnet_b0_tv.npz
    python -m jaxgen.convert.efficientnet efficientnetb0.h5 effnet_b0_keras.npz [--keras_imagenet_rescale]
    python -m jaxgen.convert.efficientnet IN OUT --model efficientnet_b3 [--overrides '{"width": 0.25}']

Sources (the format follows from the file name; docs/convert.md "EfficientNet and Xception"):

  * torchvision ``efficientnet_b*`` state dicts, ``.pth`` (``torch.save``), ``.safetensors`` or ``.npz``,
    read by ``jaxgen.convert.torchvision.read_state_dict`` (no torch needed). The network is jaxgen's
    torchvision variant (``jaxgen.models.efficientnet.torchvision_overrides``: symmetric padding, BN ε
    1e-5 for B0–B4 and 1e-3 for B5–B7, ``input_norm='imagenet'``), written into ``meta['overrides']``.
  * Keras ``keras.applications.EfficientNetB*`` weights: Keras 3 ``.weights.h5`` (``layers/<key>/vars/<i>``
    groups; the layer name is the ``vars`` group's ``name`` attribute, or — files without it — follows
    from Keras' per-class naming ``conv2d``, ``conv2d_1``, … in the model's layer order) and the
    Keras 2 / ``keras-applications`` ``.h5`` files (one group per layer name with ``weight_names``).
    The network is jaxgen's default TF variant (TF "SAME" padding, BN ε 1e-3). Keras' model starts
    with ``Rescaling(1/255)`` and a ``Normalization`` layer whose mean/variance are stored in the
    file: input (x − mean)/√variance for x = pixel/255. ``keras.applications`` built with
    ``weights='imagenet'`` then also multiplies by 1/√stddev_RGB (a constant layer, not in the file:
    Keras' fix for the released files, whose "variance" holds the ImageNet *std*);
    ``--keras_imagenet_rescale`` applies that factor. When the resulting (mean, std) are ImageNet's
    (to 1e-3) the network gets ``input_norm='imagenet'`` and takes jaxgen's [−1, 1] images; otherwise
    ``input_norm='none'`` and ``meta['preprocess']`` = {mean, std} says what its input must be.

Mapping (torchvision ``features.<stage+1>.<j>.block.<i>`` / Keras ``block<stage+1><a,b,…>_*`` →
jaxgen ``block<n>`` in order):

  Conv2d.weight [O, I/g, k, k] / Keras kernel [k, k, I, O] or depthwise [k, k, C, 1]
                                                     → <name>/conv/kernel [k, k, I/g, O]
  BatchNorm weight, bias / gamma, beta                → params <name>/bn/scale, bias
  BatchNorm running_mean, running_var / moving_*      → batch_stats <name>/bn/mean, var
  SE fc1, fc2 / se_reduce, se_expand (with bias)      → <block>/se/reduce, expand
  classifier.1 [N, F] / predictions [F, N]            → classifier/kernel [F, N], bias

Output ``.npz``: ``params/…`` and ``batch_stats/…`` arrays (float32) and ``meta`` (JSON: source, model,
overrides — including ``num_classes`` when not 1000 — and, for a Keras file whose normalization is not
ImageNet's, ``preprocess``). ``--config.model.init_from=OUT`` with ``model.name``/``model.overrides`` as
printed loads it into the classification task (``jaxgen.convert.edm.load_into``).
"""

from __future__ import annotations

import json
import math
import re
import sys
import numpy as np

from jaxgen.convert import _common


class EfficientNetConvertError(ValueError):
  """The weights do not fit the EfficientNet asked for (the message names what and why)."""


#: ``keras.applications.efficientnet`` IMAGENET_STDDEV_RGB: its extra ``Rescaling(1/√std)`` for weights='imagenet'
KERAS_IMAGENET_STDDEV = (0.229, 0.224, 0.225)


def _network(model: str, overrides: dict):
  from jaxgen import models
  from jaxgen.models.efficientnet import EfficientNet, block_args, B0_BLOCKS, round_repeats
  net = models.create(model, **overrides)
  if not isinstance(net, EfficientNet):
    raise EfficientNetConvertError(f"--model {model} is not an EfficientNet: use efficientnet_b0 … efficientnet_b7.")
  stages = []    # per jaxgen block: (stage index, index in stage, expand ratio)
  for s, (e, *_rest, n) in enumerate(B0_BLOCKS):
    stages += [(s, j, e) for j in range(round_repeats(n, net.depth))]
  assert len(stages) == len(block_args(net.width, net.depth))
  return net, stages


def convert_torchvision(sd: dict[str, np.ndarray], model: str = "efficientnet_b0",
                        overrides: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """``(flat, meta)`` of a torchvision EfficientNet state dict (module docstring)."""
  from jaxgen.models.efficientnet import COEFFICIENTS, torchvision_overrides
  variant = model.rsplit("_", 1)[-1]
  if variant not in COEFFICIENTS:
    raise EfficientNetConvertError(f"--model {model} is not an EfficientNet: use efficientnet_b0 … efficientnet_b7.")
  ov = {**torchvision_overrides(variant), **_num_classes(sd.get("classifier.1.weight"), 0), **(overrides or {})}
  _, stages = _network(model, ov)
  from jaxgen.convert.torchvision import StateDictMapper  # noqa: PLC0415
  m = StateDictMapper(sd, EfficientNetConvertError,
                      f"not a torchvision {model} (with overrides {json.dumps(overrides or {})})")
  m.conv_bn("features.0.0", "features.0.1", "stem")
  for n, (s, j, e) in enumerate(stages):
    t = f"features.{s + 1}.{j}.block"
    parts = (["expand"] if e != 1 else []) + ["depthwise", "se", "project"]
    for i, part in enumerate(parts):
      if part == "se":
        for tv, jx in (("fc1", "reduce"), ("fc2", "expand")):
          m.conv(f"{t}.{i}.{tv}", f"block{n}/se/{jx}", bias=True)
      else:
        m.conv_bn(f"{t}.{i}.0", f"{t}.{i}.1", f"block{n}/{part}")
  m.conv_bn("features.8.0", "features.8.1", "head")   # features.0 stem, 1–7 the seven stages, 8 head
  m.dense("classifier.1", "classifier")
  extra = m.unused(lambda k: k.endswith("num_batches_tracked"))
  if extra:
    raise EfficientNetConvertError(f"the state dict has {len(extra)} tensors {model} lacks (e.g. {extra[:3]}): "
                                   "pick the matching --model (b0 … b7) or --overrides (width/depth).")
  meta = {"source": "torchvision", "model": model, "overrides": ov}
  _check(m.out, meta)
  return m.out, meta


def _num_classes(classifier: np.ndarray | None, axis: int) -> dict:
  if classifier is None or classifier.shape[axis] == 1000:
    return {}
  return {"num_classes": int(classifier.shape[axis])}


def _check(flat, meta):
  _common.check_shapes(flat, meta, EfficientNetConvertError)


# ------------------------------------------------------------------------------------------------
# Keras


def keras_layer_order(stages) -> list[tuple[str, str]]:
  """``(Keras class name, layer name)`` of the weighted layers of ``keras.applications.EfficientNet`` in
  its layer order (``stages`` from ``_network``); Keras 3 names the file's groups after the class with a
  per-class counter in this order."""
  out = [("Normalization", "normalization"), ("Conv2D", "stem_conv"), ("BatchNormalization", "stem_bn")]
  for s, j, e in stages:
    p = f"block{s + 1}{chr(97 + j)}_"
    if e != 1:
      out += [("Conv2D", p + "expand_conv"), ("BatchNormalization", p + "expand_bn")]
    out += [("DepthwiseConv2D", p + "dwconv"), ("BatchNormalization", p + "bn"), ("Conv2D", p + "se_reduce"),
            ("Conv2D", p + "se_expand"), ("Conv2D", p + "project_conv"), ("BatchNormalization", p + "project_bn")]
  return out + [("Conv2D", "top_conv"), ("BatchNormalization", "top_bn"), ("Dense", "predictions")]


_SNAKE = {"Normalization": "normalization", "Conv2D": "conv2d", "BatchNormalization": "batch_normalization",
          "DepthwiseConv2D": "depthwise_conv2d", "Dense": "dense"}
# weight order of a Keras 3 ``vars`` group, and the Keras 2 weight names
_VARS = {"Normalization": ("mean", "variance", "count"), "Conv2D": ("kernel", "bias"),
         "DepthwiseConv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
         "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}


def _first_normalization(names) -> str:
  """The input ``Normalization`` layer's name: Keras numbers auto-named layers per session, so a file may
  hold ``normalization_1`` … instead of ``normalization``."""
  found = sorted((n for n in names if re.fullmatch(r"normalization(_\d+)?", str(n))),
                 key=lambda n: (len(n), n))
  return found[0] if found else "normalization"


def _missing_hint(name: str) -> str:
  if name == "predictions":
    return ("an include_top=False ('notop') file lacks the classifier jaxgen's EfficientNet has: convert the "
            "file with the top")
  return "not the Keras EfficientNet of this --model/--overrides (width/depth)"


def read_keras_h5(path, order: list[tuple[str, str]]) -> dict[str, dict[str, np.ndarray]]:
  """``{layer name: {weight: array}}`` of a Keras weights file (Keras 3 ``.weights.h5`` or Keras 2 ``.h5``)
  for the layers in ``order`` (``keras_layer_order``)."""
  try:
    import h5py  # noqa: PLC0415
  except ImportError:
    raise EfficientNetConvertError("reading Keras .h5 weights needs h5py: pip install h5py.") from None
  out: dict[str, dict[str, np.ndarray]] = {}
  with h5py.File(path, "r") as f:
    if "layers" in f and isinstance(f["layers"], h5py.Group) and "layer_names" not in f.attrs:
      groups = f["layers"]
      by_name = {}
      for key in groups:
        v = groups[key].get("vars")
        if v is not None and "name" in v.attrs:
          by_name[str(v.attrs["name"])] = key
      named = bool(by_name)      # files without names: Keras' per-class numbering in layer order
      if named:
        by_name.setdefault("normalization", by_name.get(_first_normalization(by_name), ""))
      counters: dict[str, int] = {}
      for cls, name in order:
        snake = _SNAKE[cls]
        i = counters.get(snake, 0)
        counters[snake] = i + 1
        key = by_name.get(name, "") if named else (snake if i == 0 else f"{snake}_{i}")
        if key not in groups or "vars" not in groups[key]:
          where = f"layers/{key}/vars (Keras layer {name})" if key else f"Keras layer named {name}"
          raise EfficientNetConvertError(f"{path} has no {where}: {_missing_hint(name)}.")
        v = groups[key]["vars"]
        out[name] = {w: np.asarray(v[str(j)]) for j, w in enumerate(_VARS[cls]) if str(j) in v}
    else:
      root = f["model_weights"] if "model_weights" in f else f
      for cls, name in order:
        if name == "normalization" and name not in root:
          name_in_file = _first_normalization(root)
        else:
          name_in_file = name
        if name_in_file not in root:
          raise EfficientNetConvertError(f"{path} has no layer {name}: {_missing_hint(name)}.")
        g = root[name_in_file]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
        weights = {}
        for n in names:
          short = n.rsplit("/", 1)[-1].split(":")[0]
          weights["kernel" if short == "depthwise_kernel" else short] = np.asarray(g[n])
        out[name] = weights
  return out


def convert_keras(path, model: str = "efficientnet_b0", overrides: dict | None = None,
                  imagenet_rescale: bool = False) -> tuple[dict[str, np.ndarray], dict]:
  """``(flat, meta)`` of a Keras EfficientNet weights file (module docstring)."""
  from jaxgen.models.efficientnet import TF_OVERRIDES
  ov = {**TF_OVERRIDES, **(overrides or {})}
  _, stages = _network(model, ov)
  order = keras_layer_order(stages)
  layers = read_keras_h5(path, order)
  ov.update(_num_classes(layers["predictions"].get("kernel"), 1))
  _, stages = _network(model, ov)
  flat: dict[str, np.ndarray] = {}

  def get(layer, w):
    if w not in layers[layer]:
      raise EfficientNetConvertError(f"{path}: Keras layer {layer} has no {w} (it has {sorted(layers[layer])}).")
    return np.asarray(layers[layer][w], np.float32)

  def conv_bn(conv: str, bn: str, j: str, depthwise: bool = False):
    k = get(conv, "kernel")
    flat[f"params/{j}/conv/kernel"] = np.swapaxes(k, 2, 3) if depthwise else k
    flat[f"params/{j}/bn/scale"], flat[f"params/{j}/bn/bias"] = get(bn, "gamma"), get(bn, "beta")
    flat[f"batch_stats/{j}/bn/mean"], flat[f"batch_stats/{j}/bn/var"] = (get(bn, "moving_mean"),
                                                                           get(bn, "moving_variance"))

  conv_bn("stem_conv", "stem_bn", "stem")
  for n, (s, j, e) in enumerate(stages):
    p = f"block{s + 1}{chr(97 + j)}_"
    if e != 1:
      conv_bn(p + "expand_conv", p + "expand_bn", f"block{n}/expand")
    conv_bn(p + "dwconv", p + "bn", f"block{n}/depthwise", depthwise=True)
    for kx, jx in (("se_reduce", "reduce"), ("se_expand", "expand")):
      flat[f"params/block{n}/se/{jx}/kernel"] = get(p + kx, "kernel")
      flat[f"params/block{n}/se/{jx}/bias"] = get(p + kx, "bias")
    conv_bn(p + "project_conv", p + "project_bn", f"block{n}/project")
  conv_bn("top_conv", "top_bn", "head")
  flat["params/classifier/kernel"] = get("predictions", "kernel")
  flat["params/classifier/bias"] = get("predictions", "bias")
  from jaxgen.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD  # torchvision's Normalize constants
  meta = {"source": "keras", "model": model, "overrides": ov}
  mean, std = keras_normalization(get("normalization", "mean"), get("normalization", "variance"), imagenet_rescale)
  if np.allclose(mean, IMAGENET_MEAN, rtol=1e-3) and np.allclose(std, IMAGENET_STD, rtol=1e-3):
    ov["input_norm"] = "imagenet"
  else:
    ov["input_norm"] = "none"
    meta["preprocess"] = {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
  _check(flat, meta)
  return flat, meta


def keras_normalization(mean, variance, imagenet_rescale: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) on [0, 1] pixels of Keras' ``Normalization`` (+ the weights='imagenet' ``Rescaling``)."""
  std = np.sqrt(np.asarray(variance, np.float64).reshape(-1))
  if imagenet_rescale:
    std = std * np.sqrt(np.asarray(KERAS_IMAGENET_STDDEV))
  return np.asarray(mean, np.float64).reshape(-1), std


def convert(path, model: str = "efficientnet_b0", overrides: dict | None = None,
            keras_imagenet_rescale: bool = False) -> tuple[dict, dict]:
  """``(flat, meta)`` of a torchvision (.pth/.pt/.safetensors/.npz) or Keras (.h5) EfficientNet file."""
  if str(path).endswith(".h5"):
    return convert_keras(path, model, overrides, keras_imagenet_rescale)
  from jaxgen.convert.torchvision import TorchvisionConvertError, read_state_dict
  try:
    sd = read_state_dict(path)
  except TorchvisionConvertError as e:
    raise EfficientNetConvertError(str(e)) from None
  return convert_torchvision(sd, model, overrides)


def load(path) -> tuple[dict, dict]:
  """``(variables, meta)`` of a converted file, every shape checked against ``meta``'s network."""
  return _common.load(path, EfficientNetConvertError, "jaxgen.convert.efficientnet")


def preprocess(images_01: np.ndarray, meta: dict) -> np.ndarray:
  """The network input of NHWC ``images_01`` (pixels/255 in [0, 1]) under ``meta['preprocess']`` (a Keras
  file whose normalization is not ImageNet's)."""
  p = meta["preprocess"]
  return ((np.asarray(images_01, np.float32) - np.asarray(p["mean"], np.float32))
          / np.asarray(p["std"], np.float32))


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.efficientnet", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="torchvision .pth/.safetensors state dict or Keras .h5/.weights.h5 file")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--model", default="efficientnet_b0", help="jaxgen registry name (efficientnet_b0 … b7)")
  ap.add_argument("--overrides", default="{}", help="JSON of extra model overrides (e.g. width/depth)")
  ap.add_argument("--keras_imagenet_rescale", action="store_true",
                  help="fold keras.applications' extra 1/sqrt(stddev) input scaling (weights='imagenet') "
                       "into the std")
  args = ap.parse_args(argv)
  try:
    flat, meta = convert(args.input, args.model, json.loads(args.overrides), args.keras_imagenet_rescale)
  except (EfficientNetConvertError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  _common.save(args.output, flat, meta)
  print(f"wrote {args.output}: {len(flat)} arrays, {sum(math.prod(v.shape) for v in flat.values()):,} numbers.")
  print(f"train/evaluate with --config.model.name={meta['model']} --config.model.init_from={args.output} and "
        f"model.overrides {json.dumps(meta['overrides'])}.")
  if "preprocess" in meta:
    print(f"note: this network's input is (x/255 - mean)/std with {json.dumps(meta['preprocess'])}, not "
          "ImageNet's normalization: preprocess images so (or, for keras.applications' released weights, "
          "pass --keras_imagenet_rescale).")
  return 0


if __name__ == "__main__":
  sys.exit(main())
