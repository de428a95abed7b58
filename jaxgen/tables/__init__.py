"""Reproduced tables: ``python -m jaxgen.tables [name ...]`` prints each paper table beside ours.

Each module of this package (``backbones.py``, ``diffusion.py``, ...) defines ``tables() ->
list[Table]``; the command discovers them, so a family adds its tables without editing this file
(``samplers.py``: every ``sample_*`` of jaxgen.diffusion against NFE, ``--out DIR`` for its PNG plot).
A row holds the paper's value, ours and the relative deviation; deviations over ``tolerance`` are
flagged and must carry a ``note`` explaining them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any, Callable, Sequence


@dataclasses.dataclass
class Table:
  title: str
  columns: Sequence[str]
  rows: list[Sequence[Any]]
  source: str = ""                       # where the paper numbers come from
  notes: list[str] = dataclasses.field(default_factory=list)

  def render(self) -> str:
    cells = [[str(c) for c in self.columns]] + [[_fmt(v) for v in r] for r in self.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
    line = lambda r: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
    out = [self.title, "=" * len(self.title)]
    if self.source:
      out.append(f"source: {self.source}")
    out += [line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]
    out += [f"note: {n}" for n in self.notes]
    return "\n".join(out)


def _fmt(v: Any) -> str:
  if isinstance(v, float):
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
  if isinstance(v, int):
    return f"{v:,}"
  return str(v)


def deviation(ours: float, paper: float) -> float:
  """Relative deviation (ours − paper)/paper."""
  return (ours - paper) / paper if paper else float("nan")


def modules() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict]:
  """(table module names, options) of a command line. Options: ``--out DIR`` (where a module saves its
  figures, e.g. ``samplers``' PNG) and ``--workdir RUN`` (a trained run whose checkpoint a module measures,
  e.g. ``samplers`` on the run's network); the rest are module names."""
  flags = {"--out": "--out runs/tables", "--workdir": "--workdir runs/my_run"}
  names, options, argv = [], {}, list(argv)
  while argv:
    a = argv.pop(0)
    flag = a.partition("=")[0]
    if flag in flags:
      value = a.partition("=")[2] or (argv.pop(0) if argv else "")
      if not value:
        raise SystemExit(f"{flag} needs a directory, e.g. {flags[flag]}")
      options[flag[2:]] = value
    else:
      names.append(a)
  return names, options


def collect(selected: Sequence[str] = (), **options) -> list[Table]:
  """The tables of the selected modules (all when empty); ``options`` (e.g. ``out``) go to the modules whose
  ``tables`` takes them."""
  out = []
  for name in modules():
    if selected and name not in selected:
      continue
    fn: Callable[..., list[Table]] = importlib.import_module(f"{__name__}.{name}").tables
    params = inspect.signature(fn).parameters
    out.extend(fn(**{k: v for k, v in options.items() if k in params}))
  return out
