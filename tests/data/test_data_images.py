"""Image transforms (crops, resize, flip, [−1, 1]) and the image folder / zip source."""

import itertools
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

import jaxgen.data as data
from jaxgen.configs import base_config
from jaxgen.data import image_folder, images
from jaxgen.data.images import ImageSpec


def _cfg(**kw):
  c = base_config().data
  for k, v in kw.items():
    setattr(c, k, v)
  return c


# ------------------------------------------------------------------------------------ transforms

def test_to_float_endpoints():
  np.testing.assert_array_equal(images.to_float(np.array([0, 255], np.uint8)), [-1.0, 1.0])
  assert images.to_float(np.array([128], np.uint8)).dtype == np.float32


def test_center_crops():
  assert images.center_box(218, 178, 140) == (39, 19, 140, 140)   # score_sde central_crop(140) on CelebA
  # ImageNet eval: central 0.875·min(H, W) = 224 of a 256-short-side image
  spec = ImageSpec(crop="inception", resolution=224).eval_spec()
  assert spec.crop == "center" and spec.crop_fraction == 0.875
  assert images.square_side(256, 341, spec.crop_size, spec.crop_fraction) == 224
  img = np.arange(256 * 341 * 3, dtype=np.int64).reshape(256, 341, 3).astype(np.uint8)
  assert images.process(img, spec, None).shape == (224, 224, 3)   # crop exactly 224: no resize


