"""Vector quantisation: nearest-code lookup, the VQ-VAE losses, EMA codebooks, code usage, dead-code restarts.

    q = quantize(z, codebook, beta=0.25)           # z [..., D], codebook [K, D]
    x_rec = decoder(q.z_q); loss = rec + q.loss      # q.indices [...] int32, straight-through z_q

Definitions (van den Oord et al. 2017, "Neural Discrete Representation Learning"; Esser et al. 2021, VQGAN):
- index(z) = argmin_k ‖z − e_k‖², computed as ‖z‖² + ‖e_k‖² − 2 z·e_k in float32 (taming's formula, so the
  same ties break the same way), **chunk by chunk** over the rows of z (``lax.map``): only a
  ``chunk_size × K`` block of distances exists at a time, never the full N × K matrix (for K = 16384 and a
  batch of 64 at 16×16 codes the full matrix is 1 GiB; ``benchmarks/vq_memory.py`` measures both).
- codebook_loss = mean ‖sg[z] − e‖² (moves the codes), commitment_loss = mean ‖z − sg[e]‖² (moves the
  encoder); both are the same number, they differ in where their gradient goes.
- loss: the paper's ``codebook_loss + β·commitment_loss`` with ``legacy=False``; with ``legacy=True`` (the
  default, as taming's ``VectorQuantizer2``, whose released checkpoints were trained that way) β multiplies
  the codebook term instead: ``commitment_loss + β·codebook_loss``.
- z_q = z + sg[e − z] (straight-through: the forward value is the code, the gradient flows to z unchanged).
- ``cosine=True``: z and the codes are l2-normalised before the lookup, the losses and z_q (Yu et al. 2022,
  ViT-VQGAN's "l2-normalised codes"); the argmin then is the largest cosine similarity.

EMA codebook (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019): per step, with the hard counts n_k
and the sums s_k of the vectors assigned to code k,
  N_k ← γ N_k + (1 − γ) n_k,   m_k ← γ m_k + (1 − γ) s_k,   e_k = m_k / Ñ_k,
  Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N   (Laplace smoothing, as taming's ``EmbeddingEMA``),
with n_k and s_k summed over ``axis_name`` when given (the global batch). ``ema_init`` starts from N_k = 1,
m_k = e_k (as if each code had been assigned once to itself), so the first codebook equals the initial one
up to the smoothing, and a code that is never used keeps its vector (N_k and m_k decay together).

Usage: ``code_counts`` (hard counts, optional mask, summed over ``axis_name``), ``perplexity`` = exp(H(p))
of the code distribution p = counts / Σ counts (K when all codes are equally used, 1 when one code is),
``usage_fraction`` = share of codes with a non-zero count. ``restart_dead_codes`` replaces codes whose count
is below ``threshold`` by random encoder outputs (Dhariwal et al. 2020, Jukebox §3.4 "random restarts").

Pure core: jax and numpy only. See docs/vqgan.md for how the VQGAN task uses these.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Quantized", "quantize", "nearest_code", "lookup", "l2_normalize", "EmaState", "ema_init",
           "ema_update", "ema_reset_codes", "code_counts", "perplexity", "usage_fraction",
           "restart_dead_codes"]

_HIGHEST = lax.Precision.HIGHEST


class Quantized(NamedTuple):
  """Output of ``quantize``: straight-through codes, indices and the VQ losses (float32 scalars)."""
  z_q: jax.Array
  indices: jax.Array
  loss: jax.Array
  codebook_loss: jax.Array
  commitment_loss: jax.Array


def l2_normalize(x, eps: float = 1e-12):
  """x / max(‖x‖, eps) over the last axis (torch's ``F.normalize``)."""
  x = jnp.asarray(x)
  norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True))
  return (x / jnp.maximum(norm, eps)).astype(x.dtype)


def _check(z, codebook):
  if codebook.ndim != 2:
    raise ValueError(f"the codebook must be [K, D], got shape {codebook.shape}.")
  if z.shape[-1] != codebook.shape[1]:
    raise ValueError(f"the vectors have {z.shape[-1]} channels but the codes have {codebook.shape[1]}: "
                     "set the model's embed_dim to the codebook's dimension.")


