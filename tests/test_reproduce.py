"""``python -m jaxgen.eval.reproduce``: each command's smoke run on tiny converted networks.

The networks are real converter outputs of last round's fixtures (EDM's NCSN++ pickle through
jaxgen.convert.edm, diffusers' DDPM U-Net through jaxgen.convert.ddpm) or, where an analytic answer is
wanted, a registry network written in the converters' npz layout. FID runs the real sampling, chunk files
and reading (jaxgen.sampling) with a stand-in feature extractor (per-channel mean and std) instead of the
Inception network (covered in tests/models/test_inception.py), as tests/eval/test_evaluators.py does.

Analytic checks: (1) a network that outputs 0 under sub-VP preconditioning is the denoiser D(x; σ) = x, whose
PF-ODE stands still with zero divergence, so score_sde's likelihood (jaxgen.eval.bpd.score_sde_nll) reduces to
its prior term and score_sde_nll must equal that closed form; (2) a classifier whose last bias dominates predicts one
class everywhere, so top-1 is the share of that label. Runs are compiled with most XLA optimizations off
(tiny programs that run once).
"""

from __future__ import annotations

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.convert import _common, ddpm, edm
from jaxgen.errors import ConfigError
from jaxgen.eval import fid as fid_lib
from jaxgen.eval import reproduce
from jaxgen.eval import results as res

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(autouse=True)
def _cheap_compiles():
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def _features(images):
  """Stand-in for the Inception network: per-channel mean and std of the quantized image."""
  x = np.asarray(fid_lib.quantize(images), np.float64) / 255.0
  feats = np.concatenate([x.mean((1, 2)), x.std((1, 2))], 1)
  return feats, np.tile(feats[:, :1], (1, 4))


@pytest.fixture()
def fid_files(tmp_path, monkeypatch):
  monkeypatch.setattr(fid_lib, "cached_extractor", lambda weights, batch: _features)
  ref = _features(np.random.default_rng(0).uniform(-1, 1, (64, 16, 16, 3)))[0]
  fid_lib.save_stats(str(tmp_path / "ref.npz"), *fid_lib.gaussian_stats(ref))
  (tmp_path / "inception.npz").write_bytes(b"stand-in")
  return ["--inception_weights", str(tmp_path / "inception.npz"), "--fid_ref", str(tmp_path / "ref.npz")]


def test_edm_table2_best_of_seed_sets_resumes_from_chunks_and_records_provenance(tmp_path, fid_files):
  weights = str(tmp_path / "ncsnpp.npz")
  assert edm.main([os.path.join(FIX, "edm", "ncsnpp_ve.pkl"), weights]) == 0
  out = str(tmp_path / "results.json")
  argv = ["edm_table2", "--row", "cifar10_uncond_ve", "--weights", weights, *fid_files, "--num_samples", "12",
          "--chunk_size", "8", "--sample_batch_size", "8", "--batch_size", "8", "--num_steps", "3",
          "--samples_dir", str(tmp_path / "samples"), "--results", out, "--quiet"]
  [(rid, col, value, details)] = reproduce.run(argv)
  assert (rid, col) == ("edm_table2/cifar10_uncond_ve", "converted")
  fids = details["fid_per_seed"]
  assert set(fids) == {"0", "1", "2"} and value == min(fids.values()) and value > 0
  assert len(set(fids.values())) == 3                              # three different seed sets
  s = details["sampler"]
  # EDM generate.py: Heun on the ρ = 7 grid from min(80, σ_max) to max(0.002, σ_min); VE: σ ∈ [0.02, 100]
  assert (s["sampler"], s["num_steps"], s["rho"], s["sigma_min"], s["sigma_max"]) == ("heun", 3, 7.0, 0.02, 80.0)
  assert details["nfe"] == 5
  assert any("resolution 16" in d for d in details["deviations"])
  assert any("12 samples" in d for d in details["deviations"])
  doc = json.load(open(out))
  m = res.cell(doc, rid, "converted")
  assert m["value"] == value and m["command"].startswith("python -m jaxgen.eval.reproduce edm_table2 --row")
  assert m["weights_sha256"] == res.sha256(weights) and m["jax"] == jax.__version__
  assert m["hardware"].startswith("8 x ") and len(m["devices"]) == 8
  assert res.cell(doc, rid, "trained") is None
  chunks = sorted(os.listdir(details["samples"][0]))
  assert "chunk_000000.npy" in chunks and "chunk_000001.npy" in chunks and "manifest.json" in chunks
  # the same command again: every chunk is reused, the FIDs are the same
  [(_, _, again, details2)] = reproduce.run(argv)
  assert again == value and details2["fid_per_seed"] == fids
  # a copy of the weights elsewhere is the same network (the set is keyed by the file's SHA-256, not its path)
  moved = str(tmp_path / "moved.npz")
  shutil.copy(weights, moved)
  [(_, _, same, _)] = reproduce.run([moved if a == weights else a for a in argv])
  assert same == value
  # another sampler (N = 4) must not mix into those samples
  with pytest.raises(ConfigError, match="holds samples of another run"):
    reproduce.run([a if a != "3" else "4" for a in argv])


