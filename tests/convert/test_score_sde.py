"""score_sde_pytorch checkpoints → jaxgen: the converted NCSN++ / DDPM++ score functions and PF-ODE
likelihoods equal score_sde's own.

tests/fixtures/score_sde (scripts/make_score_sde_fixture.py, from yang-song/score_sde_pytorch's source)
holds real ``checkpoint_*.pth`` files (``utils.save_checkpoint``: Adam state, ``module.``-prefixed model
state dict, EMA shadow params, step) of tiny networks built from official configs (sub-VP DDPM++, VE NCSN++
with the residual FIR input pyramid, VE NCSN++ with the output_skip/input_skip pyramids), the official
``score_fn(x, t)`` with the EMA and the raw weights, and the official ``likelihood_fn`` bits/dim (exact
divergence in place of Hutchinson's, so it is deterministic). No torch here: the files are read by the
converter's numpy zip reader, itself checked against ``torch.load(weights_only=True)``'s sums.

Tolerances. Score: per noise level, |error| ≤ rel·max|score|, both sides float32 with the same weights.
rel = 5e-5: jaxgen's denoiser takes σ and recovers t = σ⁻¹(σ) for c_noise = 999t in float32 (≈1e-7 relative
in t, up to 3e-5 in the positional embedding's phase; measured ≤ 2.2e-5), the rest is accumulation order
(VE, where c_noise = ln σ, measured ≤ 7e-6); for VP/sub-VP plus 2·2⁻²⁴/std(t), because score_sde's own
float32 std = 1 − e^{−B} cancels at t = 1e-3 (std ≈ 1e-4; measured 3.2e-4 there). A wrong layout,
embedding order, filter, pyramid or scaling is O(1), and the EMA and raw weights differ by > 20× the bound. bits/dim: two RK45
solvers at rtol = atol = 1e-5 in different time variables (score_sde in t with scipy in float64, jaxgen in
ln σ in float32) on 4-dimensional data; 5e-4 bits/dim (the official solver's own error is ≤ 2.2e-4 against
the closed form), while in the 'stress' setting a missing start-time scale, prior form or offset moves it
by ≥ 0.1 (by 1 for the offset).
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dfn
from jaxgen.convert import score_sde as S
from jaxgen.eval import bpd as bpd_lib
from tests.fixtures.fast_compile import jit_fast

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "score_sde")
TINY = dict(image_size=8, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
CASES = {
    "ddpmpp_subvp": dict(S.CONFIGS["subvp/cifar10_ddpmpp_deep_continuous"], **TINY),
    "ncsnpp_ve": dict(S.CONFIGS["ve/cifar10_ncsnpp_deep_continuous"], **TINY),
    "ncsnpp_skip": dict(S.CONFIGS["ve/cifar10_ncsnpp_deep_continuous"], **TINY, progressive="output_skip",
                        progressive_input="input_skip"),
}


def _pth(case):
  return os.path.join(FIX, f"{case}.pth")


@functools.cache
def _ckpt(case):
  return S.read_checkpoint(_pth(case), "numpy")


@functools.cache
def _converted(case, use_ema=True):
  flat, meta = S.convert_checkpoint(_ckpt(case), CASES[case], use_ema)
  return S.unflatten(flat), meta


@functools.cache
def _score_exe(case):
  """One compiled score function per case (the EMA and raw weights share it)."""
  variables, meta = _converted(case)
  z = np.load(os.path.join(FIX, f"{case}.npz"))
  x, t = jnp.asarray(z["x"].transpose(0, 2, 3, 1)), jnp.asarray(z["t"])
  fn = lambda v, x, t: S.score_fn(S.denoiser(v, meta), meta)(x, t)  # noqa: E731
  return jit_fast(fn, variables, x, t), x, t


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_reader_matches_torch_load(case):
  with open(os.path.join(FIX, "torch_load.json")) as f:
    want = json.load(f)[case]
  ck = _ckpt(case)
  assert sorted(ck) == want["top"] and ck["step"] == want["step"]
  assert ck["ema"]["decay"] == want["decay"] and ck["ema"]["num_updates"] == want["num_updates"]
  assert list(ck["model"]) == want["model_keys"]   # the order matters: it orders the EMA's shadow_params
  np.testing.assert_allclose([float(np.sum(v, dtype=np.float64)) for v in ck["model"].values()],
                             [want["model"][k] for k in want["model_keys"]], rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose([float(np.sum(v, dtype=np.float64)) for v in ck["ema"]["shadow_params"]],
                             want["ema"], rtol=1e-12, atol=1e-12)
  assert len(ck["optimizer"]["state"]) == want["optimizer_state"] > 0


@pytest.mark.parametrize("case,weights", [(c, "ema") for c in CASES] + [("ncsnpp_ve", "model")])
def test_score_matches_score_sde(case, weights):
  variables, meta = _converted(case, weights == "ema")
  assert meta["weights"] == weights
  exe, x, t = _score_exe(case)
  got = np.asarray(exe(variables, x, t)).transpose(0, 3, 1, 2)
  want = np.load(os.path.join(FIX, f"{case}.npz"))[f"score_{weights}"]
  other = np.load(os.path.join(FIX, f"{case}.npz"))["score_model" if weights == "ema" else "score_ema"]
  if meta["sde"]["name"] == "vesde":
    std = 0.01 * 5000.0 ** np.asarray(t, np.float64)          # exact in float32 (a power, no cancellation)
    rel = np.full(3, 5e-5)
  else:
    std = np.asarray(S.schedule_of(meta).sigma(t), np.float64) * np.asarray(S.schedule_of(meta).s(t))
    rel = 5e-5 + 2 * 2.0 ** -24 / std   # score_sde's float32 std = 1 − e^{−B} cancels at small t
  bound = (rel * np.abs(want).reshape(3, -1).max(1))[:, None, None, None]
  assert np.all(np.abs(got - want) <= bound), float(np.max(np.abs(got - want) / bound))
  assert float(np.min(np.abs(want - other).reshape(3, -1).max(1) / bound[:, 0, 0, 0])) > 20   # EMA ≠ raw


@pytest.mark.parametrize("setting", ["default", "stress"])
@pytest.mark.parametrize("sde", ["vpsde", "subvpsde", "vesde"])
def test_bits_per_dim_match_score_sde(sde, setting):
  """score_sde's likelihood_fn (its ODE in t from eps, prior, offsets, data scaling) vs
  jaxgen.eval.bpd.score_sde_log_likelihood (the σ-frame ODE plus the corrections), both on the exact score
  of Gaussian data N(m, v·I) in score_sde's units and with the exact divergence; 'stress' (eps 0.2, β up to
  2, σ up to 1) makes the start-time scale, the prior's form and its scale O(1) terms."""
  z = np.load(os.path.join(FIX, "likelihood_gauss.npz"))
  m, v = float(z["m"]), float(z["v"])
  if sde == "vesde":   # [0, 1] data → jaxgen's [−1, 1]: mean 2m − 1, variance 4v
    m, v = 2 * m - 1, 4 * v

  def D(x, sigma):
    w = v / (v + sigma ** 2)
    return m + w.reshape((-1,) + (1,) * (x.ndim - 1)) * (x - m)

  (b0, b1), (s0, s1) = z[f"beta_{setting}"], z[f"sigma_{setting}"]
  meta_sde = dict(name=sde, beta_min=float(b0), beta_max=float(b1), sigma_min=float(s0), sigma_max=float(s1),
                  T=1.0, eps=float(z[f"eps_{setting}"]))
  x = ((z["k"].astype(np.float32) + z["u"]) / 256.0 * 2 - 1).transpose(0, 2, 3, 1)   # NCHW → NHWC
  logp = jax.jit(lambda x: bpd_lib.score_sde_log_likelihood(D, x, None, meta_sde, exact_trace=True))(x)
  got = np.asarray(dfn.bits_per_dim(logp, x[0].size))
  np.testing.assert_allclose(got, z[f"bpd_{sde}_{setting}"], atol=5e-4)
  assert np.ptp(z[f"bpd_{sde}_{setting}"]) > 0.05   # two different images


