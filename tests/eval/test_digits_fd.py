"""The digits Fréchet distance: committed classifier, its accuracy, and the FD's basic invariants."""

import functools
import os

import numpy as np
import pytest

from jaxgen.eval import digits_fd, frechet


@functools.cache
def _ref():
  return digits_fd.DigitsFD()


def test_weights_file_is_committed_and_small():
  assert os.path.exists(digits_fd.ASSET), "run scripts/train_digits_classifier.py"
  assert os.path.getsize(digits_fd.ASSET) < 400_000
  params = digits_fd.load_params()
  assert set(params) == set(digits_fd._shapes())


def test_missing_weights_name_the_script(tmp_path):
  with pytest.raises(FileNotFoundError, match="train_digits_classifier.py"):
    digits_fd.load_params(str(tmp_path / "nope.npz"))


def test_classifier_accuracy_on_test_split():
  # Requirement of the project (issue 3): ≥ 95% on the held-out test split, computed here.
  assert _ref().accuracy("test") >= 0.95


def test_fd_of_train_features_with_itself_is_zero():
  ref = _ref()
  x, _ = digits_fd.digits_split("train")
  f = digits_fd.batched_features(ref.params, x)
  assert abs(frechet.frechet_distance_from_features(f, f)) < 1e-6
  # The train images against the stored train statistics: the same zero.
  assert abs(ref.fd(x)) < 1e-6


def test_real_digits_beat_a_pixel_gaussian():
  ref = _ref()
  fd_real, fd_gauss = ref.fd_real(), ref.fd_gaussian(seed=0)
  assert 0 < fd_real < fd_gauss
  assert ref.num_real == 297


def test_resized_digits_are_pooled_back_to_8x8():
  x = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).astype(np.float32)
  up = np.repeat(np.repeat(x, 2, 1), 2, 2)
  np.testing.assert_allclose(np.asarray(digits_fd.to_classifier_input(up)), x, atol=1e-6)
  with pytest.raises(ValueError, match="one-channel"):
    digits_fd.to_classifier_input(np.zeros((2, 8, 8, 3)))
