"""Brownian paths with per-sample keys, consistent across step sizes (a JAX Brownian tree).

The SDE samplers (``samplers_sde``) draw their noise as increments W(t_b) − W(t_a) of one Brownian path
per sample, so the same key gives the same path whatever grid the sampler steps on: refining the grid
splits an increment into smaller ones that add up to it (k-diffusion's ``BrownianTreeNoiseSampler``,
backed by torchsde's ``BrownianTree``, serves the same purpose).

Construction (``BrownianPath(key, indices, shape, t0, t1, depth)``), for sample i with
kᵢ = fold_in(key, indices[i]) and z[n] = normal(fold_in(fold_in(kᵢ, n), 0)):
- W(t0) = 0 and W(t1) = √(t1 − t0)·z[0].
- A dyadic tree over [t0, t1]: node n (heap numbering, root 1, children 2n and 2n + 1) is the interval
  [a, b]; its midpoint m gets the Brownian-bridge value W(m) = (W(a) + W(b))/2 + (√(b − a)/2)·z[n]
  (the exact conditional law of W(m) given W(a), W(b)). Nodes down to level ``depth`` − 1, so the leaves
  (level ``depth``) have width (t1 − t0)/2^depth.
- At a time t inside leaf [a, b] (heap number ℓ) that is not a node:
  W(t) = W(a) + (t − a)/(b − a)·(W(b) − W(a)) + √((t − a)(b − t)/(b − a))·ζ with
  ζ = normal(fold_in(fold_in(kᵢ, ℓ), bits(t))), bits(t) the float32 bit pattern of t.
- Outside [t0, t1]: W(t) = W(t1) + √(t − t1)·ζ⁺ for t > t1 and W(t) = −√(t0 − t)·ζ⁻ for t < t0, with ζ±
  keyed like ζ by the tags ``_ABOVE`` / ``_BELOW`` and bits(t).

What is consistent, and what is exact:
- W(t) is a deterministic function of (key, indices[i], t0, t1, depth, t): the path of a sample does not
  depend on its batch, on the other times queried or on their order, so the increments of a coarse grid
  are exactly (to float32 rounding) the sums of the increments of any refinement of it.
- Marginally every W(t) is exactly N(0, t − t0) (N(0, t − t0) also below t0, with t − t0 < 0 read as
  t0 − t), and for any set of query times with at most one non-node time per leaf (and at most one
  outside [t0, t1] on each side) the joint law is exactly Brownian motion's: independent increments,
  Var(W(b) − W(a)) = b − a (in float32: W is computed as a value, so an increment carries an absolute
  rounding error ~1e-7·√(t1 − t0)). Two non-node times s < t in the same leaf are conditionally
  independent given the leaf's ends instead of bridge-correlated, which leaves Var(W(t) − W(s)) too large
  by 2(s − a)(b − t)/(b − a) ≤ (b − a)/2, i.e. at most half a leaf width ((t1 − t0)/2^(depth+1)).
- Not continuous in t below the leaf scale: the in-leaf term is keyed by t's bit pattern, so times one
  ulp apart get independent ζ (|ΔW| up to ~√(leaf width)/2); query the same float32 times to reproduce.
- Cost of one evaluation: ``depth`` + 2 normal draws of ``shape`` per sample (one ``lax.fori_loop`` over
  the levels with a single random-number site, so compile time is independent of ``depth``); works
  inside ``lax.scan``, under ``jit``, ``vmap`` and ``shard_map``; t, t0, t1 may be traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError

Array = jax.Array

_MAX_DEPTH = 29       # heap numbers below 2^30
_ABOVE = 2 ** 30      # key tag of times above t1
_BELOW = 2 ** 30 + 1  # key tag of times below t0


def _bits(t):
  return jax.lax.bitcast_convert_type(jnp.asarray(t, jnp.float32), jnp.uint32)


class BrownianPath:
  """One Brownian path W per sample on [t0, t1] (and beyond), W(t0) = 0; see the module docstring.

  ``key``: a PRNG key; ``indices``: ``[B]`` global sample indices (the path of sample i depends only on
  ``key`` and ``indices[i]``); ``shape``: the per-sample shape of W; ``depth``: tree levels (leaf width
  (t1 − t0)/2^depth; 1 ≤ depth ≤ 29). ``value(t) -> [B, *shape]``; ``increment(ta, tb)`` = W(tb) − W(ta);
  ``normalized(ta, tb)`` = (W(tb) − W(ta))/√|tb − ta| (k-diffusion's noise-sampler convention; N(0, I)).
  """

  def __init__(self, key, indices, shape, t0, t1, depth: int = 20):
    if not isinstance(depth, int) or not 1 <= depth <= _MAX_DEPTH:
      raise ConfigError(f"BrownianPath depth must be an int in [1, {_MAX_DEPTH}], got {depth!r}.")
    self.indices = jnp.asarray(indices)
    if self.indices.ndim != 1:
      raise ConfigError(f"BrownianPath indices must be 1-D ([B] global sample indices), got shape "
                        f"{self.indices.shape}.")
    self.key = key
    self.shape = tuple(shape)
    self.t0 = jnp.asarray(t0, jnp.float32)
    self.t1 = jnp.asarray(t1, jnp.float32)
    self.depth = depth

  def value(self, t) -> Array:
    """W(t) for a scalar time t (same for every sample): ``[B, *shape]`` float32."""
    t = jnp.asarray(t, jnp.float32)
    t0, t1, depth = self.t0, self.t1, self.depth
    span = t1 - t0
    tc = jnp.clip(t, t0, t1)
    keys = jax.vmap(lambda i: jax.random.fold_in(self.key, i))(self.indices)
    leaf_width = span / (2.0 ** depth)

    # One loop, one draw per iteration (one random-number site to compile): j = 0 draws W(t1), j = 1…depth
    # the bridge value at the midpoint of the level-(j − 1) node containing t, j = depth + 1 the point t
    # inside its leaf (or beyond [t0, t1]). Key of a draw: fold_in(fold_in(kᵢ, tag), data).
    def body(j, carry):
      pos, w_a, w_b, w_end = carry            # t's node at level j − 1: heap number 2^(j−1) + pos, [a, b]
      lvl = jnp.maximum(j - 1, 0)
      node = jnp.left_shift(jnp.uint32(1), lvl.astype(jnp.uint32)) + pos.astype(jnp.uint32)
      leaf = jnp.uint32(2 ** depth) + pos.astype(jnp.uint32)
      final_tag = jnp.where(t > t1, jnp.uint32(_ABOVE), jnp.where(t < t0, jnp.uint32(_BELOW), leaf))
      tag = jnp.where(j == 0, jnp.uint32(0), jnp.where(j <= depth, node, final_tag))
      data = jnp.where(j <= depth, jnp.uint32(0), _bits(t))
      z = jax.vmap(lambda k: jax.random.normal(
          jax.random.fold_in(jax.random.fold_in(k, tag), data), self.shape, jnp.float32))(keys)

      def root(_):
        w_end = jnp.sqrt(span) * z
        return pos, jnp.zeros_like(z), w_end, w_end

      def midpoint(_):
        width = span / jnp.exp2(lvl.astype(jnp.float32))
        m = t0 + width * (pos.astype(jnp.float32) + 0.5)
        w_m = 0.5 * (w_a + w_b) + (0.5 * jnp.sqrt(width)) * z
        right = tc >= m
        return (2 * pos + right.astype(jnp.int32), jnp.where(right, w_m, w_a), jnp.where(right, w_b, w_m),
                w_end)

      def final(_):   # leaf [a, b] (a clamped t = t1 lands at the end of the last leaf); result in w_a
        a = t0 + leaf_width * pos.astype(jnp.float32)
        b = jnp.where(pos == 2 ** depth - 1, t1, a + leaf_width)
        inv = 1.0 / jnp.where(b > a, b - a, 1.0)
        frac = jnp.clip((tc - a) * inv, 0.0, 1.0)
        sd = jnp.sqrt(jnp.maximum((tc - a) * (b - tc), 0.0) * inv)
        inner = w_a + frac * (w_b - w_a) + sd * z
        above = w_end + jnp.sqrt(jnp.maximum(t - t1, 0.0)) * z
        below = -jnp.sqrt(jnp.maximum(t0 - t, 0.0)) * z
        return pos, jnp.where(t > t1, above, jnp.where(t < t0, below, inner)), w_b, w_end

      branch = jnp.where(j == 0, 0, jnp.where(j <= depth, 1, 2))
      return jax.lax.switch(branch, (root, midpoint, final), None)

    # Zeros that vary over the same shard_map axes as the keys (the loop's carry must keep its type).
    kd = jax.random.key_data(keys).reshape(keys.shape[0], -1)[:, 0]
    zero = jnp.zeros((keys.shape[0],) + self.shape, jnp.float32) + (kd * 0).astype(jnp.float32).reshape(
        (-1,) + (1,) * len(self.shape))
    _, w, _, _ = jax.lax.fori_loop(0, depth + 2, body, (jnp.int32(0), zero, zero, zero))
    return w

  def increment(self, ta, tb) -> Array:
    """W(tb) − W(ta): ``[B, *shape]``, N(0, |tb − ta|·I) per sample."""
    return self.value(tb) - self.value(ta)

  def normalized(self, ta, tb) -> Array:
    """(W(tb) − W(ta))/√|tb − ta| (N(0, I)); 0 where tb = ta."""
    ta, tb = jnp.asarray(ta, jnp.float32), jnp.asarray(tb, jnp.float32)
    dt = jnp.abs(tb - ta)
    return self.increment(ta, tb) / jnp.sqrt(jnp.where(dt > 0, dt, 1.0))
