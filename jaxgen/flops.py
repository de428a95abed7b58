"""Shape-based multiply-add (MAC) counter: the convention of the efficient-CNN papers.

``count_macs(name, resolution, **overrides)`` traces the registered model's inference ``apply`` at
batch 1 (``jax.make_jaxpr`` on abstract variables: nothing is computed or allocated) and sums, over
every equation of the jaxpr and of all nested jaxprs (jit, custom_jvp/vjp, remat, cond, scan × length):

  conv_general_dilated:  MACs = #output elements × (k_h·k_w·…) × C_in/groups
                         (every tap counted, including taps that fall on padding, as the papers do;
                         a transposed conv's inserted zeros are counted too)
  dot_general:           MACs = #lhs elements × ∏ rhs free dims
                         (Dense layers, 1×1 "convs" written as matmuls, attention QKᵀ and AV einsums)

Normalization, activations, pooling, additions and the softmax are not counted (papers: "FLOPs" =
multiply-adds of conv and fully-connected layers). XLA's cost analysis is no substitute: it counts 2
per MAC, skips padded taps and adds elementwise work.

``macs_breakdown`` gives the same total per layer (Flax module path from the jaxpr name stack);
``count_macs_fn(fn, *args)`` counts any JAX function. Traces are cached per (name, resolution,
overrides), so tables that ask many times trace each network once.
"""

from __future__ import annotations

import collections
import functools
import math
import re
from typing import Any, Callable

import jax
import numpy as np

__all__ = ["count_macs", "macs_breakdown", "count_macs_fn", "jaxpr_macs", "eqn_macs"]


def eqn_macs(eqn) -> int:
  """MACs of one jaxpr equation (0 for anything but convolutions and dot products)."""
  prim = eqn.primitive.name
  if prim == "conv_general_dilated":
    lhs, rhs = (v.aval for v in eqn.invars[:2])
    out = eqn.outvars[0].aval
    dn = eqn.params["dimension_numbers"]
    rhs_spec = dn.rhs_spec                   # (out feature dim, in feature dim, *spatial dims)
    taps = math.prod(rhs.shape[d] for d in rhs_spec[2:])
    return int(math.prod(out.shape) * taps * rhs.shape[rhs_spec[1]])
  if prim == "dot_general":
    lhs, rhs = (v.aval for v in eqn.invars[:2])
    (_, rc), (_, rb) = eqn.params["dimension_numbers"]
    free = math.prod(s for i, s in enumerate(rhs.shape) if i not in set(rc) | set(rb))
    return int(math.prod(lhs.shape) * free)
  return 0


def _sub_jaxprs(eqn):
  """(jaxpr, multiplicity, is_branch) for each jaxpr nested in an equation's params."""
  mult = int(eqn.params.get("length", 1)) if eqn.primitive.name == "scan" else 1
  for key, val in eqn.params.items():
    vals = val if isinstance(val, (tuple, list)) else (val,)
    for v in vals:
      j = getattr(v, "jaxpr", v)
      if hasattr(j, "eqns"):
        yield j, mult, key == "branches"


def _walk(jaxpr, prefix: str, out: list, mult: int = 1) -> None:
  for eqn in jaxpr.eqns:
    stack = str(eqn.source_info.name_stack)
    scope = "/".join(p for p in (prefix, stack) if p)
    n = eqn_macs(eqn)
    if n:
      out.append((scope, n * mult))
    branches = []
    for sub, m, is_branch in _sub_jaxprs(eqn):
      if is_branch:            # cond: count the most expensive branch
        rec: list = []
        _walk(sub, scope, rec, mult * m)
        branches.append(rec)
      else:
        _walk(sub, scope, out, mult * m)
    if branches:
      out.extend(max(branches, key=lambda r: sum(x for _, x in r)))


def jaxpr_macs(closed_jaxpr) -> list[tuple[str, int]]:
  """(module path, MACs) for every counted equation of a (closed) jaxpr, nested ones included."""
  out: list[tuple[str, int]] = []
  _walk(getattr(closed_jaxpr, "jaxpr", closed_jaxpr), "", out)
  return out


def count_macs_fn(fn: Callable, *args, **kwargs) -> int:
  """MACs of ``fn(*args, **kwargs)`` (args may be arrays or ``jax.ShapeDtypeStruct``)."""
  return sum(n for _, n in jaxpr_macs(jax.make_jaxpr(functools.partial(fn, **kwargs))(*args)))


def _freeze(v: Any):
  if isinstance(v, dict):
    return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
  if isinstance(v, (list, tuple)):
    return tuple(_freeze(x) for x in v)
  return v


@functools.lru_cache(maxsize=256)
def _records(name: str, resolution: int | None, frozen: tuple) -> tuple[tuple[str, int], ...]:
  import jaxgen.models as models

  overrides = {k: _unfreeze(v) for k, v in frozen}
  module = models.create(name, **overrides)
  in_kw = dict(overrides)
  if resolution is not None:
    in_kw["resolution"] = int(resolution)
  args = models.example_inputs(name, batch=1, **in_kw)
  variables = _variables(name, frozen)
  closed = jax.make_jaxpr(lambda v, *a: module.apply(v, *a))(variables, *args)
  return tuple(jaxpr_macs(closed))


def _unfreeze(v):
  if isinstance(v, tuple) and v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
    return {k: _unfreeze(x) for k, x in v}
  return v


@functools.lru_cache(maxsize=64)
def _variables(name: str, frozen: tuple):
  """Abstract variables of the model (eval_shape of init). Parameter shapes of the CNNs do not depend
  on the input size, so one trace serves every resolution."""
  import jaxgen.models as models

  return models.init_shapes(name, **{k: _unfreeze(v) for k, v in frozen})


def count_macs(name: str, resolution: int | None = None, **overrides: Any) -> int:
  """Multiply-adds of one forward pass of registered model ``name`` on one square image of side
  ``resolution`` (default: the model's registered input size), in inference mode."""
  return int(sum(n for _, n in _records(name, resolution, _freeze(overrides))))


def macs_breakdown(name: str, resolution: int | None = None, depth: int | None = 2,
                   **overrides: Any) -> dict[str, int]:
  """MACs per layer: module paths (from the trace's name stack) truncated to ``depth`` components
  below the top-level module (``None``: full paths), in first-use order."""
  out: dict[str, int] = collections.OrderedDict()
  for scope, n in _records(name, resolution, _freeze(overrides)):
    parts = [p for p in re.split(r"/", scope) if p]
    key = "/".join(parts[: 1 + depth] if depth is not None else parts)
    out[key] = out.get(key, 0) + n
  return dict(out)


def param_count(name: str, **overrides: Any) -> int:
  """Parameters of the ``params`` collection (from the same cached trace as ``count_macs``)."""
  tree = _variables(name, _freeze(overrides))["params"]
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
