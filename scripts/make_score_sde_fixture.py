"""Builds score_sde_pytorch's own NCSN++ networks (yang-song/score_sde_pytorch ``models/ncsnpp.py``) with
random weights, saves them as ``checkpoint_*.pth`` files the way its training loop does, and records the
official score function and PF-ODE log-likelihood protocol for tests/convert/test_score_sde.py.

    git clone --bare https://github.com/yang-song/score_sde_pytorch score_sde.git   (not vendored)
    pip install scipy                       (likelihood.py's solve_ivp; torch and numpy as for the others)
    python scripts/make_score_sde_fixture.py --repo GITDIR [--out tests/fixtures/score_sde]

The official ``models/``, ``sde_lib.py``, ``likelihood.py``, ``utils.py`` (``save_checkpoint``) and the
CIFAR-10 ``configs/`` are written from the repository (``git show HEAD:<file>``) into a temporary directory
and imported unchanged, except:

- ``op/upfirdn2d.py`` compiles a CUDA extension at import (``upfirdn2d_op = load(...)``); that statement
  becomes ``upfirdn2d_op = None``. On CPU tensors the file's own ``upfirdn2d`` calls its
  ``upfirdn2d_native`` (the official CPU path) and never touches the extension. ``op/__init__.py`` keeps
  only that import (``fused_act`` is StyleGAN2's fused leaky ReLU, also a CUDA build, unused by NCSN++).
- ``tensorflow`` (imported by ``utils.py`` for ``tf.io.gfile``, unused by ``save_checkpoint``) and
  ``ml_collections`` (``ConfigDict``: a dict with attribute access here) are stub modules.

Cases (each an official CIFAR-10 config with the network shrunk: 8², nf 8, ch_mult (1, 2), one block per
level, attention at 4²; same modules and code paths):

  ddpmpp_subvp   configs/subvp/cifar10_ddpmpp_deep_continuous.py (DDPM++: positional embedding, no FIR,
                 centered data, sub-VP SDE; the 2.99 bits/dim model's layout)
  ncsnpp_ve      configs/ve/cifar10_ncsnpp_deep_continuous.py (NCSN++: Gaussian Fourier embedding, FIR
                 [1,3,3,1], progressive_input 'residual', scale_by_sigma, data in [0, 1], VE SDE)
  ncsnpp_skip    configs/ve/celebahq_256_ncsnpp_continuous.py's progressive 'output_skip' / progressive_input
                 'input_skip' (combine 'sum') on the CIFAR-10 VE config (the high-resolution layout)

Weights: every trainable tensor redrawn (N(0, 1/fan_in) for ≥2-d, GroupNorm scales 1 + N(0, 0.1²), biases
N(0, 0.1²)); the EMA's ``shadow_params`` are those weights, the raw model's are them plus N(0, 0.05²) (so
``--use_ema`` matters); one Adam step fills the optimizer state; the Fourier ``W`` keeps score_sde's
randn·16 (not trainable). ``<case>.pth`` = ``utils.save_checkpoint`` of ``dict(optimizer, model, ema, step)``
(the ``module.``-prefixed DataParallel state dict, as released). ``<case>.npz``: x (the network's input scale:
[−1, 1] centered, [0, 1] otherwise), t, score_ema / score_model (``mutils.get_score_fn(sde, model,
continuous=True)`` with the EMA and the raw weights, as ``run_lib.evaluate`` after ``ema.copy_to``).

``likelihood_gauss.npz``: ``likelihood.get_likelihood_fn(sde, inverse_scaler, eps)`` (RK45, rtol = atol =
1e-5, its priors and offset) for VP, sub-VP and VE, at score_sde's constants (eps 1e-5, β 0.1…20, σ
0.01…50) and at a "stress" setting (eps 0.2, β 0.1…2, σ 0.01…1) where every term that differs between
score_sde's frame and jaxgen's is large, run on a "model" whose score
is exact for Gaussian data N(0.6, 0.04·I) (``GaussianScoreModel``, in score_sde's model interface) and on
two dequantized 1×2×2 images (k, u: data = (k + u)/256, then the scaler), with ``get_div_fn`` replaced by
the exact divergence (the Hutchinson estimator's expectation), so a deterministic jaxgen run can equal it.
The network is checked by the score; the likelihood glue (start time, scales, priors, offsets, data
scaling) by this. (The exact divergence of even the tiny network costs d backward passes per ODE step;
on this shared CPU that was > 10 min per case.)
``torch_load.json``: per case, the keys and each tensor's float64 sum as ``torch.load(weights_only=True)``
returns them (the converter's numpy reader is checked against it without torch). ``released_shapes.json``: the
state-dict shapes of the full-size released subvp/cifar10_ddpmpp_deep_continuous and
ve/cifar10_ncsnpp_deep_continuous networks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import types

import numpy as np
import torch

from _upstream import import_sources  # scripts/_upstream.py

FILES = ["models/__init__.py", "models/ncsnpp.py", "models/layers.py", "models/layerspp.py",
         "models/normalization.py", "models/up_or_down_sampling.py", "models/utils.py", "models/ema.py",
         "sde_lib.py", "likelihood.py", "utils.py", "configs/default_cifar10_configs.py",
         "configs/subvp/cifar10_ddpmpp_deep_continuous.py", "configs/ve/cifar10_ncsnpp_deep_continuous.py",
         "op/upfirdn2d.py"]
TINY = dict(nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
RES = 8


class ConfigDict(dict):
  """ml_collections.ConfigDict's attribute access (all the configs use)."""

  def __getattr__(self, k):
    try:
      return self[k]
    except KeyError:
      raise AttributeError(k) from None

  def __setattr__(self, k, v):
    self[k] = v


