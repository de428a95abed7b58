"""The stage-2 GPT: KV-cache decoding equals the full forward, masks, sizes of taming's released models.

Numerical agreement with taming's PyTorch minGPT is in tests/convert/test_taming_gpt_convert.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.models import gpt as gpt_lib
from jaxgen.vq import sampling

T, V, B = 10, 16, 3


@pytest.fixture(scope="module")
def tiny():
  net = gpt_lib.GPT(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=32)   # gpt_tiny's layout
  idx = jax.random.randint(jax.random.key(1), (B, T), 0, V)
  variables = jax.jit(net.init)(jax.random.key(0), idx)
  # non-zero position embeddings (they start at 0) so a wrong position would show
  noise = jax.random.normal(jax.random.key(2), (1, T, 32)) * 0.5
  variables["params"]["pos_emb"] = variables["params"]["pos_emb"] + noise
  # jitted with the module static, so the n_unmasked variant shares the code path
  forward = jax.jit(lambda v, i, n=net: n.apply(v, i), static_argnames="n")
  step = jax.jit(lambda v, tok, pos, c, n=net: n.apply(v, tok, pos, c, method="decode_step"),
                 static_argnames="n")
  return net, variables, idx, forward, step


def test_decode_step_equals_full_forward(tiny):
  net, v, idx, forward, step = tiny
  full = np.asarray(forward(v, idx))
  assert full.shape == (B, T, V) and full.dtype == np.float32
  cache = net.init_cache(B)
  assert cache["k"].shape == (2, B, 2, T, 16)
  for t in range(T):
    logits, cache = step(v, idx[:, t], t, cache)
    np.testing.assert_allclose(logits, full[:, t], atol=2e-5, rtol=1e-5)
  # prefill writes the same keys/values the steps wrote
  lp, pcache = jax.jit(lambda v, i: net.apply(v, i, net.init_cache(B), method="prefill"))(v, idx[:, :4])
  np.testing.assert_allclose(lp, full[:, :4], atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(pcache["k"][:, :, :, :4], cache["k"][:, :, :, :4], atol=1e-5)
  np.testing.assert_array_equal(pcache["k"][:, :, :, 4:], 0)


def test_causality_and_n_unmasked(tiny):
  net, v, idx, forward, step = tiny
  other = idx.at[:, 5].set((idx[:, 5] + 1) % V)
  a, b = np.asarray(forward(v, idx)), np.asarray(forward(v, other))
  np.testing.assert_array_equal(a[:, :5], b[:, :5])                 # the past never sees the future
  assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-6
  m = np.asarray(gpt_lib.causal_mask(4, n_unmasked=2))
  np.testing.assert_array_equal(m, [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
  bi = net.clone(n_unmasked=6)
  a, b = np.asarray(forward(v, idx, n=bi)), np.asarray(forward(v, other, n=bi))
  assert np.abs(a[:, 0] - b[:, 0]).max() > 1e-6                     # position 5 < 6 is seen by 0
  # with n_unmasked the prefix goes through prefill; the steps after it still match the forward
  lp, cache = jax.jit(lambda v, i, c: bi.apply(v, i, c, method="prefill"))(v, idx[:, :6], bi.init_cache(B))
  np.testing.assert_allclose(lp, a[:, :6], atol=2e-5)
  for t in range(6, T):
    logits, cache = step(v, idx[:, t], t, cache, n=bi)
    np.testing.assert_allclose(logits, a[:, t], atol=2e-5)


def test_kv_cache_sampling_equals_full_recomputation(tiny):
  """One compiled scan with the cache draws exactly the tokens of re-running the whole sequence."""
  net, v, idx, forward, _ = tiny
  prefix = jnp.array([[3], [0], [9]], jnp.int32)
  key = jax.random.key(5)

  def cached(v, prefix, key):
    step_fn = lambda c, tok, pos: net.apply(v, tok, pos, c, method="decode_step")
    return sampling.sample_tokens(step_fn, net.init_cache(B), prefix, T - 1, key, top_k=8, top_p=0.95)

  def recompute(v, prefix, key):
    return sampling.sample_sliding_window(lambda s: net.apply(v, s), prefix, (1, T - 1), (1, T - 1), key,
                                          top_k=8, top_p=0.95)[:, 0]

  a = np.asarray(jax.jit(cached)(v, prefix, key))
  b = np.asarray(jax.jit(recompute)(v, prefix, key))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (B, T - 1) and a.min() >= 0 and a.max() < V


# taming's mingpt.GPT built in PyTorch (on the meta device) for the released configs by
# scripts/make_taming_gpt_fixture.py: sum(p.numel() for p in GPT(...).parameters()).
# (gpt_celebahq has gpt_ffhq's config.)
TAMING_COUNTS = {"gpt_ffhq": 801_798_400, "gpt_imagenet_cin": 1_410_640_896}


def _formula(vocab, block, n_layer, c):
  per_block = 4 * (c * c + c) + 2 * 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c)
  return vocab * c + block * c + n_layer * per_block + 2 * c + c * vocab


@pytest.mark.parametrize("name", sorted(TAMING_COUNTS))
def test_param_counts_equal_taming(name):
  count = models.count_params(models.param_shapes(name))
  assert count == TAMING_COUNTS[name]
  cfg = gpt_lib._CIN if name == "gpt_imagenet_cin" else gpt_lib._FACES
  assert count == _formula(cfg["vocab_size"], cfg["block_size"], cfg["n_layer"], cfg["n_embd"])


def test_weight_decay_mask_is_linear_weights_only(tiny):
  _, v, *_ = tiny
  mask = gpt_lib.weight_decay_mask(v["params"])
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): m
          for path, m in jax.tree_util.tree_leaves_with_path(mask)}
  decayed = sorted(k for k, m in flat.items() if m)
  # taming's configure_optimizers: Linear weights decay; biases, LayerNorm, embeddings, pos_emb do not
  assert len(decayed) == 2 * 6 + 1 and "head/kernel" in decayed
  assert not flat["pos_emb"] and not flat["tok_emb/embedding"] and not flat["ln_f/scale"]
  assert not flat["blocks_0/attn/key/bias"]


def test_bfloat16_compute_keeps_float32_params_and_logits(tiny):
  _, v, idx, *_ = tiny
  net = gpt_lib.GPT(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=32, dtype=jnp.bfloat16)
  out = jax.eval_shape(net.apply, v, idx)
  assert out.dtype == jnp.float32 and out.shape == (B, T, V)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(
      jax.eval_shape(net.init, jax.random.key(0), idx)))
