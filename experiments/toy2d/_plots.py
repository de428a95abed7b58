"""Plots of a trained toy2d diffusion run: samples, PF-ODE trajectories and the ideal denoiser.

    python experiments/toy2d/_plots.py --config experiments/toy2d/edm.py:8gaussians --workdir runs/toy2d_edm_8gaussians

(Not an experiment config: the leading underscore keeps it out of the experiment discovery.) Restores
the run's latest checkpoint and writes ``<workdir>/plots/toy2d.png`` with three panels:

1. 2000 model samples (EMA weights, the run's sampler) over 2000 exact draws of the toy;
2. 64 probability-flow ODE trajectories in EDM's σ-space (Heun steps on the σ grid of
   ``task.sigma_grid``), from σ_max down to 0, drawn inside the data's window;
3. for the Gaussian mixtures (8gaussians, 25gaussians): the samples that the mixture's *ideal*
   denoiser D*(x; σ) = Σ_k w_k(x)·(σ²μ_k + s²x)/(s² + σ²), w_k ∝ π_k N(x; μ_k, (s² + σ²)I), gives with
   the same sampler, grid and latents — the reference a perfect network would reach; for the other
   toys: exact samples.

It prints the sliced W1 of the model's samples and of the ideal denoiser's samples against exact
draws. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import diffusion as dfn  # noqa: E402
from jaxgen import ot  # noqa: E402
from jaxgen import train  # noqa: E402
from jaxgen.data import toy2d  # noqa: E402


def load_config(spec: str):
  path, _, arg = spec.partition(":")
  mod_spec = importlib.util.spec_from_file_location("toy2d_experiment", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def ideal_denoiser(name: str):
  """D*(x; σ) of the isotropic Gaussian mixture ``name`` (exact, float32)."""
  m = toy2d.mixture(name)
  mu, s2, logw = jnp.asarray(m.means), m.std ** 2, jnp.log(jnp.asarray(m.weights))

  def D(x, sigma):
    v = s2 + sigma[:, None] ** 2                                  # [B, 1]
    d2 = jnp.sum((x[:, None, :] - mu[None]) ** 2, -1)              # [B, K]
    w = jax.nn.softmax(logw[None] - 0.5 * d2 / v, axis=-1)          # common N normalizer cancels
    post = (sigma[:, None, None] ** 2 * mu[None] + s2 * x[:, None, :]) / v[..., None]
    return jnp.sum(w[..., None] * post, axis=1)

  return D


def trajectories(denoise_fn, latents, sigmas) -> np.ndarray:
  """States of Heun's method (EDM Algorithm 1) at every σ of the grid: [len(sigmas), B, 2] (the sampler's
  ``return_trajectory``)."""
  run = jax.jit(lambda x: dfn.sample_heun(denoise_fn, x, sigmas, return_trajectory=True))
  _, path = run(latents * sigmas[0])
  return np.asarray(path)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", required=True, help="experiments/toy2d/<name>.py[:variant]")
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--num", type=int, default=2000)
  args = ap.parse_args(argv)

  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  config = load_config(args.config)
  run = train._prepare(config, args.workdir, "sample")       # pylint: disable=protected-access
  step, state = train._restore_for_inference(run)            # pylint: disable=protected-access
  task, toy = run.task, str(config.data.toy)
  key = jax.random.key(int(config.seed))
  samples = np.asarray(task.sample(state, key, args.num))
  exact = np.asarray(toy2d.sample(toy, jax.random.key(1), args.num))
  k_proj = jax.random.key(2)
  print(f"step {step}: sliced W1(model, exact) = {float(ot.sliced_wasserstein(samples, exact, k_proj)):.4f}")

  sigmas = task.sigma_grid()
  lat = jax.random.normal(jax.random.key(3), (64, 2))
  traj = trajectories(task.denoiser(state.ema_params, state.model_state), lat, sigmas)

  mixture = toy in ("8gaussians", "25gaussians")
  if mixture:
    lat_all = jax.random.normal(jax.random.key(4), (args.num, 2))
    ideal = np.asarray(dfn.sample_heun(ideal_denoiser(toy), lat_all * sigmas[0], sigmas))
    print(f"sliced W1(ideal denoiser, exact) = {float(ot.sliced_wasserstein(ideal, exact, k_proj)):.4f} "
          f"(Heun, {sigmas.shape[0] - 1} steps)")
  lim = float(np.quantile(np.abs(exact), 0.999)) * 1.3

  fig, ax = plt.subplots(1, 3, figsize=(15, 5))
  ax[0].scatter(exact[:, 0], exact[:, 1], s=2, c="lightgray", label="exact")
  ax[0].scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="model")
  ax[0].set_title(f"{config.task.precond}/{config.task.loss}, {config.task.sampler} ({toy}, step {step})")
  ax[0].legend(loc="upper right", markerscale=4)
  for j in range(traj.shape[1]):
    ax[1].plot(traj[:, j, 0], traj[:, j, 1], lw=0.6, alpha=0.7)
  ax[1].scatter(traj[-1, :, 0], traj[-1, :, 1], s=6, c="k")
  ax[1].set_title("PF-ODE trajectories (σ-space, Heun)")
  if mixture:
    ax[2].scatter(ideal[:, 0], ideal[:, 1], s=2, c="tab:green")
    ax[2].set_title("ideal denoiser, same sampler")
  else:
    ax[2].scatter(exact[:, 0], exact[:, 1], s=2, c="tab:green")
    ax[2].set_title("exact samples")
  for a in ax:
    a.set_xlim(-lim, lim)
    a.set_ylim(-lim, lim)
    a.set_aspect("equal")
  os.makedirs(os.path.join(args.workdir, "plots"), exist_ok=True)
  out = os.path.join(args.workdir, "plots", "toy2d.png")
  fig.savefig(out, dpi=100, bbox_inches="tight")
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
