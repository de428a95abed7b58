"""The taming converter against taming-transformers' own modules (no torch here).

``tests/fixtures/taming/vqgan.npz`` was written by ``scripts/make_taming_fixture.py``: it rebuilds taming's
Encoder, Decoder, VectorQuantizer2 (legacy β), quant convs and NLayerDiscriminator (BatchNorm and ActNorm)
from the official source with random weights and stores their state dicts, inputs and outputs. Converting
the state dict and running ``jaxgen.models.vqgan`` must reproduce every output: float32 to 1e-4 (conv
reassociation), the code indices exactly (the script chose a codebook without near ties).
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.convert import taming
from jaxgen.errors import ConfigError
from jaxgen.models.vqgan import PatchGAN, VQModel
from tests.fixtures.fast_compile import jit_fast

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "taming", "vqgan.npz")
TOL = 1e-4


def nhwc(a):
  return np.asarray(a).transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def fx():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def sd(fx):
  return {k[3:]: v for k, v in fx.items() if k.startswith("sd/")}


@pytest.fixture(scope="module")
def converted(sd):
  return taming.convert_state_dict(sd, resolution=16)


@pytest.fixture(scope="module")
def vq_out(fx, converted):
  cfg = json.loads(str(converted["vqgan/config"]))
  model = VQModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
  variables = {"params": taming._unflatten(converted, "vqgan")["params"]}
  x = jnp.asarray(nhwc(fx["x"]))
  z_q_torch = jnp.asarray(nhwc(fx["z_q"]))

  def run(variables, x, z_q_torch):
    h = model.apply(variables, x, method=lambda m, x: m.encoder(x))
    z = model.apply(variables, x, method="encode_latent")
    x_rec, qloss, indices = model.apply(variables, x)
    return dict(h=h, z=z, x_rec=x_rec, qloss=qloss, indices=indices,
                dec=model.apply(variables, z_q_torch, method="decode"),
                dec_code=model.apply(variables, indices, method="decode_code"))

  return jit_fast(run, variables, x, z_q_torch)(variables, x, z_q_torch)


def test_inferred_config_is_the_fixture_config(fx, converted):
  want = json.loads(str(fx["config"]))
  got = json.loads(str(converted["vqgan/config"]))
  for k in ("ch", "num_res_blocks", "in_channels", "out_ch", "z_channels", "embed_dim", "n_embed",
            "resolution"):
    assert got[k] == want[k], k
  assert tuple(got["ch_mult"]) == tuple(want["ch_mult"]) and tuple(got["attn_resolutions"]) == (8,)
  assert json.loads(str(converted["discriminator/config"])) == {**want["disc"], "use_actnorm": False}


def test_every_tensor_is_used_once(sd, converted):
  kept = [k for k in sd if not k.endswith("num_batches_tracked")]
  assert len([k for k in converted if not k.endswith("/config")]) == len(kept)
  assert converted["vqgan/params/decoder/conv_out/kernel"].shape == (3, 3, 64, 3)   # [kh, kw, in, out]
  np.testing.assert_array_equal(converted["vqgan/params/quantize/embedding"], sd["quantize.embedding.weight"])


def test_encoder_matches_taming(fx, vq_out):
  np.testing.assert_allclose(vq_out["h"], nhwc(fx["h"]), atol=TOL, rtol=0)
  np.testing.assert_allclose(vq_out["z"], nhwc(fx["z"]), atol=TOL, rtol=0)


def test_quantizer_matches_taming(fx, vq_out):
  np.testing.assert_array_equal(np.asarray(vq_out["indices"]), fx["indices"])
  np.testing.assert_allclose(vq_out["qloss"], fx["qloss"], rtol=1e-4)


def test_decoder_and_full_model_match_taming(fx, vq_out):
  for key in ("dec", "x_rec", "dec_code"):
    np.testing.assert_allclose(vq_out[key], nhwc(fx["xrec"]), atol=TOL, rtol=0, err_msg=key)


def _disc(cfg, variables, x, train):
  d = PatchGAN(**cfg)
  if train:
    return d.apply(variables, x, train=True, mutable=["batch_stats"])[0]
  return d.apply(variables, x)


def test_patchgan_batchnorm_matches_taming(fx, converted):
  cfg = json.loads(str(converted["discriminator/config"]))
  variables = taming._unflatten(converted, "discriminator")
  x = jnp.asarray(nhwc(fx["x"]))
  ev = jit_fast(lambda v, x: (_disc(cfg, v, x, False), _disc(cfg, v, x, True)), variables, x)
  d_eval, d_train = ev(variables, x)
  np.testing.assert_allclose(d_eval, nhwc(fx["d_eval"]), atol=TOL, rtol=0)
  np.testing.assert_allclose(d_train, nhwc(fx["d_train"]), atol=TOL, rtol=0)


def test_patchgan_actnorm_matches_taming(fx):
  pre = "sd_actnorm/"
  sd = {f"loss.discriminator.{k[len(pre):]}": v for k, v in fx.items() if k.startswith(pre)}
  flat = taming.convert_state_dict(sd)
  cfg = json.loads(str(flat["discriminator/config"]))
  assert cfg["use_actnorm"] and "vqgan/config" not in flat
  variables = taming._unflatten(flat, "discriminator")
  x = jnp.asarray(nhwc(fx["x"]))
  out = jit_fast(lambda v, x: _disc(cfg, v, x, False), variables, x)(variables, x)
  np.testing.assert_allclose(out, nhwc(fx["d_actnorm"]), atol=TOL, rtol=0)


def test_cli_round_trip_and_loaders(tmp_path, sd, converted):
  src, dst = tmp_path / "sd.npz", tmp_path / "out.npz"
  np.savez(src, **sd)
  assert taming.main([str(src), str(dst), "--resolution", "16"]) == 0
  cfg, variables = taming.load_vqgan(str(dst))
  assert cfg["ch_mult"] == [2, 1] and cfg["n_embed"] == 16
  np.testing.assert_array_equal(variables["params"]["decoder"]["conv_out"]["kernel"],
                                converted["vqgan/params/decoder/conv_out/kernel"])
  dcfg, dvars = taming.load_patchgan(str(dst))
  assert dcfg["n_layers"] == 2 and set(dvars) == {"params", "batch_stats"}


def test_errors_name_the_fix(tmp_path, sd):
  with pytest.raises(ConfigError, match="quantize.embedding.weight"):
    taming.convert_state_dict({k: v for k, v in sd.items() if k != "quantize.embedding.weight"})
  with pytest.raises(ConfigError, match="Gumbel"):
    taming.convert_state_dict({**sd, "quantize.proj.weight": np.zeros((16, 8, 1, 1), np.float32)})
  with pytest.raises(ConfigError, match="unexpected tensor"):
    taming.convert_state_dict({**sd, "encoder.mystery": np.zeros(3, np.float32)})
  with pytest.raises(ConfigError, match="jaxgen.convert.taming"):
    taming.load_vqgan(str(tmp_path / "missing.npz"))
  bad = {k: v for k, v in sd.items() if k.startswith("loss.")}
  np.savez(tmp_path / "d.npz", **taming.convert_state_dict(bad))
  with pytest.raises(ConfigError, match="no vqgan/config"):
    taming.load_vqgan(str(tmp_path / "d.npz"))


def test_net2net_checkpoint_converts_first_stage_and_gpt(sd):
  # A Net2NetTransformer state dict: the VQGAN under first_stage_model.*, taming's mingpt under transformer.*
  # (layout of taming/modules/transformer/mingpt.py: vocab 16, block 4, width 8, one layer).
  rng = np.random.default_rng(0)
  v, t, c = 16, 4, 8
  gpt = {"tok_emb.weight": (v, c), "pos_emb": (1, t, c), "ln_f.weight": (c,), "ln_f.bias": (c,),
         "head.weight": (v, c)}
  for n in ("ln1", "ln2"):
    gpt.update({f"blocks.0.{n}.weight": (c,), f"blocks.0.{n}.bias": (c,)})
  for n, (o, i) in {"attn.key": (c, c), "attn.query": (c, c), "attn.value": (c, c), "attn.proj": (c, c),
                    "mlp.0": (4 * c, c), "mlp.2": (c, 4 * c)}.items():
    gpt.update({f"blocks.0.{n}.weight": (o, i), f"blocks.0.{n}.bias": (o,)})
  net2net = {f"transformer.{k}": rng.standard_normal(s).astype(np.float32) for k, s in gpt.items()}
  net2net["transformer.blocks.0.attn.mask"] = np.tril(np.ones((t, t), np.float32))[None, None]
  net2net.update({f"first_stage_model.{k}": a for k, a in sd.items() if not k.startswith("loss.")})
  flat = taming.convert_state_dict(net2net, resolution=16)
  assert json.loads(str(flat["transformer/config"]))["vocab_size"] == v
  np.testing.assert_array_equal(flat["transformer/params/head/kernel"], net2net["transformer.head.weight"].T)
  assert json.loads(str(flat["vqgan/config"]))["n_embed"] == 16 and "discriminator/config" not in flat
