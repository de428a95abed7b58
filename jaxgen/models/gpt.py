"""The stage-2 transformer of VQGAN (Esser et al. 2021): a GPT over codebook indices.

The network is taming-transformers' minGPT (taming/modules/transformer/mingpt.py, itself Karpathy's
minGPT): token embedding plus a learned position embedding, ``n_layer`` pre-LayerNorm blocks of causal
multi-head self-attention (separate key / query / value projections with bias, output projection) and a
4× GELU MLP, a final LayerNorm and a linear head without bias. ``n_unmasked`` lets the first positions
attend to each other both ways (taming's option). Dropout on embeddings, attention and residuals as
taming (``embd_pdrop``, ``attn_pdrop``, ``resid_pdrop``; all 0 by default, as its ``GPT``). Weights
N(0, 0.02), biases 0, LayerNorm (ε 1e-5) 1/0, position embedding 0, as its ``_init_weights``. Submodule
names follow the PyTorch state dict (``tok_emb``, ``pos_emb``, ``blocks_<i>/{ln1, ln2, attn/{key,
query, value, proj}, mlp_fc, mlp_proj}``, ``ln_f``, ``head``) so ``jaxgen.convert.taming_gpt`` is a
rename and a transpose. Parameters are float32; the compute dtype is ``dtype``; LayerNorm, softmax and
the logits are float32.

Class-conditional models (Net2NetTransformer with taming's ``Labelator`` cond stage) and unconditional
ones (``SOSProvider``) are this same network: the class label, or the start token, is the first token of
the sequence, drawn from the same vocabulary as the codes (ImageNet: labels 0..999 in the 16384-entry
vocabulary). The task (``jaxgen.tasks.transformer``) builds the sequences.

Inference with a key/value cache (static shapes; one compiled ``lax.scan`` samples a whole sequence
through ``jaxgen.vq.sampling.sample_tokens``):

  cache = gpt.init_cache(batch)                      # zeros, [n_layer, B, n_head, block_size, head_dim]
  logits, cache = gpt.apply(variables, tokens, pos, cache, method="decode_step")   # tokens [B], pos ()
  logits, cache = gpt.apply(variables, idx, cache, method="prefill")               # idx [B, P]

``decode_step`` attends to cache positions ≤ pos; its logits equal ``__call__``'s at that position (the
tests check it step by step). ``prefill`` runs the masked forward on a prefix and fills the cache (use it
when ``n_unmasked > 0``, where feeding the prefix one token at a time would mask it causally).

Registered: ``gpt_ffhq`` and ``gpt_celebahq`` (taming's FFHQ / CelebA-HQ transformers: 1024 codes, 256
positions, 24 layers, 16 heads, width 1664), ``gpt_imagenet_cin`` (the 1.4B class-conditional ImageNet
model: 16384 codes, 256 positions, 48 layers, 24 heads, width 1536) and ``gpt_tiny`` for tests and CPU
runs; every field can be overridden. docs/vqgan.md (stage 2) has the numbers.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import register

__all__ = ["GPT", "GPTBlock", "CausalSelfAttention", "causal_mask", "weight_decay_mask"]

_INIT = nn.initializers.normal(stddev=0.02)


def causal_mask(length: int, n_unmasked: int = 0):
  """``[length, length]`` bool: query i sees key j iff j ≤ i, or both are among the first n_unmasked."""
  i = jnp.arange(length)[:, None]
  j = jnp.arange(length)[None, :]
  return (j <= i) | ((i < n_unmasked) & (j < n_unmasked))


def _dense(features, name, dtype, use_bias=True):
  return nn.Dense(features, use_bias=use_bias, kernel_init=_INIT, bias_init=nn.initializers.zeros,
                  dtype=dtype, param_dtype=jnp.float32, name=name)


def _ln(name):
  return nn.LayerNorm(epsilon=1e-5, dtype=jnp.float32, param_dtype=jnp.float32, name=name)


class _Widths(nn.Module):
  """The fields an attention layer and a block share (a block passes them on to its attention)."""

  n_embd: int
  n_head: int
  attn_pdrop: float = 0.0
  resid_pdrop: float = 0.0
  dtype: Any = jnp.float32


class CausalSelfAttention(_Widths):

  def setup(self):
    self.key = _dense(self.n_embd, "key", self.dtype)
    self.query = _dense(self.n_embd, "query", self.dtype)
    self.value = _dense(self.n_embd, "value", self.dtype)
    self.proj = _dense(self.n_embd, "proj", self.dtype)
    self.attn_drop = nn.Dropout(self.attn_pdrop)
    self.resid_drop = nn.Dropout(self.resid_pdrop)

  def _heads(self, x):
    b, t, c = x.shape
    return x.reshape(b, t, self.n_head, c // self.n_head).transpose(0, 2, 1, 3)   # [B, H, T, hd]

  def qkv(self, x):
    return self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))

  def attend(self, q, k, v, mask, train: bool):
    """q [B,H,Tq,hd], k/v [B,H,Tk,hd], mask broadcastable to [B,H,Tq,Tk] -> [B,Tq,C] after proj."""
    scale = 1.0 / jnp.sqrt(jnp.float32(q.shape[-1]))
    att = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    att = jnp.where(mask, att, -jnp.inf)
    att = jax.nn.softmax(att, axis=-1)
    att = self.attn_drop(att, deterministic=not train)
    y = jnp.einsum("bhqk,bhkd->bhqd", att.astype(v.dtype), v)
    b, h, t, d = y.shape
    y = y.transpose(0, 2, 1, 3).reshape(b, t, h * d)
    return self.resid_drop(self.proj(y), deterministic=not train)

  def __call__(self, x, mask, train: bool = False):
    q, k, v = self.qkv(x)
    return self.attend(q, k, v, mask, train), (k, v)


class GPTBlock(_Widths):

  def setup(self):
    self.ln1 = _ln("ln1")
    self.ln2 = _ln("ln2")
    self.attn = CausalSelfAttention(self.n_embd, self.n_head, self.attn_pdrop, self.resid_pdrop,
                                    self.dtype, name="attn")
    self.mlp_fc = _dense(4 * self.n_embd, "mlp_fc", self.dtype)
    self.mlp_proj = _dense(self.n_embd, "mlp_proj", self.dtype)
    self.mlp_drop = nn.Dropout(self.resid_pdrop)

  def mlp(self, x, train):
    h = nn.gelu(self.mlp_fc(self.ln2(x).astype(self.dtype)), approximate=False)   # torch nn.GELU(): erf
    return self.mlp_drop(self.mlp_proj(h), deterministic=not train)

  def _residuals(self, x, a, train):
    """x + attention output a, then + the MLP of that (pre-LN, as minGPT's Block)."""
    x = x + a.astype(x.dtype)
    return x + self.mlp(x, train).astype(x.dtype)

  def __call__(self, x, mask, train: bool = False):
    a, kv = self.attn(self.ln1(x).astype(self.dtype), mask, train)
    return self._residuals(x, a, train), kv

  def step(self, x, pos, k_cache, v_cache):
    """One position: x [B,1,C]; writes this position's k/v into the caches [B,H,T,hd] at ``pos``."""
    q, k, v = self.attn.qkv(self.ln1(x).astype(self.dtype))
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, 0, pos, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, 0, pos, 0))
    mask = (jnp.arange(k_cache.shape[2]) <= pos)[None, None, None, :]
    a = self.attn.attend(q, k_cache.astype(self.dtype), v_cache.astype(self.dtype), mask, False)
    return self._residuals(x, a, False), k_cache, v_cache