def import_score_sde(repo: str, tmp: str):
  import_sources(repo, tmp, FILES)
  path = os.path.join(tmp, "op", "upfirdn2d.py")
  src = open(path).read()
  src, n = re.subn(r"upfirdn2d_op = load\(.*?\n\)\n", "upfirdn2d_op = None  # CUDA build removed (CPU path)\n",
                   src, flags=re.S)
  assert n == 1, "op/upfirdn2d.py changed upstream: update the patch"
  open(path, "w").write(src)
  open(os.path.join(tmp, "op", "__init__.py"), "w").write("from .upfirdn2d import upfirdn2d\n")
  for pkg in ("configs", "configs/subvp", "configs/ve"):
    open(os.path.join(tmp, pkg, "__init__.py"), "a").close()
  import importlib
  stubs = {"tensorflow": types.ModuleType("tensorflow"), "ml_collections": types.ModuleType("ml_collections")}
  stubs["ml_collections"].ConfigDict = ConfigDict
  for k, m in stubs.items():
    sys.modules.setdefault(k, m)
  mods = {m: importlib.import_module(m) for m in ("models.ncsnpp", "models.utils", "models.ema", "sde_lib",
                                                  "likelihood", "utils", "configs.default_cifar10_configs",
                                                  "configs.subvp.cifar10_ddpmpp_deep_continuous",
                                                  "configs.ve.cifar10_ncsnpp_deep_continuous")}
  for k, m in stubs.items():   # imported where needed; torch's dynamo scans sys.modules for real ones
    if sys.modules.get(k) is m:
      del sys.modules[k]
  return mods


def make_config(module: str, **model_overrides):
  import importlib
  cfg = importlib.import_module(module).get_config()
  cfg.device = torch.device("cpu")
  cfg.data.image_size = RES
  cfg.model.update(TINY)
  cfg.model.update(model_overrides)
  return cfg


def make_sde(mods, cfg):
  sde_lib = mods["sde_lib"]
  m = cfg.model
  if cfg.training.sde == "vpsde":
    return sde_lib.VPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales)
  if cfg.training.sde == "subvpsde":
    return sde_lib.subVPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales)
  return sde_lib.VESDE(sigma_min=m.sigma_min, sigma_max=m.sigma_max, N=m.num_scales)


def randomize(model: torch.nn.Module, g: torch.Generator):
  with torch.no_grad():
    for name, p in model.named_parameters():
      if not p.requires_grad:
        continue   # the Gaussian Fourier W (randn·16, fixed)
      if p.ndim >= 2:
        p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(np.prod(p.shape[1:])))
      elif name.endswith("weight"):
        p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=g))


def exact_div_fn(fn):
  """``likelihood.get_div_fn``'s signature with the exact divergence Σ_j ∂f_j/∂x_j (eps unused): each
  sample is repeated d times, copy j's output is contracted with e_j, and one backward pass gives every
  ∂f_j/∂x_j (the samples are independent in eval mode)."""

  def div_fn(x, t, eps):
    b, d = x.shape[0], x[0].numel()
    xr = x.detach().repeat_interleave(d, 0).requires_grad_(True)
    basis = torch.eye(d, dtype=x.dtype).repeat(b, 1)
    with torch.enable_grad():
      y = fn(xr, t.repeat_interleave(d, 0)).reshape(b * d, d)
      g, = torch.autograd.grad((y * basis).sum(), xr)
    return (g.reshape(b * d, d) * basis).sum(1).reshape(b, d).sum(1)

  return div_fn


