"""Trains the digits classifier whose penultimate features define the digits Fréchet distance.

    python scripts/train_digits_classifier.py [--out jaxgen/assets/digits_classifier.npz]

A small conv net (3×3 conv 32 → 3×3 conv 64 stride 2 → dense 32 → dense 10, ReLU;
``jaxgen.eval.digits_fd.features`` is the 32-wide layer) trained on the embedded digits *train*
split (pixels in [−1, 1], native 8×8; each batch shifted by a random integer offset in {−1, 0, 1}²
per image, background-padded) with AdamW (lr 1e-3, decoupled weight decay 1e-3), batch 64,
60 epochs, cross-entropy with label smoothing 0.05;
every random choice comes from seed 0, and the run is on CPU in float32, so rerunning it reproduces
the committed weights up to floating-point reduction order. Takes about half a minute on one core and
prints the train and test accuracy (the test accuracy must be ≥ 95%; it is checked in
tests/eval/test_digits_fd.py).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxgen.eval import digits_fd  # noqa: E402

SEED = 0
EPOCHS = 60
BATCH = 64
LR = 1e-3
WEIGHT_DECAY = 1e-3
LABEL_SMOOTHING = 0.05


def random_shift(x, key):
  """Each image moved by (dy, dx) ∈ {−1, 0, 1}² (uniform), vacated pixels set to the background −1."""
  n, h, w, _ = x.shape
  k1, k2 = jax.random.split(key)
  dy = jax.random.randint(k1, (n,), -1, 2)
  dx = jax.random.randint(k2, (n,), -1, 2)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
  crop = lambda im, a, b: jax.lax.dynamic_slice(im, (1 + a, 1 + b, 0), (h, w, im.shape[-1]))
  return jax.vmap(crop)(padded, dy, dx)


def train(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> dict:
  key = jax.random.key(seed)
  params = digits_fd.init_params(jax.random.fold_in(key, 0))
  opt = optax.adamw(LR, weight_decay=WEIGHT_DECAY)
  opt_state = opt.init(params)

  def loss_fn(p, xb, yb):
    target = optax.smooth_labels(jax.nn.one_hot(yb, digits_fd.NUM_CLASSES), LABEL_SMOOTHING)
    return optax.softmax_cross_entropy(digits_fd.logits(p, xb), target).mean()

  @jax.jit
  def epoch(params, opt_state, perm, aug_key):
    xb = random_shift(jnp.asarray(x)[perm], aug_key).reshape((-1, BATCH) + x.shape[1:])
    yb = jnp.asarray(y)[perm].reshape(-1, BATCH)

    def step(carry, b):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, *b)
      u, s = opt.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (xb, yb))
    return params, opt_state, losses.mean()

  steps = x.shape[0] // BATCH
  for e in range(EPOCHS):
    perm = jax.random.permutation(jax.random.fold_in(key, e + 1), x.shape[0])[:steps * BATCH]
    params, opt_state, loss = epoch(params, opt_state, perm, jax.random.fold_in(key, 10_000 + e))
    if (e + 1) % 10 == 0:
      print(f"epoch {e + 1}: loss {float(loss):.4f}")
  return params


def accuracy(params, x, y) -> float:
  return float(np.mean(np.asarray(jnp.argmax(digits_fd.logits(params, x), -1)) == y))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default=digits_fd.ASSET)
  args = ap.parse_args(argv)
  jax.config.update("jax_platforms", "cpu")
  x_train, y_train = digits_fd.digits_split("train")
  x_test, y_test = digits_fd.digits_split("test")
  params = train(x_train, y_train)
  print(f"train accuracy {accuracy(params, x_train, y_train):.4f} ({len(y_train)} images), "
        f"test accuracy {accuracy(params, x_test, y_test):.4f} ({len(y_test)} images)")
  digits_fd.save_params(params, args.out)
  print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
  main()
