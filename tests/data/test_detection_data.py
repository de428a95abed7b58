"""Detection data (``jaxgen.data.detection``): box conversions, the transform, digits_detection, TFDS readers.

TFDS ``voc/2007`` runs through ``tfds.testing.mock_data`` (random examples from the builder's features, the
real builder / data_source / grain path, as tests/data/test_data_tfds.py). TFDS's ``coco`` builder needs
TensorFlow just to be constructed, so the COCO path is tested with ``tfds.data_source`` replaced by a source
of hand-made COCO-format examples.
"""

import contextlib
from unittest import mock

import numpy as np
import pytest

from jaxgen.configs import base_config
from jaxgen.data import detection as det
from jaxgen.errors import ConfigError


def _cfg(**kw):
  c = base_config().data
  c.name = "jaxgen.data.detection"
  for k, v in kw.items():
    setattr(c, k, v)
  return c


def _opts(**kw):
  o = dict(max_boxes=4, resolution=64, flip=False, box_resize="stretch", jitter=(1.0, 1.0),
           use_difficult=False)
  o.update(kw)
  return o


def _record(h=100, w=200, boxes=((10, 20, 50, 60),), classes=(3,), difficult=(False,)):
  return dict(image=np.zeros((h, w, 3), np.uint8), boxes=np.asarray(boxes, np.float32),
              classes=np.asarray(classes, np.int32), difficult=np.asarray(difficult, bool), image_id=7)


def test_coco_category_ids():
  ids = np.asarray(det.COCO_CATEGORY_IDS)
  assert len(ids) == 80 and np.all(np.diff(ids) > 0) and ids[0] == 1 and ids[-1] == 90
  # the 10 ids of the 2014 list without 2017 annotations (COCO's instances_val2017.json categories)
  assert sorted(set(range(1, 91)) - set(ids.tolist())) == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]
  labels = np.arange(80)
  np.testing.assert_array_equal(det.coco_label(det.coco_category_id(labels)), labels)
  assert det.coco_category_id(11) == 13


def test_stretch_letterbox_flip_and_padding():
  rec = _record()
  out = det.to_batch_record(rec, _opts(), None)                       # stretch: sx = 64/200, sy = 64/100
  np.testing.assert_allclose(out["boxes"][0], [10 * .32, 20 * .64, 50 * .32, 60 * .64], rtol=1e-6)
  np.testing.assert_allclose(out["scale"], [0.64, 0.32], rtol=1e-6)
  assert out["box_mask"].tolist() == [True, False, False, False] and out["classes"][0] == 3
  assert out["image"].shape == (64, 64, 3) and out["image_id"] == 7 and out["orig_hw"].tolist() == [100, 200]
  lb = det.to_batch_record(rec, _opts(box_resize="letterbox"), None)  # s = 64/200 on both axes
  np.testing.assert_allclose(lb["boxes"][0], np.array([10, 20, 50, 60]) * 0.32, rtol=1e-6)
  assert np.all(lb["image"][32:] == 0.0)                               # padded bottom (mid grey)
  flipped = det.to_batch_record(rec, _opts(flip=True), _AlwaysFlip())
  np.testing.assert_allclose(flipped["boxes"][0], [(200 - 50) * .32, 20 * .64, (200 - 10) * .32, 60 * .64],
                             rtol=1e-6)


class _AlwaysFlip:
  def random(self):
    return 0.0

  def uniform(self, lo, hi):
    return lo

  def integers(self, lo, hi):
    return lo


def test_difficult_boxes_train_vs_eval_and_truncation():
  rec = _record(boxes=[(0, 0, 20, 20), (30, 30, 60, 60), (100, 10, 150, 90)] * 2, classes=[0, 1, 2] * 2,
                difficult=[False, True, False] * 2)
  train = det.to_batch_record(rec, _opts(), np.random.default_rng(0))
  ev = det.to_batch_record(rec, _opts(), None)
  assert ev["box_mask"].tolist() == [True] * 4 and ev["difficult"].tolist() == [False, True, False, False]
  assert train["box_mask"].tolist() == [True, False, True, True] and not train["difficult"].any()
  kept = det.to_batch_record(rec, _opts(use_difficult=True), np.random.default_rng(0))
  assert kept["box_mask"].all()


