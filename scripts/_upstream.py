"""What the fixture scripts share: importing an upstream project's own source from a git clone.

``import_sources(repo, tmp, files)`` writes each file of the repository's HEAD (``git show HEAD:<file>``;
the source is not vendored) under ``tmp`` and puts ``tmp`` first on ``sys.path``, so the script imports the
official modules unchanged. ``files`` is a list of repository paths (kept as they are under ``tmp``) or a
mapping ``{repository path: path under tmp}``. Used by make_edm_fixture.py, make_taming_fixture.py and
make_taming_gpt_fixture.py (run as ``python scripts/<name>.py``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping, Sequence


def import_sources(repo: str, tmp: str, files: Sequence[str] | Mapping[str, str]) -> None:
  dest = dict(files) if isinstance(files, Mapping) else {f: f for f in files}
  for f, rel in dest.items():
    src = subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{f}"], check=True,
                         capture_output=True).stdout
    path = os.path.join(tmp, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
      fh.write(src)
  sys.path.insert(0, tmp)