def nearest_code(z_flat, codebook, *, cosine: bool = False, chunk_size: int | None = 8192) -> jax.Array:
  """Index of the nearest code for each row of ``z_flat [N, D]`` → ``[N]`` int32 (no gradient).

  Distances ‖z‖² + ‖e‖² − 2 z·e in float32 at full matmul precision, ``chunk_size`` rows at a time
  (``None`` or ``chunk_size >= N``: one block). Rows are zero-padded to a whole number of chunks; chunks
  are strided (rows j, j + num_chunks, ...) so a row-sharded batch stays sharded (no all-gather), each
  device then holding chunk_size / num_devices × K distances at a time.
  """
  z = lax.stop_gradient(jnp.asarray(z_flat)).astype(jnp.float32)
  e = lax.stop_gradient(jnp.asarray(codebook)).astype(jnp.float32)
  _check(z, e)
  if cosine:
    z, e = l2_normalize(z), l2_normalize(e)
  n, d = z.shape
  e_sq = jnp.sum(e * e, axis=-1)

  def block(zc):
    dist = (jnp.sum(zc * zc, axis=-1, keepdims=True) + e_sq[None, :]
            - 2.0 * jnp.dot(zc, e.T, precision=_HIGHEST))
    return jnp.argmin(dist, axis=-1).astype(jnp.int32)

  if chunk_size is None or n <= chunk_size:
    return block(z)
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}.")
  num_chunks = -(-n // chunk_size)
  zp = jnp.pad(z, ((0, num_chunks * chunk_size - n), (0, 0)))
  # Chunk j holds the rows r ≡ j (mod num_chunks): a batch sharded over devices along its rows stays
  # sharded inside every chunk (contiguous chunks would put whole chunks on devices and make the scan
  # gather z onto every device).
  idx = lax.map(block, zp.reshape(chunk_size, num_chunks, d).transpose(1, 0, 2))
  return idx.T.reshape(-1)[:n]


def lookup(indices, codebook, *, cosine: bool = False) -> jax.Array:
  """Code vectors of ``indices [...]`` → ``[..., D]`` (normalised codes with ``cosine``), e.g. to decode."""
  e = l2_normalize(codebook) if cosine else jnp.asarray(codebook)
  return jnp.take(e, jnp.asarray(indices), axis=0)


def quantize(z, codebook, *, beta: float = 0.25, legacy: bool = True, cosine: bool = False,
             chunk_size: int | None = 8192) -> Quantized:
  """Nearest-code quantisation of ``z [..., D]`` with ``codebook [K, D]`` (module docstring for the losses).

  Returns ``Quantized(z_q [..., D] in z's dtype, indices [...] int32, loss, codebook_loss,
  commitment_loss)``. With an EMA codebook (not a trained parameter) use ``beta * commitment_loss``.
  """
  z = jnp.asarray(z)
  codebook = jnp.asarray(codebook)
  _check(z, codebook)
  shape = z.shape
  idx = nearest_code(z.reshape(-1, shape[-1]), codebook, cosine=cosine, chunk_size=chunk_size)
  zn = l2_normalize(z) if cosine else z
  e = lookup(idx, codebook, cosine=cosine).reshape(shape)
  z32, e32 = zn.astype(jnp.float32), e.astype(jnp.float32)
  codebook_loss = jnp.mean(jnp.square(e32 - lax.stop_gradient(z32)))
  commitment_loss = jnp.mean(jnp.square(lax.stop_gradient(e32) - z32))
  if legacy:
    loss = commitment_loss + beta * codebook_loss
  else:
    loss = codebook_loss + beta * commitment_loss
  z_q = zn + lax.stop_gradient(e.astype(zn.dtype) - zn)
  return Quantized(z_q, idx.reshape(shape[:-1]), loss, codebook_loss, commitment_loss)


# ----------------------------------------------------------------------------------------------- EMA codebook


class EmaState(NamedTuple):
  """EMA statistics of a codebook: ``cluster_size [K]`` (N_k) and ``embed_sum [K, D]`` (m_k), float32."""
  cluster_size: jax.Array
  embed_sum: jax.Array


def ema_init(codebook) -> EmaState:
  """N_k = 1, m_k = e_k: the state of a codebook whose codes were each assigned once to themselves."""
  e = jnp.asarray(codebook, jnp.float32)
  return EmaState(jnp.ones(e.shape[:1], jnp.float32), e)


def _flat(z_flat, indices):
  z = lax.stop_gradient(jnp.asarray(z_flat)).astype(jnp.float32)
  z = z.reshape(-1, z.shape[-1])
  idx = jnp.asarray(indices).reshape(-1)
  if idx.shape[0] != z.shape[0]:
    raise ValueError(f"{idx.shape[0]} indices for {z.shape[0]} vectors: pass the encoder outputs that "
                     "produced the indices.")
  return z, idx


def ema_update(state: EmaState, z_flat, indices, *, decay: float = 0.99, eps: float = 1e-5,
               axis_name=None, mask=None) -> tuple[EmaState, jax.Array]:
  """One EMA step from encoder outputs ``z_flat [N, D]`` (or [..., D]) and their ``indices``.

  Returns ``(new_state, codebook [K, D] float32)``. ``mask`` (a prefix of the indices' shape, e.g. [B])
  leaves padded samples out; ``axis_name`` sums the statistics over that mapped axis (global batch).
  """
  z, idx = _flat(z_flat, indices)
  k = state.cluster_size.shape[0]
  w = _weights(indices, mask).reshape(-1)
  counts = jax.ops.segment_sum(w, idx, num_segments=k)
  sums = jax.ops.segment_sum(z * w[:, None], idx, num_segments=k)
  if axis_name is not None:
    counts, sums = lax.psum((counts, sums), axis_name)
  cluster = decay * state.cluster_size + (1.0 - decay) * counts
  embed = decay * state.embed_sum + (1.0 - decay) * sums
  n = jnp.sum(cluster)
  smoothed = (cluster + eps) / (n + k * eps) * n
  return EmaState(cluster, embed), embed / smoothed[:, None]


def ema_reset_codes(state: EmaState, codebook, reset) -> EmaState:
  """Re-initialises the EMA statistics of the codes where ``reset [K]`` is true (after a restart)."""
  e = jnp.asarray(codebook, jnp.float32)
  reset = jnp.asarray(reset, bool)
  return EmaState(jnp.where(reset, 1.0, state.cluster_size), jnp.where(reset[:, None], e, state.embed_sum))


# ---------------------------------------------------------------------------------------------------- usage


def _weights(indices, mask):
  shape = jnp.shape(indices)
  if mask is None:
    return jnp.ones(shape, jnp.float32)
  m = jnp.asarray(mask).astype(jnp.float32)
  if m.shape != shape[:m.ndim]:
    raise ValueError(f"mask shape {m.shape} is not a prefix of the indices' shape {shape}.")
  return jnp.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)