@pytest.mark.parametrize("seed", range(4))
def test_jitter_keeps_boxes_on_their_pixels(seed):
  """A white box on black: after flip + scale jitter + crop/pad, the box covers white pixels only."""
  img = np.zeros((80, 120, 3), np.uint8)
  img[20:60, 30:70] = 255
  rec = dict(image=img, boxes=np.asarray([[30, 20, 70, 60]], np.float32), classes=np.asarray([1]),
             difficult=np.zeros(1, bool), image_id=0)
  out = det.to_batch_record(rec, _opts(flip=True, jitter=(0.6, 1.6)), np.random.default_rng(seed))
  if not out["box_mask"][0]:
    return   # cropped away entirely
  x0, y0, x1, y1 = out["boxes"][0]
  inner = out["image"][int(np.ceil(y0)) + 1:int(y1) - 1, int(np.ceil(x0)) + 1:int(x1) - 1]
  assert inner.size and inner.min() > 0.9                      # white (≈ +1) inside
  image = out["image"].copy()
  image[max(int(y0) - 1, 0):int(np.ceil(y1)) + 1, max(int(x0) - 1, 0):int(np.ceil(x1)) + 1] = -1
  assert image.max() <= 0.0                                    # nothing white outside (padding is 0)
  if 0 < y0 and y1 < 64:   # not clipped vertically: y maps back to the source rows (flips keep y)
    back = (np.asarray([y0, y1]) - out["offset"][0]) / out["scale"][0]
    np.testing.assert_allclose(back, [20, 60], atol=1e-3)


def test_digits_detection_records_are_deterministic_and_tight():
  a = det.digits_record("train", 5)
  b = det.digits_record("train", 5)
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["boxes"], b["boxes"])
  assert not np.array_equal(det.digits_record("test", 5)["image"], a["image"])
  for i in range(6):
    r = det.digits_record("train", i)
    n = len(r["boxes"])
    assert 1 <= n <= 4 and r["image"].shape == (128, 128, 3) and r["image"].dtype == np.uint8
    assert set(r["classes"].tolist()) <= set(range(10))
    bx = r["boxes"]
    assert np.all(bx[:, :2] >= 0) and np.all(bx[:, 2:] <= 128) and np.all(bx[:, 2:] > bx[:, :2])
    for p in range(n):     # boxes do not overlap
      for q in range(p + 1, n):
        ix = min(bx[p, 2], bx[q, 2]) - max(bx[p, 0], bx[q, 0])
        iy = min(bx[p, 3], bx[q, 3]) - max(bx[p, 1], bx[q, 1])
        assert ix <= 0 or iy <= 0
    outside = np.ones((128, 128), bool)
    for x0, y0, x1, y1 in bx.astype(int):
      outside[y0:y1, x0:x1] = False
    # background ≤ 0.4 (of 255); outside the tight boxes the ink's alpha is ≤ ½: ≤ ½ + ½·0.4 = 0.7
    assert r["image"][outside].max() <= int(np.ceil(0.7 * 255))
    for x0, y0, x1, y1 in bx.astype(int):   # inside: ink with alpha > ½ of a colour ≥ 0.5: > 0.25
      assert r["image"][y0:y1, x0:x1].max() > 0.25 * 255


def test_digits_pipeline_shapes_resume_and_eval_padding():
  cfg = _cfg(dataset="digits_detection", eval_split="test", digits_test_size=10, random_flip=True,
             jitter_min=0.9, jitter_max=1.1, num_threads=1)
  ds = det.train_dataset(cfg, batch_size=4, seed=0)
  it = iter(ds)
  first = next(it)
  state = it.get_state()
  after = next(it)
  it2 = iter(ds)
  it2.set_state(state)
  np.testing.assert_array_equal(next(it2)["boxes"], after["boxes"])
  ex = det.example_batch(cfg, 4)
  assert {k: (v.shape, v.dtype) for k, v in first.items()} == {k: (v.shape, v.dtype) for k, v in ex.items()}
  ev = list(det.eval_dataset(cfg, batch_size=4))
  assert [float(b["mask"].sum()) for b in ev] == [4, 4, 2]
  assert det.facts(cfg)["num_classes"] == 10


def test_config_errors():
  with pytest.raises(ConfigError, match="data.dataset"):
    det.dataset_name(_cfg(dataset="voc/2099"))
  with pytest.raises(ConfigError, match="split"):
    det.train_dataset(_cfg(dataset="voc/2007", split="trainval"), batch_size=2, seed=0)
  with pytest.raises(ConfigError, match="box_resize"):
    det.example_batch(_cfg(dataset="digits_detection", box_resize="crop"), 2)


