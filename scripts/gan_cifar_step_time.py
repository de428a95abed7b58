"""Times the compiled GAN train step of an experiment on random data (no data pipeline).

python scripts/gan_cifar_step_time.py experiments/gan/cifar10_wgan_gp.py [--steps 50]
Prints critic steps per second and images per second (critic batch) after a warm-up step.
"""

import argparse
import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxgen import tasks  # noqa: E402


def main():
  p = argparse.ArgumentParser()
  p.add_argument("spec")
  p.add_argument("--steps", type=int, default=50)
  a = p.parse_args()
  path, _, arg = a.spec.partition(":")
  spec = importlib.util.spec_from_file_location("exp", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(arg or None)
  task = tasks.get(c)
  res = int(c.data.get("resolution", 0) or 32)
  ch = int(c.model.overrides.get("channels", 3))
  batch = {"image": jax.random.uniform(jax.random.key(0), (c.batch_size, res, res, ch), minval=-1, maxval=1)}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  step = jax.jit(task.train_step, donate_argnums=0)
  t = time.time()
  state, m = step(state, batch, jax.random.key(1))
  jax.block_until_ready(m["loss"])
  print(f"compile+first step {time.time() - t:.1f}s on {jax.devices()[0].device_kind}")
  t = time.time()
  for i in range(a.steps):
    state, m = step(state, batch, jax.random.key(i))
  jax.block_until_ready(m["loss"])
  dt = (time.time() - t) / a.steps
  print(f"{a.spec}: {1 / dt:.1f} critic steps/s, {c.batch_size / dt:.0f} img/s, loss {float(m['loss']):.4f}, "
        f"g_step {int(state.g_step)}")


if __name__ == "__main__":
  main()
