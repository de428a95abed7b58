"""Packaging: `pip install jaxgen` gives a working pure core, and the extras cover what the code imports.

- Importing ``jaxgen``, ``jaxgen.diffusion``, ``jaxgen.gan``, ``jaxgen.ot``, ``jaxgen.detection`` and
  ``jaxgen.vq`` (in a fresh interpreter) loads none of the trainer's stack: no Flax, optax, TensorFlow, orbax, grain, ml_collections, and
  no scipy or scikit-learn beyond what ``import jax`` itself loads.
- setup.cfg's ``install_requires`` is exactly that core (jax, numpy); every third-party module that a
  file under jaxgen/ imports belongs to the core or to the ``train`` extra (``torch`` to ``convert``).
"""

from __future__ import annotations

import ast
import configparser
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ("jaxgen", "jaxgen.diffusion", "jaxgen.gan", "jaxgen.ot", "jaxgen.detection", "jaxgen.vq")
HEAVY = ("flax", "optax", "tensorflow", "tensorflow_datasets", "orbax", "grain", "ml_collections", "absl",
         "etils", "scipy", "sklearn", "matplotlib", "PIL", "tensorboardX", "torch")
# import name -> distribution name, for every third-party module imported under jaxgen/
DISTRIBUTIONS = {"jax": "jax", "jaxlib": "jax", "numpy": "numpy", "flax": "flax", "optax": "optax",
                 "orbax": "orbax-checkpoint", "etils": "etils", "ml_collections": "ml-collections",
                 "absl": "absl-py", "tensorflow_datasets": "tensorflow-datasets", "grain": "grain",
                 "array_record": "array-record", "scipy": "scipy", "sklearn": "scikit-learn",
                 "matplotlib": "matplotlib", "PIL": "pillow", "tqdm": "tqdm", "tensorboardX": "tensorboardX",
                 "torch": "torch", "pycocotools": "pycocotools", "h5py": "h5py",
                 "gcsfs": "gcsfs", "google": "google-cloud-storage"}

_PROBE = r"""
import json, sys
import jax, numpy
heavy = {heavy!r}
loaded = lambda: {{m.split('.')[0] for m in sys.modules}} & set(heavy)
report = {{'jax+numpy': sorted(loaded())}}
for name in {core!r}:
  before = loaded()
  __import__(name)
  report[name] = sorted(loaded() - before)
if 'SpectralNorm' in dir(sys.modules['jaxgen.gan']):
  report['dir'] = True
print(json.dumps(report))
"""


def _setup_cfg() -> configparser.ConfigParser:
  cfg = configparser.ConfigParser()
  cfg.read(ROOT / "setup.cfg", encoding="utf-8")
  return cfg


def _names(block: str) -> set[str]:
  """Distribution names of a setup.cfg requirement list (one per line; extras and versions dropped)."""
  out = set()
  for line in block.splitlines():
    line = line.split("#")[0].strip()
    if line:
      out.add(re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower().replace("_", "-"))
  return out


def test_the_pure_core_imports_only_jax_and_numpy():
  code = _PROBE.format(heavy=HEAVY, core=CORE)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert out.returncode == 0, out.stderr
  report = json.loads(out.stdout.strip().splitlines()[-1])
  assert report.pop("dir", False), "dir(jaxgen.gan) should list the lazily loaded SpectralNorm"
  jax_itself = set(report.pop("jax+numpy"))
  assert not jax_itself & {"flax", "optax", "tensorflow", "orbax", "grain", "ml_collections"}, jax_itself
  offenders = {name: mods for name, mods in report.items() if mods}
  assert not offenders, f"importing the pure core loaded {offenders}: import them inside the functions."


def test_lazy_names_of_the_gan_package_still_resolve():
  pytest.importorskip("flax")
  pytest.importorskip("optax")
  from jaxgen import gan
  from jaxgen.gan import SpectralNorm, power_iteration, weight_clipping
  from jaxgen.gan import spectral
  assert SpectralNorm is spectral.SpectralNorm and gan.power_iteration is power_iteration
  assert callable(weight_clipping(0.01).update)
  with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
    gan.nonexistent  # noqa: B018


def test_install_requires_is_the_pure_core():
  cfg = _setup_cfg()
  assert _names(cfg["options"]["install_requires"]) == {"jax", "numpy"}
  extras = cfg["options.extras_require"]
  assert set(extras) == {"models", "train", "test", "tfds-build", "convert", "gcs"}
  assert "flax" in _names(extras["models"]) and {"flax", "optax"} <= _names(extras["train"])
  # requirements.txt is the `train` extra, not a second list that can drift
  lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
  assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-e .[train]"]


def _third_party_imports() -> dict[str, set[str]]:
  """Top-level names of the non-stdlib, non-jaxgen modules imported anywhere under jaxgen/, with the files."""
  found: dict[str, set[str]] = {}
  for path in sorted((ROOT / "jaxgen").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
      else:
        continue
      for name in names:
        top = name.split(".")[0]
        if top != "jaxgen" and top not in sys.stdlib_module_names and top != "__future__":
          found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
  return found


def test_every_imported_package_is_declared():
  cfg = _setup_cfg()
  extras = cfg["options.extras_require"]
  declared = (_names(cfg["options"]["install_requires"]) | _names(extras["train"]) | _names(extras["convert"])
              | _names(extras["gcs"]))
  imports = _third_party_imports()
  unknown = {m: sorted(f) for m, f in imports.items() if m not in DISTRIBUTIONS}
  assert not unknown, f"new third-party imports {unknown}: add them to DISTRIBUTIONS here and to setup.cfg."
  missing = {DISTRIBUTIONS[m]: sorted(f) for m, f in imports.items()
             if DISTRIBUTIONS[m].lower() not in declared}
  assert not missing, f"imported but not declared in setup.cfg (install_requires or an extra): {missing}"
  assert "torch" in _names(extras["convert"]) and "torch" not in _names(extras["train"])