def code_counts(indices, num_codes: int, *, mask=None, axis_name=None) -> jax.Array:
  """How often each code occurs: ``[K]`` float32 (``mask``: a prefix of the indices' shape, e.g. [B])."""
  w = _weights(indices, mask).reshape(-1)
  counts = jax.ops.segment_sum(w, jnp.asarray(indices).reshape(-1), num_segments=num_codes)
  if axis_name is not None:
    counts = lax.psum(counts, axis_name)
  return counts


def perplexity(counts) -> jax.Array:
  """exp(−Σ p log p) with p = counts / Σ counts (0 log 0 = 0); 0 for all-zero counts."""
  c = jnp.asarray(counts, jnp.float32)
  total = jnp.sum(c)
  p = c / jnp.maximum(total, 1e-30)
  ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
  return jnp.where(total > 0, jnp.exp(ent), 0.0)


def usage_fraction(counts) -> jax.Array:
  """Share of the codes used at least once."""
  return jnp.mean((jnp.asarray(counts) > 0).astype(jnp.float32))


def restart_dead_codes(codebook, counts, z_flat, key, *, threshold: float = 1.0,
                       axis_name=None) -> tuple[jax.Array, jax.Array]:
  """Replaces codes with ``counts < threshold`` by random rows of ``z_flat [N, D]`` (encoder outputs).

  Rows are drawn without replacement when N ≥ K (distinct restarts), else with replacement. Returns
  ``(codebook, num_restarted int32)``. Under a mapped ``axis_name`` the rows of all devices are gathered and
  the same ``key`` must be used on every device, so all replicas restart to the same vectors.
  """
  codebook = jnp.asarray(codebook)
  z = lax.stop_gradient(jnp.asarray(z_flat))
  z = z.reshape(-1, z.shape[-1])
  _check(z, codebook)
  if axis_name is not None:
    z = lax.all_gather(z, axis_name, tiled=True)
  k, n = codebook.shape[0], z.shape[0]
  if n >= k:
    pick = jax.random.permutation(key, n)[:k]
  else:
    pick = jax.random.randint(key, (k,), 0, n)
  dead = jnp.asarray(counts) < threshold
  new = jnp.where(dead[:, None], z[pick].astype(codebook.dtype), codebook)
  return new, jnp.sum(dead).astype(jnp.int32)