def make_case(mods, name, cfg, out, seed):
  mutils, ema_lib, utils = mods["models.utils"], mods["models.ema"], mods["utils"]
  torch.manual_seed(seed)
  model = mutils.create_model(cfg)
  g = torch.Generator().manual_seed(seed)
  randomize(model, g)
  ema = ema_lib.ExponentialMovingAverage(model.parameters(), decay=cfg.model.ema_rate)
  opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, 0.999),
                         eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
  x0 = torch.randn([2, 3, RES, RES], generator=g)
  model(x0, torch.tensor([0.5, 1.0])).square().mean().backward()
  opt.step()
  opt.zero_grad()
  with torch.no_grad():   # EMA = the randomized weights; the raw model drifts from them
    for s, p in zip(ema.shadow_params, [p for p in model.parameters() if p.requires_grad]):
      p.copy_(s + 0.05 * torch.randn(p.shape, generator=g))
  state = dict(optimizer=opt, model=model, ema=ema, step=17)
  path = os.path.join(out, f"{name}.pth")
  utils.save_checkpoint(path, state)

  sde = make_sde(mods, cfg)
  t = torch.tensor([1e-3, 0.3, 0.9])
  mean, std = sde.marginal_prob(torch.zeros(3, 3, RES, RES), t)
  data = torch.rand([3, 3, RES, RES], generator=g)          # [0, 1] images
  if cfg.data.centered:
    data = 2 * data - 1
  x = sde.marginal_prob(data, t)[0] + std[:, None, None, None] * torch.randn(data.shape, generator=g)
  arrays = dict(x=x.numpy(), t=t.numpy())
  with torch.no_grad():
    arrays["score_model"] = mutils.get_score_fn(sde, model, train=False, continuous=True)(x, t).numpy()
    ema.store(model.parameters())
    ema.copy_to(model.parameters())   # what run_lib.evaluate does
    arrays["score_ema"] = mutils.get_score_fn(sde, model, train=False, continuous=True)(x, t).numpy()
  np.savez(os.path.join(out, f"{name}.npz"), **arrays)
  n = sum(p.numel() for p in model.parameters() if p.requires_grad)
  print(f"{name}: {n:,} trainable parameters, |score| max {np.abs(arrays['score_ema']).max():.3f}, "
        f"pth {os.path.getsize(path):,} bytes")
  return path


def torch_load_summary(path):
  """Keys and float64 sums of what ``torch.load(weights_only=True)`` returns (the brief's check that
  the restricted loader accepts score_sde's checkpoint dict)."""
  ckpt = torch.load(path, map_location="cpu", weights_only=True)
  model = {k: float(v.double().sum()) for k, v in ckpt["model"].items()}
  ema = [float(v.double().sum()) for v in ckpt["ema"]["shadow_params"]]
  return dict(top=sorted(ckpt), model_keys=list(ckpt["model"]), step=ckpt["step"], decay=ckpt["ema"]["decay"],
              num_updates=ckpt["ema"]["num_updates"], model=model, ema=ema,
              optimizer_state=len(ckpt["optimizer"]["state"]))


GAUSS_M, GAUSS_V = 0.6, 0.04   # data N(m, v·I) in score_sde's units ([0, 1] or [−1, 1]: the same numbers)


class GaussianScoreModel(torch.nn.Module):
  """A "model" in score_sde's interface whose score is exact for data N(m, v·I): the marginal at t is
  N(μ(t)·m, μ(t)²v + std(t)²) (``sde.marginal_prob``), so get_score_fn(continuous=True) must see
  −std·score (VP/sub-VP: score = −model(x, 999t)/std) or the score itself (VE: model(x, σ(t)))."""

  def __init__(self, sde, kind):
    super().__init__()
    self.sde, self.kind = sde, kind

  def forward(self, x, labels):
    t = labels / 999. if self.kind != "vesde" else \
        torch.log(labels / self.sde.sigma_min) / np.log(self.sde.sigma_max / self.sde.sigma_min)
    mu = self.sde.marginal_prob(torch.ones_like(x), t)[0]
    std = self.sde.marginal_prob(torch.zeros_like(x), t)[1].reshape(-1, 1, 1, 1)
    score = -(x - mu * GAUSS_M) / (mu ** 2 * GAUSS_V + std ** 2)
    return score if self.kind == "vesde" else -std * score


# (eps, VP/sub-VP β range, VE σ range): score_sde's defaults, and a setting where every correction between
# score_sde's frame and jaxgen's is large (s(ε) = 0.81, σ(T) ≈ 1 so the prior's form matters).
LIKELIHOOD_SETTINGS = {"default": (1e-5, (0.1, 20.), (0.01, 50.)), "stress": (0.2, (0.1, 2.), (0.01, 1.))}


