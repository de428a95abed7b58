"""TFDS through grain, offline: ``tfds.testing.mock_data`` feeds ``tfds.data_source``.

mock_data (policy USE_CODE: no metadata files) replaces ``builder.as_data_source`` by a random-example
source but leaves ``is_prepared()`` False and ``info.file_format`` TFRECORD, so ``prepared()`` also
patches those two: the rest of the real code path (builder, data_source, grain) runs unchanged.
"""

import contextlib
import itertools
from unittest import mock

import numpy as np
import pytest

import jaxgen.data as data
from jaxgen.configs import base_config
from jaxgen.data import images as tfds_images
from jaxgen.data import tfds_sets

tfds = pytest.importorskip("tensorflow_datasets")
from tensorflow_datasets.core import file_adapters  # noqa: E402

NUM = 10


@contextlib.contextmanager
def prepared(fmt=file_adapters.FileFormat.ARRAY_RECORD):
  with tfds.testing.mock_data(num_examples=NUM, policy=tfds.testing.MockPolicy.USE_CODE), \
       mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True), \
       mock.patch("tensorflow_datasets.core.dataset_info.DatasetInfo.file_format",
                  new_callable=mock.PropertyMock, return_value=fmt):
    yield


def _cfg(**kw):
  c = base_config().data
  for k, v in kw.items():
    setattr(c, k, v)
  return c