class GPT(nn.Module):
  """taming's minGPT; ``__call__(idx [B, T], train=False) -> logits [B, T, vocab_size]`` (float32)."""

  vocab_size: int
  block_size: int
  n_layer: int = 12
  n_head: int = 8
  n_embd: int = 256
  embd_pdrop: float = 0.0
  resid_pdrop: float = 0.0
  attn_pdrop: float = 0.0
  n_unmasked: int = 0
  dtype: Any = jnp.float32

  def setup(self):
    if self.n_embd % self.n_head:
      raise ValueError(f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}")
    self.tok_emb = nn.Embed(self.vocab_size, self.n_embd, embedding_init=_INIT, param_dtype=jnp.float32,
                            name="tok_emb")
    self.pos_emb = self.param("pos_emb", nn.initializers.zeros, (1, self.block_size, self.n_embd),
                              jnp.float32)
    self.drop = nn.Dropout(self.embd_pdrop)
    self.blocks = [GPTBlock(self.n_embd, self.n_head, self.attn_pdrop, self.resid_pdrop, self.dtype,
                            name=f"blocks_{i}") for i in range(self.n_layer)]
    self.ln_f = _ln("ln_f")
    self.head = _dense(self.vocab_size, "head", self.dtype, use_bias=False)

  @property
  def head_dim(self) -> int:
    return self.n_embd // self.n_head

  def _logits(self, x):
    return self.head(self.ln_f(x).astype(self.dtype)).astype(jnp.float32)

  def _forward(self, idx, train):
    t = idx.shape[1]
    if t > self.block_size:
      raise ValueError(f"sequence length {t} exceeds block_size {self.block_size}")
    x = self.tok_emb(idx) + self.pos_emb[:, :t]
    x = self.drop(x, deterministic=not train).astype(jnp.float32)
    mask = causal_mask(t, self.n_unmasked)[None, None]
    kvs = []
    for blk in self.blocks:
      x, kv = blk(x, mask, train)
      kvs.append(kv)
    return self._logits(x), kvs

  def __call__(self, idx, train: bool = False):
    return self._forward(idx, train)[0]

  # ----------------------------------------------------------------------------- KV-cache inference
  def init_cache(self, batch: int, dtype=jnp.float32):
    """Zero key/value caches ``dict(k=, v=)``, each ``[n_layer, B, n_head, block_size, head_dim]``."""
    shape = (self.n_layer, batch, self.n_head, self.block_size, self.n_embd // self.n_head)
    return dict(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))

  def prefill(self, idx, cache):
    """Masked forward of ``idx [B, P]`` (positions 0..P−1): (logits [B, P, V], cache with them filled)."""
    logits, kvs = self._forward(idx, False)
    k = jnp.stack([kv[0] for kv in kvs]).astype(cache["k"].dtype)
    v = jnp.stack([kv[1] for kv in kvs]).astype(cache["v"].dtype)
    return logits, dict(k=jax.lax.dynamic_update_slice(cache["k"], k, (0, 0, 0, 0, 0)),
                        v=jax.lax.dynamic_update_slice(cache["v"], v, (0, 0, 0, 0, 0)))

  def decode_step(self, tokens, pos, cache):
    """Token ``tokens [B]`` at position ``pos`` (int scalar): (next-token logits [B, V], cache)."""
    pos = jnp.asarray(pos, jnp.int32)
    x = self.tok_emb(tokens[:, None]) + jax.lax.dynamic_slice_in_dim(self.pos_emb, pos, 1, axis=1)
    x = x.astype(jnp.float32)
    ks, vs = [], []
    for i, blk in enumerate(self.blocks):
      x, k, v = blk.step(x, pos, cache["k"][i], cache["v"][i])
      ks.append(k)
      vs.append(v)
    return self._logits(x)[:, 0], dict(k=jnp.stack(ks), v=jnp.stack(vs))


