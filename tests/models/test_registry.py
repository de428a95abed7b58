import jax
import pytest

import jaxgen.models as models


def test_unknown_model_names_the_fix():
  with pytest.raises(KeyError, match="model.name"):
    models.create("no_such_net")


def test_every_model_has_params_and_inputs():
  for name in models.names():
    assert name in models.names()
    args = models.example_inputs(name, batch=1)
    assert all(hasattr(a, "shape") for a in args), name


def test_count_params():
  tree = {"a": jax.ShapeDtypeStruct((3, 4), "float32"), "b": [jax.ShapeDtypeStruct((5,), "float32")]}
  assert models.count_params(tree) == 17
