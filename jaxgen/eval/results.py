"""The reproduction results file: every reproduced number with its paper value and its provenance.

One JSON file (the committed one is ``results/converted.json``; the schema is also in
``results/README.md`` and docs/reproduce.md) holds one row per number a paper table reports::

    {"schema": "jaxgen.results/1",
     "rows": [{"id": "edm_table2/cifar10_uncond_vp", "table": "edm_table2", "label": "...",
               "metric": "fid", "unit": "FID", "better": "lower",
               "paper": {"value": 1.97, "source": "..."},
               "converted": null | MEASUREMENT,      # the published weights, converted to jaxgen
               "trained": null | MEASUREMENT}, ...]} # a network jaxgen trained itself

    MEASUREMENT = {"value": float, "command": "python -m jaxgen.eval.reproduce ...", "date": ISO-8601 UTC,
                   "hardware": "8 x NVIDIA H100 80GB HBM3 (gpu)", "devices": [...], "jax": "0.10.2",
                   "jaxgen": git commit or "unknown", "weights": path, "weights_sha256": ...,
                   "details": {...}}       # per-seed FIDs, counts, sampler settings, ...

``ROWS`` below is the one list of rows and paper values (each with its source); the committed file
holds exactly these rows with ``converted`` and ``trained`` null until someone runs a command on real
weights (nothing has been run here: the tables print "not run"). ``python -m jaxgen.eval.reproduce``
writes its measurement into a results file the user names (``record``), and ``merge`` copies the
measured cells of one file into another (e.g. into ``results/converted.json`` for the tables).
A paper value that could not be verified against the paper here is ``None`` (printed "—").
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import subprocess
from typing import Any, Iterable

from jaxgen.errors import ConfigError

SCHEMA = "jaxgen.results/1"
COLUMNS = ("converted", "trained")
TABLES = ("edm_table2", "score_sde_nll", "ddim_table", "imagenet_top1")
COMMITTED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "results", "converted.json")
ENV = "JAXGEN_RESULTS"   # a results file the tables read instead of the committed one


@dataclasses.dataclass(frozen=True)
class Row:
  """One reproduced number: ``id`` = '<table>/<key>', the paper's value (None: not verified here) and
  ``spec``, what the command needs to measure it (sampler settings, model name, ...)."""
  id: str
  label: str
  metric: str
  unit: str
  paper: float | None
  source: str
  better: str = "lower"
  spec: dict = dataclasses.field(default_factory=dict)

  @property
  def table(self) -> str:
    return self.id.split("/")[0]

  @property
  def key(self) -> str:
    return self.id.split("/", 1)[1]


_EDM = "Karras et al. 2022 (EDM) Table 2, config F; docs/reference.md §1"
_EDM_VE = ("EDM Table 2 config F, VE column: not verified against the paper here (docs/reference.md §1 lists "
           "only the VP column)")
_TV = "torchvision {} IMAGENET1K_V1 weights meta 'acc@1' (torchvision 0.29.1 source / docs)"
_DDIM = "Song, Meng & Ermon 2021 (DDIM) Table 1, CIFAR-10, quadratic τ; docs/reference.md §2 [paper]"
_DDIM_ETA1 = "DDIM Table 1 η = 1.0 row: not verified against the paper here"


def _edm(key, label, paper, *, config, steps, cond, arch, resolution, pickle, options=None, source=_EDM):
  return Row(f"edm_table2/{key}", label, "fid", "FID", paper, source,
             spec=dict(config=config, num_steps=steps, nfe=2 * steps - 1, class_conditional=cond, arch=arch,
                       resolution=resolution, pickle=pickle, sampler="edm" if options else "heun",
                       sampler_options=options or {}))


ROWS: tuple[Row, ...] = (
    _edm("cifar10_cond_vp", "CIFAR-10 32², cond., DDPM++ (VP)", 1.79, config="experiments/edm/cifar10_cond_ddpmpp.py",
         steps=18, cond=True, arch="ddpmpp", resolution=32, pickle="edm-cifar10-32x32-cond-vp.pkl"),
    _edm("cifar10_cond_ve", "CIFAR-10 32², cond., NCSN++ (VE)", None, config="experiments/edm/cifar10_cond_ncsnpp.py",
         steps=18, cond=True, arch="ncsnpp", resolution=32, pickle="edm-cifar10-32x32-cond-ve.pkl", source=_EDM_VE),
    _edm("cifar10_uncond_vp", "CIFAR-10 32², uncond., DDPM++ (VP)", 1.97,
         config="experiments/edm/cifar10_uncond_ddpmpp.py", steps=18, cond=False, arch="ddpmpp", resolution=32,
         pickle="edm-cifar10-32x32-uncond-vp.pkl"),
    _edm("cifar10_uncond_ve", "CIFAR-10 32², uncond., NCSN++ (VE)", None,
         config="experiments/edm/cifar10_uncond_ncsnpp.py", steps=18, cond=False, arch="ncsnpp", resolution=32,
         pickle="edm-cifar10-32x32-uncond-ve.pkl", source=_EDM_VE),
    _edm("ffhq64_uncond_vp", "FFHQ 64², uncond., DDPM++ (VP)", 2.39, config="experiments/edm/ffhq64.py", steps=40,
         cond=False, arch="ddpmpp", resolution=64, pickle="edm-ffhq-64x64-uncond-vp.pkl"),
    _edm("afhqv2_64_uncond_vp", "AFHQv2 64², uncond., DDPM++ (VP)", 1.96, config="experiments/edm/afhqv2_64.py",
         steps=40, cond=False, arch="ddpmpp", resolution=64, pickle="edm-afhqv2-64x64-uncond-vp.pkl"),
    _edm("imagenet64_cond_adm", "ImageNet 64², cond., ADM (EDM-retrained)", 1.36,
         config="experiments/edm/imagenet64_adm.py", steps=256, cond=True, arch="adm", resolution=64,
         pickle="edm-imagenet-64x64-cond-adm.pkl",
         options=dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)),
    Row("score_sde_nll/cifar10_ddpmpp_deep_subvp", "CIFAR-10 test, DDPM++ cont. (deep), sub-VP", "bpd",
        "bits/dim", 2.99, "Song et al. 2021 (score SDE) README / Table 2; docs/reference.md §2",
        spec=dict(config="experiments/score_sde/cifar10_ddpmpp_deep_subvp.py", split="test")),
    *(Row(f"ddim_table/eta{eta:g}_S{s}", f"CIFAR-10, η = {eta:g}, S = {s} steps", "fid", "FID", paper,
          _DDIM if eta == 0 else _DDIM_ETA1,
          spec=dict(config="experiments/ddpm/cifar10_ddim.py", eta=float(eta), steps=s, sigma_grid="ddim_quadratic"))
      for eta, papers in ((0, (13.36, 6.84, 4.67, 4.16, 4.04)), (1, (None,) * 5))
      for s, paper in zip((10, 20, 50, 100, 1000), papers)),
    *(Row(f"imagenet_top1/{name}", label, "top1", "% top-1", acc, _TV.format(weights), better="higher",
          spec=dict(model=name, resize=256, crop=224, interpolation=interp))
      for name, label, acc, weights, interp in (
          ("mobilenet_v2", "MobileNetV2", 71.878, "MobileNet_V2_Weights", "bilinear"),
          ("mobilenet_v3_large", "MobileNetV3-Large", 74.042, "MobileNet_V3_Large_Weights", "bilinear"),
          ("mobilenet_v3_small", "MobileNetV3-Small", 67.668, "MobileNet_V3_Small_Weights", "bilinear"),
          ("shufflenet_v2_x1_0", "ShuffleNetV2 1.0×", 69.362, "ShuffleNet_V2_X1_0_Weights", "bilinear"),
          ("shufflenet_v2_x0_5", "ShuffleNetV2 0.5×", 60.552, "ShuffleNet_V2_X0_5_Weights", "bilinear"),
          ("googlenet", "GoogLeNet", 69.778, "GoogLeNet_Weights", "bilinear"),
          ("efficientnet_b0", "EfficientNet-B0", 77.692, "EfficientNet_B0_Weights", "bicubic"))),
)
BY_ID = {r.id: r for r in ROWS}


def rows_of(table: str) -> list[Row]:
  return [r for r in ROWS if r.table == table]


def row(row_id: str) -> Row:
  if row_id not in BY_ID:
    import difflib
    close = difflib.get_close_matches(row_id, BY_ID, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"results row {row_id!r} is unknown{hint}: use one of {', '.join(BY_ID)}.")
  return BY_ID[row_id]


# ------------------------------------------------------------------------------------------------
# The file.


def empty() -> dict:
  """The results document with every row of ``ROWS`` and nothing measured (the committed file's content)."""
  return {"schema": SCHEMA,
          "rows": [{"id": r.id, "table": r.table, "label": r.label, "metric": r.metric, "unit": r.unit,
                    "better": r.better, "paper": {"value": r.paper, "source": r.source},
                    "converted": None, "trained": None} for r in ROWS]}


def validate(doc: Any, path: str = "results") -> dict:
  """``doc`` if it follows the schema (module docstring), else a one-line ``ConfigError`` naming the fault."""
  if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("rows"), list):
    raise ConfigError(f"{path} is not a jaxgen results file (no schema {SCHEMA!r} with a 'rows' list): make one "
                      "with `python -m jaxgen.eval.reproduce init PATH`.")
  seen = set()
  for r in doc["rows"]:
    rid = r.get("id") if isinstance(r, dict) else None
    if rid is None or rid in seen:
      raise ConfigError(f"{path}: a row without an id or a repeated id {rid!r}: every row needs its own 'id'.")
    seen.add(rid)
    for col in COLUMNS:
      m = r.get(col)
      if m is None:
        continue
      missing = [k for k in ("value", "command", "date", "hardware", "jax") if k not in m]
      if missing or not isinstance(m.get("value"), (int, float)):
        raise ConfigError(f"{path}: row {rid} column {col!r} lacks {missing or ['a numeric value']}: a measurement "
                          "needs value, command, date, hardware and jax (write it with jaxgen.eval.reproduce).")
  return doc


