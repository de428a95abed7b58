"""Launcher: ``python -m jaxgen.main --config experiments/<family>/<name>.py[:variant] --workdir DIR``.

Flags: ``--mode train|eval|sample`` (default train), ``--num_samples N``, ``--sample_chunk_size C`` and
``--sample_run NAME`` (``--mode sample``: a resumable set of chunk files in ``DIR/samples/NAME``,
docs/sampling.md), and
``--config.a.b=value`` overrides of the (locked) config: a mistyped key or a value of the wrong type
is an error. Training resumes from ``DIR/checkpoints`` when it holds checkpoints of a compatible run.
The work itself lives in ``jaxgen.train``. Exit status: 0 the mode finished; 2 a user error (one line:
the cause and the fix; also a full disk, and a workdir another trainer holds); 1 training stopped on a
non-finite loss (one line); 75 (EX_TEMPFAIL) SIGTERM stopped training after saving a checkpoint: the
run is unfinished and rerunning the same command resumes it (schedulers: requeue on 75). Every
mode ends by printing ``jaxgen.train.summary(DIR)``: where the results are (workdir, metrics.jsonl,
the last checkpoint, the sample PNG) and the headline numbers (the last evaluation's metrics and the
last training record).

Compilation cache: JAX's persistent cache is on, so a rerun or a resume loads the compiled programs
instead of compiling them again (every program is cached, CPU ones included).
``--compilation_cache_dir`` picks the directory; its default is ``$JAXGEN_CACHE_DIR`` when that is
set, else ``$XDG_CACHE_HOME/jaxgen/xla`` (``~/.cache/jaxgen/xla``); ``--compilation_cache_dir=`` (empty)
turns the cache off. When ``JAX_COMPILATION_CACHE_DIR`` (JAX's own setting) is set and the flag is not
given, JAX's setting is used; ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` /
``JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES``, when set, also win over this launcher's values (0 s, no
minimum size). The cache holds one entry per program and jaxlib version; delete the directory to
reclaim its space.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file: path.py[:variant].",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory holding the run: checkpoints, metrics, samples.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "What to do with the run.")
flags.DEFINE_integer("num_samples", 64, "Number of samples written by --mode sample.")
flags.DEFINE_integer("sample_chunk_size", 1000, "Samples per chunk file of --mode sample (docs/sampling.md).")
flags.DEFINE_string("sample_run", None, "Name of the sample set of --mode sample: DIR/samples/<name> "
                    "(default step<N>_seed<S>); rerunning with the same name resumes it.")


def default_cache_dir() -> str:
  """``$JAXGEN_CACHE_DIR`` when set (empty: no cache), else ``$XDG_CACHE_HOME/jaxgen/xla``."""
  if "JAXGEN_CACHE_DIR" in os.environ:
    return os.environ["JAXGEN_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxgen", "xla")


flags.DEFINE_string("compilation_cache_dir", default_cache_dir(),
                    "Directory of JAX's persistent compilation cache ('': off). Default: $JAXGEN_CACHE_DIR, "
                    "else $XDG_CACHE_HOME/jaxgen/xla (~/.cache/jaxgen/xla).")


EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): try again later, i.e. requeue


def _fail(msg: str, status: int = 2):
  print(f"jaxgen: error: {msg}", file=sys.stderr, flush=True)
  sys.exit(status)


class _DiskFullFilter(logging.Filter):
  """Drops log records (orbax's, on the absl logger) that report a full disk: ``DiskFullError`` follows."""

  def __init__(self, is_disk_full):
    super().__init__()
    self.is_disk_full = is_disk_full

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and self.is_disk_full(exc):
      return False
    text = record.getMessage()
    return not ("No space left on device" in text or "os_error_code='28'" in text)


def _override_error(argv, e: Exception) -> str:
  """One line for a failing ``--config.key=value`` override (unknown key or unparsable value)."""
  text = " ".join(str(e).split())
  key = ""
  if isinstance(e, (KeyError, AttributeError)) and e.args:
    found = re.search(r"[A-Za-z_][A-Za-z0-9_]*", str(e.args[0]))
    key = found.group(0) if found else ""
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  culprit = next((a for a in overrides if key and key in a.split("=", 1)[0].split(".")), None)
  if culprit:
    return (f"{culprit.split('=', 1)[0]} names a key the config does not have ({key!r}): check its "
            "spelling against the experiment file and jaxgen/configs.py.")
  if text.startswith("flag --config."):
    return f"{text}: pass a value of the type the config declares for that key."
  return text


def _config_arg(argv) -> str:
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return ""


def _parse_flags(argv):
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    _fail(_override_error(argv, e.__cause__ or e) if "--config." in str(e) else " ".join(str(e).split()))
  except Exception as e:  # noqa: BLE001 - errors while applying --config.* overrides
    _fail(_override_error(argv, e))
  if FLAGS["config"].present or FLAGS.config is not None:
    try:
      FLAGS.config.get("seed")  # a config file that failed to load raises here
    except Exception as e:  # noqa: BLE001
      first = str(e).splitlines()[-1].strip() if str(e) else type(e).__name__
      name = _config_arg(argv)
      _fail(f"cannot load --config {name or '(the given file)'}: {first}; pass an experiment file "
            "path.py[:variant] that defines get_config().")
  return rest


def enable_compilation_cache(directory: str, explicit: bool = True) -> str | None:
  """Turns on JAX's persistent compilation cache in ``directory`` (``''``: turns it off).

  Every compiled program is cached (minimum compile time 0 s, no minimum entry size), unless the
  JAX_PERSISTENT_CACHE_* environment variables say otherwise. Unless ``explicit``, a
  JAX_COMPILATION_CACHE_DIR set in the environment wins over ``directory``. Returns the directory
  in use (None: off). Must run before the first compilation.
  """
  import jax

  if not explicit and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    directory = os.environ["JAX_COMPILATION_CACHE_DIR"]
  if not directory:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  directory = os.path.abspath(os.path.expanduser(directory))
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", directory)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no minimum (0 lets JAX pick)
  return directory


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])}: every option is a --flag.")
  if FLAGS.config is None:
    _fail("--config is required: pass --config experiments/<family>/<name>.py[:variant].")
  if not FLAGS.workdir:
    _fail("--workdir is required: pass the directory the run writes to.")
  if not FLAGS["verbosity"].present:  # orbax logs every save at INFO: keep the console readable
    absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("jaxgen").setLevel(logging.INFO)
  enable_compilation_cache(FLAGS.compilation_cache_dir, explicit=FLAGS["compilation_cache_dir"].present)
  from jaxgen import train  # imported here so flag errors do not pay for importing JAX

  # A full disk makes orbax's save threads log a traceback each; the launcher says it in one line.
  logging.getLogger("absl").addFilter(_DiskFullFilter(train.is_disk_full))

  try:
    samples = ()
    if FLAGS.mode == "train":
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir, raise_on_preemption=True)
    elif FLAGS.mode == "eval":
      train.evaluate(FLAGS.config, FLAGS.workdir)
    else:
      paths = train.sample(FLAGS.config, FLAGS.workdir, FLAGS.num_samples, run_id=FLAGS.sample_run,
                           chunk_size=FLAGS.sample_chunk_size)
      samples = tuple(paths[k] for k in ("png", "dir") if k in paths)
    import jax

    if jax.process_index() == 0:
      print(train.summary(FLAGS.workdir, samples=samples), flush=True)
  except train.ConfigError as e:
    logging.getLogger("jaxgen").debug("config error", exc_info=True)
    _fail(str(e))
  except train.NonFiniteError as e:
    _fail(str(e), status=1)
  except train.DiskFullError as e:
    _fail(e.strerror or str(e))
  except train.Preempted as e:
    print(f"jaxgen: stopped: {e}", file=sys.stderr, flush=True)
    sys.exit(EXIT_PREEMPTED)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
