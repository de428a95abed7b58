"""The taming GPT converter against taming's own minGPT (fixture: scripts/make_taming_gpt_fixture.py).

The fixture holds a tiny random mingpt.GPT state dict (as a Net2NetTransformer checkpoint stores it), its
logits, its ``forward_with_past`` logits and Net2NetTransformer's training loss, all computed by taming's
code in PyTorch; no torch is needed here.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.convert import taming_gpt
from jaxgen.errors import ConfigError
from jaxgen.models.gpt import GPT

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "taming_gpt", "gpt.npz")


@pytest.fixture(scope="module")
def fx():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


def _sd(fx, prefix):
  return {k[len(prefix) + 1:]: v for k, v in fx.items() if k.startswith(prefix + "/")}


def _load(fx, prefix, tmp_path):
  flat = taming_gpt.convert_transformer(_sd(fx, prefix), n_head=2)
  path = os.path.join(tmp_path, f"{prefix}.npz")
  np.savez(path, **{f"transformer/{k}": v for k, v in flat.items()})   # as jaxgen.convert.taming stores it
  return taming_gpt.load_gpt(path)


def test_logits_match_taming(fx, tmp_path):
  cfg, variables = _load(fx, "sd", tmp_path)
  want = json.loads(str(fx["config"]))
  assert cfg == {**want, "n_unmasked": 0}
  net = GPT(**cfg)
  logits = jax.jit(net.apply)(variables, jnp.asarray(fx["idx"]))
  np.testing.assert_allclose(logits, fx["logits"], atol=1e-5, rtol=1e-5)
  # taming's forward_with_past on the last token == our decode_step with the cache of the prefix
  t = fx["idx"].shape[1] - 1
  @jax.jit
  def last_step(v, idx):
    _, cache = net.apply(v, idx[:, :t], net.init_cache(3), method="prefill")
    return net.apply(v, idx[:, t], t, cache, method="decode_step")[0]

  last = last_step(variables, jnp.asarray(fx["idx"]))
  np.testing.assert_allclose(last, fx["past_logits"], atol=1e-5, rtol=1e-5)


def test_n_unmasked_read_from_mask(fx, tmp_path):
  cfg, variables = _load(fx, "sd_unmasked", tmp_path)
  assert cfg["n_unmasked"] == 3
  logits = jax.jit(GPT(**cfg).apply)(variables, jnp.asarray(fx["idx"]))
  np.testing.assert_allclose(logits, fx["logits_unmasked"], atol=1e-5, rtol=1e-5)


def test_net2net_loss_matches_taming(fx, tmp_path):
  from jaxgen.tasks.transformer import sequence_logits, sequence_loss

  cfg, variables = _load(fx, "sd", tmp_path)
  net = GPT(**cfg)
  @jax.jit
  def both(v, cond, codes):
    fn = lambda seq: net.apply(v, seq)
    return sequence_logits(fn, cond, codes), sequence_loss(fn, cond, codes).mean()

  logits, loss = both(variables, jnp.asarray(fx["cond"]), jnp.asarray(fx["codes"]))
  np.testing.assert_allclose(logits, fx["n2n_logits"], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(loss, fx["n2n_loss"], rtol=1e-5)


def test_released_configs_and_errors(fx, tmp_path):
  # taming's GPT for the released configs (meta device): the counts tests/models/test_gpt.py asserts
  assert int(fx["counts_gpt_ffhq"]) == 801_798_400 and int(fx["counts_gpt_imagenet_cin"]) == 1_410_640_896
  flat = taming_gpt.convert_transformer(_sd(fx, "sd"))        # width 16: heads unknown
  assert json.loads(str(flat["config"]))["n_head"] == 0
  path = os.path.join(tmp_path, "noheads.npz")
  np.savez(path, **flat)
  with pytest.raises(ConfigError, match="n_head"):
    taming_gpt.load_gpt(path)
  assert taming_gpt.load_gpt(path, n_head=2)[0]["n_head"] == 2
  with pytest.raises(ConfigError, match="not found"):
    taming_gpt.load_gpt(os.path.join(tmp_path, "missing.npz"))
  with pytest.raises(ConfigError, match="tok_emb"):
    taming_gpt.convert_transformer({"encoder.conv_in.weight": np.zeros(3)})
  bad = dict(flat)
  bad["params/head/kernel"] = bad["params/head/kernel"][:, :5]
  np.savez(path, **bad)
  with pytest.raises(ConfigError, match="does not match"):
    taming_gpt.load_gpt(path, n_head=2)
