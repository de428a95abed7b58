"""Reproduced tables: ``python -m jaxgen.tables [name ...]`` prints each paper table beside ours.

Each module of this package (``backbones.py``, ``diffusion.py``, ...) defines ``tables() ->
list[Table]``; the command discovers them, so a family adds its tables without editing this file
(``samplers.py``: every ``sample_*`` of jaxgen.diffusion against NFE, ``--out DIR`` for its PNG plot).
A row holds the paper's value, ours and the relative deviation; deviations over ``tolerance`` are
flagged and must carry a ``note`` explaining them.

Evaluation tables (EDM Table 2, DDIM's steps, score_sde's bits/dim, ImageNet top-1) have three columns of
numbers: the paper's, the published weights converted to jaxgen, and a network jaxgen trained
(``three_columns``). The two measured columns are read from the results file (``jaxgen.eval.results``: the
committed ``results/converted.json``, or ``--results FILE`` / $JAXGEN_RESULTS), written by
``python -m jaxgen.eval.reproduce``; a cell nobody has measured prints "not run", a measurement that
deviates from the paper's protocol (fewer samples, another resolution, ...) is marked "*" and its
deviations and provenance (command, hardware, date, jax version) are listed in the notes.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
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


NOT_RUN = "not run"


def _cell(m: dict | None) -> str:
  if not m:
    return NOT_RUN
  return f"{m['value']:.3f}" + ("*" if (m.get("details") or {}).get("deviations") else "")


def _commit(c: str) -> str:
  return c[:12] + ("+dirty" if c.endswith("+dirty") else "")


def three_columns(table: str, title: str, source: str, results: str | None = None,
                  notes: Sequence[str] = ()) -> Table:
  """The rows of ``jaxgen.eval.results.ROWS`` of ``table`` as [label, paper, converted, jaxgen-trained] with
  their provenance in the notes; measured cells come from the results file (``results`` or the committed one)."""
  from jaxgen.eval import results as res  # noqa: PLC0415

  doc = res.load(results)
  rows, prov = [], []
  for r in res.rows_of(table):
    cells = [res.cell(doc, r.id, col) for col in res.COLUMNS]
    rows.append([r.label, "—" if r.paper is None else str(r.paper), *(_cell(c) for c in cells)])
    for col, m in zip(res.COLUMNS, cells):
      if not m:
        continue
      dev = (m.get("details") or {}).get("deviations") or []
      what = os.path.basename(m.get("weights") or m.get("workdir") or "")
      prov.append(f"{r.label} [{col}]: {m['value']:.6g} on {m['hardware']}, {m['date']}, jax {m['jax']}, jaxgen "
                  f"{_commit(m.get('jaxgen', 'unknown'))}, {what}; `{m['command']}`"
                  + (f"; * deviates: {'; '.join(dev)}" if dev else ""))
  unit = res.rows_of(table)[0].unit if res.rows_of(table) else ""
  unverified = [r.label for r in res.rows_of(table) if r.paper is None]
  all_notes = list(notes)
  if unverified:
    all_notes.append(f"paper '—': not verified against the paper here ({', '.join(unverified)}).")
  all_notes.append(f"{NOT_RUN}: nobody has measured it with `python -m jaxgen.eval.reproduce {table}` and merged "
                   f"the result into {os.path.relpath(res.COMMITTED) if not results else results}" if not prov
                   else f"measured cells read from {results or os.path.relpath(res.COMMITTED)}")
  return Table(title=title, columns=["row", f"paper ({unit})", "converted weights", "jaxgen-trained"], rows=rows,
               source=source, notes=all_notes + prov)


def modules() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict]:
  """(table module names, options) of a command line. Options: ``--out DIR`` (where a module saves its
  figures, e.g. ``samplers``' PNG), ``--workdir RUN`` (a trained run whose checkpoint a module measures,
  e.g. ``samplers`` on the run's network) and ``--results FILE`` (the results file of the three-column
  evaluation tables instead of results/converted.json); the rest are module names."""
  flags = {"--out": "--out runs/tables", "--workdir": "--workdir runs/my_run",
           "--results": "--results runs/reproduce/results.json"}
  names, options, argv = [], {}, list(argv)
  while argv:
    a = argv.pop(0)
    flag = a.partition("=")[0]
    if flag in flags:
      value = a.partition("=")[2] or (argv.pop(0) if argv else "")
      if not value:
        raise SystemExit(f"{flag} needs a {'file' if flag == '--results' else 'directory'}, e.g. {flags[flag]}")
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
