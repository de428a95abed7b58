"""jaxgen.vq.sampling: filters, KV-cache sampling vs full recomputation, sliding windows, per-sample keys.

The model here is a toy causal "transformer" with closed-form logits, so each check is about the
sampler's plumbing; tests/models/test_gpt.py runs the same samplers on the GPT.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.vq import sampling

V = 11


def toy_logits(seq):
  """Causal toy model: logits at position t are a function of tokens 0..t (a weighted running sum)."""
  t = jnp.arange(seq.shape[1])
  s = jnp.cumsum(seq * (t + 1), axis=1)                                  # [B, T]
  centre = (3 * s + 1) % V
  v = jnp.arange(V)
  return -0.35 * ((v[None, None, :] - centre[..., None]) % V).astype(jnp.float32)   # [B, T, V]


def toy_step(cache, tok, pos):
  """The same model with a cache (the running sum): logits of the next token after ``tok`` at ``pos``."""
  s = cache + tok * (pos + 1)
  centre = (3 * s + 1) % V
  return -0.35 * ((jnp.arange(V)[None, :] - centre[:, None]) % V).astype(jnp.float32), s


jitted_logits = jax.jit(toy_logits)


@functools.partial(jax.jit, static_argnames=("top_k", "top_p"))
def draw_at(key, indices, t, logits, top_k=0, top_p=1.0):
  """The token of step t for samples ``indices``: the key schedule the samplers promise."""
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), t))(indices)
  return sampling.draw(keys, logits, top_k=top_k, top_p=top_p)


def full_recompute(prefix, n, key, indices, **opts):
  """Reference: recompute the whole sequence's logits each step (no cache), same per-sample keys."""
  plen = prefix.shape[1]
  seq = np.zeros((prefix.shape[0], plen + n), np.int32)          # one shape: causal, zeros ahead are unseen
  seq[:, :plen] = prefix
  for t in range(n):
    logits = jitted_logits(jnp.asarray(seq))[:, plen + t - 1]
    seq[:, plen + t] = draw_at(key, jnp.asarray(indices), t, logits, **opts)
  return seq[:, plen:]


@pytest.fixture(scope="module")
def sampler():
  return jax.jit(lambda prefix, key, idx: sampling.sample_tokens(
      toy_step, jnp.zeros(prefix.shape[:1], jnp.int32), prefix, 12, key, top_k=6, top_p=0.9, indices=idx))


