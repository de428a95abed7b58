"""Trains the 2-D toy GAN experiments in one process each, without the data pipeline, and records the
duality curves: exact W1 (LP, ``jaxgen.ot``) vs the critic's KR estimate, plus mode coverage.

python scripts/gan_toy_sweep.py --out runs/gan_toy_sweep [--steps N] [--eval_every K] \
    experiments/gan/toy2d_wgan_gp.py:8gaussians experiments/gan/toy2d_nsgan.py:25gaussians ...

Each run: the experiment's config (with --steps / --eval_every overriding the run length), the GAN
task's own train_step scanned over ``--chunk`` steps at a time with batches drawn on device from the
exact toy sampler (``jaxgen.data.toy2d.sample``; the trainer's grain pipeline draws the same law),
and ``task.evaluate`` every ``eval_every`` steps. Writes ``<out>/<name>.json`` (config summary, eval
records, mean training metrics per chunk) and ``<out>/<name>_samples.npz`` (final samples and data).
Plot with ``python scripts/gan_toy_plots.py <out>/*.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import tasks  # noqa: E402
from jaxgen.data import toy2d  # noqa: E402


def load_config(spec: str):
  path, _, arg = spec.partition(":")
  mod_spec = importlib.util.spec_from_file_location("exp", path)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  return mod.get_config(arg or None), os.path.splitext(os.path.basename(path))[0] + (f"_{arg.replace(',', '_')}" if arg else "")


def _parse(v: str):
  try:
    return json.loads(v)
  except json.JSONDecodeError:
    return v


def run(spec: str, out: str, steps: int, eval_every: int, chunk: int, overrides=(), tag: str = "") -> dict:
  config, name = load_config(spec)
  for kv in overrides:
    k, _, v = kv.partition("=")
    config.update_from_flattened_dict({k: _parse(v)})
  name += tag
  if steps:
    config.num_train_steps = steps
  if eval_every:
    config.eval_every_steps = eval_every
  total, every = int(config.num_train_steps), int(config.eval_every_steps or config.num_train_steps)
  chunk = min(chunk, every)
  if every % chunk:
    raise ValueError(f"--chunk {chunk} must divide eval_every {every}.")
  toy, bsz = str(config.data.toy), int(config.batch_size)
  task = tasks.get(config)
  data_key = jax.random.key(config.seed + 1)
  state = jax.jit(task.init)(jax.random.key(config.seed), {"x": jnp.zeros((bsz, 2), jnp.float32)})

  @jax.jit
  def train_chunk(state):
    def body(st, _):
      batch = {"x": toy2d.sample(toy, jax.random.fold_in(data_key, st.step), bsz)}
      key = jax.random.fold_in(jax.random.wrap_key_data(st.rng), st.step)
      st, m = task.train_step(st, batch, key)
      return st, {k: jnp.asarray(v, jnp.float32) for k, v in m.items()}
    state, ms = jax.lax.scan(body, state, None, length=chunk)
    return state, jax.tree_util.tree_map(jnp.mean, ms)

  eval_key = jax.random.key(12345)
  records, train = [], []
  summary = dict(name=name, spec=spec, toy=toy, loss=str(config.task.loss), n_critic=int(config.task.n_critic),
                 gp_weight=float(config.task.gp_weight), clip_value=float(config.task.clip_value),
                 steps=total, eval=records, train=train)

  def dump(**extra):   # rewritten after every evaluation, so a cut-off run keeps its curve
    with open(os.path.join(out, f"{name}.json"), "w") as f:
      json.dump(dict(summary, **extra), f)

  t0 = time.time()
  records.append(dict(step=0, **task.evaluate(state, eval_key, None)))
  for s in range(chunk, total + 1, chunk):
    state, m = train_chunk(state)
    train.append(dict(step=s, **{k: float(v) for k, v in m.items()}))
    if s % every == 0 or s == total:
      records.append(dict(step=s, **task.evaluate(state, eval_key, None)))
      r = records[-1]
      print(f"{name} step {s} W1 exact {r['w1']:.4f} critic {r['w1_critic']:.4f} "
            f"(/L {r['w1_critic_normalized']:.4f}) modes {r.get('modes_hit', float('nan'))} "
            f"hq {r.get('hq_fraction', float('nan')):.3f}  {time.time() - t0:.0f}s", flush=True)
      dump(generator_steps=int(state.g_step), seconds=time.time() - t0)
  samples = np.asarray(task.sample(state, jax.random.key(7), 2500))
  data = np.asarray(toy2d.sample(toy, jax.random.key(8), 2500))
  np.savez(os.path.join(out, f"{name}_samples.npz"), samples=samples, data=data)
  dump(generator_steps=int(state.g_step), seconds=time.time() - t0)
  return summary


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("specs", nargs="+", help="experiment file[:variant]")
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=0, help="override num_train_steps (critic steps)")
  p.add_argument("--eval_every", type=int, default=0)
  p.add_argument("--chunk", type=int, default=250)
  p.add_argument("--set", action="append", default=[], help="dotted config override key=value (JSON value)")
  p.add_argument("--tag", default="", help="suffix of the run names")
  a = p.parse_args(argv)
  os.makedirs(a.out, exist_ok=True)
  for spec in a.specs:
    run(spec, a.out, a.steps, a.eval_every, a.chunk, a.set, a.tag)


if __name__ == "__main__":
  main()
