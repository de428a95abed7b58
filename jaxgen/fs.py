"""Paths of a run that may live on local disk or in Google Cloud Storage (``gs://bucket/dir``).

A workdir, a ``data.data_dir`` or a weights file may be a local path or a ``gs://`` URL; the trainer,
the checkpoints (orbax), the logs and the lock go through these helpers so both take the same code
path (docs/pods.md "Workdirs on GCS").

Choice of library: orbax already reaches ``gs://`` through ``etils.epath`` (directories, small files)
and tensorstore (the arrays); epath, without TensorFlow, delegates ``gs://`` to fsspec's ``gcsfs``. These
helpers use epath too, so one credential chain and one client serve everything (Application Default
Credentials: ``gcloud auth application-default login``, a service account's
``GOOGLE_APPLICATION_CREDENTIALS``, or a TPU/GCE VM's metadata server). Local paths keep the ``os``
calls (``os.replace`` for atomic writes) they always used: nothing changes for them.

Object-store semantics that differ from a disk and how each helper handles them:

- No directories: ``makedirs`` is a no-op; ``isdir`` is true when any object has the prefix.
- A single-object upload is atomic (the object appears whole or not at all), so ``write_text`` writes
  the object directly where a local file is written to a temporary name and renamed.
- No append: ``jaxgen.logging.MetricWriter`` rewrites ``metrics.jsonl`` whole at each record.
- No ``flock``: ``ObjectLock`` is a lock object created under a generation precondition with a
  heartbeat (``jaxgen.checkpoint.WorkdirLock`` uses it for ``gs://`` workdirs).

Emulators: with ``STORAGE_EMULATOR_HOST`` set (gcsfs and google-cloud-storage honour it;
tensorstore, which writes orbax's arrays, needs ``TENSORSTORE_GCS_HTTP_URL`` set to the same URL),
gcsfs's bucket-layout probe over gRPC is switched off (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``),
because emulators have no control-plane API and the probe waits 60 s before giving up.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging as _pylogging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from typing import Iterator

from jaxgen.errors import ConfigError

log = _pylogging.getLogger("jaxgen")

if os.environ.get("STORAGE_EMULATOR_HOST"):
  os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_INSTALL = "pip install 'jaxgen[gcs]' (gcsfs and google-cloud-storage)"


def scheme(path: str) -> str:
  """``'gs'`` for ``gs://b/x``, ``''`` for a local path."""
  m = _SCHEME.match(str(path))
  return m.group(1).lower() if m else ""


def is_remote(path: str) -> bool:
  """Whether ``path`` is a URL (``gs://...``) rather than a local path."""
  return bool(scheme(path))


def abspath(path: str) -> str:
  """``os.path.abspath`` for local paths; a URL without its trailing slashes."""
  path = str(path)
  if is_remote(path):
    head, rest = path.split("://", 1)
    return f"{head.lower()}://{rest.rstrip('/')}"
  return os.path.abspath(path)


def join(path: str, *parts: str) -> str:
  """``os.path.join`` for local paths, '/'-joining for URLs."""
  if is_remote(path):
    out = str(path).rstrip("/")
    for p in parts:
      out += "/" + str(p).strip("/")
    return out
  return os.path.join(path, *parts)


def dirname(path: str) -> str:
  if is_remote(path):
    head, rest = str(path).rstrip("/").split("://", 1)
    return f"{head}://{rest.rsplit('/', 1)[0]}" if "/" in rest else f"{head}://{rest}"
  return os.path.dirname(path)


def split_bucket(path: str) -> tuple[str, str]:
  """``gs://bucket/a/b`` -> (``bucket``, ``a/b``)."""
  rest = str(path).split("://", 1)[1]
  bucket, _, key = rest.partition("/")
  return bucket, key.strip("/")


def _epath(path: str):
  if scheme(path) == "gs":
    try:
      import gcsfs  # noqa: F401, PLC0415  (epath's gs:// backend without TensorFlow; also ours)
    except ImportError:
      raise ConfigError(f"{path} is on GCS, which needs gcsfs: {_INSTALL}.") from None
  from etils import epath  # noqa: PLC0415

  return epath.Path(path)


