"""What the converters share: the flat ``<collection>/<module>/.../<name>`` npz layout and its checks.

Every converter writes a variables tree flattened to ``"/"``-joined keys (``params/conv_in/conv/kernel``,
``constants/map_noise_freqs``, or under a prefix such as ``vqgan/params/...``). These helpers go between
that flat form and the nested tree (``unflatten``, ``tree_shapes``), check converted arrays against a
network (``check_flat``; ``check_shapes`` for the registry network a ``meta`` names), and write/read the
``meta``-carrying files of jaxgen.convert.edm and jaxgen.convert.ddpm (``save``, ``load``). jax is imported
only where a network is traced.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np


def path_key(path) -> str:
  """The flat key of a jax key path: ``(DictKey('params'), DictKey('conv'))`` -> 'params/conv'."""
  return "/".join(str(getattr(p, "key", p)) for p in path)


def tree_shapes(tree, prefix: str = "") -> dict[str, tuple]:
  """``{flat key: shape}`` of every leaf of ``tree`` (arrays or shape structs), keys under ``prefix/``."""
  import jax

  head = [prefix] if prefix else []
  return {"/".join([*head, path_key(path)]): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def unflatten(flat: Mapping[str, np.ndarray]) -> dict:
  """The nested dict of a flat ``{'a/b/c': array}`` mapping (values as numpy arrays)."""
  tree: dict = {}
  for k, v in flat.items():
    *path, leaf = k.split("/")
    node = tree
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = np.asarray(v)
  return tree


def check_flat(flat: Mapping[str, np.ndarray], want: Mapping[str, tuple], network: str,
               error: type[Exception]) -> None:
  """``flat`` has exactly the keys of ``want`` ({key: shape}, e.g. ``tree_shapes`` of the network) with those
  shapes; else ``error`` naming ``network`` and the first missing/unexpected keys or the first wrong shape."""
  missing, extra = sorted(set(want) - set(flat)), sorted(set(flat) - set(want))
  if missing or extra:
    raise error(f"the converted tensors do not match {network}: missing {missing[:5]}, "
                f"unexpected {extra[:5]}.")
  for k, shape in want.items():
    if tuple(flat[k].shape) != tuple(shape):
      raise error(f"{k}: converted shape {flat[k].shape} but {network} has {tuple(shape)}.")


def check_shapes(flat: Mapping[str, np.ndarray], meta: dict, error: type[Exception]) -> None:
  """``check_flat`` against the registry network ``meta['model']`` built with ``meta['overrides']``."""
  from jaxgen import models
  want = tree_shapes(dict(models.init_shapes(meta["model"], **dict(meta["overrides"]))))
  check_flat(flat, want, meta["model"], error)


def save(path, flat: Mapping[str, np.ndarray], meta: dict) -> None:
  """An ``.npz`` of the flat arrays plus ``meta`` (a JSON string entry)."""
  np.savez(path, meta=np.asarray(json.dumps(meta)), **flat)


def load(path, error: type[Exception], converter: str) -> tuple[dict, dict]:
  """``(variables, meta)`` of a file written by ``save``, shapes checked by ``check_shapes``; a file without
  ``meta`` is ``error`` naming ``python -m <converter>``."""
  with np.load(path, allow_pickle=False) as z:
    if "meta" not in z.files:
      raise error(f"{path} has no 'meta' entry: convert with python -m {converter}.")
    meta = json.loads(str(z["meta"]))
    flat = {k: np.asarray(z[k]) for k in z.files if k != "meta"}
  check_shapes(flat, meta, error)
  return unflatten(flat), meta
