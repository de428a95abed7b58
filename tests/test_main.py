"""Bad input to the launcher: one clear error line naming cause and fix, before any work, and
nothing already in the workdir modified."""

from __future__ import annotations

import json
import os
import subprocess

import ml_collections
import pytest

from jaxgen import train
from jaxgen.configs import base_config
from tests.fixtures.trainer_utils import (CONFIG_FILE, REPO, launcher, make_config, snapshot,
                                          subprocess_env)

RUN = dict(num_train_steps=2, log_every_steps=1, checkpoint_every_steps=2, num_grid_samples=0)


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
  """A workdir holding a finished run of the fixture config."""
  workdir = str(tmp_path_factory.mktemp("existing"))
  train.train_and_evaluate(make_config(**RUN, **{"data.eval_split": ""}), workdir)
  return workdir


BAD = [
    ({"task.name": "nosuchtask"}, r"task.name='nosuchtask' is unknown.*set --config.task.name"),
    ({"task.name": "tests.fixtures.nope"}, r"task.name='tests.fixtures.nope' cannot be imported"),
    ({"model.name": "nosuchmodel"}, r"model.name='nosuchmodel' is not a registered model.*--config.model.name"),
    ({"data.name": "tests.fixtures.nodata"}, r"data.name='tests.fixtures.nodata' cannot be imported"),
    ({"data.name": "nosuchdata"}, r"nosuchdata"),
    ({"batch_size": 12}, r"batch_size=12 is not divisible by 8 devices.*multiple of 8"),
    ({"optimizer.grad_accum_steps": 4}, r"8 devices x grad_accum_steps 4 = 32.*multiple of 32"),
    ({"optimizer.learning_rate": -1e-3}, r"optimizer.learning_rate=-0.001 is impossible.*>= 0"),
    ({"num_train_steps": 0}, r"num_train_steps=0 is impossible.*>= 1"),
    ({"checkpoint_every_steps": -5}, r"checkpoint_every_steps=-5 is impossible"),
    ({"optimizer.ema_decay": 1.0}, r"optimizer.ema_decay=1.0 is impossible.*\[0.0, 1.0\)"),
    ({"optimizer.name": "adamx"}, r"optimizer.name='adamx' is unknown.*adam, adamw"),
    ({"optimizer.schedule": "cosin"}, r"optimizer.schedule='cosin' is unknown"),
    ({"optimizer.learning_rate": float("nan")}, r"learning_rate=nan must be finite"),
]


def _assert_one_line_error(excinfo, pattern):
  msg = str(excinfo.value)
  assert "\n" not in msg
  assert msg.endswith(".") or msg.endswith(")"), msg
  import re
  assert re.search(pattern, msg), msg


@pytest.mark.parametrize("overrides,pattern", BAD, ids=[next(iter(o)) + "=" + str(next(iter(o.values())))
                                                        for o, _ in BAD])
def test_bad_config_values_fail_before_touching_the_workdir(existing_run, overrides, pattern):
  before = snapshot(existing_run)
  with pytest.raises(train.ConfigError) as e:
    train.train_and_evaluate(make_config(**{**RUN, **overrides}), existing_run)
  _assert_one_line_error(e, pattern)
  assert snapshot(existing_run) == before


def test_wrong_type_is_refused(tmp_path):
  d = base_config().to_dict()
  d["batch_size"] = "16"
  with pytest.raises(train.ConfigError) as e:
    train.validate_config(ml_collections.ConfigDict(d))
  _assert_one_line_error(e, r"batch_size='16' must be an integer: set --config.batch_size=<int>")
  d = base_config().to_dict()
  d["optimizer"]["learning_rate"] = "fast"
  with pytest.raises(train.ConfigError) as e:
    train.validate_config(ml_collections.ConfigDict(d))
  _assert_one_line_error(e, r"learning_rate='fast' must be a number")


def test_incompatible_workdir_lists_the_differing_keys(existing_run):
  before = snapshot(existing_run)
  config = make_config(**RUN, **{"optimizer.learning_rate": 1e-3, "task.hidden": 8, "seed": 1})
  with pytest.raises(train.ConfigError) as e:
    train.train_and_evaluate(config, existing_run)
  _assert_one_line_error(
      e, r"incompatible config: optimizer.learning_rate \(0.003 -> 0.001\), seed \(7 -> 1\), "
         r"task.hidden \(16 -> 8\) differ.*new --workdir")
  assert snapshot(existing_run) == before
  # Cadence keys may change on resume (tested end to end in test_train).
  assert train.config_diff(train.config_to_dict(make_config(**RUN)),
                           train.config_to_dict(make_config(**dict(RUN, num_train_steps=9, log_every_steps=3))),
                           ignore=train.RESUMABLE_KEYS) == []
  # So may the evaluators (config.evals), from none to some, and their options.
  old = dict(train.config_to_dict(make_config(**RUN)), evals={})
  for evals in ({"fd": {"type": "digits_fd"}}, {"fd": {"type": "digits_fd", "num_samples": 64}, "a": {}}):
    assert train.config_diff(old, dict(old, evals=evals), ignore=train.RESUMABLE_KEYS) == []
    assert train.config_diff(dict(old, evals=evals), old, ignore=train.RESUMABLE_KEYS) == []
  assert train.config_diff(old, dict(old, evalsx=1), ignore=train.RESUMABLE_KEYS) == ["evalsx"]
  # A config.json written before config.evals (task.eval.*, data.shuffle_buffer) still resumes.
  legacy = json.loads(json.dumps(old))
  legacy["task"]["eval"] = {"num_samples": 0}
  legacy["data"]["shuffle_buffer"] = 0
  assert train.config_diff(legacy, old, ignore=train.RESUMABLE_KEYS) == []
  assert train.config_diff(legacy, dict(old, data=dict(old["data"], name="x")),
                           ignore=train.RESUMABLE_KEYS) == ["data.name"]