def test_filter_top_k_analytic():
  x = jnp.array([[1.0, 5.0, 3.0, 5.0, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
  out = np.asarray(sampling.filter_top_k(x, 2))
  np.testing.assert_array_equal(np.isfinite(out), [[0, 1, 0, 1, 0], [0, 0, 0, 1, 1]])
  np.testing.assert_array_equal(out[np.isfinite(out)], [5.0, 5.0, 3.0, 4.0])   # kept values unchanged
  # ties with the k-th largest survive (taming's top_k_logits keeps logits >= v[..., -1])
  assert np.isfinite(np.asarray(sampling.filter_top_k(x, 1))[0]).sum() == 2
  np.testing.assert_array_equal(sampling.filter_top_k(x, 0), x)               # 0: off


def test_filter_top_p_analytic():
  p = np.array([0.5, 0.3, 0.15, 0.05])
  x = jnp.log(jnp.asarray(p[[2, 0, 3, 1]]))[None]                   # shuffled vocabulary order
  keep = lambda q: np.isfinite(np.asarray(sampling.filter_top_p(x, q)))[0]
  # kept: tokens whose preceding cumulative mass is <= p (HuggingFace's top_k_top_p_filtering)
  np.testing.assert_array_equal(keep(0.7), [0, 1, 0, 1])            # {0.5, 0.3}
  np.testing.assert_array_equal(keep(0.5), [0, 1, 0, 1])            # 0.5 is not > 0.5: 0.3 kept too
  np.testing.assert_array_equal(keep(0.4), [0, 1, 0, 0])
  np.testing.assert_array_equal(keep(0.01), [0, 1, 0, 0])           # always at least one token
  np.testing.assert_array_equal(keep(0.9), [1, 1, 0, 1])   # 0.15 kept (0.8 before it), 0.05 not
  np.testing.assert_array_equal(keep(0.96), [1, 1, 1, 1])
  np.testing.assert_array_equal(keep(1.0), [1, 1, 1, 1])


def test_filters_never_emit_excluded_tokens():
  logits = jax.random.normal(jax.random.key(0), (1, 50)) * 2.0
  logits = jnp.broadcast_to(logits, (2000, 50))
  for opts in (dict(top_k=4, top_p=0.8),):            # excluded by top-k (rank > 4) or by top-p
    allowed = np.isfinite(np.asarray(sampling.filter_logits(logits[:1], **opts)))[0]
    toks = np.asarray(draw_at(jax.random.key(1), jnp.arange(2000), 0, logits, **opts))
    assert allowed[toks].all(), opts
    assert len(np.unique(toks)) == allowed.sum(), opts               # and every allowed one appears
  greedy = sampling.draw(jax.random.split(jax.random.key(1), 2), logits[:2], temperature=0.0)
  np.testing.assert_array_equal(greedy, np.argmax(np.asarray(logits[:2]), -1))


def test_kv_cache_sampling_equals_full_recomputation(sampler):
  prefix = jnp.array([[3], [7], [0]], jnp.int32)
  key = jax.random.key(42)
  idx = jnp.array([5, 9, 2], jnp.int32)
  got = np.asarray(sampler(prefix, key, idx))
  want = full_recompute(prefix, 12, key, idx, top_k=6, top_p=0.9)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int32 and got.shape == (3, 12)


def test_sample_depends_only_on_its_index(sampler):
  key = jax.random.key(7)
  prefix = jnp.full((4, 2), 3, jnp.int32)
  batch = np.asarray(sampler(prefix, key, jnp.arange(10, 14, dtype=jnp.int32)))
  for i in (0, 3):
    alone = np.asarray(sampler(jnp.full((4, 2), 3, jnp.int32), key,
                               jnp.array([10 + i, 0, 1, 2], jnp.int32)))[0]
    np.testing.assert_array_equal(alone, batch[i])
  assert len({tuple(r) for r in batch}) > 1                           # different indices, different draws


def test_window_origin_is_taming_rule():
  # taming scripts/sample_conditional.py: local_i = i if i <= 8, 16-(H-i) if H-i < 8, else 8
  for size in (16, 20, 33):
    for i in range(size):
      local = i if i <= 8 else (16 - (size - i) if size - i < 8 else 8)
      assert int(sampling.window_origin(i, size, 16)) == i - local


def test_sliding_window_matches_reference_loop():
  h, w, wh, ww = 5, 6, 3, 4
  prefix = jnp.array([[1], [4]], jnp.int32)
  key = jax.random.key(3)
  got = np.asarray(sampling.sample_sliding_window(toy_logits, prefix, (h, w), (wh, ww), key, top_k=4))
  # reference: taming's loop written out in numpy, with the window start rule and the same keys
  grid = np.zeros((2, h, w), np.int32)
  for i in range(h):
    for j in range(w):
      i0, j0 = min(max(i - wh // 2, 0), h - wh), min(max(j - ww // 2, 0), w - ww)
      patch = grid[:, i0:i0 + wh, j0:j0 + ww].reshape(2, -1)
      seq = np.concatenate([np.asarray(prefix), patch], 1)[:, :-1]
      logits = jitted_logits(jnp.asarray(seq))[:, 1 - 1 + (i - i0) * ww + (j - j0)]
      t = i * w + j
      grid[:, i, j] = draw_at(key, jnp.arange(2), t, logits, top_k=4)
  np.testing.assert_array_equal(got, grid)


def test_sliding_window_over_whole_grid_equals_cache_sampling():
  prefix = jnp.array([[2], [5]], jnp.int32)
  key = jax.random.key(11)
  a = jax.jit(lambda p, k: sampling.sample_sliding_window(toy_logits, p, (3, 4), (3, 4), k, top_p=0.8))(
      prefix, key)
  b = jax.jit(lambda p, k: sampling.sample_tokens(toy_step, jnp.zeros(2, jnp.int32), p, 12, k, top_p=0.8))(
      prefix, key)
  np.testing.assert_array_equal(np.asarray(a).reshape(2, 12), b)


def test_bad_arguments():
  with pytest.raises(ValueError, match="P >= 1"):
    sampling.sample_tokens(toy_step, jnp.zeros(2, jnp.int32), jnp.zeros((2, 0), jnp.int32), 3,
                           jax.random.key(0))
  with pytest.raises(ValueError, match="indices"):
    sampling.sample_tokens(toy_step, jnp.zeros(2, jnp.int32), jnp.zeros((2, 1), jnp.int32), 3,
                           jax.random.key(0), indices=jnp.arange(3))
  with pytest.raises(ValueError, match="larger than the grid"):
    sampling.sample_sliding_window(toy_logits, jnp.zeros((1, 1), jnp.int32), (2, 2), (3, 2),
                                   jax.random.key(0))
