"""EDM network pickles → jaxgen: the converted DDPM++, NCSN++ and ADM denoisers equal EDM's own.

The fixtures (tests/fixtures/edm, written by scripts/make_edm_fixture.py from NVlabs/edm's source) are real
EDM snapshot pickles of tiny networks with random weights (VP DDPM++ with class and augmentation labels,
VE NCSN++, EDM-preconditioned ADM with both labels, iDDPM ADM), plus the official D(x; σ) on three noise
levels with and without the labels, a two-head UNetBlock, and the constructor kwargs / state-dict shapes of
the released networks. No torch here: the pickles are read by jaxgen.convert.edm's restricted unpickler.

Tolerance: |D_jax − D_edm| ≤ 1e-5·(1 + |D_edm| + σ) elementwise. Both are float32; the difference is the
order of float32 accumulation in convolutions and matmuls, relative ~1e-6 on F, which c_out (|c_out| ≈ σ for
VP/VE) multiplies; a wrong layout, filter, embedding order or preconditioning coefficient changes D by O(1).
"""

from __future__ import annotations

import functools
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as M
from jaxgen import diffusion as dfn
from jaxgen.convert import edm
from jaxgen.models import unet_song
from jaxgen.tasks.diffusion import make_schedule
from tests.fixtures.fast_compile import jit_fast

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "edm")
CASES = ["ddpmpp_vp_cond_aug", "ncsnpp_ve", "adm_edm_cond_aug", "adm_iddpm"]
EXPECT = {  # (registry model, task.precond) chosen by the converter
    "ddpmpp_vp_cond_aug": ("ddpmpp_cifar10", "vp"),
    "ncsnpp_ve": ("ncsnpp_cifar10", "ve"),
    "adm_edm_cond_aug": ("adm_imagenet64", "edm"),
    "adm_iddpm": ("adm_imagenet64", "iddpm"),
}


@functools.cache
def _converted(case):
  flat, meta = edm.convert_pickle(os.path.join(FIX, f"{case}.pkl"))
  return edm.unflatten(flat), meta


@functools.cache
def _outputs(case):
  """D of the converted network on the fixture's inputs for every variant the fixture has: 'D' (labels and
  augmentation labels as given), 'D_nolabels' (labels=None, EDM's class_labels=None), 'D_noaug'
  (augment_labels=None) — one compiled program per case."""
  variables, meta = _converted(case)
  net = M.create(meta["model"], **meta["overrides"])
  schedule = make_schedule(meta["precond"]["name"], sigma_data=meta["precond"].get("sigma_data", 0.5))
  x, s, lab, aug = _inputs(case, True, True)

  def D(variables, labels, aug):
    raw = lambda x_in, c_noise, l, **kw: net.apply(variables, x_in, c_noise, l, **kw)  # noqa: E731
    kw = {} if aug is None else {"augment_labels": aug}
    return dfn.precondition(raw, schedule)(x, s, labels=labels, **kw)

  def run(variables, lab, aug):
    out = {"D": D(variables, lab, aug)}
    if lab is not None:
      out["D_nolabels"] = D(variables, None, aug)
    if aug is not None:
      out["D_noaug"] = D(variables, lab, None)
    return out

  return {k: np.asarray(v) for k, v in jit_fast(run, variables, lab, aug)(variables, lab, aug).items()}


def _inputs(case, with_labels, with_aug):
  z = np.load(os.path.join(FIX, f"{case}.npz"))
  x = jnp.asarray(z["x"].transpose(0, 2, 3, 1))   # NCHW → NHWC
  labels = jnp.asarray(z["labels"]) if with_labels and "labels" in z.files else None
  aug = jnp.asarray(z["augment_labels"]) if with_aug and "augment_labels" in z.files else None
  return x, jnp.asarray(z["sigma"]), labels, aug


def _check(got, want, sigma):
  got = np.asarray(got).transpose(0, 3, 1, 2)
  err = np.abs(got - want) / (1 + np.abs(want) + np.asarray(sigma)[:, None, None, None])
  assert float(err.max()) <= TOL, float(err.max())


TOL = 1e-5
# ncsnpp_ve's D is checked through the diffusion task (test_diffusion_task_with_converted_weights).
VARIANTS = [(c, "D") for c in CASES if c != "ncsnpp_ve"] + [
    (c, k) for c in ("ddpmpp_vp_cond_aug", "adm_edm_cond_aug") for k in ("D_nolabels", "D_noaug")]


