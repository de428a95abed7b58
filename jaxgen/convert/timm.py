"""Converts timm's Xception (``legacy_xception``, formerly ``xception``) weights to jaxgen ``.npz`` variables.

    python -m jaxgen.convert.timm xception-43020ad28.pth xception_timm.npz [--model xception]

Input: the state dict of ``timm.create_model('legacy_xception')`` (Cadene's port of the Keras weights,
the file timm's ``legacy_xception.tf_in1k`` downloads), ``.pth``, ``.safetensors`` or ``.npz``, read by
``jaxgen.convert.torchvision.read_state_dict`` (no torch needed). The network is jaxgen's ``xception``
with timm's ops (``jaxgen.models.xception.TIMM_OVERRIDES``: max pools padded one pixel on every side,
BatchNorm ε 1e-5); docs/convert.md "EfficientNet and Xception".

Mapping (timm → jaxgen ``jaxgen.models.xception``):

  conv1, bn1, conv2, bn2                    → stem1, stem1_bn, stem2, stem2_bn
  block1–block3 (entry flow), the last block (exit flow)
                                            → entry1–entry3, exit1: skip/skipbn → <name>_shortcut(_bn),
                                              the rep's separable convs and BNs in order → _sep1, _bn1, _sep2, _bn2
  the blocks between (block4–block11)       → middle0…: rep separables/BNs → middle<i>_sep<j>, _bn<j>
  conv3, bn3, conv4, bn4                    → exit2_sep1, exit2_bn1, exit2_sep2, exit2_bn2
  fc [N, 2048]                              → classifier/kernel [2048, N], bias
  SeparableConv2d.conv1 [C, 1, 3, 3]        → <sep>/depthwise/kernel [3, 3, 1, C]
  SeparableConv2d.pointwise [O, C, 1, 1]    → <sep>/pointwise/kernel [1, 1, C, O]
  BatchNorm2d weight, bias / running_mean, running_var → params scale, bias / batch_stats mean, var

``width`` (conv1's channels / 32), ``middle_blocks`` and ``num_classes`` are read from the shapes and
written into ``meta['overrides']`` when they differ from the defaults. timm normalizes inputs with mean =
std = 0.5, i.e. the network takes [−1, 1] images, jaxgen's convention. Output ``.npz``: ``params/…`` and
``batch_stats/…`` arrays (float32) and ``meta`` (JSON: source, model, overrides);
``--config.model.init_from=OUT`` loads it into the classification task.
"""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np

from jaxgen.convert import _common


class TimmConvertError(ValueError):
  """The weights do not fit the network asked for (the message names what and why)."""