def test_inception_box_ranges_and_fallback():
  rng = np.random.default_rng(0)
  areas, ratios = [], []
  for _ in range(2000):
    t, l, h, w = images.inception_box(300, 400, rng)
    assert 0 <= t and t + h <= 300 and 0 <= l and l + w <= 400
    areas.append(h * w / (300 * 400))
    ratios.append(w / h)
  assert 0.07 < min(areas) and max(areas) <= 1.0 and np.mean(areas) > 0.4   # U(0.08, 1), some rejected
  assert 0.74 < min(ratios) and max(ratios) < 1.35
  # no 10-try success possible on a 1000×10 strip: central crop, aspect clamped to 3/4
  assert images.inception_box(1000, 10, rng) == ((1000 - 13) // 2, 0, 13, 10)


def test_random_crop_with_padding_and_flip():
  img = np.full((8, 8, 3), 255, np.uint8)
  spec = ImageSpec(crop="random", crop_padding=2, flip=True)
  rng = np.random.default_rng(1)
  outs = np.stack([images.process(img, spec, rng) for _ in range(200)])
  assert outs.shape == (200, 8, 8, 3)
  assert (outs == -1).any() and (outs == 1).any()   # zero padding shows up as −1
  assert set(np.unique(outs)) <= {-1.0, 1.0}
  ramp = np.tile(np.arange(8, dtype=np.uint8)[None, :, None], (8, 1, 1))
  flips = [images.process(ramp, ImageSpec(channels=1, flip=True), rng)[0, 0, 0] > -1 for _ in range(400)]
  assert 150 < sum(flips) < 250


def test_resize_and_channels():
  img = np.zeros((4, 6, 3), np.uint8)
  assert images.resize(img, 8, 8).shape == (8, 8, 3)
  grey = np.full((5, 5, 1), 200, np.uint8)
  np.testing.assert_array_equal(images.resize(grey, 3, 3, "bilinear"), np.full((3, 3, 1), 200))   # constant stays
  assert images.as_hwc(grey, 3).shape == (5, 5, 3)
  assert images.as_hwc(np.zeros((5, 5, 4), np.uint8), 3).shape == (5, 5, 3)
  np.testing.assert_array_equal(images.as_hwc(np.full((2, 2, 3), 100, np.uint8), 1), np.full((2, 2, 1), 100))


def test_bad_crop_settings():
  with pytest.raises(ValueError, match="Unknown data.crop='centre'"):
    ImageSpec(crop="centre").validate()
  with pytest.raises(ValueError, match="needs an output size; set data.resolution"):
    ImageSpec(crop="inception").validate()
  with pytest.raises(ValueError, match="does not fit a 8×8 image"):
    images.square_side(8, 8, 9, 1.0)


# ---------------------------------------------------------------------------------- image folder

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """6 RGB 6×5 PNGs in two sub-folders + dataset.json, and the same as a zip."""
  root = tmp_path_factory.mktemp("imgs")
  rng = np.random.default_rng(0)
  arrays, labels = {}, []
  for i in range(6):
    name = f"{i // 3:05d}/img{i:08d}.png"
    arr = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    os.makedirs(root / os.path.dirname(name), exist_ok=True)
    Image.fromarray(arr).save(root / name)
    arrays[name] = arr
    labels.append([name, i % 4])
  (root / "dataset.json").write_text(json.dumps({"labels": labels}))
  zpath = root.parent / (root.name + ".zip")
  with zipfile.ZipFile(zpath, "w") as z:
    for name in list(arrays) + ["dataset.json"]:
      z.write(root / name, name)
  return str(root), str(zpath), arrays


def _all_batches(cfg, n):
  return list(itertools.islice(iter(data.train_dataset(cfg, batch_size=3, seed=0)), n))


def test_folder_and_zip_read_exact_pixels_and_labels(folder):
  root, zpath, arrays = folder
  names = sorted(arrays)
  src = image_folder.ImageFolderSource(root)
  assert src.names == names and src.labelled and src.channels == 3
  for path in (root, zpath):
    batches = _all_batches(_cfg(name="image_folder", data_dir=path), 2)   # one epoch
    imgs = np.concatenate([b["image"] for b in batches])
    labs = np.concatenate([b["label"] for b in batches])
    assert imgs.dtype == np.float32 and labs.dtype == np.int32 and imgs.shape == (6, 6, 5, 3)
    for im, lab in zip(imgs, labs):
      i = [k for k, n in enumerate(names) if np.array_equal(images.to_float(arrays[n]), im)]
      assert len(i) == 1 and lab == i[0] % 4
  a = _all_batches(_cfg(name="image_folder", data_dir=root), 4)
  b = _all_batches(_cfg(name="image_folder", data_dir=zpath), 4)
  for x, y in zip(a, b):   # same ordering → same stream
    np.testing.assert_array_equal(x["image"], y["image"])


def test_folder_resolution_split_eval_and_example_batch(folder):
  root, zpath, _ = folder
  cfg = _cfg(name="image_folder", data_dir=zpath, resolution=4, crop="center", eval_split="train[4:]",
             random_flip=True)
  b = next(iter(data.train_dataset(cfg, batch_size=2, seed=0)))
  ex = data.example_batch(cfg, 2)
  assert {k: (v.shape, v.dtype) for k, v in b.items()} == {k: (v.shape, v.dtype) for k, v in ex.items()}
  assert b["image"].shape == (2, 4, 4, 3) and -1 <= b["image"].min() and b["image"].max() <= 1
  ev = list(data.eval_dataset(cfg, batch_size=4))
  assert len(ev) == 1 and ev[0]["mask"].tolist() == [1, 1, 0, 0]
  np.testing.assert_array_equal(ev[0]["label"][:2], [4 % 4, 5 % 4])
  assert image_folder.split_range("train[:50%]", 6, "k") == (0, 3)
  assert image_folder.split_range("train[-2:]", 6, "k") == (4, 6)
  with pytest.raises(ValueError, match="use 'train'"):
    image_folder.split_range("validation", 6, "data.eval_split")


def test_folder_grey_unlabelled_and_errors(tmp_path):
  for i in range(2):
    Image.fromarray(np.full((4, 4), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
  cfg = _cfg(name="image_folder", data_dir=str(tmp_path))
  b = next(iter(data.train_dataset(cfg, batch_size=2, seed=0)))
  assert set(b) == {"image"} and b["image"].shape == (2, 4, 4, 1)
  np.testing.assert_allclose(np.sort(b["image"][:, 0, 0, 0]), [-1.0, 60 / 127.5 - 1], rtol=1e-6)
  with pytest.raises(ValueError, match="does not exist; set it to a folder or .zip"):
    data.example_batch(_cfg(name="image_folder", data_dir=str(tmp_path / "nope")), 2)
  with pytest.raises(ValueError, match="needs data.data_dir"):
    data.example_batch(_cfg(name="image_folder"), 2)
  (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["0.png", 1]]}))
  with pytest.raises(ValueError, match="lacks labels for 1 images"):
    data.example_batch(cfg, 2)
  os.makedirs(tmp_path / "empty")
  with pytest.raises(ValueError, match="holds no images"):
    data.example_batch(_cfg(name="image_folder", data_dir=str(tmp_path / "empty")), 2)