@pytest.mark.parametrize("case,key", VARIANTS)
def test_denoiser_matches_edm(case, key):
  _, meta = _converted(case)
  assert (meta["model"], meta["precond"]["name"]) == EXPECT[case]
  want = np.load(os.path.join(FIX, f"{case}.npz"))[key]
  _check(_outputs(case)[key], want, _inputs(case, False, False)[1])
  assert float(np.abs(want).max()) > 1.0   # the fixture's outputs carry signal


def test_ncsnpp_trained_frequencies_are_used():
  """EDM's map_noise.freqs (torch.randn·16 of EDM's seed) land in constants/map_noise_freqs, which
  replaces jaxgen's seed-drawn frequencies; the D check above would fail with the seed's."""
  variables, meta = _converted("ncsnpp_ve")
  freqs = np.asarray(variables["constants"]["map_noise_freqs"])
  noise_ch = meta["overrides"]["model_channels"] * meta["overrides"]["channel_mult_noise"]
  assert freqs.shape == (noise_ch // 2,)
  assert not np.allclose(freqs, np.asarray(unet_song.fourier_frequencies(noise_ch)))
  shapes = M.init_shapes(meta["model"], **meta["overrides"])
  assert set(shapes) == {"params", "constants"}   # init creates the collection (model state), not a param
  assert M.count_params(shapes["params"]) == M.count_params(variables["params"])


def test_multihead_block_layout():
  """EDM's qkv channel layout (head, channel-in-head, q/k/v) with two heads: one UNetBlock."""
  z = np.load(os.path.join(FIX, "block_heads2.npz"))
  flat = edm.map_tensors({k[3:]: z[k] for k in z.files if k.startswith("sd/")}, what="UNetBlock")
  params = edm.unflatten(flat)["params"]
  blk = unet_song.UNetBlock(16, attention=True, num_heads=2, skip_scale=float(np.sqrt(0.5)), eps=1e-6)
  args = (params, jnp.asarray(z["x"].transpose(0, 2, 3, 1)), jnp.asarray(z["emb"]))
  y = jit_fast(lambda p, x, e: blk.apply({"params": p}, x, e), *args)(*args)
  np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), z["y"], atol=1e-5, rtol=1e-5)


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_refuses_globals_outside_the_allow_list(tmp_path):
  path = tmp_path / "evil.pkl"
  path.write_bytes(pickle.dumps({"ema": _Evil()}))
  with pytest.raises(edm.EdmPickleError, match="system.*allow-list"):
    edm.read_pickle(str(path))


def test_tensor_views_stay_inside_their_storage():
  st = edm._Storage(np.arange(10, dtype=np.float32))
  np.testing.assert_array_equal(edm._rebuild_tensor(st, 2, (2, 3), (3, 1)), [[2, 3, 4], [5, 6, 7]])
  for size, stride in (((2, 6), (6, 1)), ((2,), (-1,))):
    with pytest.raises(edm.EdmPickleError, match="corrupt"):
      edm._rebuild_tensor(st, 0, size, stride)


def test_never_runs_embedded_source(tmp_path):
  """A persistent record's module source is data: a source that would raise on exec is never run."""
  with open(os.path.join(FIX, "ncsnpp_ve.pkl"), "rb") as f:
    raw = f.read()
  marker = b"import numpy as np"
  assert marker in raw
  path = tmp_path / "patched.pkl"
  path.write_bytes(raw.replace(marker, b"raise SystemExit()"))   # same length: the pickle stays valid
  data = edm.read_pickle(str(path))
  assert data["ema"].class_name == "VEPrecond"


def test_cli_and_load(tmp_path):
  out = tmp_path / "ddpmpp.npz"
  assert edm.main([os.path.join(FIX, "ddpmpp_vp_cond_aug.pkl"), str(out)]) == 0
  variables, meta = edm.load(str(out))
  ref, _ = _converted("ddpmpp_vp_cond_aug")
  got = jax.tree_util.tree_leaves(variables)
  want = jax.tree_util.tree_leaves(ref)
  assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
  assert meta["overrides"]["label_dim"] == 10 and meta["overrides"]["augment_dim"] == 9
  like = M.init_shapes(meta["model"], **meta["overrides"])
  filled = edm.load_into(str(out), like)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(filled), want))
  from jaxgen.errors import ConfigError
  with pytest.raises(ConfigError, match="model.overrides"):
    edm.load_into(str(out), M.init_shapes(meta["model"], **{**meta["overrides"], "augment_dim": 0}))
  assert edm.main([os.path.join(FIX, "ddpmpp_vp_cond_aug.pkl"), str(out), "--model", "adm_imagenet64"]) == 2


