"""Converts score_sde_pytorch checkpoints (Song et al. 2021, yang-song/score_sde_pytorch) to jaxgen ``.npz``.

    python -m jaxgen.convert.score_sde checkpoint_N.pth ddpmpp_deep_subvp.npz \\
        --config subvp/cifar10_ddpmpp_deep_continuous [--no-ema] [--reader auto|numpy|torch] \\
        [--override nf=64 --override ch_mult=[1,2] ...]

A checkpoint is what score_sde's ``utils.save_checkpoint`` writes with ``torch.save``:
``dict(optimizer=<Adam state dict>, model=<state dict, keys 'module.'-prefixed by DataParallel>,
ema=dict(decay, num_updates, shadow_params=[tensors]), step=int)``. Two readers, same result:

  numpy  (default when torch is absent) ``jaxgen.convert.torchvision.read_pth``: torch's zip and legacy
         formats read without torch by a restricted unpickler that resolves only OrderedDict and torch's
         tensor-rebuild functions and storage types (any other global is refused, no pickled code runs).
  torch  ``torch.load(path, map_location='cpu', weights_only=True)`` (torch imported only then); the
         checkpoint dict holds only tensors, numbers, strings, None, lists, tuples and dicts, all of which
         ``weights_only`` accepts (scripts/make_score_sde_fixture.py checks it on real files).

Weights: the EMA (``--use_ema``, the default, as ``run_lib.evaluate`` does with ``ema.copy_to`` before
every sample and bits/dim evaluation). ``shadow_params`` is a list in the order of
``[p for p in model.parameters() if p.requires_grad]``: the state dict's order without the ``sigmas``
buffer and the Gaussian Fourier ``W`` (``requires_grad=False``); lengths and shapes are checked.

Networks: ``models/ncsnpp.py``'s ``NCSNpp`` (score_sde's NCSN++ *and* DDPM++: every ``configs/*/..._
ddpmpp*`` uses ``model.name = 'ncsnpp'``) with ``resblock_type='biggan'``, ``skip_rescale=True``,
continuous training; the checkpoint does not say which config trained it (FIR, SDE, data scaling), so
``--config`` names it (``CONFIGS``: the values of score_sde's config files). Its modules live in one
``all_modules`` list; ``module_names`` replays ``NCSNpp.__init__`` to name each index the way EDM's
``SongUNet`` (= ``jaxgen.models.unet_song``) names the same layer, after which ``jaxgen.convert.edm``'s
layout mapping applies:

  GaussianFourierProjection.W        → constants/map_noise_freqs (fixed randn·16; EDM's map_noise.freqs)
  Linear 0, 1 (temb MLP)             → map_layer0, map_layer1
  conv3x3 (input)                    → enc_{R}x{R}_conv
  ResnetBlockBigGANpp GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1, Conv_2
                                     → <block>/norm0, conv0, affine, norm1, conv1, skip
  AttnBlockpp GroupNorm_0, NIN_0/1/2, NIN_3 (W [in, out])
                                     → <block>/norm2, qkv (one 1×1 conv, channel 3c+j = NIN_j's c), proj
  Downsample(with_conv, FIR) (progressive_input 'residual') → enc_{r}x{r}_aux_residual
  Combine.Conv_0 (progressive_input 'input_skip', 'sum')     → enc_{r}x{r}_aux_skip
  GroupNorm + conv3x3 of progressive 'output_skip' / the output head → dec_{r}x{r}_aux_norm / aux_conv

What EDM's unified form absorbs (so the converted network is jaxgen's ``SongUNet`` unchanged): score_sde's
``x = 2x − 1`` for data in [0, 1] (VE configs) is jaxgen's [−1, 1] data with σ doubled, and NCSN++'s
``scale_by_sigma`` division is VE's c_out = σ (task.precond 've': c_noise = ln(σ/2) = ln σ_score_sde).
VP / sub-VP (centered data) are task.precond 'vp' / 'subvp' (c_noise = 999·t, c_in = s(t), c_out = −σ:
score_sde's ``score = −model(x, 999t)/std``). ``score_fn`` gives the score in score_sde's own units.

Output ``.npz`` (``jaxgen.convert._common`` layout): ``params/...``, ``constants/map_noise_freqs`` (NCSN++)
and ``meta`` (source, config, model, overrides, precond, ``sde`` = score_sde's SDE constants, eps,
centered, weights 'ema'|'model', step). ``load``/``load_into`` as for the EDM converter; the NLL of
docs/convert.md "## score_sde" is ``jaxgen.eval.bpd.score_sde_nll`` on ``denoiser(variables, meta)``.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections import OrderedDict

import numpy as np

from jaxgen.convert import _common
from jaxgen.convert import edm as _edm


class ScoreSdeConvertError(ValueError):
  """The file is not a score_sde checkpoint of a network this converter maps (the message says why)."""


# ------------------------------------------------------------------------------------------------
# Configs: the fields of score_sde's config files that shape the network, the SDE and the data scaling.

_CIFAR = dict(image_size=32, num_channels=3, nf=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,),
              dropout=0.1, fir_kernel=(1, 3, 3, 1), fourier_scale=16, resblock_type="biggan", skip_rescale=True,
              progressive_combine="sum", conditional=True, continuous=True, beta_min=0.1, beta_max=20.0,
              sigma_min=0.01, sigma_max=50.0, num_scales=1000)
_DDPMPP = dict(_CIFAR, centered=True, scale_by_sigma=False, fir=False, progressive="none",
               progressive_input="none", embedding_type="positional")
_NCSNPP_VP = dict(_CIFAR, centered=True, scale_by_sigma=False, fir=True, progressive="none",
                  progressive_input="residual", embedding_type="positional")
_NCSNPP_VE = dict(_CIFAR, sde="vesde", centered=False, scale_by_sigma=True, fir=True, progressive="none",
                  progressive_input="residual", embedding_type="fourier")
_HIGHRES = dict(_NCSNPP_VE, image_size=256, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, dropout=0.1,
                progressive="output_skip", progressive_input="input_skip")
CONFIGS = {
    "vp/cifar10_ddpmpp_continuous": dict(_DDPMPP, sde="vpsde", num_res_blocks=4),
    "vp/cifar10_ddpmpp_deep_continuous": dict(_DDPMPP, sde="vpsde", num_res_blocks=8),
    "subvp/cifar10_ddpmpp_continuous": dict(_DDPMPP, sde="subvpsde", num_res_blocks=4),
    "subvp/cifar10_ddpmpp_deep_continuous": dict(_DDPMPP, sde="subvpsde", num_res_blocks=8),
    "vp/cifar10_ncsnpp_continuous": dict(_NCSNPP_VP, sde="vpsde", num_res_blocks=4),
    "vp/cifar10_ncsnpp_deep_continuous": dict(_NCSNPP_VP, sde="vpsde", num_res_blocks=8),
    "subvp/cifar10_ncsnpp_continuous": dict(_NCSNPP_VP, sde="subvpsde", num_res_blocks=4),
    "subvp/cifar10_ncsnpp_deep_continuous": dict(_NCSNPP_VP, sde="subvpsde", num_res_blocks=8),
    "ve/cifar10_ncsnpp_continuous": dict(_NCSNPP_VE, num_res_blocks=4),
    "ve/cifar10_ncsnpp_deep_continuous": dict(_NCSNPP_VE, num_res_blocks=8),
    "ve/bedroom_ncsnpp_continuous": dict(_HIGHRES, sigma_max=378.0),
    "ve/church_ncsnpp_continuous": dict(_HIGHRES, sigma_max=380.0),
    "ve/ffhq_256_ncsnpp_continuous": dict(_HIGHRES, sigma_max=348.0),
    "ve/celebahq_256_ncsnpp_continuous": dict(_HIGHRES, sigma_max=348.0),
    "ve/ffhq_ncsnpp_continuous": dict(_HIGHRES, image_size=1024, nf=16, ch_mult=(1, 2, 4, 8, 16, 32, 32, 32),
                                      num_res_blocks=1, sigma_max=1348.0),
}
SDE_PRECOND = {"vpsde": "vp", "subvpsde": "subvp", "vesde": "ve"}
EPS = 1e-5   # score_sde's likelihood/sampling eps: the PF-ODE starts at t = eps (likelihood.py)


def check_settings(s: dict) -> None:
  """The score_sde options jaxgen's SongUNet reproduces; anything else is an error naming the option."""
  need = dict(resblock_type="biggan", skip_rescale=True, conditional=True, continuous=True,
              progressive_combine="sum")
  for k, v in need.items():
    if s.get(k, v) != v:
      raise ScoreSdeConvertError(f"{k}={s[k]!r}: only {v!r} maps onto jaxgen's SongUNet (EDM's form of "
                                 "NCSN++/DDPM++).")
  if s["progressive"] not in ("none", "output_skip"):
    raise ScoreSdeConvertError(f"progressive={s['progressive']!r}: only 'none' and 'output_skip' convert.")
  if s["progressive_input"] not in ("none", "input_skip", "residual"):
    raise ScoreSdeConvertError(f"progressive_input={s['progressive_input']!r} is not a score_sde option.")
  if s["progressive_input"] == "residual" and not s["fir"]:
    raise ScoreSdeConvertError("progressive_input='residual' without fir pads (0,1,0,1) before a stride-2 "
                               "conv, which EDM's fused resampling conv does not: not convertible.")
  sde = s["sde"]
  if sde not in SDE_PRECOND:
    raise ScoreSdeConvertError(f"sde={sde!r}: use vpsde, subvpsde or vesde.")
  if sde == "vesde" and (s["centered"] or not s["scale_by_sigma"]):
    raise ScoreSdeConvertError("a VE model must have data.centered=False and scale_by_sigma=True to be "
                               "EDM's VE preconditioning.")
  if sde != "vesde" and (not s["centered"] or s["scale_by_sigma"]):
    raise ScoreSdeConvertError("a VP/sub-VP model must have data.centered=True and scale_by_sigma=False.")
  if sde != "vesde" and (s["beta_min"], s["beta_max"]) != (0.1, 20.0):
    raise ScoreSdeConvertError(f"β range ({s['beta_min']}, {s['beta_max']}): jaxgen's VP/sub-VP schedules "
                               "use score_sde's (0.1, 20).")