def test_config_mismatch_and_layout_errors(tmp_path):
  ck = _ckpt("ddpmpp_subvp")
  with pytest.raises(S.ScoreSdeConvertError, match="modules but the config builds"):
    S.convert_checkpoint(ck, dict(CASES["ddpmpp_subvp"], num_res_blocks=2))
  with pytest.raises(S.ScoreSdeConvertError, match="sigmas run"):
    S.convert_checkpoint(_ckpt("ncsnpp_ve"), dict(CASES["ncsnpp_ve"], sigma_max=348.0))
  with pytest.raises(S.ScoreSdeConvertError, match="progressive='residual'"):
    S.check_settings(dict(CASES["ncsnpp_ve"], progressive="residual"))
  with pytest.raises(S.ScoreSdeConvertError, match="not one of"):
    S.convert_checkpoint(ck, "vp/cifar10_ddpm_continuous")
  bad = dict(ck, ema=dict(ck["ema"], shadow_params=ck["ema"]["shadow_params"][1:]))
  with pytest.raises(S.ScoreSdeConvertError, match="shadow_params has"):
    S.convert_checkpoint(bad, CASES["ddpmpp_subvp"])
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"\x80\x02}q\x00.")   # a legacy (non-zip) pickle
  with pytest.raises(S.ScoreSdeConvertError, match="not a torch.save file"):
    S.read_checkpoint(str(junk), "numpy")


