"""Tasks: what a model family contributes to the one trainer.

``config.task.name`` names a module of this package (``diffusion``, ``gan``, ...) or, for tasks
defined outside jaxgen, a dotted module path (``my_project.my_task``); ``get(config)`` imports it and
returns its ``Task(config)``. ``jaxgen.tasks.base`` holds the contract every task implements; every
other module of this package is a task (experiment builders live in ``jaxgen.recipes``).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from jaxgen.errors import ConfigError

_CONTRACT = "base"   # the module holding the task contract (jaxgen.tasks.base), not a task itself


def names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if m.name != _CONTRACT and not m.name.startswith("_"))


def get(config):
  """The task object for ``config`` (``config.task.name`` selects the module)."""
  name = config.task.name
  if "." in name:
    try:
      module = importlib.import_module(name)
    except ModuleNotFoundError as e:
      if not e.name or not (name == e.name or name.startswith(e.name + ".")):
        raise   # a module the task itself imports is missing: a bug or an install problem, not the config
      raise ConfigError(f"task.name={name!r} cannot be imported ({e}): set --config.task.name to one "
                        f"of {', '.join(names())} or an importable module path.") from None
    if not hasattr(module, "Task"):
      raise ConfigError(f"task module {name!r} defines no Task class: add `class Task(jaxgen.tasks.base"
                        ".Task)` to it.")
    return module.Task(config)
  if name not in names():
    close = difflib.get_close_matches(name, names(), n=2)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"task.name={name!r} is unknown{hint}: set --config.task.name to one of "
                      f"{', '.join(names()) or '(none yet)'} or a dotted module path.")
  return importlib.import_module(f"{__name__}.{name}").Task(config)