def test_ddim_table_one_cell_per_eta_and_steps(tmp_path, fid_files):
  weights = str(tmp_path / "ddpm.npz")
  assert ddpm.main([os.path.join(FIX, "ddpm", "diffusion_pytorch_model.safetensors"), weights]) == 0
  made = reproduce.run(["ddim_table", "--weights", weights, *fid_files, "--eta", "0,1", "--steps", "10",
                        "--num_samples", "8", "--chunk_size", "8", "--sample_batch_size", "8", "--batch_size", "8",
                        "--samples_dir", str(tmp_path / "s"), "--results", str(tmp_path / "r.json"), "--quiet"])
  assert [m[0] for m in made] == ["ddim_table/eta0_S10", "ddim_table/eta1_S10"]
  for rid, col, value, details in made:
    assert col == "converted" and value > 0
    assert details["sampler"]["sigma_grid"] == "ddim_quadratic" and details["sampler"]["precond"] == "ddpm"
    assert details["nfe"] == 10 and details["deviations"] == ["8 samples (the protocol: 50,000)"]
  # η = 1 draws fresh noise at every step: other samples than η = 0 from the same latents
  a, b = (np.load(os.path.join(m[3]["samples"][0], "chunk_000000.npy")) for m in made)
  assert a.shape == b.shape == (8, 16, 16, 3) and not np.array_equal(a, b)


def _zero_unet(path, sde: dict) -> None:
  """small_unet with every parameter 0 in the converters' npz layout, sub-VP preconditioned, with score_sde's
  SDE in its meta (as jaxgen.convert.score_sde writes it)."""
  ov = dict(channels=8, channel_mult=(1,), num_blocks=1, dropout=0.0, resolution=8)
  flat = {k: np.zeros(s, np.float32)
          for k, s in _common.tree_shapes(dict(models.init_shapes("small_unet", **ov))).items()}
  _common.save(path, flat, {"source": "test", "model": "small_unet", "overrides": ov, "precond": {"name": "subvp"},
                            "sde": sde})