RELEASED_MODELS = {"edm-cifar10-32x32-cond-vp": ("ddpmpp_cifar10", "vp"),
                   "edm-cifar10-32x32-uncond-ve": ("ncsnpp_cifar10", "ve"),
                   "edm-ffhq-64x64-uncond-vp": ("ddpmpp_64", "vp"),
                   "edm-afhqv2-64x64-uncond-ve": ("ncsnpp_cifar10", "ve"),
                   "edm-imagenet-64x64-cond-adm": ("adm_imagenet64", "edm")}


# The two 64² SongUNets differ from the CIFAR-10 ones only in channel_mult and resolution; their rows
# are in the JSON (61,805,571 and 62,761,091 parameters) but left out here to save ~6 s of tracing.
@pytest.mark.parametrize("name", ["edm-cifar10-32x32-cond-vp", "edm-cifar10-32x32-uncond-ve",
                                  "edm-imagenet-64x64-cond-adm"])
def test_released_network_layouts(name):
  """The released pickles' networks (constructor kwargs and state-dict shapes of EDM's own modules, from
  scripts/make_edm_fixture.py on torch's meta device) map one-to-one onto jaxgen's registry networks
  (shapes checked by eval_shape), with EDM's parameter counts."""
  import json
  with open(os.path.join(FIX, "released_shapes.json")) as f:
    row = json.load(f)[name]
  top = edm.PersistentObject(row["precond_class"], {"_init_kwargs": row["precond_kwargs"]}, 6)
  net = edm.PersistentObject(row["net_class"], {"_init_kwargs": row["net_kwargs"]}, 6)
  filt = np.asarray(row["net_kwargs"].get("resample_filter", [1, 1]), np.float32)
  filt2d = np.outer(filt, filt) / filt.sum() ** 2
  tensors = {k: (np.broadcast_to(filt2d, shape) if k.endswith("resample_filter")
                 else np.broadcast_to(np.float32(0), shape)) for k, shape in row["shapes"].items()}
  flat, meta = edm.convert_records(top, net, tensors)
  assert (meta["model"], meta["precond"]["name"]) == RELEASED_MODELS[name]
  assert sum(v.size for k, v in flat.items() if k.startswith("params/")) == row["num_params"]


def test_diffusion_task_with_converted_weights(tmp_path):
  """What ``model.init_from`` does (see edm.load_into): a diffusion task configured with the converter's
  model.name / model.overrides and task.precond gets its initialised variables replaced by the file's,
  NCSN++'s trained frequencies arriving as model state, and its denoiser equals EDM's."""
  from jaxgen import configs
  from jaxgen.tasks import diffusion

  out = tmp_path / "ncsnpp.npz"
  assert edm.main([os.path.join(FIX, "ncsnpp_ve.pkl"), str(out)]) == 0
  _, meta = edm.load(str(out))
  c = configs.base_config()
  c.model.name = meta["model"]
  c.model.overrides.update(meta["overrides"])
  c.task.name = "diffusion"
  c.task.precond = meta["precond"]["name"]
  c.task.loss = "ve"
  task = diffusion.Task(c)
  x, sigma, _, _ = _inputs("ncsnpp_ve", False, False)
  like = jax.eval_shape(lambda: task.init_variables(jax.random.key(0), {"image": x}))
  variables = edm.load_into(str(out), like)
  params = variables.pop("params")
  assert set(variables) == {"constants"}
  assert (meta["model"], meta["precond"]["name"]) == EXPECT["ncsnpp_ve"]
  D = jit_fast(lambda p, s, x, sg: task.denoiser(p, s)(x, sg), params, variables, x, sigma)
  want = np.load(os.path.join(FIX, "ncsnpp_ve.npz"))["D"]
  _check(D(params, variables, x, sigma), want, sigma)
