"""Errors a user can cause, shared by the library, the tasks and the trainer (no dependencies).

``ConfigError`` is the one exception that means "the input is wrong": a config value, a data path, a
weights file. Its message is one sentence naming the cause and the fix; the launcher prints it as one
line and exits with status 2. Anything else that escapes a task is a bug and keeps its traceback.
It subclasses ``ValueError`` so code that caught ``ValueError`` before keeps working.
"""

from __future__ import annotations


class ConfigError(ValueError):
  """A user-caused problem (config, workdir, data, weights): one line, with the fix."""