# ------------------------------------------------------------------------------------------------
# Reading the checkpoint.

def _read_numpy(path) -> dict:
  from jaxgen.convert import torchvision as _tv   # its torch-free torch.save reader (zip and legacy)
  try:
    return _tv.read_pth(path)
  except _tv.TorchvisionConvertError as e:
    raise ScoreSdeConvertError(str(e)) from None


def _to_numpy(obj):
  if hasattr(obj, "detach") and hasattr(obj, "numpy"):
    t = obj.detach().cpu()
    if str(t.dtype) == "torch.bfloat16":
      t = t.float()
    return t.numpy()
  if isinstance(obj, dict):
    return type(obj)((k, _to_numpy(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) else \
        {k: _to_numpy(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_to_numpy(v) for v in obj)
  return obj


def read_checkpoint(path, reader: str = "auto") -> dict:
  """The checkpoint dict with numpy arrays for tensors (``reader``: 'numpy', 'torch' or 'auto' = torch
  when importable, else numpy)."""
  if reader not in ("auto", "numpy", "torch"):
    raise ScoreSdeConvertError(f"reader={reader!r}: use auto, numpy or torch.")
  if reader == "auto":
    import importlib.util
    reader = "torch" if importlib.util.find_spec("torch") is not None else "numpy"
  if reader == "numpy":
    ckpt = _read_numpy(path)
  else:
    import torch
    try:
      ckpt = _to_numpy(torch.load(path, map_location="cpu", weights_only=True))
    except pickle.UnpicklingError as e:
      raise ScoreSdeConvertError(f"torch.load(weights_only=True) refused {path}: {str(e).splitlines()[0]}") \
          from None
  if not isinstance(ckpt, dict) or "model" not in ckpt:
    raise ScoreSdeConvertError(f"{path} holds no 'model' state dict: not a score_sde checkpoint "
                               "(utils.save_checkpoint writes optimizer, model, ema, step).")
  return ckpt


# ------------------------------------------------------------------------------------------------
# score_sde module list → EDM SongUNet names.

_RES = {"GroupNorm_0": "norm0", "Conv_0": "conv0", "Dense_0": "affine", "GroupNorm_1": "norm1",
        "Conv_1": "conv1", "Conv_2": "skip"}


def module_names(s: dict) -> list[tuple[str, str]]:
  """``[(kind, EDM name)]`` for ``all_modules.0, 1, ...`` in the order ``NCSNpp.__init__`` appends them
  (kind: fourier, linear, conv, resblock, attn, residual, combine, norm)."""
  out = []
  big = s["image_size"]
  n = len(s["ch_mult"])
  nrb = s["num_res_blocks"]
  attn = set(s["attn_resolutions"])
  if s["embedding_type"] == "fourier":
    out.append(("fourier", "map_noise"))
  out += [("linear", "map_layer0"), ("linear", "map_layer1"), ("conv", f"enc.{big}x{big}_conv")]
  for level in range(n):
    res = big >> level
    for b in range(nrb):
      out.append(("resblock", f"enc.{res}x{res}_block{b}"))
      if res in attn:
        out.append(("attn", f"enc.{res}x{res}_block{b}"))
    if level != n - 1:
      r2 = res // 2
      out.append(("resblock", f"enc.{r2}x{r2}_down"))
      if s["progressive_input"] == "input_skip":
        out.append(("combine", f"enc.{r2}x{r2}_aux_skip"))
      elif s["progressive_input"] == "residual":
        out.append(("residual", f"enc.{r2}x{r2}_aux_residual"))
  res = big >> (n - 1)
  out += [("resblock", f"dec.{res}x{res}_in0"), ("attn", f"dec.{res}x{res}_in0"),
          ("resblock", f"dec.{res}x{res}_in1")]
  for level in reversed(range(n)):
    res = big >> level
    for b in range(nrb + 1):
      out.append(("resblock", f"dec.{res}x{res}_block{b}"))
    if res in attn:
      out.append(("attn", f"dec.{res}x{res}_block{nrb}"))
    if s["progressive"] == "output_skip":
      out += [("norm", f"dec.{res}x{res}_aux_norm"), ("conv", f"dec.{res}x{res}_aux_conv")]
    if level != 0:
      r2 = res * 2
      out.append(("resblock", f"dec.{r2}x{r2}_up"))
  if s["progressive"] != "output_skip":
    out += [("norm", f"dec.{big}x{big}_aux_norm"), ("conv", f"dec.{big}x{big}_aux_conv")]
  return out


def to_edm_state_dict(sd: dict, s: dict) -> dict[str, np.ndarray]:
  """score_sde ``NCSNpp`` state dict (``module.`` prefix stripped; ``sigmas`` removed) → EDM SongUNet
  state-dict names and torch layouts (``jaxgen.convert.edm.map_tensors`` input)."""
  groups: dict[int, dict[str, np.ndarray]] = {}
  for k, v in sd.items():
    parts = k.split(".")
    if parts[0] != "all_modules" or len(parts) < 3 or not parts[1].isdigit():
      raise ScoreSdeConvertError(f"unexpected tensor {k}: not score_sde's NCSNpp (models/ncsnpp.py).")
    groups.setdefault(int(parts[1]), {})[".".join(parts[2:])] = np.asarray(v)
  names = module_names(s)
  if sorted(groups) != list(range(len(names))):
    raise ScoreSdeConvertError(f"the checkpoint has {len(groups)} modules but the config builds {len(names)} "
                               "(nf, ch_mult, num_res_blocks, attn_resolutions, progressive*): wrong --config.")
  out = {}
  for i, (kind, name) in enumerate(names):
    t = groups[i]

    def take(keys, mod=i, t=t, kind=kind):
      if set(t) != set(keys):
        raise ScoreSdeConvertError(f"all_modules.{mod} has {sorted(t)} but a {kind} at that position has "
                                   f"{sorted(keys)}: the checkpoint does not match the config.")
      return t
    if kind == "fourier":
      out["map_noise.freqs"] = take(["W"])["W"]
    elif kind in ("linear", "conv", "norm"):
      t = take(["weight", "bias"])
      out[f"{name}.weight"], out[f"{name}.bias"] = t["weight"], t["bias"]
    elif kind == "resblock":
      keys = [k for k in t if k.split(".")[0] in _RES]
      t = take(keys) if keys else take(["GroupNorm_0.weight"])
      for k, v in t.items():
        mod, leaf = k.split(".")
        out[f"{name}.{_RES[mod]}.{leaf}"] = v
      if not {"Conv_0.weight", "Dense_0.weight", "Conv_1.weight"} <= set(t):
        raise ScoreSdeConvertError(f"all_modules.{i} is not a ResnetBlockBigGANpp: wrong --config.")
    elif kind == "attn":
      t = take(["GroupNorm_0.weight", "GroupNorm_0.bias"] + [f"NIN_{j}.{p}" for j in range(4) for p in "Wb"])
      c = t["NIN_0.W"].shape[0]
      w = np.stack([t[f"NIN_{j}.W"].T for j in range(3)], axis=1).reshape(3 * c, c)
      out[f"{name}.norm2.weight"], out[f"{name}.norm2.bias"] = t["GroupNorm_0.weight"], t["GroupNorm_0.bias"]
      out[f"{name}.qkv.weight"] = w[:, :, None, None]
      out[f"{name}.qkv.bias"] = np.stack([t[f"NIN_{j}.b"] for j in range(3)], axis=1).reshape(3 * c)
      out[f"{name}.proj.weight"] = t["NIN_3.W"].T[:, :, None, None]
      out[f"{name}.proj.bias"] = t["NIN_3.b"]
    elif kind == "residual":
      t = take(["Conv2d_0.weight", "Conv2d_0.bias"])
      out[f"{name}.weight"], out[f"{name}.bias"] = t["Conv2d_0.weight"], t["Conv2d_0.bias"]
    elif kind == "combine":
      t = take(["Conv_0.weight", "Conv_0.bias"])
      out[f"{name}.weight"], out[f"{name}.bias"] = t["Conv_0.weight"], t["Conv_0.bias"]
  return out


def overrides_of(s: dict) -> dict:
  """``jaxgen.models.unet_song.SongUNet`` kwargs of a score_sde config."""
  fourier = s["embedding_type"] == "fourier"
  return dict(img_resolution=s["image_size"], in_channels=s["num_channels"], out_channels=s["num_channels"],
              label_dim=0, augment_dim=0, model_channels=s["nf"], channel_mult=list(s["ch_mult"]),
              channel_mult_emb=4, num_blocks=s["num_res_blocks"], attn_resolutions=list(s["attn_resolutions"]),
              dropout=s["dropout"], embedding_type=s["embedding_type"], channel_mult_noise=2 if fourier else 1,
              encoder_type={"none": "standard", "input_skip": "skip", "residual": "residual"}[
                  s["progressive_input"]],
              decoder_type="skip" if s["progressive"] == "output_skip" else "standard",
              resample_filter=list(s["fir_kernel"]) if s["fir"] else [1, 1], fourier_scale=float(s["fourier_scale"]))


def select_weights(ckpt: dict, use_ema: bool = True) -> dict[str, np.ndarray]:
  """The model state dict (``module.`` stripped, ``sigmas`` dropped) with the EMA's ``shadow_params``
  in place of the trainable tensors when ``use_ema``."""
  sd = OrderedDict((k[len("module."):] if k.startswith("module.") else k, np.asarray(v))
                   for k, v in ckpt["model"].items())
  sd.pop("sigmas", None)
  if not use_ema:
    return sd
  ema = ckpt.get("ema")
  if not isinstance(ema, dict) or "shadow_params" not in ema:
    raise ScoreSdeConvertError("the checkpoint has no ema.shadow_params: convert with --no-ema.")
  fixed = {k for k, v in sd.items() if k.endswith(".W") and v.ndim == 1}   # GaussianFourierProjection.W
  trainable = [k for k in sd if k not in fixed]
  shadow = list(ema["shadow_params"])
  if len(shadow) != len(trainable):
    raise ScoreSdeConvertError(f"ema.shadow_params has {len(shadow)} tensors but the model {len(trainable)} "
                               "trainable ones: not a score_sde NCSNpp checkpoint.")
  for k, v in zip(trainable, shadow):
    if tuple(np.shape(v)) != tuple(sd[k].shape):
      raise ScoreSdeConvertError(f"ema.shadow_params entry for {k} has shape {np.shape(v)}, the model "
                                 f"{sd[k].shape}: the EMA does not follow the parameter order.")
    sd[k] = np.asarray(v)
  return sd


def convert_checkpoint(ckpt: dict, config, use_ema: bool = True, model: str | None = None):
  """``(flat arrays, meta)`` of a read checkpoint; ``config`` a ``CONFIGS`` name or a settings dict."""
  name = config if isinstance(config, str) else str(config.get("name", "custom"))
  if isinstance(config, str):
    if config not in CONFIGS:
      raise ScoreSdeConvertError(f"--config {config!r} is not one of score_sde's continuous NCSN++/DDPM++ "
                                 f"configs: {', '.join(CONFIGS)}.")
    s = dict(CONFIGS[config])
  else:
    s = {k: v for k, v in config.items() if k != "name"}
  check_settings(s)
  sigmas = ckpt["model"].get("module.sigmas", ckpt["model"].get("sigmas"))
  if s["sde"] == "vesde" and sigmas is not None:
    got = (float(np.max(sigmas)), float(np.min(sigmas)))
    if not np.allclose(got, (s["sigma_max"], s["sigma_min"]), rtol=1e-4):
      raise ScoreSdeConvertError(f"the checkpoint's sigmas run {got[1]:g}…{got[0]:g} but --config {name} "
                                 f"says {s['sigma_min']:g}…{s['sigma_max']:g}: wrong --config.")
  sd = select_weights(ckpt, use_ema)
  overrides = overrides_of(s)
  flat = _edm.map_tensors(to_edm_state_dict(sd, s), overrides["resample_filter"], "score_sde NCSNpp")
  fourier = s["embedding_type"] == "fourier"
  name_default = ("ncsnpp" if fourier or s["fir"] else "ddpmpp") + \
      ("_deep" if s["num_res_blocks"] == 8 else "") + "_cifar10_scoresde"
  sde = {k: float(s[k]) for k in (("sigma_min", "sigma_max") if s["sde"] == "vesde" else ("beta_min", "beta_max"))}
  precond = {"name": SDE_PRECOND[s["sde"]]}
  if s["sde"] == "vesde":   # in jaxgen's [−1, 1] units: σ doubles
    precond.update(sigma_min=2 * sde["sigma_min"], sigma_max=2 * sde["sigma_max"])
  meta = {"source": "score_sde", "config": name, "model": model or name_default, "overrides": overrides,
          "precond": precond, "sde": {"name": s["sde"], **sde, "T": 1.0, "eps": EPS},
          "centered": bool(s["centered"]), "weights": "ema" if use_ema else "model",
          "step": int(np.asarray(ckpt.get("step", -1))),
          "ema_decay": float((ckpt.get("ema") or {}).get("decay", float("nan")))}
  from jaxgen.models import _spec
  if not _spec(meta["model"]).module.endswith("unet_song"):
    raise ScoreSdeConvertError(f"--model {meta['model']} is not a SongUNet network (jaxgen.models.unet_song).")
  check_shapes(flat, meta)
  return flat, meta


def convert_file(path, config, use_ema: bool = True, model: str | None = None, reader: str = "auto"):
  """``(flat arrays, meta)`` of a ``checkpoint_*.pth``."""
  return convert_checkpoint(read_checkpoint(path, reader), config, use_ema, model)


def check_shapes(flat, meta) -> None:
  """Every variable of the registry network ``meta`` names, with its shape; else ``ScoreSdeConvertError``."""
  _common.check_shapes(flat, meta, ScoreSdeConvertError)


unflatten = _common.unflatten
save = _common.save
load_into = _edm.load_into


def load(path) -> tuple[dict, dict]:
  """``(variables {'params': ..., ['constants': ...]}, meta)`` of a converted file, shapes checked."""
  return _common.load(path, ScoreSdeConvertError, "jaxgen.convert.score_sde")


# ------------------------------------------------------------------------------------------------
# Using a converted network.

def schedule_of(meta: dict):
  """The jaxgen schedule whose preconditioning the converted network was trained under."""
  from jaxgen.tasks.diffusion import make_schedule
  return make_schedule(meta["precond"]["name"])


def denoiser(variables: dict, meta: dict):
  """``D(x, sigma)`` of a converted network (jaxgen's [−1, 1] units, EDM's σ), without a trainer."""
  from jaxgen import diffusion as dfn
  from jaxgen import models
  net = models.create(meta["model"], **meta["overrides"])
  raw = lambda x_in, c_noise, labels=None: net.apply(variables, x_in, c_noise)  # noqa: E731
  return dfn.precondition(raw, schedule_of(meta))


def score_fn(denoise_fn, meta: dict):
  """score_sde's ``score_fn(x, t)`` (its units: x_t of centered data for VP/sub-VP, of [0, 1] data for VE;
  continuous t ∈ [0, 1]) from a jaxgen denoiser: VP/sub-VP ∇ log p_t(x) = (D(x/s; σ) − x/s)/(s σ²),
  VE 2(D(2x − 1; 2σ_t) − (2x − 1))/(2σ_t)² with σ_t = σ_min (σ_max/σ_min)^t."""
  import jax.numpy as jnp
  sde = meta["sde"]

  def score(x, t):
    t = jnp.asarray(t, jnp.float32)
    bc = lambda a: a.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731
    if sde["name"] == "vesde":
      sigma = 2 * sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** t
      xe = 2 * x - 1
      return 2 * (denoise_fn(xe, sigma) - xe) / bc(sigma) ** 2
    sched = schedule_of(meta)
    sigma, s = sched.sigma(t), sched.s(t)
    xt = x / bc(s)
    return (denoise_fn(xt, sigma) - xt) / (bc(s) * bc(sigma) ** 2)

  return score


def main(argv=None) -> int:
  import argparse

  ap = argparse.ArgumentParser(prog="python -m jaxgen.convert.score_sde", description=__doc__.splitlines()[0])
  ap.add_argument("input", help="score_sde checkpoint (checkpoint_*.pth)")
  ap.add_argument("output", help="output .npz")
  ap.add_argument("--config", required=True, help=f"the score_sde config that trained it: {', '.join(CONFIGS)}")
  ap.add_argument("--use_ema", "--use-ema", dest="use_ema", action="store_true", default=True,
                  help="convert the EMA weights (default; what score_sde evaluates)")
  ap.add_argument("--no-ema", "--no_ema", dest="use_ema", action="store_false", help="the raw model weights")
  ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                  help="change one field of the config (JSON value, e.g. nf=64, ch_mult=[1,2]): a network "
                       "trained with a modified score_sde config")
  ap.add_argument("--model", default=None, help="jaxgen registry name (default from the config)")
  ap.add_argument("--reader", default="auto", choices=("auto", "numpy", "torch"),
                  help="torch.load(weights_only=True) or the torch-free zip reader (default: torch if present)")
  args = ap.parse_args(argv)
  try:
    config = args.config
    if args.override:
      if config not in CONFIGS:
        raise ScoreSdeConvertError(f"--config {config!r} is not one of: {', '.join(CONFIGS)}.")
      config = dict(CONFIGS[config], name=config)
      for item in args.override:
        key, sep, value = item.partition("=")
        if not sep or key not in config:
          raise ScoreSdeConvertError(f"--override {item!r}: use KEY=VALUE with KEY one of {', '.join(config)}.")
        try:
          config[key] = json.loads(value)
        except ValueError:
          config[key] = value   # a bare string such as output_skip
    flat, meta = convert_file(args.input, config, args.use_ema, args.model, args.reader)
  except (ScoreSdeConvertError, OSError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  save(args.output, flat, meta)
  n = sum(v.size for k, v in flat.items() if k.startswith("params/"))
  print(f"{args.output}: {meta['model']} ({meta['weights']} weights, step {meta['step']}, task.precond="
        f"{meta['precond']['name']}), {n:,} parameters; model.overrides={json.dumps(meta['overrides'])}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