def test_unusable_workdirs(tmp_path, existing_run):
  f = tmp_path / "file"
  f.write_text("x")
  config = make_config(**RUN)
  with pytest.raises(train.ConfigError) as e:
    train.train_and_evaluate(config, str(f))
  _assert_one_line_error(e, r"is a file, not a directory")
  with pytest.raises(train.ConfigError) as e:
    train.train_and_evaluate(config, str(f / "run"))
  _assert_one_line_error(e, r"cannot be created .*is a file")
  assert f.read_text() == "x"
  with pytest.raises(train.ConfigError) as e:
    train.evaluate(config, str(tmp_path / "empty"))
  _assert_one_line_error(e, r"holds no checkpoint: train first")
  assert not (tmp_path / "empty").exists()
  with pytest.raises(train.ConfigError) as e:  # eval may change keys, unless the checkpoint no longer fits
    train.evaluate(make_config(**RUN, **{"task.hidden": 8}), existing_run)
  _assert_one_line_error(e, r"does not fit this config .* differs from the run's config.json in task.hidden")
  with pytest.raises(train.ConfigError) as e:
    train.sample(config, existing_run, num=0)
  _assert_one_line_error(e, r"--num_samples=0 is impossible")


def _cli(*args, timeout=120):
  return subprocess.run(launcher(*args), cwd=REPO, env=subprocess_env(), capture_output=True,
                        text=True, timeout=timeout)


@pytest.mark.parametrize("flag,pattern", [
    ("--config.no_such_key=1", r"--config.no_such_key names a key the config does not have"),
    ("--config.optimizer.learning_rat=1", r"learning_rat.*check its spelling"),
    ("--config.batch_size=abc", r"--config.batch_size=abc: invalid literal.*pass a value of the type"),
    ("--config.optimizer.learning_rate=-1", r"optimizer.learning_rate=-1.0 is impossible"),
])
def test_cli_prints_one_error_line_and_exits_2(tmp_path, flag, pattern):
  workdir = tmp_path / "w"
  r = _cli("--config", CONFIG_FILE, "--workdir", str(workdir), flag)
  assert r.returncode == 2, r.stderr
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("jaxgen: error: "), r.stderr
  import re
  assert re.search(pattern, lines[0]), lines[0]
  assert "Traceback" not in r.stderr and not workdir.exists()


def test_cli_requires_workdir_and_config():
  r = _cli("--config", CONFIG_FILE)
  assert r.returncode == 2 and r.stderr.strip() == "jaxgen: error: --workdir is required: pass the directory the run writes to."
  r = _cli("--config", os.path.join(REPO, "tests", "fixtures", "missing.py"), "--workdir", "/tmp/x")
  assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "missing.py" in r.stderr


def test_every_mode_prints_where_the_results_are_and_compilations_are_cached(tmp_path):
  workdir, cache = tmp_path / "w", tmp_path / "xla"
  args = ("--config", CONFIG_FILE + ":smoke", "--workdir", str(workdir), f"--compilation_cache_dir={cache}")
  r = _cli(*args, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  summ = train.summary(str(workdir))
  assert summ.step == 2 and summ.eval_metrics and summ.train_metrics
  assert r.stdout.strip().splitlines() == summ.lines()
  w = str(workdir)
  for path in (w, os.path.join(w, "metrics.jsonl"), os.path.join(w, "checkpoints", "2"),
               os.path.join(w, "samples", "step_2.png")):
    assert path in r.stdout
  assert f"eval/loss={summ.eval_metrics['eval/loss']:.4g}" in r.stdout
  assert os.listdir(cache), "no compiled program was written to --compilation_cache_dir"

  r = _cli("--mode", "eval", *args, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert os.path.join(w, "eval", "step_2.json") in r.stdout
  assert "evaluation at step 2: eval/loss=" in r.stdout
  r = _cli("--mode", "sample", "--num_samples", "4", *args, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  sample_set = os.path.join(w, "samples", "step2_seed7")   # --mode sample's set (docs/sampling.md)
  for path in (sample_set, os.path.join(sample_set, "grid.png")):
    assert path in r.stdout


def test_compilation_cache_directory_default(monkeypatch, tmp_path):
  from jaxgen import main

  monkeypatch.setenv("JAXGEN_CACHE_DIR", str(tmp_path / "c"))
  assert main.default_cache_dir() == str(tmp_path / "c")
  monkeypatch.setenv("JAXGEN_CACHE_DIR", "")  # (tests/fixtures/trainer_utils.subprocess_env: off)
  assert main.default_cache_dir() == ""
  monkeypatch.delenv("JAXGEN_CACHE_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert main.default_cache_dir() == os.path.join(str(tmp_path / "xdg"), "jaxgen", "xla")
