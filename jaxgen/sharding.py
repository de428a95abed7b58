"""Device mesh and shardings of the trainer: data parallel, plus FSDP and model axes when a config asks.

The mesh has up to three axes (``config.mesh``, docs/pods.md "Sharded state"):

  data   the global batch is split over it; the state is replicated along it
  fsdp   the batch is split over it too, and so are the large tensors of the state (params, EMA,
         optimizer state): each device holds 1/fsdp of them and XLA gathers a tensor where it is used
  model  tensors a rule of ``config.sharding.rules`` places on it (tensor parallelism, e.g. the hidden
         units of a transformer's MLP); the batch is replicated along it

``config.mesh = dict(data=-1, fsdp=1, model=1)`` (the default: plain data parallelism; -1 takes the
devices left over) and ``config.sharding.rules``, big_vision style: ``((regex, spec), ...)``, the first
rule whose regex ``re.search``es a leaf's path (``params/Dense_0/kernel``,
``opt_state/0/mu/Dense_0/kernel``, ``ema_params/...``: '/'-joined) gives its spec. A spec is

  'fsdp'        the default rule: a tensor of at least ``config.sharding.fsdp_min_size`` elements is split
                along its largest dimension divisible by the fsdp size (the later one on a tie); smaller
                tensors, and those with no divisible dimension, are replicated
  'replicate'   a copy on every device
  a tuple       one entry per leading dimension: None, an axis name, or a tuple of axis names
                (``(None, 'model')``); missing trailing entries are None

Leaves that no rule matches take the default rule. Because every leaf is matched by its path and shape,
an unanchored regex (``Dense_0/kernel$``) places a parameter, its EMA copy and its optimizer moments
alike: the optimizer state mirrors the params.

Multi-host runs call ``maybe_initialize_distributed`` first; each process then feeds its own
per-process slice of the global batch (``shard_batch`` assembles the global array with
``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgen.errors import ConfigError

DATA_AXIS, FSDP_AXIS, MODEL_AXIS = "data", "fsdp", "model"
MESH_AXES = (DATA_AXIS, FSDP_AXIS, MODEL_AXIS)   # the order of the mesh's axes
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)              # the batch's leading axis is split over these
FSDP_MIN_SIZE = 2**16                            # default of config.sharding.fsdp_min_size
_NAMED_SPECS = ("fsdp", "replicate")

# Tensor parallelism (Megatron-style) for jaxgen's GPT (jaxgen/models/gpt.py): query/key/value and the MLP's
# first layer split their output units (heads, hidden units) over 'model', the projections back split their
# input units; the other dimension goes on 'fsdp'. Use: ``config.sharding.rules = shd.TRANSFORMER_RULES``
# with ``config.mesh.model`` dividing the number of heads. Everything else falls to the default rule.
TRANSFORMER_RULES = (
    (r"attn/(query|key|value)/kernel$", ("fsdp", "model")),
    (r"attn/(query|key|value)/bias$", ("model",)),
    (r"attn/proj/kernel$", ("model", "fsdp")),
    (r"mlp_fc/kernel$", ("fsdp", "model")),
    (r"mlp_fc/bias$", ("model",)),
    (r"mlp_proj/kernel$", ("model", "fsdp")),
)


def maybe_initialize_distributed(config: Any = None) -> bool:
  """``jax.distributed.initialize()`` when ``config.distributed`` or JAX_COORDINATOR_ADDRESS asks.

  Returns True when this call initialized the multi-process runtime. Must run before any other JAX
  call touches the backend. Idempotent: a second call (or an already initialized runtime) is a no-op.
  """
  wanted = bool(config is not None and config.get("distributed", False))
  wanted = wanted or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))
  if not wanted or jax.distributed.is_initialized():
    return False
  jax.distributed.initialize()
  return True


def make_mesh(devices: Sequence[jax.Device] | None = None, shape: Mapping[str, int] | None = None) -> Mesh:
  """Mesh over ``devices`` (default: all devices of all processes).

  ``shape=None``: the 1-D mesh ``('data',)``. ``shape={'data': 4, 'fsdp': 2}``: the axes of ``MESH_AXES``
  in that order (absent ones of size 1, -1 resolved by ``mesh_shape``). The axis types are spelled out as
  ``Auto``: ``jax.make_mesh`` defaults to ``Explicit`` axes, under which sharding would become part of
  the array types.
  """
  devices = list(jax.devices() if devices is None else devices)
  if shape is None:
    sizes, names = (len(devices),), (DATA_AXIS,)
  else:
    resolved = mesh_shape(shape, len(devices))
    sizes, names = tuple(resolved[a] for a in MESH_AXES), MESH_AXES
  return jax.make_mesh(sizes, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


def mesh_shape(shape: Mapping[str, Any], device_count: int) -> dict[str, int]:
  """``{'data': d, 'fsdp': f, 'model': m}`` with ``d·f·m == device_count`` from ``config.mesh``.

  Absent axes are 1; one axis may be -1 (the devices left over). ``ConfigError`` (one line) on an unknown
  axis, a size that is not a positive integer or -1, two -1 sizes, or a product that is not the
  device count.
  """
  shape = dict(shape)
  for name, size in shape.items():
    if name not in MESH_AXES:
      raise ConfigError(f"config.mesh.{name} is not a mesh axis: use only {', '.join(MESH_AXES)}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or (size < 1 and size != -1):
      raise ConfigError(f"config.mesh.{name}={size!r} is impossible (an axis size is a positive integer, "
                        f"or -1 for the devices left over): set --config.mesh.{name} to one of those.")
  sizes = {a: int(shape.get(a, 1)) for a in MESH_AXES}
  free = [a for a in MESH_AXES if sizes[a] == -1]
  fixed = math.prod(v for v in sizes.values() if v != -1)
  text = " x ".join(f"{a}={sizes[a]}" for a in MESH_AXES)
  if len(free) > 1:
    raise ConfigError(f"config.mesh ({text}) has more than one axis of size -1: give all but one of "
                      f"{', '.join(free)} a size.")
  if free:
    if device_count % fixed:
      raise ConfigError(f"config.mesh ({text}): the fixed sizes multiply to {fixed}, which does not divide "
                        f"the {device_count} devices: choose sizes whose product divides {device_count}.")
    sizes[free[0]] = device_count // fixed
  elif fixed != device_count:
    raise ConfigError(f"config.mesh ({text}) needs {fixed} devices, but there are {device_count}: choose "
                      f"sizes whose product is {device_count}, or set one of them to -1.")
  return sizes


def mesh_from_config(config: Any, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """The trainer's mesh: the axes of ``config.mesh`` over ``devices`` (default: all of them).

  Also checks ``config.sharding.rules`` (their form and axis names; whether a spec fits a tensor is
  checked when the state's shardings are made), so a bad rule is a ``ConfigError`` before any work.
  """
  from jaxgen import config_schema  # noqa: PLC0415
  shape = config_schema.to_dict(config_schema.lookup(config, "mesh", None)) or {DATA_AXIS: -1}
  mesh = make_mesh(devices, shape)
  parse_rules(config_schema.lookup(config, "sharding.rules", ()) or (), mesh)
  _min_size(config)
  return mesh


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
  """The axes of ``mesh`` the batch is split over (``'data'`` and ``'fsdp'`` where present)."""
  return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``'data'`` (and ``'fsdp'``), the rest replicated."""
  axes = batch_axes(mesh)
  return NamedSharding(mesh, P(axes[0] if len(axes) == 1 else axes))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# ---------------------------------------------------------------------------------------------
# Sharding rules of the state
# ---------------------------------------------------------------------------------------------

def _rule_error(i: int, rule, why: str) -> ConfigError:
  return ConfigError(f"config.sharding.rules[{i}]={rule!r} {why}: write each rule as (regex, spec), spec "
                     f"'fsdp', 'replicate' or a tuple of None / axis names of {', '.join(MESH_AXES)}.")


def parse_rules(rules: Sequence, mesh: Mesh) -> list[tuple[re.Pattern, Any, int]]:
  """``[(compiled regex, spec, index), ...]`` of ``config.sharding.rules`` (``ConfigError`` when malformed).

  A tuple spec becomes a tuple of per-dimension entries: None, an axis name or a tuple of names.
  """
  out = []
  for i, rule in enumerate(rules):
    if isinstance(rule, (str, bytes)) or not isinstance(rule, Sequence) or len(rule) != 2:
      raise _rule_error(i, rule, "is not a (regex, spec) pair")
    pattern, spec = rule
    if not isinstance(pattern, str):
      raise _rule_error(i, rule, "has a regex that is not a string")
    try:
      regex = re.compile(pattern)
    except re.error as e:
      raise _rule_error(i, rule, f"has an invalid regex ({e})") from None
    if isinstance(spec, str):
      if spec not in _NAMED_SPECS:
        raise _rule_error(i, rule, f"names the spec {spec!r}, neither 'fsdp' nor 'replicate'")
    elif isinstance(spec, Sequence):
      entries = []
      for e in spec:
        names = (e,) if isinstance(e, str) else tuple(e) if isinstance(e, Sequence) else (e,)
        if e is None:
          entries.append(None)
          continue
        bad = [n for n in names if n not in mesh.axis_names]
        if bad:
          axes = ", ".join(mesh.axis_names)
          raise _rule_error(i, rule, f"uses {bad[0]!r}, not an axis of the mesh ({axes})")
        entries.append(names[0] if isinstance(e, str) else names)
      used = [n for e in entries if e is not None for n in ((e,) if isinstance(e, str) else e)]
      if len(set(used)) != len(used):
        raise _rule_error(i, rule, "uses one mesh axis twice")
      spec = tuple(entries)
    else:
      raise _rule_error(i, rule, "has a spec that is neither a string nor a tuple")
    out.append((regex, spec, i))
  return out


def _min_size(config: Any) -> int:
  from jaxgen import config_schema  # noqa: PLC0415
  size = config_schema.lookup(config, "sharding.fsdp_min_size", FSDP_MIN_SIZE)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
    raise ConfigError(f"config.sharding.fsdp_min_size={size!r} is impossible (a number of elements >= 0): "
                      "set --config.sharding.fsdp_min_size to a non-negative integer.")
  return int(size)


def _axis_size(mesh: Mesh, entry) -> int:
  names = (entry,) if isinstance(entry, str) else tuple(entry)
  return math.prod(mesh.shape[n] for n in names)


def fsdp_spec(shape: Sequence[int], mesh: Mesh, min_size: int = FSDP_MIN_SIZE) -> P:
  """The default rule: the largest dimension divisible by the fsdp size (the later on a tie) on ``'fsdp'``,
  for a tensor of at least ``min_size`` elements; otherwise (or without an fsdp axis of size > 1) P()."""
  n = mesh.shape.get(FSDP_AXIS, 1) if FSDP_AXIS in mesh.axis_names else 1
  if n == 1 or math.prod(shape) < max(min_size, 1):
    return P()
  for d in sorted(range(len(shape)), key=lambda d: (shape[d], d), reverse=True):
    if shape[d] % n == 0:
      return P(*([None] * d + [FSDP_AXIS]))
  return P()


def path_name(path, sep: str = "/") -> str:
  """A tree path as the ``sep``-joined names the rules match (``params/Dense_0/kernel``); the same names for a
  dataclass/namedtuple state and orbax's dict/list tree."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return sep.join(parts)


def leaf_spec(name: str, shape: Sequence[int], mesh: Mesh, rules: Sequence, min_size: int = FSDP_MIN_SIZE
              ) -> P:
  """The PartitionSpec of the leaf ``name`` of ``shape``: the first matching rule of ``parse_rules``'s
  output, else the default ``'fsdp'`` rule. ``ConfigError`` when a rule's axes do not divide the shape."""
  shape = tuple(int(d) for d in shape)
  for regex, spec, i in rules:
    if not regex.search(name):
      continue
    if spec == "replicate":
      return P()
    if spec == "fsdp":
      return fsdp_spec(shape, mesh, min_size)
    if len(spec) > len(shape):
      raise ConfigError(f"config.sharding.rules[{i}] gives {name} (shape {shape}) the spec {spec}, longer "
                        "than its rank: shorten the spec or narrow the rule's regex.")
    for d, entry in enumerate(spec):
      if entry is not None and shape[d] % _axis_size(mesh, entry):
        raise ConfigError(f"config.sharding.rules[{i}] splits dimension {d} of {name} (shape {shape}) over "
                          f"{entry} of size {_axis_size(mesh, entry)}, which does not divide {shape[d]}: "
                          "change the rule (or its regex) or the mesh.")
    return P(*spec)
  return fsdp_spec(shape, mesh, min_size)


def tree_shardings(tree: Any, mesh: Mesh, config: Any = None) -> Any:
  """A pytree of ``NamedSharding`` for ``tree`` (arrays or ``ShapeDtypeStruct``s) by the config's rules.

  ``config=None``: the default rule with ``FSDP_MIN_SIZE``. Scalars and leaves without a shape are
  replicated.
  """
  from jaxgen import config_schema  # noqa: PLC0415
  rules = parse_rules(config_schema.lookup(config, "sharding.rules", ()) or (), mesh)
  min_size = _min_size(config)

  def one(path, x):
    shape = tuple(getattr(x, "shape", ()) or ())
    if not shape:
      return NamedSharding(mesh, P())
    return NamedSharding(mesh, leaf_spec(path_name(path), shape, mesh, rules, min_size))

  return jax.tree_util.tree_map_with_path(one, tree)


def abstract_tree(tree: Any, mesh: Mesh, config: Any = None) -> Any:
  """``tree`` as ``ShapeDtypeStruct``s carrying the shardings of ``tree_shardings`` (no memory)."""
  shardings = tree_shardings(tree, mesh, config)
  return jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree,
                                shardings)


