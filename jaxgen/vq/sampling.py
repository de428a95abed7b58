"""Autoregressive sampling of code sequences (VQGAN stage 2), as pure functions of arrays and keys.

A stage-2 transformer models a sequence of codebook indices (the h×w code grid of a VQGAN, row-major)
after a prefix: the class label (class-conditional ImageNet) or a start-of-sequence token
(unconditional). taming-transformers samples it token by token with a key/value cache
(``sample_with_past`` in taming/modules/transformer/mingpt.py) and, for grids larger than the
transformer's window, by sliding a 16×16 window over the grid (scripts/sample_conditional.py); see
``docs/vqgan.md`` (stage 2). Here both are one compiled ``lax.scan``:

  filter_top_k(logits, k)          keep the k largest logits (ties with the k-th kept), others −inf
  filter_top_p(logits, p)          nucleus: keep the smallest top set whose probability reaches p
                                   (the token that crosses p is kept; always at least one token)
  sample_tokens(step_fn, cache, prefix, num_tokens, key, *, temperature, top_k, top_p, indices)
                                   KV-cache sampling; ``step_fn(cache, tokens [B], pos) ->
                                   (logits [B, V], cache)`` runs one position (``GPT.decode_step``)
  sample_sliding_window(logits_fn, prefix, grid_hw, window_hw, key, ...)
                                   full recomputation per token on a window around the position
                                   (``logits_fn(idx [B, T]) -> [B, T, V]``, e.g. ``GPT.__call__``)

Randomness is per sample (docs/design.md §1): the token drawn for sample i at generation step t uses
``fold_in(fold_in(key, indices[i]), t)``, ``indices`` defaulting to ``arange(B)``, so a sample never
depends on the batch it was drawn in, and the two samplers draw the same tokens when the window covers
the whole grid. ``temperature`` divides the logits before the filters (taming's order: temperature,
top-k, then top-p — HuggingFace's ``top_k_top_p_filtering``); ``top_k=0`` and ``top_p=1`` are off;
``temperature=0`` is greedy (argmax) decoding.

Imports only jax (the pure core).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["filter_top_k", "filter_top_p", "filter_logits", "draw", "sample_tokens",
           "sample_sliding_window", "window_origin"]

_NEG_INF = -jnp.inf


def filter_top_k(logits, k: int):
  """Sets every logit below the k-th largest (per row, last axis) to −inf; ``k <= 0`` or ≥ V: no-op.

  Ties with the k-th largest survive (taming's ``top_k_logits`` keeps ``logits >= v[..., -1]``).
  """
  k = int(k)
  if k <= 0 or k >= logits.shape[-1]:
    return logits
  kth = jax.lax.top_k(logits, k)[0][..., -1:]
  return jnp.where(logits < kth, _NEG_INF, logits)


def filter_top_p(logits, p: float):
  """Nucleus filtering: keeps the most probable tokens until their probability first reaches ``p``.

  Token i of the descending sort is kept iff i = 0 or the cumulative probability of tokens 0..i−1 is
  ≤ p (HuggingFace's ``top_k_top_p_filtering`` that taming calls); the rest become −inf. ``p >= 1``:
  no-op. Computed in float32.
  """
  p = float(p)
  if p >= 1.0:
    return logits
  if p <= 0.0:
    raise ValueError(f"top_p must be in (0, 1], got {p}")
  x = logits.astype(jnp.float32)
  order = jnp.argsort(-x, axis=-1)
  sorted_x = jnp.take_along_axis(x, order, axis=-1)
  cum = jnp.cumsum(jax.nn.softmax(sorted_x, axis=-1), axis=-1)
  before = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1)
  remove_sorted = before > p
  remove_sorted = remove_sorted.at[..., 0].set(False)
  # scatter the decision back to vocabulary order
  inv = jnp.argsort(order, axis=-1)
  remove = jnp.take_along_axis(remove_sorted, inv, axis=-1)
  return jnp.where(remove, _NEG_INF, logits)


def filter_logits(logits, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """Temperature, then top-k, then top-p (float32 logits out); temperature 0 leaves logits as they are."""
  x = logits.astype(jnp.float32)
  if float(temperature) > 0:
    x = x / float(temperature)
  return filter_top_p(filter_top_k(x, top_k), top_p)


def draw(keys, logits, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """One token per row: ``keys [B]`` (one key per sample), ``logits [B, V]`` -> int32 ``[B]``."""
  x = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
  if float(temperature) == 0.0:
    return jnp.argmax(x, axis=-1).astype(jnp.int32)
  return jax.vmap(lambda k, l: jax.random.categorical(k, l))(keys, x).astype(jnp.int32)


def _sample_keys(key, batch: int, indices):
  if indices is None:
    indices = jnp.arange(batch, dtype=jnp.int32)
  indices = jnp.asarray(indices, jnp.int32)
  if indices.shape != (batch,):
    raise ValueError(f"indices must have shape ({batch},), got {indices.shape}")
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)


def sample_tokens(step_fn: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]], cache, prefix,
                  num_tokens: int, key, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  indices=None, return_cache: bool = False):
  """Samples ``num_tokens`` tokens after ``prefix [B, P]`` (P ≥ 1) with a key/value cache.

  ``step_fn(cache, tokens [B] int32, pos int32 scalar) -> (logits [B, V], cache)`` consumes the token
  at position ``pos`` and returns the next-token logits (``GPT.decode_step`` with the params bound).
  The prefix is fed one position at a time (one ``lax.scan``), then generation is a second scan of
  ``num_tokens`` steps; shapes are static, so the program compiles once whatever ``num_tokens`` is.
  Returns int32 ``[B, num_tokens]`` (the prefix cut off), and the final cache with ``return_cache``.
  """
  prefix = jnp.asarray(prefix, jnp.int32)
  if prefix.ndim != 2 or prefix.shape[1] < 1:
    raise ValueError(f"prefix must be [B, P] with P >= 1 (a class or start token), got {prefix.shape}")
  num_tokens = int(num_tokens)
  if num_tokens < 1:
    raise ValueError(f"num_tokens must be positive, got {num_tokens}")
  batch, plen = prefix.shape
  skeys = _sample_keys(key, batch, indices)

  def feed(c, inp):
    tok, pos = inp
    logits, c = step_fn(c, tok, pos)
    return c, logits.astype(jnp.float32)

  cache, prefix_logits = jax.lax.scan(feed, cache, (prefix.T, jnp.arange(plen, dtype=jnp.int32)))
  logits0 = prefix_logits[-1]

  def gen(carry, t):
    c, logits = carry
    tok = draw(jax.vmap(lambda k: jax.random.fold_in(k, t))(skeys), logits,
               temperature=temperature, top_k=top_k, top_p=top_p)
    logits, c = step_fn(c, tok, plen + t)
    return (c, logits.astype(jnp.float32)), tok

  steps = jnp.arange(num_tokens - 1, dtype=jnp.int32)
  (cache, last), toks = jax.lax.scan(gen, (cache, logits0), steps)
  final = draw(jax.vmap(lambda k: jax.random.fold_in(k, num_tokens - 1))(skeys), last,
               temperature=temperature, top_k=top_k, top_p=top_p)
  out = jnp.concatenate([toks.T.reshape(batch, num_tokens - 1), final[:, None]], axis=1)
  return (out, cache) if return_cache else out


def window_origin(pos: int, size: int, window: int):
  """Start of the window along one axis for grid position ``pos`` (taming's sample_conditional.py).

  The position sits at the window's centre (``window // 2``) except near the edges, where the window
  is clamped to the grid: origin = clip(pos − window // 2, 0, size − window). Works on ints and arrays.
  """
  half = window // 2
  return jnp.clip(pos - half, 0, size - window)


def sample_sliding_window(logits_fn: Callable[[jax.Array], jax.Array], prefix, grid_hw, window_hw, key, *,
                          temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, indices=None,
                          init=None):
  """Samples an ``h×w`` code grid with a transformer whose window covers only ``wh×ww`` codes.

  For each grid position in row-major order, the ``wh×ww`` window containing it (``window_origin`` per
  axis) is flattened after ``prefix [B, P]`` and run through ``logits_fn(idx [B, P + wh·ww − 1]) ->
  [B, T, V]``; the logits at the position's place in the window give its token. The transformer is
  causal, so the not-yet-sampled codes after the position (zeros or ``init``) do not matter. Full
  recomputation per token (the window moves, so no cache): ``h·w`` forward passes in one ``lax.scan``.
  With the window equal to the grid this draws exactly what ``sample_tokens`` draws (same keys).
  Returns int32 ``[B, h, w]``.
  """
  prefix = jnp.asarray(prefix, jnp.int32)
  (h, w), (wh, ww) = (int(v) for v in grid_hw), (int(v) for v in window_hw)
  if wh > h or ww > w:
    raise ValueError(f"window {window_hw} is larger than the grid {grid_hw}")
  batch, plen = prefix.shape
  skeys = _sample_keys(key, batch, indices)
  grid = jnp.zeros((batch, h, w), jnp.int32) if init is None else jnp.asarray(init, jnp.int32)

  def body(g, t):
    i, j = t // w, t % w
    i0, j0 = window_origin(i, h, wh), window_origin(j, w, ww)
    patch = jax.lax.dynamic_slice(g, (0, i0, j0), (batch, wh, ww)).reshape(batch, wh * ww)
    seq = jnp.concatenate([prefix, patch], axis=1)[:, :-1]
    logits = logits_fn(seq)
    local = (i - i0) * ww + (j - j0)
    row = jax.lax.dynamic_index_in_dim(logits, plen - 1 + local, axis=1, keepdims=False)
    tok = draw(jax.vmap(lambda k: jax.random.fold_in(k, t))(skeys), row,
               temperature=temperature, top_k=top_k, top_p=top_p)
    g = jax.lax.dynamic_update_slice(g, tok[:, None, None], (0, i, j))
    return g, None

  grid, _ = jax.lax.scan(body, grid, jnp.arange(h * w, dtype=jnp.int32))
  return grid