def test_released_layouts():
  """The full-size released subvp DDPM++ deep and VE NCSN++ deep checkpoints' state dicts (score_sde's own
  modules on torch's meta device) map onto the registry networks with their parameter counts
  (docs/reference.md §4: 106,632,579 and 107,586,947)."""
  with open(os.path.join(FIX, "released_shapes.json")) as f:
    rows = json.load(f)
  for config, (model, count) in {"subvp/cifar10_ddpmpp_deep_continuous": ("ddpmpp_deep_cifar10_scoresde",
                                                                          106_632_579),
                                 "ve/cifar10_ncsnpp_deep_continuous": ("ncsnpp_deep_cifar10_scoresde",
                                                                       107_586_947)}.items():
    row = rows[config]
    sd = {k: np.broadcast_to(np.float32(0), s) for k, s in row["shapes"].items()}
    sd["module.sigmas"] = np.geomspace(50, 0.01, 1000).astype(np.float32)
    names = [k for k in sd if k != "module.sigmas" and not (k.endswith(".W") and sd[k].ndim == 1)]
    ck = {"model": sd, "ema": {"decay": 0.999, "num_updates": 1, "shadow_params": [sd[k] for k in names]}}
    flat, meta = S.convert_checkpoint(ck, config)
    assert meta["model"] == model
    assert sum(v.size for k, v in flat.items() if k.startswith("params/")) == row["num_params"] == count


def test_cli_and_diffusion_task(tmp_path):
  """What ``model.init_from`` does: the converter's file fills a diffusion task configured with its
  model.name / model.overrides / task.precond, the Fourier W arriving as model state; the task's denoiser
  equals the converter's."""
  from jaxgen import configs
  from jaxgen.tasks import diffusion

  out = tmp_path / "ncsnpp.npz"
  tiny = [f"--override={k}={json.dumps(v)}" for k, v in TINY.items()]
  assert S.main([_pth("ncsnpp_ve"), str(out), "--config", "ve/cifar10_ncsnpp_deep_continuous", "--reader",
                 "numpy", *tiny]) == 0
  _, meta = S.load(str(out))
  assert (meta["config"], meta["weights"], meta["step"]) == ("ve/cifar10_ncsnpp_deep_continuous", "ema", 17)
  assert meta["precond"] == {"name": "ve", "sigma_min": 0.02, "sigma_max": 100.0}
  c = configs.base_config()
  c.model.name = meta["model"]
  c.model.overrides.update(meta["overrides"])
  c.task.name = "diffusion"
  c.task.precond = meta["precond"]["name"]
  c.task.loss = "ve"
  task = diffusion.Task(c)
  x = jnp.zeros((2, 8, 8, 3)) + jnp.linspace(-1, 1, 3)
  like = jax.eval_shape(lambda: task.init_variables(jax.random.key(0), {"image": x}))
  variables = S.load_into(str(out), like)
  params = variables.pop("params")
  assert set(variables) == {"constants"}
  sigma = jnp.asarray([0.05, 3.0])
  got = jax.jit(lambda p, s, x, sg: task.denoiser(p, s)(x, sg))(params, variables, x, sigma)
  ref_vars, _ = _converted("ncsnpp_ve")
  np.testing.assert_allclose(np.asarray(got), np.asarray(jax.jit(S.denoiser(ref_vars, meta))(x, sigma)),
                             rtol=1e-5, atol=1e-5)   # the same network, two compilations
  # A config the checkpoint does not match, or an unknown override, is one error line, exit code 2.
  assert S.main([_pth("ncsnpp_ve"), str(tmp_path / "x.npz"), "--config", "ve/cifar10_ncsnpp_deep_continuous",
                 "--reader", "numpy"]) == 2
  assert S.main([_pth("ncsnpp_ve"), str(tmp_path / "x.npz"), "--config", "ve/cifar10_ncsnpp_deep_continuous",
                 "--override", "width=3"]) == 2