def _fresh(path: str):
  """epath's Path of a URL, with gcsfs's listing cache dropped first: objects written by other clients
  (tensorstore, another process) are invisible to a cached listing."""
  if scheme(path) == "gs":
    gcs_filesystem().invalidate_cache()
  return _epath(path)


def exists(path: str) -> bool:
  return _fresh(path).exists() if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _fresh(path).is_dir() if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  if is_remote(path):
    p = _fresh(path)
    return p.exists() and not p.is_dir()
  return os.path.isfile(path)


def listdir(path: str) -> list[str]:
  """Names in ``path`` (files and subdirectories); ``[]`` when it does not exist."""
  if is_remote(path):
    p = _fresh(path)
    return sorted(c.name for c in p.iterdir()) if p.is_dir() else []
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


def makedirs(path: str) -> None:
  """``os.makedirs(exist_ok=True)``; nothing on an object store (it has no directories)."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def read_bytes(path: str) -> bytes:
  if is_remote(path):
    return _fresh(path).read_bytes()
  with open(path, "rb") as f:
    return f.read()


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
  """Writes ``path`` whole and atomically: a local temporary file renamed over it (removed again when
  writing fails), or one object upload (atomic on GCS). Creates the parent directory."""
  if is_remote(path):
    _epath(path).write_bytes(data)
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def open_file(path: str, mode: str = "r"):
  """A file object (``open`` for local paths, epath's for URLs)."""
  if is_remote(path):
    return _epath(path).open(mode)
  return open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def remove(path: str) -> None:
  if is_remote(path):
    _epath(path).unlink(missing_ok=True)
  else:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def rmtree(path: str) -> None:
  if is_remote(path):
    p = _epath(path)
    if p.exists():
      p.rmtree()
  else:
    shutil.rmtree(path, ignore_errors=True)


def move(src: str, dst: str) -> None:
  """Moves a file or a directory (on GCS: copies every object, then deletes the originals)."""
  if is_remote(src):
    if is_remote(dst) and scheme(src) == scheme(dst) == "gs":
      fs = gcs_filesystem()   # (not fs.mv: it tries the moveTo API first, which only HNS buckets have)
      fs.invalidate_cache()
      fs.copy(src, dst, recursive=True)
      fs.rm(src, recursive=True)
    else:
      _epath(src).rename(dst)
  else:
    shutil.move(src, dst)


def gcs_filesystem():
  """The gcsfs filesystem epath (and so orbax) uses for ``gs://``: epath caches one instance per process
  (fsspec's own cache would give each thread its own instance, each with its own listing cache)."""
  _epath("gs://probe")
  from etils.epath import backend  # noqa: PLC0415

  return backend.fsspec_backend.fs("gs://")


# ---------------------------------------------------------------------------------------------
# Checks before any work
# ---------------------------------------------------------------------------------------------

def gcs_client():
  """A ``google.cloud.storage.Client`` (ADC credentials; anonymous against ``STORAGE_EMULATOR_HOST``).

  Raises ``ConfigError`` when the package is missing or no credentials are found."""
  try:
    from google.cloud import storage  # noqa: PLC0415
    import google.auth.exceptions as auth_exc  # noqa: PLC0415
  except ImportError:
    raise ConfigError(f"gs:// paths need google-cloud-storage: {_INSTALL}.") from None
  try:
    return storage.Client()
  except auth_exc.DefaultCredentialsError:
    raise ConfigError("no Google Cloud credentials were found for gs:// paths: run `gcloud auth "
                      "application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service "
                      "account key; TPU VMs have them built in).") from None


def check_bucket(path: str, flag: str = "--workdir") -> None:
  """Raises one-line ``ConfigError`` unless ``path``'s bucket exists and these credentials can read it.

  Local paths and schemes other than ``gs`` pass (fsspec reports those on first use)."""
  if scheme(path) != "gs":
    return
  bucket, _ = split_bucket(path)
  if not bucket:
    raise ConfigError(f"{flag} {path} names no bucket: pass gs://BUCKET/path.")
  client = gcs_client()
  from google.api_core import exceptions as gexc  # noqa: PLC0415
  import google.auth.exceptions as auth_exc  # noqa: PLC0415

  try:
    found = client.lookup_bucket(bucket)
  except (gexc.Forbidden, gexc.Unauthorized) as e:
    raise ConfigError(f"{flag} {path}: the credentials in use may not read bucket gs://{bucket} "
                      f"({_short(e)}): grant them roles/storage.objectAdmin on it, or use another "
                      "bucket.") from None
  except auth_exc.GoogleAuthError as e:
    raise ConfigError(f"{flag} {path}: no usable Google Cloud credentials ({_short(e)}): run `gcloud "
                      "auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS.") from None
  if found is None:
    raise ConfigError(f"{flag} {path}: bucket gs://{bucket} does not exist: create it (gcloud storage "
                      f"buckets create gs://{bucket} --location=REGION) or fix the name.")
  _epath(path)  # gcsfs present


def _short(e: BaseException) -> str:
  return " ".join(str(e).split())[:200] or type(e).__name__


# ---------------------------------------------------------------------------------------------
# A lock on an object store
# ---------------------------------------------------------------------------------------------

def _boot_id() -> str:
  try:
    with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
      return f.read().strip()
  except OSError:
    return ""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class ObjectLock:
  """An exclusive lock held as one GCS object, ``gs://bucket/.../jaxgen.lock`` (``acquire``/``release``).

  flock has no meaning on an object store; GCS's per-object generation numbers give the same guarantee:

  - acquire: upload the lock object with ``ifGenerationMatch=0`` (create only if absent). GCS applies
    the precondition atomically, so of two racing trainers exactly one succeeds; the other gets HTTP
    412 and reads the holder's JSON (pid, host, start time) for its message.
  - heartbeat: a daemon thread rewrites the object every ``heartbeat_s`` seconds with
    ``ifGenerationMatch=<the generation it wrote last>``; a 412 there means another process took the
    lock over (this one was stalled past ``stale_s``): ``lost`` turns true and an error is logged.
  - stale: a lock whose object was last updated (GCS's server-side ``updated`` time) more than
    ``stale_s`` seconds ago, or one of a dead process on this same machine (same host and boot id, pid
    gone: a SIGKILLed run that is restarted at once), is taken over by an overwrite conditioned on the
    generation that was read, so two processes taking over the same stale lock cannot both win.
  - release: delete with ``ifGenerationMatch=<own generation>`` (never deletes another holder's lock).

  A killed holder on another machine therefore blocks a new run for at most ``stale_s`` seconds
  (default 120 = four missed heartbeats of 30 s); the message says when it turns stale. The object holds
  a random token: a conditional write that landed but whose response was lost is answered 412 when the
  client retries it, and the token tells the lock that the object is its own (docs/pods.md).
  """

  def __init__(self, url: str, *, heartbeat_s: float = 30.0, stale_s: float = 120.0, client=None):
    if scheme(url) != "gs":
      raise ValueError(f"ObjectLock takes a gs:// URL, got {url!r}.")
    self.url = url
    self.heartbeat_s, self.stale_s = float(heartbeat_s), float(stale_s)
    self._client = client
    self._generation: int | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None
    self._mutex = threading.Lock()
    self._since = ""
    self._token = uuid.uuid4().hex   # tells this lock's own writes from any other holder's
    self.lost = False

  def _blob(self):
    if self._client is None:
      self._client = gcs_client()
    bucket, key = split_bucket(self.url)
    return self._client.bucket(bucket).blob(key)

  def _payload(self) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
                       "since": self._since, "token": self._token,
                       "heartbeat_s": self.heartbeat_s, "stale_s": self.stale_s})

  def _write(self, if_generation_match: int) -> int:
    blob = self._blob()
    blob.upload_from_string(self._payload(), content_type="application/json",
                            if_generation_match=if_generation_match)
    return int(blob.generation)

  def _describe(self, holder: dict) -> str:
    if not holder:
      return "another process"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"

  def _mine(self, holder: dict) -> bool:
    """Whether ``holder`` is this lock's own content (a write that succeeded although its response was
    lost, then retried: GCS answers the retry with 412)."""
    return holder.get("token") == self._token

  def _read(self):
    """(generation, holder JSON) of the lock object now; (None, {}) when it is absent."""
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    blob = self._blob()
    try:
      blob.reload()
      data = blob.download_as_bytes(if_generation_match=blob.generation)
    except (gexc.NotFound, gexc.PreconditionFailed):
      return None, {}, blob
    try:
      holder = json.loads(data or b"{}")
    except ValueError:
      holder = {}
    return int(blob.generation), holder if isinstance(holder, dict) else {}, blob

  def _dead_here(self, holder: dict) -> bool:
    return (holder.get("host") == socket.gethostname() and holder.get("boot_id") == _boot_id() != ""
            and isinstance(holder.get("pid"), int) and holder["pid"] != os.getpid()
            and not _pid_alive(holder["pid"]))

  def acquire(self) -> "ObjectLock":
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    workdir = dirname(self.url)
    self._since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for _ in range(3):
      try:
        self._generation = self._write(0)
        break
      except gexc.PreconditionFailed:
        pass
      except gexc.Forbidden as e:
        raise ConfigError(f"--workdir {workdir} is not writable with these credentials ({_short(e)}): "
                          "grant them roles/storage.objectAdmin on the bucket.") from None
      generation, holder, blob = self._read()
      if generation is None:
        continue  # released (or rewritten) meanwhile: try again
      if self._mine(holder):
        self._generation = generation
        break
      age = (datetime.datetime.now(datetime.timezone.utc) - blob.updated).total_seconds()
      if age > self.stale_s or self._dead_here(holder):
        why = "it died on this host" if age <= self.stale_s else f"no heartbeat for {age:.0f} s"
        try:
          self._generation = self._write(int(blob.generation))
        except gexc.PreconditionFailed:
          continue  # someone else took it over first
        log.warning("took over the stale lock %s of %s (%s).", self.url, self._describe(holder), why)
        break
      wait = max(self.stale_s - age, 0)
      raise ConfigError(
          f"--workdir {workdir} is in use by {self._describe(holder)}, last heartbeat {age:.0f} s ago: "
          f"wait for that run to end (or stop it; a dead holder's lock turns stale in {wait:.0f} s), or "
          "pass another --workdir.")
    else:
      raise ConfigError(f"--workdir {workdir}: could not take the lock {self.url} (it changed hands "
                        "three times while trying): retry, or pass another --workdir.")
    self._stop.clear()
    self._thread = threading.Thread(target=self._beat, name="jaxgen-lock-heartbeat", daemon=True)
    self._thread.start()
    return self

  def _beat(self) -> None:
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    while not self._stop.wait(self.heartbeat_s):
      with self._mutex:
        if self._generation is None:
          return
        try:
          self._generation = self._write(self._generation)
        except gexc.PreconditionFailed:
          generation, holder, _ = self._read()
          if generation is not None and self._mine(holder):
            self._generation = generation  # our own retried write landed
            continue
          self.lost = True
          self._generation = None
          log.error("the lock %s was taken over by another process (this one missed its heartbeats "
                    "for over %.0f s): two trainers may now write to this workdir; stop one.",
                    self.url, self.stale_s)
          return
        except Exception as e:  # noqa: BLE001 - a transient network error: retry at the next beat
          log.warning("could not refresh the lock %s (%s); retrying.", self.url, _short(e))

  def release(self) -> None:
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
      self._thread = None
    with self._mutex:
      gen, self._generation = self._generation, None
    if gen is not None:
      with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
        self._blob().delete(if_generation_match=gen)

  def holder(self) -> dict:
    """The JSON the current holder wrote (``{}`` when unlocked)."""
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    try:
      return json.loads(self._blob().download_as_bytes() or b"{}")
    except gexc.NotFound:
      return {}

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def walk_files(path: str) -> Iterator[str]:
  """Every file under ``path`` (recursively), as full paths (sorted)."""
  if scheme(path) == "gs":
    _fresh(path)
    yield from sorted(f"gs://{p}" for p in gcs_filesystem().find(path))
  elif is_remote(path):
    yield from sorted(str(p) for p in _epath(path).rglob("*") if not p.is_dir())
  else:
    yield from sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