def load(path: str | None = None) -> dict:
  """The results document at ``path`` (default: $JAXGEN_RESULTS, else the committed results/converted.json);
  a missing default file gives ``empty()`` (e.g. an installed package without the repository's results/)."""
  explicit = path or os.environ.get(ENV)
  path = explicit or COMMITTED
  if not os.path.exists(path):
    if explicit:
      raise ConfigError(f"results file {path} does not exist: run a `python -m jaxgen.eval.reproduce` command "
                        "with --results PATH first, or `python -m jaxgen.eval.reproduce init PATH`.")
    return empty()
  try:
    with open(path, encoding="utf-8") as f:
      doc = json.load(f)
  except json.JSONDecodeError as e:
    raise ConfigError(f"results file {path} is not valid JSON ({e}): repair it or remove it.") from None
  return validate(doc, path)


def save(path: str, doc: dict) -> None:
  """Writes ``doc`` to ``path`` atomically (temporary file renamed over it)."""
  validate(doc, path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(doc, f, indent=1, ensure_ascii=False)
      f.write("\n")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _row_entry(doc: dict, row_id: str) -> dict:
  for r in doc["rows"]:
    if r["id"] == row_id:
      return r
  r = row(row_id)
  entry = {"id": r.id, "table": r.table, "label": r.label, "metric": r.metric, "unit": r.unit,
           "better": r.better, "paper": {"value": r.paper, "source": r.source}, "converted": None,
           "trained": None}
  doc["rows"].append(entry)
  return entry


def cell(doc: dict, row_id: str, column: str) -> dict | None:
  """The measurement of ``row_id`` in ``column`` ('converted' | 'trained'), or None (not run)."""
  for r in doc["rows"]:
    if r["id"] == row_id:
      return r.get(column)
  return None


def record(path: str, row_id: str, column: str, measurement: dict) -> dict:
  """Puts ``measurement`` into ``path`` (created with ``empty()`` rows if absent) at (row, column); returns
  the document. Refuses the committed results/converted.json: write elsewhere and ``merge``."""
  if column not in COLUMNS:
    raise ConfigError(f"results column {column!r} is unknown: use 'converted' or 'trained'.")
  row(row_id)
  if os.path.abspath(path) == os.path.abspath(COMMITTED):
    raise ConfigError(f"--results {path} is the committed results file: write to another file (e.g. "
                      "runs/reproduce/results.json) and copy reviewed rows with `python -m jaxgen.eval.reproduce "
                      "merge SRC results/converted.json`.")
  doc = load(path) if os.path.exists(path) else empty()
  _row_entry(doc, row_id)[column] = measurement
  save(path, doc)
  return doc


def merge(src: str, dst: str, rows: Iterable[str] = ()) -> list[str]:
  """Copies every measured cell of ``src`` (or of the given row ids) into ``dst``; returns '<row>:<column>'
  of each cell copied. The paper values of ``dst`` are kept (they come from ``ROWS``)."""
  a, b = load(src), (load(dst) if os.path.exists(dst) else empty())
  wanted = set(rows)
  copied = []
  for r in a["rows"]:
    if wanted and r["id"] not in wanted:
      continue
    for col in COLUMNS:
      if r.get(col) is not None:
        _row_entry(b, r["id"])[col] = r[col]
        copied.append(f"{r['id']}:{col}")
  save(dst, b)
  return copied


# ------------------------------------------------------------------------------------------------
# Provenance.


def hardware() -> tuple[str, list[str]]:
  """('<n> x <device kind> (<platform>)', one string per device) of this process's JAX devices."""
  import jax
  devs = jax.devices()
  kinds = sorted({d.device_kind for d in devs})
  summary = f"{len(devs)} x {' + '.join(kinds)} ({devs[0].platform})"
  if jax.process_count() > 1:
    summary += f", {jax.process_count()} processes"
  return summary, [str(d) for d in devs]


def cpu_name() -> str:
  """The CPU model of this machine (``/proc/cpuinfo``), else what ``platform`` knows."""
  import platform
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def load_average() -> list[float]:
  """The 1-, 5- and 15-minute load averages (rounded), or [] where the OS has none: what a CPU timing
  was measured beside."""
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return []


def git_commit() -> str:
  """The jaxgen checkout's HEAD commit (with '+dirty' when files differ), or 'unknown' outside a checkout."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  try:
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def measurement(value: float, command: str, *, weights: str | None = None, workdir: str | None = None,
                details: dict | None = None) -> dict:
  """A MEASUREMENT dict (module docstring) for ``value`` measured now by ``command`` on this machine."""
  import jax
  hw, devices = hardware()
  out = {"value": float(value), "command": command,
         "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "hardware": hw, "devices": devices, "jax": jax.__version__, "jaxgen": git_commit()}
  if weights:
    out["weights"] = os.path.abspath(weights)
    out["weights_sha256"] = sha256(weights)
  if workdir:
    out["workdir"] = os.path.abspath(workdir)
  out["details"] = json.loads(json.dumps(details or {}, default=float))
  return out