def test_tfds_record_voc_and_coco_conversion():
  image = np.zeros((50, 80, 3), np.uint8)
  voc = {"image": image, "image/filename": "000123.jpg",
         "objects": {"bbox": np.asarray([[0.1, 0.25, 0.5, 0.75]], np.float32), "label": np.asarray([14]),
                     "is_difficult": np.asarray([True])}}
  r = det.tfds_record(voc, "voc")
  np.testing.assert_allclose(r["boxes"], [[20, 5, 60, 25]], rtol=1e-6)   # xyxy = (x·W, y·H)
  assert r["classes"].tolist() == [14] and r["difficult"].tolist() == [True] and r["image_id"] == 123
  coco = {"image": image, "image/id": 42,
          "objects": {"bbox": np.asarray([[0.0, 0.0, 1.0, 0.5]], np.float32), "label": np.asarray([79]),
                      "is_crowd": np.asarray([False]), "area": np.asarray([123])}}
  r = det.tfds_record(coco, "coco")
  np.testing.assert_allclose(r["boxes"], [[0, 0, 40, 50]])
  assert r["image_id"] == 42 and r["area"].tolist() == [123.0] and det.coco_category_id(r["classes"][0]) == 90


# ------------------------------------------------------------------------------------- TFDS

tfds = pytest.importorskip("tensorflow_datasets")


@contextlib.contextmanager
def _prepared():
  from tensorflow_datasets.core import file_adapters  # noqa: PLC0415
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE), \
       mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True), \
       mock.patch("tensorflow_datasets.core.dataset_info.DatasetInfo.file_format",
                  new_callable=mock.PropertyMock, return_value=file_adapters.FileFormat.ARRAY_RECORD):
    yield


@pytest.mark.parametrize("name", ["voc/2007", "voc/2007+2012"])
def test_voc_mock_pipeline(name):
  cfg = _cfg(dataset=name, split="train+validation", eval_split="test", resolution=32, max_boxes=6,
             random_flip=True, jitter_min=0.8, jitter_max=1.2, num_threads=1)
  with _prepared():
    batches = [b for _, b in zip(range(2), iter(det.train_dataset(cfg, batch_size=4, seed=0)))]
    ev = list(det.eval_dataset(cfg, batch_size=4))
  ex = det.example_batch(cfg, 4)
  for b in batches:
    assert {k: (v.shape, v.dtype) for k, v in b.items()} == {k: (v.shape, v.dtype) for k, v in ex.items()}
    assert -1.0 <= b["image"].min() and b["image"].max() <= 1.0
    live = b["boxes"][b["box_mask"]]
    assert np.all(live >= 0) and np.all(live <= 32) and np.all(live[:, 2:] - live[:, :2] >= 2)
    assert np.all(b["classes"][b["box_mask"]] < 20) and not b["difficult"].any()
  assert [float(b["mask"].sum()) for b in ev] == [4, 2]           # voc/2007 test only, 6 mock examples


class _FakeSource:
  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"image": np.full((40, 60, 3), 10 * i, np.uint8), "image/id": 1000 + i,
            "objects": {"bbox": np.asarray([[0.25, 0.5, 0.75, 1.0]], np.float32), "label": np.asarray([i]),
                        "is_crowd": np.asarray([i == 1]), "area": np.asarray([50.0 + i])}}


def test_coco_reader_path():
  cfg = _cfg(dataset="coco/2017", split="train", eval_split="validation", resolution=32, num_threads=1)
  with mock.patch.object(tfds, "data_source", return_value=_FakeSource(3)), \
       mock.patch("jaxgen.data.tfds_sets.check_prepared"):
    ev = list(det.eval_dataset(cfg, batch_size=4))
    train = next(iter(det.train_dataset(cfg, batch_size=2, seed=0)))
  b = ev[0]
  assert b["mask"].tolist() == [1, 1, 1, 0] and b["image_id"][:3].tolist() == [1000, 1001, 1002]
  np.testing.assert_allclose(b["boxes"][0, 0], [16, 8, 32, 24], rtol=1e-6)  # 60×40 -> 32×32
  assert b["difficult"][:3, 0].tolist() == [False, True, False] and b["area"][2, 0] == 52.0
  assert train["box_mask"].shape == (2, 100) and not train["difficult"].any()
