"""Plots of the 2-D toy GAN runs: the Kantorovich–Rubinstein duality made visible.

python scripts/gan_toy_plots.py RUN [RUN ...] [--out DIR]

RUN is either a JSON written by ``scripts/gan_toy_sweep.py`` or a trainer workdir (its
``metrics.jsonl`` eval records; final samples from ``samples/*.npz`` of ``--mode sample`` if present).
Writes ``DIR/gan_toy_w1.png`` (exact W1 by LP vs the critic's KR estimate and its Lipschitz-normalized
version over training, one panel per run), ``DIR/gan_toy_samples.png`` (final samples over data) and
prints a Markdown table of the final metrics (W1, sliced W1, modes hit, high-quality fraction).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np


def load(run: str) -> dict:
  if run.endswith(".json"):
    with open(run) as f:
      r = json.load(f)
    npz = run[:-5] + "_samples.npz"
    if os.path.exists(npz):
      z = np.load(npz)
      r["samples"], r["data"] = z["samples"], z.get("data")
    return r
  recs = {}
  with open(os.path.join(run, "metrics.jsonl")) as f:
    for line in f:
      rec = json.loads(line)
      if "w1" in rec:
        recs[rec["step"]] = rec          # the last record of a step wins (resumed runs)
  r = dict(name=os.path.basename(os.path.normpath(run)), eval=[recs[k] for k in sorted(recs)])
  npzs = sorted(glob.glob(os.path.join(run, "samples", "*.npz")))
  if npzs:
    r["samples"] = np.load(npzs[-1])["samples"]
  return r


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+")
  p.add_argument("--out", default=".")
  a = p.parse_args(argv)
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  runs = [load(r) for r in a.runs]
  os.makedirs(a.out, exist_ok=True)
  n = len(runs)
  cols = min(n, 4)
  rows = (n + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
  for ax, r in zip(axes.flat, runs):
    ev = r["eval"]
    steps = [e["step"] for e in ev]
    ax.plot(steps, [e["w1"] for e in ev], "k-", lw=2, label="exact W1 (LP)")
    ax.plot(steps, [e["w1_critic"] for e in ev], "C0--", label="critic KR estimate")
    ax.plot(steps, [e["w1_critic_normalized"] for e in ev], "C1:", label="estimate / Lipschitz")
    ax.set_title(r["name"], fontsize=9)
    ax.set_xlabel("critic steps")
    ax.set_yscale("symlog", linthresh=1e-2)
  axes.flat[0].legend(fontsize=7)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(os.path.join(a.out, "gan_toy_w1.png"), dpi=110)

  with_samples = [r for r in runs if "samples" in r]
  if with_samples:
    n = len(with_samples)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, with_samples):
      if r.get("data") is not None:
        ax.scatter(*np.asarray(r["data"]).T, s=2, c="0.7", label="data")
      ax.scatter(*np.asarray(r["samples"]).T, s=2, c="C3", label="G(z)")
      ax.set_title(r["name"], fontsize=9)
      ax.set_aspect("equal")
    for ax in list(axes.flat)[n:]:
      ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "gan_toy_samples.png"), dpi=110)

  print("| run | steps | W1 exact | critic KR | KR/L | sliced W1 | modes hit | HQ fraction |")
  print("|---|---|---|---|---|---|---|---|")
  for r in runs:
    e = r["eval"][-1]
    modes = f"{e['modes_hit']:.0f}/{e['num_modes']:.0f}" if "modes_hit" in e else "-"
    hq = f"{e['hq_fraction']:.3f}" if "hq_fraction" in e else "-"
    print(f"| {r['name']} | {e['step']} | {e['w1']:.4f} | {e['w1_critic']:.4f} | "
          f"{e['w1_critic_normalized']:.4f} | {e['sw1']:.4f} | {modes} | {hq} |")


if __name__ == "__main__":
  main()
