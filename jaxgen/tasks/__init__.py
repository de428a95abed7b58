"""Tasks: what a model family contributes to the one trainer.

``config.task.name`` names a module of this package; ``get(config)`` imports it and returns its
``Task(config)``. See ``jaxgen.tasks.base`` for the contract.
"""

from __future__ import annotations

import importlib
import pkgutil


def names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base",) and not m.name.startswith("_"))


def get(config):
  """The task object for ``config`` (``config.task.name`` selects the module)."""
  name = config.task.name
  if name not in names():
    raise ValueError(f"task.name={name!r} is unknown: use one of {', '.join(names())}.")
  return importlib.import_module(f"{__name__}.{name}").Task(config)
