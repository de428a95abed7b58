"""Fault suite, input half (issue 16 items 4-7): every bad input is one ``ConfigError`` naming its cause.

Bad image files (zero bytes, truncated, not an image, a decompression bomb) name the file, first in the
folder (refused while the run is set up, before anything is written) or in the middle of it (met while
reading batches: the run stops with the file named). ``dataset.json`` labels outside ``[0, num_classes)``,
a class-conditional task on an unlabelled folder, an unbounded ``data.resolution``, an unknown
``model.dtype`` and a key misspelt inside a config file are refused by ``jaxgen.train.validate_config``
with the key named. Nothing here compiles a JAX program: the launcher test is one short subprocess.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxgen import data, train
from jaxgen.configs import base_config
from jaxgen.data import image_folder
from jaxgen.errors import ConfigError
from tests.fixtures.trainer_utils import REPO, subprocess_env


def _one_line(excinfo, *needles):
  msg = str(excinfo.value)
  assert "\n" not in msg, msg
  for n in needles:
    assert n in msg, msg
  return msg


def _png(path, seed=0, side=16):
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def _folder(root, n=6, labels=None):
  os.makedirs(root, exist_ok=True)
  for i in range(n):
    _png(os.path.join(root, f"img{i}.png"), seed=i)
  if labels is not None:
    body = None if labels == "null" else [[f"img{i}.png", int(v)] for i, v in enumerate(labels)]
    with open(os.path.join(root, "dataset.json"), "w") as f:
      json.dump({"labels": body}, f)
  return str(root)


def _break(path, how):
  """Makes the PNG at ``path`` bad in the way ``how`` names."""
  with open(path, "rb") as f:
    raw = f.read()
  with open(path, "wb") as f:
    f.write({"empty": b"", "truncated": raw[:int(len(raw) * 0.6)], "garbage": b"not an image at all" * 9,
             "bomb": raw}[how])


def _config():
  """The skeleton with a task: the smallest config ``validate_config`` accepts."""
  c = base_config()
  c.task.name, c.batch_size = "classification", 8
  return c


def _data_cfg(path, **kw):
  c = base_config().data
  c.name, c.data_dir = "image_folder", path
  c.num_threads = 1
  for k, v in kw.items():
    setattr(c, k, v)
  return c


# ------------------------------------------------------------------------- item 4: bad image files

@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "bomb"])
@pytest.mark.parametrize("where", ["first", "middle"])
def test_bad_image_is_one_line_naming_the_file(tmp_path, monkeypatch, how, where):
  root = _folder(tmp_path / "imgs")
  name = "img0.png" if where == "first" else "img3.png"
  _break(os.path.join(root, name), how)
  if how == "bomb":   # 16×16 = 256 pixels: over the limit (own check) / over twice it (PIL's own error)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 if where == "first" else 100)
    if where == "middle":   # every image is 'too large' then: make the others small enough
      for i in range(6):
        if i != 3:
          Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(root, f"img{i}.png"))
  cfg = _data_cfg(root)
  if where == "first":   # refused while the run is set up (the trainer's example batch)
    with pytest.raises(ConfigError) as e:
      data.example_batch(cfg, 2)
  else:                  # met while reading: one epoch of batches
    data.example_batch(cfg, 2)
    with pytest.raises(ConfigError) as e:
      list(itertools.islice(iter(data.train_dataset(cfg, batch_size=2, seed=0)), 3))
  msg = _one_line(e, os.path.join(root, name), "replace or delete that file")
  assert {"empty": "empty", "truncated": "decoding failed", "garbage": "PIL can identify",
          "bomb": "decompression bomb"}[how] in msg


def test_bad_image_in_a_zip_is_named(tmp_path):
  root = _folder(tmp_path / "imgs", n=3)
  _break(os.path.join(root, "img1.png"), "truncated")
  zpath = str(tmp_path / "imgs.zip")
  with zipfile.ZipFile(zpath, "w") as z:
    for i in range(3):
      z.write(os.path.join(root, f"img{i}.png"), f"img{i}.png")
  src = image_folder.ImageFolderSource(zpath)
  src[0], src[2]   # noqa: B018 - the good ones read
  with pytest.raises(ConfigError) as e:
    src[1]  # noqa: B018
  _one_line(e, f"{zpath}!img1.png", "decoding failed")


def test_colour_image_in_a_folder_read_as_grey_is_refused(tmp_path):
  root = _folder(tmp_path / "imgs", n=4)
  for i in (0, 1, 2):
    Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(os.path.join(root, f"img{i}.png"))
  src = image_folder.ImageFolderSource(root)
  assert src.channels == 1 and src[1]["image"].shape == (16, 16)
  with pytest.raises(ConfigError) as e:
    src[3]  # noqa: B018
  _one_line(e, os.path.join(root, "img3.png"), "RGB colour image", "'img0.png' is greyscale")
  assert image_folder.ImageFolderSource(root, channels=1)[3]["image"].shape == (16, 16)   # asked for grey


def test_corrupt_first_image_leaves_no_workdir(tmp_path):
  root = _folder(tmp_path / "imgs", labels=[i % 3 for i in range(6)])
  _break(os.path.join(root, "img0.png"), "truncated")
  c = base_config()
  c.batch_size, c.num_train_steps = 8, 1
  c.data.name, c.data.data_dir = "image_folder", root
  c.task.name = "classification"
  c.task.num_classes = 3
  c.model.name = "mobilenet_v2"
  workdir = str(tmp_path / "run")
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(c, workdir)
  _one_line(e, "img0.png")
  assert not os.path.exists(workdir)


# ------------------------------------------------------------------------------ item 5: labels

def _train_cfg(root, task="classification", **task_kw):
  c = base_config()
  c.batch_size = 8
  c.data.name, c.data.data_dir = "image_folder", root
  c.task.name = task
  for k, v in task_kw.items():
    setattr(c.task, k, v)
  return c


def test_label_at_or_above_num_classes_is_refused(tmp_path):
  root = _folder(tmp_path / "imgs", labels=[0, 1, 2, 9, 1, 0])
  with pytest.raises(ConfigError) as e:
    train.validate_config(_train_cfg(root, num_classes=5), device_count=1, process_count=1)
  _one_line(e, "'img3.png'", "label 9", "[0, 5)", "--config.task.num_classes=10 or more")
  c = _train_cfg(root, num_classes=0)
  c.model.overrides.num_classes = 4
  with pytest.raises(ConfigError) as e:
    train.validate_config(c, device_count=1, process_count=1)
  _one_line(e, "label 9", "[0, 4)", "--config.model.overrides.num_classes=10 or more")
  big = _folder(tmp_path / "big", n=2, labels=[3, 1000])   # over the model's default 1000 classes
  c = _train_cfg(big, num_classes=0)
  c.model.name = "mobilenet_v2"
  with pytest.raises(ConfigError) as e:
    train.validate_config(c, device_count=1, process_count=1)
  _one_line(e, "'img1.png' the label 1000", "[0, 1000)", "--config.model.overrides.num_classes=1001")
  train.validate_config(_train_cfg(root, num_classes=10), device_count=1, process_count=1)   # fits
  # a task that does not read labels does not care
  train.validate_config(_train_cfg(root, "diffusion", num_classes=5), device_count=1, process_count=1)
  with pytest.raises(ConfigError) as e:
    train.validate_config(_train_cfg(root, "diffusion", num_classes=5, class_conditional=True),
                          device_count=1, process_count=1)
  _one_line(e, "label 9")


@pytest.mark.parametrize("bad", [-1, 1.5, "cat", True])
def test_negative_or_non_integer_label_is_refused(tmp_path, bad):
  root = _folder(tmp_path / "imgs", labels=[0, 1, 0, 1, 0, 1])
  with open(os.path.join(root, "dataset.json"), "w") as f:
    json.dump({"labels": [[f"img{i}.png", bad if i == 4 else 0] for i in range(6)]}, f)
  with pytest.raises(ConfigError) as e:
    image_folder.ImageFolderSource(root)
  _one_line(e, "'img4.png'", "fix that entry")
  with pytest.raises(ConfigError) as e:
    train.validate_config(_train_cfg(root, num_classes=10), device_count=1, process_count=1)
  _one_line(e, "'img4.png'")


def test_class_conditional_on_unlabelled_folder_is_refused(tmp_path):
  for labels in (None, "null"):
    root = _folder(tmp_path / f"imgs{labels}", labels=labels)
    with pytest.raises(ConfigError) as e:
      train.validate_config(_train_cfg(root, "diffusion", class_conditional=True), device_count=1,
                            process_count=1)
    _one_line(e, "task.class_conditional=True needs labels", "--config.task.class_conditional=false")


# --------------------------------------------------------------- item 7: resolution and dtype bounds

@pytest.mark.parametrize("key,value,needle", [
    ("data.resolution", 100000, "config.data.resolution=100000 is impossible (it must be <= 2048"),
    ("data.resolution", 4096, "config.data.resolution=4096 is impossible"),
    ("data.resolution", -8, "config.data.resolution=-8 is impossible (it must be >= 0)"),
    ("data.resolution", 32.0, "config.data.resolution=32.0 must be an integer"),
    ("data.crop_size", 5000, "config.data.crop_size=5000 is impossible"),
    ("model.dtype", "float128", "config.model.dtype='float128' is not a compute dtype"),
    ("model.dtype", "bfloat61", "(did you mean 'bfloat16'?)"),
    ("model.dtype", 32, "config.model.dtype=32 must be a string"),
])
def test_resolution_and_dtype_bounds_name_the_key(key, value, needle):
  d = _config().to_dict()
  block, leaf = key.split(".")
  d[block][leaf] = value
  with pytest.raises(ConfigError) as e:
    train.validate_config(ml_collections.ConfigDict(d), device_count=1, process_count=1)
  _one_line(e, needle, f"--config.{key}")


def test_batch_that_cannot_fit_host_memory_is_refused():
  c = _config()
  c.batch_size, c.data.resolution = 2**20, 2048
  with pytest.raises(ConfigError) as e:
    train.validate_config(c, device_count=1, process_count=1)
  _one_line(e, "GiB", "--config.batch_size", "--config.data.resolution")
  for dtype in ("float32", "bfloat16", "float16"):
    c = _config()
    c.model.dtype, c.data.resolution = dtype, 2048
    c.batch_size = 1
    train.validate_config(c, device_count=1, process_count=1)


# ---------------------------------------------------------------- item 6: misspelt config-file keys

@pytest.mark.parametrize("key,guess", [
    ("batch_sise", "batch_size"), ("data.resoluton", "data.resolution"),
    ("optimizer.learning_rat", "optimizer.learning_rate"), ("model.dtpye", "model.dtype"),
    ("no_such_thing", None),
])
def test_unknown_key_in_config_file_is_refused(key, guess):
  c = _config()
  block, _, leaf = key.rpartition(".")
  setattr(c[block] if block else c, leaf, 4)
  with pytest.raises(ConfigError) as e:
    train.validate_config(c, device_count=1, process_count=1)
  msg = _one_line(e, f"config.{key} is not a key of the config skeleton")
  assert (f"did you mean {guess!r}" in msg) if guess else "did you mean" not in msg


def test_open_blocks_and_data_modules_keep_their_own_keys():
  c = _config()
  c.task.anything = 1                      # the task's typed config checks task.*
  c.evals.fd = dict(type="digits_fd")      # the evaluators check evals.*
  c.model.overrides.width = 0.5            # constructor keywords of the model
  c.optimizer.rms_initial_scale = 1.0      # an optional key read with a default
  train.validate_config(c, device_count=1, process_count=1)
  c.data.name = "jaxgen.data.detection"    # a data module named by path reads keys of its own
  c.data.max_boxes = 8
  train.validate_config(c, device_count=1, process_count=1)


def test_launcher_refuses_misspelt_key_in_config_file(tmp_path):
  cfg = tmp_path / "typo.py"
  cfg.write_text("from tests.fixtures.mlp_config import get_config as _base\n\n"
                 "def get_config(arg=None):\n  c = _base(arg)\n  c.batch_sise = 4\n  return c\n")
  workdir = tmp_path / "run"
  r = subprocess.run([sys.executable, "-m", "jaxgen.main", f"--config={cfg}", f"--workdir={workdir}"],
                     cwd=REPO, env=subprocess_env(1), capture_output=True, text=True, timeout=120)
  assert r.returncode == 2, r.stderr
  lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
  assert lines == ["jaxgen: error: config.batch_sise is not a key of the config skeleton (jaxgen/configs.py) "
                   "(did you mean 'batch_size'?): fix its spelling in the config file or remove it."], \
      r.stderr
  assert not workdir.exists()


# ------------------------------------------------- item 4 mid-run: the run stops, checkpoints stay
# This module is also a data module (``data.name = HERE``): the image-folder stream of ``data.data_dir``
# turned into the 2-D points the fixture task (tests/fixtures/mlp_task.py) trains on.

HERE = "tests.faults.test_faults_inputs"


def train_dataset(data_cfg, *, batch_size, seed, process_index=0, process_count=1):
  cfg = _data_cfg(str(data_cfg.data_dir), prefetch=1)
  stream = data.train_dataset(cfg, batch_size=batch_size, seed=seed, process_index=process_index,
                              process_count=process_count)
  return stream.map(lambda b: {"x": b["image"].reshape(len(b["image"]), -1)[:, :2]})


def eval_dataset(data_cfg, *, batch_size, process_index=0, process_count=1):
  return None


def example_batch(data_cfg, batch_size):
  data.example_batch(_data_cfg(str(data_cfg.data_dir)), batch_size)   # the first image is checked
  return {"x": np.zeros((batch_size, 2), np.float32)}


def test_bad_image_mid_run_stops_with_the_file_named_and_keeps_the_checkpoint(tmp_path):
  from jaxgen import checkpoint  # noqa: PLC0415
  from tests.fixtures.trainer_utils import make_config, snapshot  # noqa: PLC0415
  root = _folder(tmp_path / "imgs", n=8)   # batch 8 = the whole folder: every step reads every image
  workdir = str(tmp_path / "run")
  run = {"data.name": HERE, "data.data_dir": root, "data.eval_split": "", "num_grid_samples": 0,
         "checkpoint_every_steps": 2, "log_every_steps": 2, "batch_size": 8}
  train.train_and_evaluate(make_config(**run, num_train_steps=2), workdir)
  assert checkpoint.saved_steps(workdir) == [2]
  _break(os.path.join(root, "img5.png"), "truncated")
  before = snapshot(os.path.join(workdir, "checkpoints"))
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(make_config(**run, num_train_steps=4), workdir)
  _one_line(e, os.path.join(root, "img5.png"), "decoding failed")
  assert checkpoint.saved_steps(workdir) == [2]
  assert snapshot(os.path.join(workdir, "checkpoints")) == before
  assert not os.path.exists(os.path.join(workdir, "checkpoints_corrupt"))