def bytes_per_device(tree: Any) -> int:
  """Bytes one device holds of ``tree`` (arrays, or ``ShapeDtypeStruct``s with shardings; the largest
  shard of each leaf: a replicated leaf counts whole)."""
  total = 0
  for x in jax.tree_util.tree_leaves(tree):
    shape = tuple(getattr(x, "shape", ()) or ())
    sharding = getattr(x, "sharding", None)
    local = sharding.shard_shape(shape) if sharding is not None else shape
    total += math.prod(local) * _itemsize(x.dtype)
  return total


def _itemsize(dtype) -> int:
  """Bytes per element; a typed PRNG key counts its raw ``key_data`` (threefry: two uint32)."""
  if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return 4 * int(np.prod(dtype._impl.key_shape))  # noqa: SLF001 - no public accessor of the key shape
  return np.dtype(dtype).itemsize


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Per-process host batch (a pytree of arrays) -> global arrays sharded over ``'data'`` (and ``'fsdp'``).

  Each process passes its own slice; the global batch is their concatenation in process order.
  The per-process leading dimension must be divisible by the number of local devices.
  """
  sharding = data_sharding(mesh)
  return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def to_host(x: Any) -> Any:
  """A pytree of (possibly multi-host) arrays as numpy on every process (``jaxgen.sampling.to_host``)."""
  from jaxgen.sampling import to_host as _to_host  # noqa: PLC0415 (the tasks layer holds the one copy)
  return _to_host(x)