def weight_decay_mask(params):
  """True for the weights taming decays (Linear weights: every ``kernel``); biases, LayerNorm, embeddings
  and ``pos_emb`` are not decayed (Net2NetTransformer.configure_optimizers)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


# ------------------------------------------------------------------------------------- registry
def _inputs(batch=1, block_size=256, **_):
  return (jnp.zeros((batch, block_size), jnp.int32),)


def _make(defaults):
  def factory(dtype="float32", **overrides):
    kw = {**defaults, **overrides}
    return GPT(dtype=jnp.dtype(dtype), **kw)
  return factory


# taming configs of the released transformers (docs/vqgan.md, stage 2)
_FACES = dict(vocab_size=1024, block_size=256, n_layer=24, n_head=16, n_embd=1664)
_CIN = dict(vocab_size=16384, block_size=256, n_layer=48, n_head=24, n_embd=1536)
_TINY = dict(vocab_size=64, block_size=65, n_layer=2, n_head=2, n_embd=32)

for _name, _cfg in (("gpt_ffhq", _FACES), ("gpt_celebahq", _FACES), ("gpt_imagenet_cin", _CIN)):
  register(_name, inputs=lambda batch=1, block_size=_cfg["block_size"], **_: _inputs(batch, block_size))(
      _make(_cfg))
register("gpt_tiny", inputs=lambda batch=1, block_size=_TINY["block_size"], **_: _inputs(batch, block_size))(
    _make(_TINY))
