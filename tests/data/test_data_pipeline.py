"""Grain pipeline invariants (shuffle, shards, resume, padding) and the embedded data sets."""

import itertools

import numpy as np
import pytest

import jaxgen.data as data
from jaxgen.configs import base_config
from jaxgen.data import digits, pipeline
from jaxgen.data.pipeline import ArraySource, ReadConfig

N = 12
READ = ReadConfig(num_threads=2, prefetch=2)


def _ids(record, rng):
  del rng
  return {"i": np.int64(record["i"])}


def _index_stream(batch_size, process_index=0, process_count=1, seed=0, read=READ):
  src = ArraySource({"i": np.arange(N)})
  return pipeline.train_stream(src, _ids, batch_size=batch_size, seed=seed, process_index=process_index,
                               process_count=process_count, read=read)


def _take(ds, k, key="i"):
  return [b[key] for b in itertools.islice(iter(ds), k)]


def _cfg(**kw):
  c = base_config().data
  for k, v in kw.items():
    setattr(c, k, v)
  return c


def test_every_epoch_is_a_new_permutation_identical_across_runs():
  got = np.concatenate(_take(_index_stream(4), 9))        # 3 epochs of 12
  epochs = got.reshape(3, N)
  for e in epochs:
    assert sorted(e) == list(range(N))
  assert len({tuple(e) for e in epochs}) == 3             # reshuffled every epoch
  np.testing.assert_array_equal(got, np.concatenate(_take(_index_stream(4), 9)))
  assert not np.array_equal(got, np.concatenate(_take(_index_stream(4, seed=1), 9)))


def test_process_shards_are_disjoint_and_form_the_global_batch():
  """P=3 processes × B=2: each global batch is the P=1, B=6 batch; shards cover every epoch."""
  single = _take(_index_stream(6), 4)
  shards = [_take(_index_stream(2, p, 3), 4) for p in range(3)]
  for k in range(4):
    parts = [shards[p][k] for p in range(3)]
    assert sorted(np.concatenate(parts)) == sorted(single[k])
  for epoch in range(2):
    seen = np.concatenate([np.concatenate(shards[p][2 * epoch:2 * epoch + 2]) for p in range(3)])
    assert sorted(seen) == list(range(N))


def test_resume_from_state_gives_the_same_batches():
  cfg = _cfg(name="digits", random_flip=True)
  ds = data.train_dataset(cfg, batch_size=8, seed=5)
  it = iter(ds)
  for _ in range(3):
    next(it)
  state = it.get_state()
  rest = [next(it) for _ in range(4)]
  it2 = iter(data.train_dataset(cfg, batch_size=8, seed=5))
  it2.set_state(state)
  for a in rest:
    b = next(it2)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_batches_do_not_depend_on_thread_count():
  cfg = _cfg(name="digits", random_flip=True, num_threads=0)
  a = _take(data.train_dataset(cfg, batch_size=16, seed=2), 5, "image")
  cfg.num_threads, cfg.prefetch = 3, 5
  it = iter(data.train_dataset(cfg, batch_size=16, seed=2))
  b = [next(it)["image"] for _ in range(5)]
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert it.get_state() == {"next_index": 5}   # the same state format for any thread/worker count
  cfg.num_threads = 0
  it0 = iter(data.train_dataset(cfg, batch_size=16, seed=2))
  it0.set_state({"next_index": 3})
  np.testing.assert_array_equal(next(it0)["image"], b[3])


def test_flip_is_random_and_deterministic():
  cfg = _cfg(name="digits", random_flip=True)
  imgs = np.concatenate(_take(data.train_dataset(cfg, batch_size=100, seed=0), 15, "image"))
  ref, _ = digits.load("train")
  flipped = 0
  for im in imgs[:200]:  # each image is some training digit, flipped or not
    hits = np.flatnonzero((ref == im).all((1, 2, 3)))
    hits_f = np.flatnonzero((ref[:, :, ::-1] == im).all((1, 2, 3)))
    assert len(hits) + len(hits_f) > 0
    flipped += len(hits) == 0
  assert 60 < flipped < 140   # Binomial(200, ½) within ±5.6σ


def test_eval_pass_padding_and_shards():
  src = ArraySource({"i": np.arange(23)})
  seen, counts = [], set()
  for p in range(3):
    batches = list(pipeline.eval_stream(src, dict, batch_size=4, process_index=p, process_count=3, read=READ))
    counts.add(len(batches))
    for b in batches:
      assert b["mask"].dtype == np.float32 and b["i"].shape == (4,)
      seen.extend(b["i"][b["mask"] == 1].tolist())
      assert (b["i"][b["mask"] == 0] == 0).all()
  assert counts == {2}                      # ⌈23/12⌉ batches on every process
  assert sorted(seen) == list(range(23))    # every example exactly once


