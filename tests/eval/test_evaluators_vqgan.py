"""The ``reconstruction`` evaluator (jaxgen.eval.evaluators_vqgan) on hand-made reconstructions whose
PSNR, SSIM, code usage and perplexity are known in closed form."""

import numpy as np
import pytest

from jaxgen.configs import base_config
from jaxgen.errors import ConfigError
from jaxgen.eval import evaluators, evaluators_vqgan


def _batches(n_batches=2, b=4, pad_last=1):
  rng = np.random.default_rng(0)
  out = []
  for i in range(n_batches):
    image = rng.uniform(-0.5, 0.5, (b, 16, 16, 1)).astype(np.float32)
    mask = np.ones((b,), np.float32)
    if i == n_batches - 1 and pad_last:
      mask[-pad_last:] = 0.0
    out.append(dict(image=image, mask=mask, label=np.zeros((b,), np.int32)))
  return out


def _fns(offset: float, indices_fn, num_codes=8):
  def reconstruct(batch):
    x = np.asarray(batch["image"])
    return dict(image=x + offset, indices=indices_fn(x.shape[0]))
  return dict(reconstruct=reconstruct, data=dict(name="digits", num_codes=num_codes))


def _run(fns, batches, **options):
  assert evaluators.EVALUATORS["reconstruction"].fn is evaluators_vqgan.reconstruction
  return evaluators_vqgan.reconstruction(fns, None, batches, **options)


def test_constant_offset_has_the_analytic_psnr_and_masked_rows_are_left_out():
  # x̂ = x + 0.1: MSE = 0.01, PSNR = 10·log10(2² / 0.01) = 26.0206 dB for every image
  codes = lambda b: np.tile(np.arange(4).reshape(1, 2, 2), (b, 1, 1))      # codes 0..3, equally often
  out = _run(_fns(0.1, codes), _batches())
  np.testing.assert_allclose(out["psnr"], 10 * np.log10(4 / 0.01), rtol=1e-5)
  assert out["psnr_std"] < 1e-4
  assert out["num_images"] == 7                          # 8 rows, the last one padding
  assert out["code_usage"] == 4 / 8                     # 4 of the 8 codes used
  np.testing.assert_allclose(out["perplexity"], 4.0, rtol=1e-6)   # uniform over 4 codes: exp(log 4)
  assert out["num_codes"] == 8
  assert 0.0 < out["ssim"] < 1.0


def test_perfect_reconstruction_caps_psnr_and_has_ssim_one():
  one_code = lambda b: np.zeros((b, 2, 2), np.int32)
  out = _run(_fns(0.0, one_code), _batches(pad_last=0))
  assert out["psnr"] == 100.0
  np.testing.assert_allclose(out["ssim"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(out["perplexity"], 1.0)
  assert out["code_usage"] == 1 / 8


def test_limit_counts_only_real_images_and_perplexity_of_a_skewed_histogram():
  # per image: code 0 three times, code 1 once → p = (3/4, 1/4), perplexity = exp(H)
  codes = lambda b: np.tile(np.array([[0, 0], [0, 1]]).reshape(1, 2, 2), (b, 1, 1))
  out = _run(_fns(0.0, codes), _batches(), limit=5)
  assert out["num_images"] == 5
  h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  np.testing.assert_allclose(out["perplexity"], np.exp(h), rtol=1e-6)


def test_missing_files_and_wrong_task_are_config_errors(tmp_path):
  fns = _fns(0.0, lambda b: np.zeros((b, 2, 2), np.int32))
  with pytest.raises(ConfigError, match="inception_weights"):
    _run(fns, _batches(), rfid=True, inception_weights=str(tmp_path / "missing.npz"))
  with pytest.raises(ConfigError, match="lpips_weights"):
    _run(fns, _batches(), lpips_weights=str(tmp_path / "missing.npz"))
  c = base_config()
  c.evals.recon = dict(type="reconstruction")
  with pytest.raises(ConfigError, match="reconstruct"):
    evaluators.check(c, ("sample", "data"))
  assert [e.name for e in evaluators.check(c, ("reconstruct", "data"))] == ["recon"]
  assert _run(fns, []) == {}
