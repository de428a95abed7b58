"""Per-device bytes of the train state under FSDP (not a test; issue #17), computed abstractly.

    python benchmarks/sharded_state_bytes.py                       # ADM ImageNet-64 and gpt_imagenet_cin
    python benchmarks/sharded_state_bytes.py --fsdp 8,16,32,64 --model 1,2,4 --json out.json

The state is the one ``jaxgen.tasks.base.LossTask`` keeps (params, EMA params, the optimizer state of the
experiment's config: Adam for ``experiments/edm/imagenet64_adm.py``, AdamW for
``experiments/vqgan/transformer.py:imagenet_cin``), built with ``jax.eval_shape`` (no memory). Its shardings
come from ``jaxgen.sharding.tree_shardings`` on an ``AbstractMesh`` (data=1, fsdp=n, model=m), so any fsdp
size can be evaluated on a laptop: the default 'fsdp' rule (tensors of >= ``sharding.fsdp_min_size``
elements split along their largest divisible dimension) plus, for the GPT with model > 1,
``jaxgen.sharding.TRANSFORMER_RULES``. Bytes per device = Σ over leaves of the largest shard; the data axis
does not change it (the state is replicated along 'data'). The transformer task also keeps its frozen first
stage (VQGAN f16-16384, 76M params, 0.28 GiB in float32) in the state: not counted here. Activations are not
counted either: they depend on the batch per device, not on the state's sharding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
from jax.sharding import AbstractMesh, AxisType  # noqa: E402

from jaxgen import models, optim  # noqa: E402
from jaxgen import sharding as shd  # noqa: E402

GiB = 2 ** 30
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _experiment(path: str, arg: str | None = None):
  import importlib.util  # noqa: PLC0415
  spec = importlib.util.spec_from_file_location("exp", os.path.join(REPO, path))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


CASES = {
    # name: (experiment file, variant, model name in the registry)
    "adm_imagenet64": ("experiments/edm/imagenet64_adm.py", None, "adm_imagenet64"),
    "gpt_imagenet_cin": ("experiments/vqgan/transformer.py", "imagenet_cin", "gpt_imagenet_cin"),
}


def abstract_state(case: str):
  """``{'params', 'ema_params', 'opt_state'}`` of ``case`` as ShapeDtypeStructs, and its config."""
  path, arg, name = CASES[case]
  config = _experiment(path, arg)
  overrides = dict(config.model.get("overrides", {}) or {})
  params = models.param_shapes(name, **overrides)
  opt = optim.make_optimizer(config.optimizer, int(config.num_train_steps))
  opt_state = jax.eval_shape(opt.init, params)
  return {"params": params, "ema_params": params, "opt_state": opt_state}, config


def per_device(state, mesh, config) -> tuple[dict[str, int], int]:
  """Bytes per device of each part of the state, and the bytes of the leaves left whole (replicated)."""
  placed = shd.abstract_tree(state, mesh, config)
  whole = sum(shd.bytes_per_device(x) for x in jax.tree_util.tree_leaves(placed)
              if x.sharding.is_fully_replicated)
  return {k: shd.bytes_per_device(v) for k, v in placed.items()}, whole


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
  p.add_argument("--cases", default=",".join(CASES))
  p.add_argument("--fsdp", default="1,8,16,32")
  p.add_argument("--model", default="1,4", help="model-axis sizes (GPT only: TRANSFORMER_RULES)")
  p.add_argument("--json", default="", help="also write the rows here")
  a = p.parse_args(argv)
  rows = []
  print(f"{'state':<18} {'params':>14} {'fsdp':>5} {'model':>5} {'params/dev':>11} {'EMA/dev':>9} "
        f"{'opt/dev':>9} {'total/dev':>10} {'vs 1 dev':>9} {'replicated':>11}")
  for case in a.cases.split(","):
    state, config = abstract_state(case)
    n_params = models.count_params(state["params"])
    whole = None
    for m in ([1] if case.startswith("adm") else [int(x) for x in a.model.split(",")]):
      config.sharding.rules = shd.TRANSFORMER_RULES if m > 1 else ()
      for n in (int(x) for x in a.fsdp.split(",")):
        mesh = AbstractMesh((1, n, m), shd.MESH_AXES, axis_types=(AxisType.Auto,) * 3)
        b, rep = per_device(state, mesh, config)
        total = sum(b.values())
        whole = whole or (total if n == 1 and m == 1 else None)
        ratio = f"1/{whole / total:.2f}" if whole else "-"
        print(f"{case:<18} {n_params:>14,} {n:>5} {m:>5} {b['params'] / GiB:>9.3f}Gi "
              f"{b['ema_params'] / GiB:>7.3f}Gi {b['opt_state'] / GiB:>7.3f}Gi {total / GiB:>8.3f}Gi "
              f"{ratio:>9} {rep / 2**20:>8.1f}Mi")
        rows.append(dict(state=case, params=n_params, fsdp=n, model=m, bytes=b, total=total, replicated=rep))
  if a.json:
    with open(a.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=1)
  print(json.dumps({"rows": len(rows), "backend": "abstract (jax.eval_shape, AbstractMesh)"}))


if __name__ == "__main__":
  main()