def gaussian_likelihoods(mods, out):
  """score_sde's likelihood_fn (RK45, rtol = atol = 1e-5, its prior and offset; eps as in
  ``LIKELIHOOD_SETTINGS``) for the exact Gaussian score under each SDE, exact divergence:
  ``likelihood_gauss.npz`` holds k, u (the images: data = (k + u)/256, then 2x − 1 when centered), m, v and
  bpd_<sde>_<setting>, nfe_<sde>_<setting>."""
  sde_lib, lik = mods["sde_lib"], mods["likelihood"]
  g = torch.Generator().manual_seed(5)
  k = torch.randint(0, 256, [2, 1, 2, 2], generator=g).float()
  u = torch.rand(k.shape, generator=g)
  arrays = dict(k=k.numpy().astype(np.uint8), u=u.numpy(), m=np.float64(GAUSS_M), v=np.float64(GAUSS_V))
  orig = lik.get_div_fn
  lik.get_div_fn = exact_div_fn
  try:
    for setting, (eps, (b0, b1), (s0, s1)) in LIKELIHOOD_SETTINGS.items():
      arrays[f"eps_{setting}"], arrays[f"beta_{setting}"] = np.float64(eps), np.asarray([b0, b1])
      arrays[f"sigma_{setting}"] = np.asarray([s0, s1])
      sdes = {"vpsde": sde_lib.VPSDE(b0, b1, 1000), "subvpsde": sde_lib.subVPSDE(b0, b1, 1000),
              "vesde": sde_lib.VESDE(s0, s1, 1000)}
      for kind, sde in sdes.items():
        centered = kind != "vesde"
        img = (u + k) / 256.
        img = 2 * img - 1 if centered else img
        inverse_scaler = (lambda v: (v + 1.) / 2.) if centered else (lambda v: v)
        bpd, _, nfe = lik.get_likelihood_fn(sde, inverse_scaler, eps=eps)(GaussianScoreModel(sde, kind), img)
        arrays[f"bpd_{kind}_{setting}"], arrays[f"nfe_{kind}_{setting}"] = bpd.numpy(), np.asarray(nfe)
        print(f"gaussian {kind} {setting}: bpd {bpd.numpy()}, nfe {nfe}")
  finally:
    lik.get_div_fn = orig
  np.savez(os.path.join(out, "likelihood_gauss.npz"), **arrays)


# The released checkpoints' configs whose state-dict layout is recorded.
RELEASED = ["subvp.cifar10_ddpmpp_deep_continuous", "ve.cifar10_ncsnpp_deep_continuous"]


def released_shapes(out):
  """State-dict shapes (``module.``-prefixed, as saved) and trainable parameter counts of the full-size
  networks of the released subvp/cifar10_ddpmpp_deep_continuous and ve/cifar10_ncsnpp_deep_continuous
  checkpoints (built with score_sde's own init, weights discarded): ``released_shapes.json``."""
  import importlib
  from models import ncsnpp
  rows = {}
  for name in RELEASED:
    cfg = importlib.import_module(f"configs.{name}").get_config()
    cfg.device = torch.device("cpu")
    net = torch.nn.DataParallel(ncsnpp.NCSNpp(cfg))   # on CPU: its init assigns .data, which meta refuses
    rows[name.replace(".", "/")] = dict(
        shapes={k: list(v.shape) for k, v in net.state_dict().items()},
        num_params=sum(p.numel() for p in net.parameters() if p.requires_grad))
    print(f"{name}: {rows[name.replace('.', '/')]['num_params']:,} trainable parameters")
  with open(os.path.join(out, "released_shapes.json"), "w") as f:
    json.dump(rows, f, indent=0, sort_keys=True)


def main():
  torch.set_num_threads(1)   # a shared 2-core machine: torch's thread pool oversubscribes it 10×
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repo", required=True, help="a git clone of github.com/yang-song/score_sde_pytorch")
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                "score_sde"))
  args = ap.parse_args()
  os.makedirs(args.out, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix="score_sde_src_")
  mods = import_score_sde(args.repo, tmp)
  cases = {
      "ddpmpp_subvp": make_config("configs.subvp.cifar10_ddpmpp_deep_continuous"),
      "ncsnpp_ve": make_config("configs.ve.cifar10_ncsnpp_deep_continuous"),
      # configs/ve/celebahq_256_ncsnpp_continuous.py: progressive 'output_skip', 'input_skip', 'sum'.
      "ncsnpp_skip": make_config("configs.ve.cifar10_ncsnpp_deep_continuous", progressive="output_skip",
                                 progressive_input="input_skip", progressive_combine="sum"),
  }
  summary = {}
  for i, (name, cfg) in enumerate(cases.items()):
    path = make_case(mods, name, cfg, args.out, seed=i)
    summary[name] = torch_load_summary(path)
  gaussian_likelihoods(mods, args.out)
  with open(os.path.join(args.out, "torch_load.json"), "w") as f:
    json.dump(summary, f, indent=0, sort_keys=True)
  released_shapes(args.out)


if __name__ == "__main__":
  main()