def convert_xception(sd: dict[str, np.ndarray], model: str = "xception",
                     overrides: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """``(flat, meta)`` of a timm legacy_xception state dict (module docstring)."""
  from jaxgen.models.xception import TIMM_OVERRIDES
  for key in ("conv1.weight", "fc.weight"):
    if key not in sd:
      raise TimmConvertError(f"the state dict has no {key}: not timm's legacy_xception.")
  blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"block(\d+)\.", k)] if m})
  if len(blocks) < 4 or blocks[:3] != [1, 2, 3]:
    raise TimmConvertError(f"the state dict has blocks {blocks}: timm's Xception has block1–block3 (entry), "
                           "block4–block11 (middle) and block12 (exit).")
  middle, exit_block = blocks[3:-1], blocks[-1]
  width = sd["conv1.weight"].shape[0] / 32
  ov = dict(TIMM_OVERRIDES)
  if width != 1:
    ov["width"] = width
  if len(middle) != 8:
    ov["middle_blocks"] = len(middle)
  if sd["fc.weight"].shape[0] != 1000:
    ov["num_classes"] = int(sd["fc.weight"].shape[0])
  ov.update(overrides or {})
  from jaxgen.convert.torchvision import StateDictMapper  # noqa: PLC0415
  m = StateDictMapper(sd, TimmConvertError, "not timm's legacy_xception")

  def sep(t: str, j: str):
    m.conv(f"{t}.conv1", f"{j}/depthwise")
    m.conv(f"{t}.pointwise", f"{j}/pointwise")

  def rep(b: int):
    """The (separable, BN) index pairs of block ``b``'s ``rep`` Sequential, in order."""
    idx = lambda suffix: sorted({int(g.group(1)) for k in sd for g in [re.match(rf"block{b}\.rep\.(\d+)\.{suffix}$", k)]
                                 if g})
    seps, bns = idx(r"conv1\.weight"), idx(r"running_mean")
    if len(seps) != len(bns):
      raise TimmConvertError(f"block{b}.rep has {len(seps)} separable convs but {len(bns)} BatchNorms.")
    return list(zip(seps, bns))

  for t, j in (("conv1", "stem1"), ("conv2", "stem2")):
    m.conv(t, j)
    m.bn(t.replace("conv", "bn"), f"{j}_bn")
  for b, name in ((1, "entry1"), (2, "entry2"), (3, "entry3"), (exit_block, "exit1")):
    m.conv(f"block{b}.skip", f"{name}_shortcut")
    m.bn(f"block{b}.skipbn", f"{name}_shortcut_bn")
    pairs = rep(b)
    if len(pairs) != 2:
      raise TimmConvertError(f"block{b} has {len(pairs)} separable convs: the entry/exit blocks have 2.")
    for n, (s, q) in enumerate(pairs, 1):
      sep(f"block{b}.rep.{s}", f"{name}_sep{n}")
      m.bn(f"block{b}.rep.{q}", f"{name}_bn{n}")
  for i, b in enumerate(middle):
    pairs = rep(b)
    if len(pairs) != 3:
      raise TimmConvertError(f"block{b} has {len(pairs)} separable convs: the middle blocks have 3.")
    for n, (s, q) in enumerate(pairs):
      sep(f"block{b}.rep.{s}", f"middle{i}_sep{n}")
      m.bn(f"block{b}.rep.{q}", f"middle{i}_bn{n}")
  for t, q, n in (("conv3", "bn3", 1), ("conv4", "bn4", 2)):
    sep(t, f"exit2_sep{n}")
    m.bn(q, f"exit2_bn{n}")
  m.dense("fc", "classifier")
  extra = m.unused(lambda k: k.endswith("num_batches_tracked"))
  if extra:
    raise TimmConvertError(f"the state dict has {len(extra)} tensors jaxgen's {model} lacks (e.g. {extra[:3]}): "
                           "not timm's legacy_xception (the aligned xception41/65/71 are other networks).")
  meta = {"source": "timm legacy_xception", "model": model, "overrides": ov}
  _common.check_shapes(m.out, meta, TimmConvertError)
  return m.out, meta


CONVERTERS = {"xception": convert_xception}


def convert(path, model: str = "xception", overrides: dict | None = None):
  """``(flat, meta)`` of a timm ``.pth``/``.safetensors``/``.npz`` file for the jaxgen network ``model``."""
  from jaxgen.convert.torchvision import TorchvisionConvertError, read_state_dict
  if model not in CONVERTERS:
    raise TimmConvertError(f"--model {model}: timm conversion exists for {', '.join(CONVERTERS)}.")
  try:
    sd = read_state_dict(path)
  except TorchvisionConvertError as e:
    raise TimmConvertError(str(e)) from None
  return CONVERTERS[model](sd, model, overrides)


def load(path) -> tuple[dict, dict]:
  """``(variables, meta)`` of a converted file, every shape checked against ``meta``'s network."""
  return _common.load(path, TimmConvertError, "jaxgen.convert.timm")


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.timm", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="timm state dict (.pth or .safetensors)")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--model", default="xception", choices=sorted(CONVERTERS), help="jaxgen registry name")
  ap.add_argument("--overrides", default="{}", help="JSON of extra model overrides")
  args = ap.parse_args(argv)
  try:
    flat, meta = convert(args.input, args.model, json.loads(args.overrides))
  except (TimmConvertError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  _common.save(args.output, flat, meta)
  print(f"wrote {args.output}: {len(flat)} arrays, {sum(math.prod(v.shape) for v in flat.values()):,} numbers.")
  print(f"train/evaluate with --config.model.name={meta['model']} --config.model.init_from={args.output} and "
        f"model.overrides {json.dumps(meta['overrides'])}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