CASES = {  # name: (config overrides, training image shape, labelled)
    "mnist": (dict(eval_split="test"), (28, 28, 1), True),
    "cifar10": (dict(eval_split="test", random_flip=True, crop="random", crop_padding=4), (32, 32, 3), True),
    "celeb_a": (dict(eval_split="validation", resolution=16, random_flip=True), (16, 16, 3), False),
    "imagenette": (dict(eval_split="validation", resolution=16, random_flip=True), (16, 16, 3), True),
    "imagenet2012": (dict(eval_split="validation", resolution=8), (8, 8, 3), True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mock_pipeline(name):
  kw, shape, labelled = CASES[name]
  cfg = _cfg(name=name, **kw)
  with prepared():
    ds = data.train_dataset(cfg, batch_size=4, seed=0, process_index=1, process_count=2)
    it = iter(ds)
    batches = [next(it) for _ in range(3)]
    state = it.get_state()
    after = next(it)
    it2 = iter(ds)
    it2.set_state(state)
    np.testing.assert_array_equal(next(it2)["image"], after["image"])
    ev = list(data.eval_dataset(cfg, batch_size=4))
  ex = data.example_batch(cfg, 4)
  for b in batches:
    assert {k: (v.shape, v.dtype) for k, v in b.items()} == {k: (v.shape, v.dtype) for k, v in ex.items()}
    assert b["image"].shape == (4, *shape) and b["image"].dtype == np.float32
    assert -1.0 <= b["image"].min() and b["image"].max() <= 1.0
    assert ("label" in b) == labelled
    if labelled:
      assert b["label"].dtype == np.int32
  assert len(ev) == 3 and [b["mask"].sum() for b in ev] == [4, 4, 2]   # 10 examples, padded to 12


def test_mnist_values_are_the_source_bytes_mapped_to_unit_range():
  """Without augmentation, every training image is exactly uint8/127.5 − 1 of some source example."""
  with prepared():
    src = tfds.data_source("mnist", split="train", download=False)
    raw = np.stack([src[i]["image"] for i in range(NUM)]).astype(np.float32) / np.float32(127.5) - 1
    labels = np.array([src[i]["label"] for i in range(NUM)])
    b = list(itertools.islice(iter(data.train_dataset(_cfg(name="mnist"), batch_size=5, seed=3)), 2))
  imgs = np.concatenate([x["image"] for x in b])
  labs = np.concatenate([x["label"] for x in b])
  match = [int(np.flatnonzero((raw == im).all((1, 2, 3)))[0]) for im in imgs]
  assert sorted(match) == list(range(NUM))   # one epoch = a permutation of the source
  np.testing.assert_array_equal(labs, labels[match])


def test_unprepared_error_names_the_command(tmp_path):
  cfg = _cfg(name="cifar10", data_dir=str(tmp_path))
  with pytest.raises(tfds_sets.NotPreparedError) as e:
    data.train_dataset(cfg, batch_size=4, seed=0)
  msg = str(e.value)
  assert "\n" not in msg
  assert msg.endswith(f"pip install tensorflow-cpu && tfds build cifar10 --file_format=array_record "
                      f"--data_dir={tmp_path}")
  assert not list(tmp_path.iterdir())        # nothing downloaded or written


def test_wrong_file_format_and_bad_split():
  with prepared(file_adapters.FileFormat.TFRECORD), pytest.raises(ValueError, match="needs array_record"):
    data.train_dataset(_cfg(name="mnist"), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="Unknown split data.eval_split='valid' for mnist; use one of train, test"):
    data.eval_dataset(_cfg(name="mnist", eval_split="valid"), batch_size=4)
  with pytest.raises(ValueError, match="set data.resolution"):
    data.example_batch(_cfg(name="imagenet2012"), 4)


def test_augment_needs_the_randaugment_module():
  cfg = _cfg(name="cifar10", augment="randaugment")
  try:
    import jaxgen.data.randaugment  # noqa: F401
  except ModuleNotFoundError:
    with pytest.raises(ValueError, match="needs jaxgen/data/randaugment.py"):
      data.example_batch(cfg, 4)
  with pytest.raises(ValueError, match="Unknown data.augment='mixup'"):
    data.example_batch(_cfg(name="cifar10", augment="mixup"), 4)


def test_celeb_a_is_the_central_140_crop_resized_bilinear():
  """score_sde CelebA: central_crop(img, 140) (top-left (39, 19) of 218×178), antialiased bilinear."""
  from jaxgen.data import images
  cfg = _cfg(name="celeb_a", eval_split="test", resolution=16)
  with prepared():
    src = tfds.data_source("celeb_a", split="test", download=False)
    want = [images.to_float(images.resize(src[i]["image"][39:179, 19:159], 16, 16, "bilinear")) for i in range(4)]
    got = next(iter(data.eval_dataset(cfg, batch_size=4)))["image"]
  np.testing.assert_array_equal(got, np.stack(want))


# ------------------------------------------------- a real prepared array_record set, built without TF

@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
  """A 7 + 3 example TFDS set prepared in array_record format (Tensor features need no TensorFlow)."""
  class JaxgenTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Tensor(shape=(6, 5, 3), dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(7), "test": self._generate_examples(3)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, {"image": np.full((6, 5, 3), 10 * i + n, np.uint8), "label": i % 3}

  data_dir = str(tmp_path_factory.mktemp("tfds"))
  JaxgenTinyImages(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return data_dir


def test_real_prepared_array_record_set(tiny_tfds, monkeypatch):
  """The unmocked path: is_prepared, file format, tfds.data_source, grain, decoding."""
  name = "jaxgen_tiny_images"
  monkeypatch.setattr(data, "NAMES", (*data.NAMES, name))
  monkeypatch.setitem(tfds_sets.INFO, name, tfds_sets.TfdsInfo(("train", "test"), (6, 5), 3, True))
  cfg = _cfg(name=name, data_dir=tiny_tfds, eval_split="test")
  batches = list(itertools.islice(iter(data.train_dataset(cfg, batch_size=7, seed=0)), 2))
  for b in batches:    # each batch one epoch: values 10·i + 7 (i = 0..6), labels i mod 3
    i = np.sort((np.round((b["image"][:, 0, 0, 0] + 1) * 127.5).astype(int) - 7) // 10)
    np.testing.assert_array_equal(i, np.arange(7))
    np.testing.assert_array_equal(np.sort(b["label"]), np.sort(np.arange(7) % 3))
  assert not np.array_equal(batches[0]["label"], batches[1]["label"]) or \
      not np.array_equal(batches[0]["image"], batches[1]["image"])
  ev = list(data.eval_dataset(cfg, batch_size=2))
  assert [b["mask"].tolist() for b in ev] == [[1, 1], [1, 0]]
  vals = np.concatenate([b["image"][b["mask"] == 1, 0, 0, 0] for b in ev])   # TFDS stores records hashed
  np.testing.assert_array_equal(np.sort(vals), tfds_images.to_float(np.array([3, 13, 23], np.uint8)))
