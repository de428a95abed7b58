"""Tasks: what a model family contributes to the one trainer.

``config.task.name`` names a module of this package (``diffusion``, ``gan``, ...) or, for tasks
defined outside jaxgen, a dotted module path (``my_project.my_task``); ``get(config)`` imports it and
returns its ``Task(config)``. See ``jaxgen.tasks.base`` for the contract.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil


# Modules of this package that are not tasks (the task contract; the paper-config builders).
_NOT_TASKS = ("base", "diffusion_configs")


def names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_TASKS and not m.name.startswith("_"))


def get(config):
  """The task object for ``config`` (``config.task.name`` selects the module)."""
  name = config.task.name
  if "." in name:
    try:
      module = importlib.import_module(name)
    except ImportError as e:
      raise ValueError(f"task.name={name!r} cannot be imported ({e}): set --config.task.name to one "
                       f"of {', '.join(names())} or an importable module path.") from None
    if not hasattr(module, "Task"):
      raise ValueError(f"task module {name!r} defines no Task class: add `class Task(jaxgen.tasks.base"
                       ".Task)` to it.")
    return module.Task(config)
  if name not in names():
    close = difflib.get_close_matches(name, names(), n=2)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"task.name={name!r} is unknown{hint}: set --config.task.name to one of "
                     f"{', '.join(names()) or '(none yet)'} or a dotted module path.")
  return importlib.import_module(f"{__name__}.{name}").Task(config)
