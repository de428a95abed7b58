"""Device mesh and shardings of the trainer: data parallel over one mesh axis, ``'data'``.

The global batch is split along its leading axis over every device of every process; the train
state is replicated. Multi-host runs call ``maybe_initialize_distributed`` first; each process then
feeds its own per-process slice of the global batch (``shard_batch`` assembles the global array with
``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


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


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """1-D mesh over ``devices`` (default: all devices of all processes) with the axis ``'data'``.

  The axis type is spelled out as ``Auto``: ``jax.make_mesh`` defaults to ``Explicit`` axes, under
  which sharding would become part of the array types.
  """
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``'data'``, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Per-process host batch (a pytree of arrays) -> global arrays sharded over ``'data'``.

  Each process passes its own slice; the global batch is their concatenation in process order.
  The per-process leading dimension must be divisible by the number of local devices.
  """
  sharding = data_sharding(mesh)
  return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def to_host(x: Any) -> Any:
  """A pytree of (possibly multi-host) arrays as numpy on every process."""
  import numpy as np

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.is_fully_replicated:
        return np.asarray(a.addressable_data(0))
      from jax.experimental import multihost_utils
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)

  return jax.tree_util.tree_map(get, x)
