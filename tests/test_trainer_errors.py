"""The trainer's set-up (``train._prepare``) tells the user's mistakes from bugs.

A ``ConfigError`` raised while the task or the data is built reaches the user as one line; so do the
file-system errors on user paths. Any other exception of a task (a ``TypeError`` in its ``__init__``)
is a bug: it propagates unchanged, with its traceback. This module is itself a user task and a user
data module (``task.name = data.name = 'tests.test_trainer_errors'``), as a project outside jaxgen
would plug in (see tests/fixtures/mlp_task.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxgen import errors, train
from tests.fixtures import mlp_config, synthetic_data
from tests.fixtures.mlp_task import Task as MLPTask

HERE = "tests.test_trainer_errors"
MISSING = "/nonexistent_jaxgen_dir/points.npz"


class Task(MLPTask):
  """The fixture task, except that ``task.fail`` makes its ``__init__`` raise."""

  def __init__(self, config):
    fail = config.task.get("fail", "")
    if fail == "config":
      raise errors.ConfigError("task.fail='config' is set: remove --config.task.fail to build this task.")
    if fail == "type":
      len(3)  # a bug: TypeError("object of type 'int' has no len()")
    if fail == "key":
      {}["missing"]  # noqa: B018 - a bug: KeyError
    if fail == "import":
      import jaxgen_no_such_module  # noqa: F401 - a bug: a dependency the code forgot
    super().__init__(config)


# The data-module interface (jaxgen.data's three functions), reading a file that does not exist.
def example_batch(data_cfg, batch_size):
  with open(MISSING, "rb") as f:
    return {"x": np.load(f)[:batch_size]}


train_dataset = synthetic_data.train_dataset
eval_dataset = synthetic_data.eval_dataset


def _config(**overrides):
  c = mlp_config.get_config()
  c.task.name = HERE
  c.task.fail = ""
  c.update_from_flattened_dict(overrides)
  c.lock()
  return c


def test_train_config_error_is_the_shared_one():
  assert train.ConfigError is errors.ConfigError and issubclass(train.ConfigError, ValueError)


@pytest.mark.parametrize("fail,exc,text", [
    ("type", TypeError, "has no len()"),
    ("key", KeyError, "missing"),
    ("import", ImportError, "jaxgen_no_such_module"),
])
def test_a_bug_inside_a_task_propagates_with_its_traceback(tmp_path, fail, exc, text):
  workdir = tmp_path / "run"
  with pytest.raises(exc, match=text) as e:
    train.train_and_evaluate(_config(**{"task.fail": fail}), str(workdir))
  assert not isinstance(e.value, train.ConfigError)
  assert e.traceback[-1].name == "__init__" and e.traceback[-1].path.name == "test_trainer_errors.py"
  assert not workdir.exists()


def test_a_config_error_inside_a_task_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  for fn in (lambda c: train.train_and_evaluate(c, str(workdir)), lambda c: train.evaluate(c, str(workdir))):
    with pytest.raises(train.ConfigError) as e:
      fn(_config(**{"task.fail": "config"}))
    assert str(e.value) == "task.fail='config' is set: remove --config.task.fail to build this task."
  assert not workdir.exists()


def test_a_missing_user_file_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  config = _config(**{"task.name": "tests.fixtures.mlp_task", "data.name": HERE})
  with pytest.raises(train.ConfigError) as e:
    train.train_and_evaluate(config, str(workdir))
  assert "\n" not in str(e.value) and MISSING in str(e.value) and "No such file" in str(e.value)
  assert isinstance(e.value.__cause__, FileNotFoundError)
  assert not workdir.exists()


def test_dotted_modules_that_do_not_import_are_one_line(tmp_path):
  for key in ("task.name", "data.name"):
    with pytest.raises(train.ConfigError) as e:
      train.train_and_evaluate(_config(**{key: "tests.fixtures.no_such_module"}), str(tmp_path / "run"))
    assert "\n" not in str(e.value) and f"{key}='tests.fixtures.no_such_module' cannot be imported" in str(
        e.value)
  assert not os.path.exists(tmp_path / "run")