def test_score_sde_nll_follows_score_sdes_protocol_on_a_closed_form_case(tmp_path):
  from jaxgen import data as jdata
  from jaxgen import diffusion as dfn
  from jaxgen.eval import bpd as bpd_lib
  sde = {"name": "subvpsde", "beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "eps": 1e-5}
  weights = str(tmp_path / "zero.npz")
  _zero_unet(weights, sde)
  [(rid, col, value, details)] = reproduce.run(
      ["score_sde_nll", "--weights", weights, "--data", "digits", "--limit", "3", "--repeats", "1",
       "--batch_size", "4", "--results", str(tmp_path / "r.json"), "--quiet"])
  assert (rid, col) == ("score_sde_nll/cifar10_ddpmpp_deep_subvp", "converted")
  assert details["num_images"] == 3 and details["sde"] == sde
  assert not any("SDE" in d for d in details["deviations"])
  # A zero network under VP-type preconditioning is D(x; σ) = x: the PF-ODE does not move x̃ = x/s(ε) and has
  # zero divergence, so score_sde's log p_ε(x) = log N(s(T)·x/s(ε); 0, I) + D·ln(s(T)/s(ε)) (jaxgen.eval.bpd).
  cfg = reproduce.load_config("experiments/score_sde/cifar10_ddpmpp_deep_subvp.py")
  cfg.data.name, cfg.data.eval_split, cfg.data.resolution = "digits", "test", 8
  u8 = bpd_lib.to_uint8(next(iter(jdata.eval_dataset(cfg.data, batch_size=4)))["image"][:3])
  t = bpd_lib.score_sde_terms(sde)
  k_deq, _ = jax.random.split(jax.random.fold_in(jax.random.key(0), 0))
  want = []
  for i in range(3):
    x = np.asarray(dfn.dequantize(jax.random.fold_in(k_deq, i), jnp.asarray(u8[i][None]))[0], np.float64)
    d, z = x.size, x * t["s1"] / t["s0"]
    logp = -0.5 * (z ** 2).sum() - 0.5 * d * math.log(2 * math.pi) + d * math.log(t["s1"] / t["s0"])
    want.append(-logp / (d * math.log(2)) + 7)
  assert value == pytest.approx(np.mean(want), abs=1e-4), (value, np.mean(want))   # float32 + RK45 tolerance


def _tiny_classifier(path, bias_class: int) -> None:
  """mobilenet_v2 (width 0.1, two stages, 10 classes) with random weights and a classifier bias of 1e4 on
  ``bias_class``, in the converters' npz layout."""
  ov = dict(width=0.1, blocks=((1, 8, 1, 1), (6, 8, 2, 2)), num_classes=10)
  shapes = dict(models.init_shapes("mobilenet_v2", **ov))
  rng = np.random.default_rng(1)
  flat = {}
  for k, s in _common.tree_shapes(shapes).items():
    v = rng.normal(0, 0.1, s).astype(np.float32)
    if k.endswith("/var"):
      v = np.abs(v) + 1.0
    if k.startswith("params/classifier") and k.endswith("bias"):
      v = np.zeros(s, np.float32)
      v[bias_class] = 1e4
    flat[k] = v
  _common.save(path, flat, {"source": "test", "model": "mobilenet_v2", "overrides": ov})


def test_imagenet_top1_counts_the_labels_a_constant_predictor_gets_right(tmp_path):
  from PIL import Image
  folder = tmp_path / "val"
  folder.mkdir()
  rng = np.random.default_rng(0)
  labels = [3, 1, 3, 0, 3, 2, 3, 5, 9, 3]                       # 5 of 10 are class 3
  for i, lab in enumerate(labels):
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"im{i:02d}.png")
  (folder / "dataset.json").write_text(json.dumps({"labels": [[f"im{i:02d}.png", l] for i, l in enumerate(labels)]}))
  weights = str(tmp_path / "mnv2.npz")
  _tiny_classifier(weights, bias_class=3)
  common = ["--weights", weights, "--row", "mobilenet_v2", "--data", "image_folder", "--data_dir", str(folder),
            "--split", "train", "--crop", "16", "--batch_size", "8", "--results", str(tmp_path / "r.json"), "--quiet"]
  [(rid, col, value, details)] = reproduce.run(["imagenet_top1", *common])
  assert (rid, col) == ("imagenet_top1/mobilenet_v2", "converted")
  assert value == pytest.approx(50.0) and details["count"] == 10 and details["top5"] >= 50.0
  assert details["crop"] == 16 and details["interpolation"] == "bilinear"
  [(_, _, part, details)] = reproduce.run(["imagenet_top1", *common, "--limit", "3"])   # labels 3, 1, 3
  assert part == pytest.approx(200 / 3) and details["count"] == 3
  assert any("first 3 images" in d for d in details["deviations"])


def test_errors_are_one_line_config_errors(tmp_path, fid_files, capsys):
  with pytest.raises(ConfigError, match="exactly one of --weights"):
    reproduce.run(["edm_table2", "--row", "cifar10_uncond_vp", *fid_files])
  with pytest.raises(ConfigError, match="--weights .* is not a file"):
    reproduce.run(["edm_table2", "--row", "cifar10_uncond_vp", "--weights", str(tmp_path / "nope.npz"), *fid_files])
  with pytest.raises(ConfigError, match=r"--fid_ref '' is not a file: make it with `python -m jaxgen.eval.fid"):
    reproduce.run(["edm_table2", "--row", "cifar10_uncond_vp", "--weights", "w.npz", "--inception_weights",
                   fid_files[1]])
  with pytest.raises(ConfigError, match="is the committed results file"):
    res.record(res.COMMITTED, "edm_table2/cifar10_uncond_vp", "converted", {})
  assert reproduce.main(["edm_table2", "--row", "cifar10_uncond_vp", *fid_files]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("jaxgen.eval.reproduce: error: pass exactly one of")
