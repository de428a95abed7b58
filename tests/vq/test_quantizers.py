"""jaxgen.vq: nearest codes vs brute force, the VQ losses and their gradients (taming's VectorQuantizer2
placement of β with legacy=True), straight-through, EMA statistics vs the formula, global-batch sums,
usage metrics and dead-code restarts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import vq


def _data(n=37, k=11, d=5, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(k, d)).astype(np.float32)


def _brute(z, e):
  return np.argmin(((z[:, None, :] - e[None]) ** 2).sum(-1), axis=1)


def test_nearest_code_matches_brute_force_for_every_chunking():
  z, e = _data()
  ref = _brute(z, e)
  for chunk in (None, 8, 37):       # 37 rows: one block (None, 37), 5 blocks with a padded tail (8)
    got = jax.jit(lambda z, e, c=chunk: vq.nearest_code(z, e, chunk_size=c))(z, e)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), ref)


def test_cosine_lookup_is_largest_cosine_similarity():
  z, e = _data(seed=1)
  e = e * np.random.default_rng(2).uniform(0.1, 10, size=(len(e), 1)).astype(np.float32)  # norms differ
  zn = z / np.linalg.norm(z, axis=1, keepdims=True)
  en = e / np.linalg.norm(e, axis=1, keepdims=True)
  q = jax.jit(lambda z, e: vq.quantize(z, e, cosine=True, chunk_size=4))(z, e)
  np.testing.assert_array_equal(np.asarray(q.indices), np.argmax(zn @ en.T, axis=1))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(q.z_q), axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("legacy", [True, False])
def test_quantize_values_losses_and_gradients(legacy):
  z, e = _data(n=24, k=7, d=3)
  z = z.reshape(2, 3, 4, 3)
  beta = 0.25
  fn = jax.jit(lambda z, e: vq.quantize(z, e, beta=beta, legacy=legacy, chunk_size=5))
  q = fn(z, e)
  idx = _brute(z.reshape(-1, 3), e)
  assert q.indices.shape == (2, 3, 4) and q.indices.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(q.indices).reshape(-1), idx)
  np.testing.assert_allclose(np.asarray(q.z_q).reshape(-1, 3), e[idx], rtol=1e-6, atol=1e-6)
  mse = np.mean((z.reshape(-1, 3) - e[idx]) ** 2)
  np.testing.assert_allclose(q.codebook_loss, mse, rtol=1e-5)
  np.testing.assert_allclose(q.commitment_loss, mse, rtol=1e-5)
  np.testing.assert_allclose(q.loss, (1 + beta) * mse, rtol=1e-5)

  # Gradients: commitment term → z, codebook term → e. taming VectorQuantizer2 (legacy=True):
  # loss = mean((sg[z_q] − z)²) + β mean((z_q − sg[z])²), i.e. weight 1 on z and β on the codes.
  w_z, w_e = (1.0, beta) if legacy else (beta, 1.0)
  gz, ge = jax.jit(jax.grad(lambda z, e: fn(z, e).loss, argnums=(0, 1)))(z, e)
  n = z.size
  diff = z.reshape(-1, 3) - e[idx]
  np.testing.assert_allclose(np.asarray(gz).reshape(-1, 3), w_z * 2 * diff / n, rtol=1e-4, atol=1e-7)
  ge_ref = np.zeros_like(e)
  np.add.at(ge_ref, idx, -w_e * 2 * diff / n)
  np.testing.assert_allclose(np.asarray(ge), ge_ref, rtol=1e-4, atol=1e-7)


def test_straight_through_gradient_is_identity():
  z, e = _data(n=12, k=4, d=3)
  w = np.random.default_rng(3).normal(size=z.shape).astype(np.float32)
  gz = jax.jit(jax.grad(lambda z: jnp.sum(vq.quantize(z, e).z_q * w)))(z)
  np.testing.assert_allclose(np.asarray(gz), w, rtol=1e-6)
  q16 = jax.jit(vq.quantize)(z.astype(jnp.bfloat16), e)
  assert q16.z_q.dtype == jnp.bfloat16 and q16.loss.dtype == jnp.float32


def test_shape_mismatch_is_a_clear_error():
  with pytest.raises(ValueError, match="embed_dim"):
    vq.quantize(np.zeros((4, 3), np.float32), np.zeros((5, 2), np.float32))


def test_ema_update_follows_the_formula():
  z, e = _data(n=40, k=6, d=3, seed=4)
  idx = _brute(z, e)
  decay, eps, k = 0.9, 1e-5, len(e)
  state = vq.ema_init(e)
  np.testing.assert_array_equal(np.asarray(state.cluster_size), np.ones(k))
  update = jax.jit(vq.ema_update)
  new, book = update(state, z, idx, decay=decay, eps=eps)
  counts = np.bincount(idx, minlength=k).astype(np.float64)
  sums = np.zeros((k, 3))
  np.add.at(sums, idx, z)
  cluster = decay * 1.0 + (1 - decay) * counts
  embed = decay * e + (1 - decay) * sums
  n = cluster.sum()
  ref = embed / ((cluster + eps) / (n + k * eps) * n)[:, None]
  np.testing.assert_allclose(np.asarray(new.cluster_size), cluster, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(new.embed_sum), embed, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(book), ref, rtol=1e-5, atol=1e-6)
  # decay → 0 and ε → 0: each used code becomes the mean of its vectors (k-means step)
  _, book0 = update(state, z, idx, decay=0.0, eps=1e-12)
  used = counts > 0
  np.testing.assert_allclose(np.asarray(book0)[used], sums[used] / counts[used, None], rtol=1e-5, atol=1e-6)


def test_global_batch_sums_over_axis_name_equal_the_unsharded_result():
  z, e = _data(n=48, k=9, d=4, seed=5)
  idx = _brute(z, e)
  state = vq.ema_init(e)
  shards = lambda x: x.reshape(4, -1, *x.shape[1:])   # noqa: E731
  counts = jax.jit(jax.vmap(lambda i: vq.code_counts(i, 9, axis_name="d"), axis_name="d"))(shards(idx))
  np.testing.assert_array_equal(np.asarray(counts[0]), np.bincount(idx, minlength=9))
  (st, book) = jax.jit(jax.vmap(lambda zz, ii: vq.ema_update(state, zz, ii, axis_name="d"), axis_name="d"))(
      shards(z), shards(idx))
  st_ref, book_ref = jax.jit(vq.ema_update)(state, z, idx)
  np.testing.assert_allclose(np.asarray(book[3]), np.asarray(book_ref), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(st.cluster_size[1]), np.asarray(st_ref.cluster_size), rtol=1e-6)


def test_mask_leaves_padded_samples_out():
  idx = np.array([[0, 1, 1], [2, 2, 2]])
  np.testing.assert_array_equal(np.asarray(vq.code_counts(idx, 4, mask=np.array([1, 0]))), [1, 2, 0, 0])
  with pytest.raises(ValueError, match="prefix"):
    vq.code_counts(idx, 4, mask=np.ones(3))


def test_perplexity_and_usage():
  ppl = jax.jit(vq.perplexity)
  np.testing.assert_allclose(ppl(np.full(4, 3.0)), 4.0, rtol=1e-5)        # uniform use of K codes: K
  np.testing.assert_allclose(ppl(np.array([0.0, 5.0, 0.0, 0.0])), 1.0)    # one code: 1
  np.testing.assert_allclose(ppl(np.array([1.0, 1.0, 0.0, 0.0])), 2.0, rtol=1e-6)
  assert float(ppl(np.zeros(4))) == 0.0
  np.testing.assert_allclose(vq.usage_fraction(np.array([0.0, 2.0, 1.0, 0.0])), 0.5)


def test_restart_dead_codes():
  z, e = _data(n=20, k=6, d=3, seed=6)
  counts = jnp.array([0.0, 3.0, 0.5, 7.0, 0.0, 1.0])
  book, num = jax.jit(vq.restart_dead_codes)(e, counts, z, jax.random.key(0))
  dead = np.asarray(counts) < 1.0
  assert int(num) == dead.sum() == 3
  np.testing.assert_array_equal(np.asarray(book)[~dead], e[~dead])
  restarted = np.asarray(book)[dead]
  for row in restarted:                    # every restarted code is one of the encoder outputs
    assert np.any(np.all(row == z, axis=1))
  assert len({tuple(r) for r in restarted}) == 3          # drawn without replacement (N ≥ K)
  state = vq.ema_reset_codes(vq.EmaState(jnp.full(6, 4.0), jnp.zeros((6, 3))), book, dead)
  np.testing.assert_array_equal(np.asarray(state.embed_sum)[dead], restarted)
  np.testing.assert_array_equal(np.asarray(state.embed_sum)[~dead], 0.0)
  np.testing.assert_array_equal(np.asarray(state.cluster_size), np.where(dead, 1.0, 4.0))


def test_chunked_lookup_never_holds_the_full_distance_matrix():
  n, k, d, chunk = 2048, 1024, 8, 128                      # full N×K f32: 8 MiB; one chunk: 0.5 MiB
  z = jax.ShapeDtypeStruct((n, d), jnp.float32)
  e = jax.ShapeDtypeStruct((k, d), jnp.float32)

  def temp(chunk_size):
    fn = jax.jit(lambda z, e: vq.nearest_code(z, e, chunk_size=chunk_size))
    return fn.lower(z, e).compile().memory_analysis().temp_size_in_bytes

  full, chunked = temp(None), temp(chunk)
  assert full >= n * k * 4
  assert chunked < 2 * chunk * k * 4 + n * d * 4 + n * 4, chunked


def test_row_sharded_batch_stays_sharded_through_the_chunked_lookup():
  # the trainer shards the batch over devices along its leading axis (jaxgen.sharding); chunking must not
  # gather z onto every device (8 simulated CPU devices, tests/conftest.py)
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  devices = np.array(jax.devices())
  mesh = Mesh(devices, ("data",))
  n, k, d = len(devices) * 64, 128, 8
  z = jax.ShapeDtypeStruct((n, d), jnp.float32, sharding=NamedSharding(mesh, P("data")))
  e = jax.ShapeDtypeStruct((k, d), jnp.float32, sharding=NamedSharding(mesh, P()))
  compiled = jax.jit(lambda z, e: vq.nearest_code(z, e, chunk_size=4 * len(devices))).lower(z, e).compile()
  assert "all-gather" not in compiled.as_text()
  assert compiled.output_shardings.spec == P("data")