def test_digits_values_split_and_eval():
  from sklearn.datasets import load_digits
  raw = load_digits()
  tr, ltr = digits.load("train")
  te, lte = digits.load("test")
  assert tr.shape == (1500, 8, 8, 1) and te.shape == (297, 8, 8, 1)
  np.testing.assert_array_equal(tr[..., 0], raw.images[:1500] / 8 - 1)   # v ∈ 0..16 → v/8 − 1
  np.testing.assert_array_equal(lte, raw.target[1500:])
  assert tr.min() == -1.0 and tr.max() == 1.0
  ev = data.eval_dataset(_cfg(name="digits", eval_split="test"), batch_size=64)
  batches = list(ev)
  assert len(batches) == 5 and sum(b["mask"].sum() for b in batches) == 297
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[:297], lte)
  assert data.eval_dataset(_cfg(name="digits"), batch_size=8) is None    # eval_split ''


def test_digits_resize_range_dtypes_and_example_batch():
  cfg = _cfg(name="digits", resolution=16)
  b = next(iter(data.train_dataset(cfg, batch_size=8, seed=0)))
  ex = data.example_batch(cfg, 8)
  assert {k: (v.shape, v.dtype) for k, v in b.items()} == {k: (v.shape, v.dtype) for k, v in ex.items()}
  assert b["image"].shape == (8, 16, 16, 1) and b["image"].dtype == np.float32 and b["label"].dtype == np.int32
  assert b["image"].min() >= -1 and b["image"].max() <= 1
  # half-pixel bilinear 2× upsampling: out[2i] = ¾x[i] + ¼x[i−1], out[2i+1] = ¾x[i] + ¼x[i+1] (interior)
  u = np.zeros((16, 8))
  for i in range(8):
    u[2 * i, i] += 0.75
    u[2 * i, max(i - 1, 0)] += 0.25
    u[2 * i + 1, i] += 0.75
    u[2 * i + 1, min(i + 1, 7)] += 0.25
  img16, _ = digits.load("train", 16)
  img8, _ = digits.load("train")
  want = np.einsum("ai,nij,bj->nab", u, img8[:50, :, :, 0], u)
  np.testing.assert_allclose(img16[:50, 1:15, 1:15, 0], want[:, 1:15, 1:15], atol=1e-5)


def test_toy_stream_positions_resume_and_eval():
  cfg = _cfg(name="toy2d", toy="25gaussians", eval_split="test", eval_size=100)
  one = _take(data.train_dataset(cfg, batch_size=8, seed=1), 3, "x")
  halves = [_take(data.train_dataset(cfg, batch_size=4, seed=1, process_index=p, process_count=2), 3, "x")
            for p in range(2)]
  for k in range(3):   # global batch k is the same set for 1 and 2 processes
    a = np.sort(one[k], axis=0)
    b = np.sort(np.concatenate([halves[0][k], halves[1][k]]), axis=0)
    np.testing.assert_array_equal(a, b)
  it = iter(data.train_dataset(cfg, batch_size=8, seed=1))
  next(it)
  st = it.get_state()
  rest = [next(it)["x"] for _ in range(2)]
  it2 = iter(data.train_dataset(cfg, batch_size=8, seed=1))
  it2.set_state(st)
  np.testing.assert_array_equal(rest[0], next(it2)["x"])
  np.testing.assert_array_equal(rest[1], one[2])
  ev = list(data.eval_dataset(cfg, batch_size=32))
  assert len(ev) == 4 and sum(b["mask"].sum() for b in ev) == 100 and ev[0]["x"].shape == (32, 2)
  assert data.example_batch(cfg, 8)["x"].shape == (8, 2)


def test_bad_input_is_one_clear_line():
  with pytest.raises(ValueError, match="valid names: digits, toy2d, mnist, cifar10, celeb_a, imagenet2012"):
    data.train_dataset(_cfg(name="mnits"), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="set data.toy to one of 8gaussians"):
    data.example_batch(_cfg(name="toy2d", toy="spiral"), 4)
  with pytest.raises(ValueError, match="Unknown digits split 'val'"):
    data.train_dataset(_cfg(name="digits", split="val"), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="process_index=2 must lie in"):
    data.train_dataset(_cfg(name="digits"), batch_size=4, seed=0, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    data.train_dataset(_cfg(name="digits"), batch_size=0, seed=0)
  with pytest.raises(ValueError, match="seed must be a non-negative integer"):
    data.train_dataset(_cfg(name="digits"), batch_size=4, seed=-1)
  for e in (ValueError("x"),):
    assert "\n" not in str(e)
