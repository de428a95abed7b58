"""ShuffleNet V2's guidelines G1–G4 (Ma et al. 2018, §2, Tables 1–4) as measured on our CPU.

``python -m jaxgen.tables shufflenet_guidelines`` renders the results JSON that
``benchmarks/shufflenet_guidelines.py`` writes (default ``results/shufflenet_guidelines.json``, committed with
the machine, date and load it was measured under; ``JAXGEN_GUIDELINES_RESULTS`` names another file). Speeds
are images/s (medians of alternated calls); "rel." is the speed relative to the cell's first row, the
paper's baseline (1:1, g=1, 1-fragment, ReLU and shortcut kept). A guideline *holds* in a cell when the
configuration it recommends is the fastest within ``MARGIN`` (the run-to-run spread of a loaded machine).
The paper's own speeds are shown as "—": its Tables 1–4 could not be re-read from this machine, and a
number from memory is not a source (docs/speed.md). What the paper concludes from them is quoted as
text in the notes.
"""

from __future__ import annotations

import json
import os

from jaxgen.tables import Table

MARGIN = 0.05
ENV = "JAXGEN_GUIDELINES_RESULTS"
DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "results", "shufflenet_guidelines.json")
COMMAND = "python benchmarks/shufflenet_guidelines.py"

GUIDELINES = {
    "g1": ("G1: equal channel width minimizes memory access cost (Table 1)",
           "10 blocks of two 1×1 convs c1→c2→c1 on 56×56, c1·c2 fixed (= s·128²) per cell ×s"),
    "g2": ("G2: excessive group convolution increases MAC (Table 2)",
           "10 blocks of one 1×1 group conv c→c on 56×56, c²/g fixed (= s·128²) per cell ×s"),
    "g3": ("G3: network fragmentation reduces the degree of parallelism (Table 3)",
           "10 blocks on 56×56, multiply-adds fixed: one 1×1 conv c→c; n 1×1 convs c/√n wide in series; "
           "n parallel 1×1 convs c→c/n concatenated (c = √s·128)"),
    "g4": ("G4: element-wise operations are non-negligible (Table 4)",
           "10 ResNet bottlenecks (1×1 4c→c, 3×3 c→c, 1×1 c→4c, conv + bias) on 56×56, with/without ReLU "
           "and identity shortcut"),
}
# What §2 of the paper says about its own measurements (its conclusions, not its table entries).
PAPER_CLAIMS = {
    "g1": "MAC = hw(c1 + c2) + c1·c2 ≥ 2√(hwB) + B/hw for B = hw·c1·c2 FLOPs, equal at c1 = c2; its Table 1 "
          "finds 1:1 the fastest ratio on GPU and ARM [paper, not re-checked here]",
    "g2": "speed falls as g grows at fixed FLOPs; the paper reports 8 groups more than twice as slow as 1 group "
          "on GPU and up to 30% slower on ARM [paper, not re-checked here]",
    "g3": "fragmentation slows the GPU markedly (the paper: 4-fragment about 3× slower than 1-fragment), "
          "ARM much less [paper, not re-checked here]",
    "g4": "removing ReLU and shortcut gives about 20% speed-up on both GPU and ARM [paper, not re-checked here]",
}


def results_path() -> str:
  return os.environ.get(ENV) or os.path.normpath(DEFAULT)


def _shown(path: str) -> str:
  """The results path relative to the repository when it lies inside it."""
  root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
  path = os.path.abspath(path)
  return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def load(path: str | None = None) -> dict | None:
  path = path or results_path()
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def holds(exp: str, rows: list[dict], margin: float = MARGIN) -> bool:
  """Whether the guideline's recommended configuration is the fastest of the cell (within ``margin``):
  G1 the 1:1 ratio, G2 g=1, G3 one fragment (the cell's first row); G4 the bottleneck without ReLU and
  shortcut faster than with both (the paper's comparison)."""
  speed = {r["label"]: r["images_per_s"] for r in rows}
  if exp == "g4":
    return speed["ReLU no, shortcut no"] > speed["ReLU yes, shortcut yes"] * (1 + margin)
  first = rows[0]["images_per_s"]
  return all(first >= r["images_per_s"] * (1 - margin) for r in rows[1:])


def _cells(data: dict, exp: str) -> dict:
  cells = {}
  for r in data["rows"]:
    if r["exp"] == exp:
      cells.setdefault((r["cell"], r["batch"]), []).append(r)
  return cells


def guideline_table(data: dict, exp: str) -> Table:
  title, setup = GUIDELINES[exp]
  rows, verdicts = [], []
  for (cell, batch), group in _cells(data, exp).items():
    ok = holds(exp, group)
    verdicts.append(ok)
    base = group[0]["images_per_s"]
    for i, r in enumerate(group):
      rows.append([cell, batch, r["label"], r["config"], round(r["macs_per_image"] / 1e6), "—",
                   r["images_per_s"], round(r["images_per_s"] / base, 2),
                   ("holds" if ok else "does not hold") if i == 0 else ""])
  m = data["machine"]
  notes = [f"setup: {setup}; images/s = batch / median of {data['rounds']}×{data['iters']} alternated calls.",
           f"paper: {PAPER_CLAIMS[exp]}.",
           f"here: holds in {sum(verdicts)} of {len(verdicts)} cells (within {MARGIN:.0%}).",
           f"measured {data['date']}{' – ' + data['finished'][-9:] if data.get('finished') else ''} on "
           f"{m['cpu']} ({m['cores']} cores, {m['backend']}), jax {data['jax']}, "
           f"load average {data['load_before']} → {data['load_after']} (1/5/15 min) while other jobs ran."]
  return Table(title, ["cell", "batch", "configuration", "channels", "MMAC/img", "paper img/s",
                       "ours img/s", "rel.", "guideline"], rows,
               source="Ma et al. 2018 (ShuffleNet V2) §2; ours: " + COMMAND, notes=notes)


def summary_table(data: dict) -> Table:
  rows = []
  for exp, (title, _) in GUIDELINES.items():
    cells = _cells(data, exp)
    if not cells:
      continue
    n_ok = sum(holds(exp, g) for g in cells.values())
    rows.append([title.split(":")[0], title.split(":")[1].split("(")[0].strip(), f"{n_ok}/{len(cells)}",
                 PAPER_CLAIMS[exp]])
  return Table("ShuffleNet V2 guidelines on this CPU: summary", ["guideline", "statement", "holds (cells)",
                                                                 "paper"], rows,
               source=f"{_shown(results_path())} ({data['date']}, load {data['load_before']})")


def tables() -> list[Table]:
  data = load()
  if data is None:
    return [Table("ShuffleNet V2 guidelines on this CPU", ["guideline", "status"],
                  [[GUIDELINES[e][0], "not run"] for e in GUIDELINES],
                  notes=[f"no results file at {_shown(results_path())}: run `{COMMAND}` (or set {ENV})."])]
  return [summary_table(data)] + [guideline_table(data, e) for e in GUIDELINES if _cells(data, e)]
