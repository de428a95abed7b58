"""jaxgen on the CPU beside PyTorch: the same networks, the same batch, timed in alternation (not a test).

    python benchmarks/cpu_vs_torch.py --torch-python /path/to/venv-with-torch/bin/python \\
        --edm-repo GITDIR [--rows edm_train mobilenet_v2 ...] [--out results/cpu_vs_torch.json]

(``GITDIR``: a clone of github.com/NVlabs/edm, e.g. ``git clone --bare``; its source is not vendored.)

Rows (float32, random weights and data, eval mode for inference):

  edm_train         one EDM training step of the DDPM++ CIFAR-10 network (config F: 55.7M parameters,
                    9 augmentation inputs, dropout 0.13) at batch 8: EDM loss, backward, Adam (lr 1e-3).
                    jaxgen: benchmarks/diffusion_throughput.py's step (jit, params and optimizer state
                    donated). PyTorch: EDM's own ``training/networks.py`` EDMPrecond + ``training/loss.py``
                    EDMLoss, the official loop's step (``loss.sum().mul(1/batch).backward()``, nan_to_num of
                    the gradients, ``torch.optim.Adam``), built from the repository's source
                    (scripts/_upstream.py); EDM passes no augmentation labels when its augment pipe is
                    off, jaxgen feeds 9 zeros (one 9×128 matmul: noise).
  <backbone>        inference at batch 1 and 64, 224×224: mobilenet_v2, mobilenet_v3_large,
                    shufflenet_v2_x1_0 (torchvision's down-sampling unit), efficientnet_b0; jaxgen twice,
                    with XLA's grouped convolution (``depthwise='xla'``) and with
                    ``jaxgen.models.cnn_layers.depthwise_context('shift')``; PyTorch: torchvision's modules
                    under ``torch.inference_mode()``.

PyTorch runs in a separate process (``--torch-python``: an interpreter that has torch and torchvision;
default ``$JAXGEN_TORCH_PYTHON``, else this one) driven over a pipe, so jax and torch never share a
process and their thread pools never run at once. For every row, each contender runs ``--iters`` timed
calls per round, in turn, for ``--rounds`` rounds (after one untimed call); reported: the median of all its
calls (ms), and ratio = PyTorch time / jaxgen time (> 1: jaxgen faster) against the faster of PyTorch's
thread settings (``--torch-threads``, default the core count and 1: on shared cores PyTorch's OpenMP pool
can lose badly to other jobs, docs/speed.md), from wall-clock time and, less
sensitive to other jobs on shared cores, from each process's CPU time (``time.process_time``: all its
threads; both libraries' thread pools spin while waiting, so it is an upper bound of the work done).
``--edm-size tiny`` times the training row on a small DDPM++ (32 channels, the same code paths) where the
full network's step takes minutes on a loaded machine. This machine's cores may be shared:
the load average before and after each row is stored with the results. Without torch the jaxgen columns
are still measured and the PyTorch ones say why they are missing. Numbers are measurements, never
asserted by tests (docs/speed.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
BACKBONES = ("mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0", "efficientnet_b0")
# jaxgen registry overrides that make the network the torchvision one
JAX_OVERRIDES = {"shufflenet_v2_x1_0": dict(downsample="torchvision")}
EDM_BATCH = 8
# the small DDPM++ of benchmarks/diffusion_throughput.py (TINY)
EDM_TINY = dict(model_channels=32, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(16,))
RES = 224
DEFAULT_OUT = os.path.join(ROOT, "results", "cpu_vs_torch.json")


def _load() -> list[float]:
  from jaxgen.eval.results import load_average  # noqa: PLC0415 (the torch worker runs without jaxgen)
  return load_average()


def _timed(fn, iters: int) -> list[list[float]]:
  """[wall seconds, CPU seconds of this process (all its threads)] of each of ``iters`` calls."""
  out = []
  for _ in range(iters):
    t, c = time.perf_counter(), time.process_time()
    fn()
    out.append([time.perf_counter() - t, time.process_time() - c])
  return out


# --- PyTorch side (runs in the worker process; imports torch, never jax) -----------------------------
class TorchWorker:
  """The PyTorch contender: ``setup(row)`` builds a row's callable, ``time(row, iters)`` times it."""

  def __init__(self, edm_repo: str | None, edm_size: str = "full"):
    import torch
    self.torch = torch
    self.edm_repo = edm_repo
    self.edm_size = edm_size
    self.fns = {}

  def setup(self, row: str, batch: int) -> dict:
    torch = self.torch
    torch.manual_seed(0)
    if row == "edm_train":
      fn = self._edm_train(batch)
    else:
      import torchvision
      net = getattr(torchvision.models, row)(weights=None).eval()
      x = torch.randn(batch, 3, RES, RES)

      def fn():
        with torch.inference_mode():
          net(x)
    t = time.perf_counter()
    fn()   # untimed first call
    self.fns[(row, batch)] = fn
    return dict(first_call_s=time.perf_counter() - t, threads=torch.get_num_threads(), torch=torch.__version__)

  def _edm_train(self, batch: int):
    if not self.edm_repo:
      raise RuntimeError("the EDM row needs --edm-repo GITDIR (a clone of github.com/NVlabs/edm)")
    import tempfile
    import types
    torch = self.torch
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from _upstream import import_sources
    tmp = tempfile.mkdtemp(prefix="edm_src_")
    import_sources(self.edm_repo, tmp, ["dnnlib/__init__.py", "dnnlib/util.py", "torch_utils/__init__.py",
                                        "torch_utils/persistence.py", "torch_utils/misc.py",
                                        "torch_utils/training_stats.py", "torch_utils/distributed.py",
                                        "training/__init__.py", "training/networks.py", "training/loss.py"])
    sys.modules.setdefault("requests", types.ModuleType("requests"))   # dnnlib.util's download helper only
    from training import loss as edm_loss
    from training import networks
    # EDM train.py: --arch=ddpmpp --precond=edm (config F), augment on (augment_dim 9), dropout 0.13, fp32
    size = dict(model_channels=128, channel_mult=[2, 2, 2]) if self.edm_size == "full" else {
        k: list(v) if isinstance(v, tuple) else v for k, v in EDM_TINY.items()}
    net = networks.EDMPrecond(img_resolution=32, img_channels=3, label_dim=0, use_fp16=False, model_type="SongUNet",
                              embedding_type="positional", encoder_type="standard", decoder_type="standard",
                              channel_mult_noise=1, resample_filter=[1, 1], augment_dim=9, dropout=0.13, **size)
    net.train().requires_grad_(True)
    loss_fn = edm_loss.EDMLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=[0.9, 0.999], eps=1e-8)
    images = torch.rand(batch, 3, 32, 32) * 2 - 1

    def step():   # training/training_loop.py's step without EMA and logging
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(net=net, images=images, labels=None, augment_pipe=None)
      loss.sum().mul(1.0 / batch).backward()
      for p in net.parameters():
        if p.grad is not None:
          torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
      opt.step()
    return step

  def time(self, row: str, batch: int, iters: int, threads: int) -> dict:
    self.torch.set_num_threads(threads)
    return dict(times=_timed(self.fns[(row, batch)], iters), threads=self.torch.get_num_threads())


def worker_main(edm_repo: str | None, edm_size: str):
  """JSON lines on stdin → JSON lines on stdout: {"op": "setup"|"time", "row", "batch"[, "iters"]}."""
  out = sys.stdout
  sys.stdout = sys.stderr          # keep the protocol channel clean of library prints
  try:
    w = TorchWorker(edm_repo, edm_size)
    out.write(json.dumps(dict(ok=True, torch=w.torch.__version__)) + "\n")
  except Exception as e:  # torch missing: tell the driver why
    out.write(json.dumps(dict(ok=False, error=f"{type(e).__name__}: {e}")) + "\n")
    out.flush()
    return
  out.flush()
  for line in sys.stdin:
    msg = json.loads(line)
    try:
      if msg["op"] == "setup":
        res = w.setup(msg["row"], msg["batch"])
      elif msg["op"] == "time":
        res = w.time(msg["row"], msg["batch"], msg["iters"], msg["threads"])
      else:
        break
      res["ok"] = True
    except Exception as e:
      res = dict(ok=False, error=f"{type(e).__name__}: {e}")
    out.write(json.dumps(res) + "\n")
    out.flush()


class TorchClient:
  def __init__(self, python: str, edm_repo: str | None, edm_size: str):
    self.error, self.version, self.proc = None, None, None
    try:
      self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--torch-worker", "--edm-size", edm_size]
                                   + (["--edm-repo", edm_repo] if edm_repo else []),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    except OSError as e:
      self.error = f"cannot start {python} ({e.strerror}): pass --torch-python PATH to an interpreter with torch"
      return
    hello = self._read()
    self.version = hello.get("torch")
    if not hello.get("ok"):
      self.error = (f"PyTorch unavailable in {python} ({hello.get('error')}): pass --torch-python PATH to an "
                    f"interpreter with torch and torchvision")

  def _read(self) -> dict:
    line = self.proc.stdout.readline()
    return json.loads(line) if line else dict(ok=False, error="the torch worker exited")

  def call(self, **msg) -> dict:
    self.proc.stdin.write(json.dumps(msg) + "\n")
    self.proc.stdin.flush()
    return self._read()

  def close(self):
    if self.proc is None or self.proc.poll() is not None:
      return
    try:
      self.call(op="quit")
    except (BrokenPipeError, ValueError):
      pass
    self.proc.wait(timeout=30)


# --- jaxgen side ---------------------------------------------------------------------------------
def jax_setup(row: str, batch: int, edm_size: str = "full") -> dict:
  """{variant: callable} for the row (the first call of each done: compilation + one run)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  if row == "edm_train":
    sys.path.insert(0, HERE)
    import diffusion_throughput as dt
    size = {} if edm_size == "full" else dict(EDM_TINY)
    net = dt.M.create("ddpmpp_cifar10", dtype="float32", augment_dim=dt.AUGMENT_DIM, dropout=0.13, **size)
    params = dt.random_params("ddpmpp_cifar10", size)
    opt = dt.make_optimizer()
    state = [params, opt.init(params)]
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, 32, 32, 3)), jnp.float32)
    compiled = jax.jit(dt.make_train_step(net, opt, batch), donate_argnums=(0, 1)).lower(
        state[0], state[1], images, jax.random.key(2)).compile()
    keys = iter(jax.random.split(jax.random.key(3), 10_000))

    def step():
      state[0], state[1], loss = compiled(state[0], state[1], images, next(keys))
      loss.block_until_ready()
    fns = {"jax": step}
  else:
    import jaxgen.models as M
    from jaxgen.models.cnn_layers import depthwise_context
    model = M.create(row, **JAX_OVERRIDES.get(row, {}))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, RES, RES, 3)), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(1), x[:1])

    def make(kind):
      def apply(v, x):
        with depthwise_context(kind):
          return model.apply(v, x)
      c = jax.jit(apply).lower(variables, x).compile()
      return lambda: c(variables, x).block_until_ready()
    fns = {"jax_xla": make("xla"), "jax_shift": make("shift")}
  first = {}
  for k, fn in fns.items():
    t = time.perf_counter()
    fn()
    first[k] = time.perf_counter() - t
  return fns, first


def run_row(row, batch, torch, rounds, iters, edm_size="full", torch_threads=(1,)) -> dict:
  load_before = _load()
  t0 = time.perf_counter()
  fns, first = jax_setup(row, batch, edm_size)
  setup_jax = time.perf_counter() - t0
  res = dict(row=row if row != "edm_train" else f"edm_train_{edm_size}", batch=batch, load_before=load_before,
             jax_setup_s=round(setup_jax, 1))
  times = {k: [] for k in fns}
  torch_err = torch.error if torch else "not requested (--no-torch)"
  if torch_err is None:
    s = torch.call(op="setup", row=row, batch=batch)
    if s.get("ok"):
      for n in torch_threads:
        times[f"torch_{n}t"] = []
    else:
      torch_err = s["error"]
  for _ in range(rounds):   # alternation: every contender once per round
    for k, fn in fns.items():
      times[k] += _timed(fn, iters)
    for n in torch_threads:
      if f"torch_{n}t" in times:
        r = torch.call(op="time", row=row, batch=batch, iters=iters, threads=n)
        if not r.get("ok"):
          torch_err = r["error"]
          del times[f"torch_{n}t"]
        else:
          times[f"torch_{n}t"] += r["times"]
  res["ms"] = {k: round(statistics.median(t[0] for t in v) * 1e3, 2) for k, v in times.items()}
  res["cpu_ms"] = {k: round(statistics.median(t[1] for t in v) * 1e3, 2) for k, v in times.items()}
  res["calls"] = {k: len(v) for k, v in times.items()}
  torch_keys = [k for k in times if k.startswith("torch")]
  if torch_err and not torch_keys:
    res["torch_error"] = torch_err
  if torch_keys:   # against the faster PyTorch thread setting (wall) / the cheaper one (CPU)
    best = min(res["ms"][k] for k in torch_keys)
    best_cpu = min(res["cpu_ms"][k] for k in torch_keys)
    res["ratio"] = {k: round(best / v, 2) for k, v in res["ms"].items() if not k.startswith("torch")}
    res["cpu_ratio"] = {k: round(best_cpu / v, 2) for k, v in res["cpu_ms"].items() if not k.startswith("torch")}
  res["load_after"] = _load()
  return res


def render(rows: list[dict]) -> str:
  """Wall-clock medians (ms) and ratios best PyTorch / jaxgen (> 1: jaxgen faster); 'cpu' ratios compare
  process CPU seconds instead."""
  tk = sorted({k for r in rows for k in r["ms"] if k.startswith("torch")}, key=lambda k: -int(k[6:-1]))
  head = (f"{'row':<20} {'batch':>5} {'jax xla':>9} {'jax shift':>9} " + " ".join(f"{k:>9}" for k in tk)
          + f" {'t/j xla':>7} {'t/j shift':>9} {'cpu xla':>7} {'cpu shift':>9}  load 1-min")
  lines = [head, "-" * len(head)]
  f = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "—"
  g = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "—"
  for r in rows:
    ms, ratio, cpu = r["ms"], r.get("ratio", {}), r.get("cpu_ratio", {})
    lines.append(f"{r['row']:<20} {r['batch']:>5} {f(ms.get('jax_xla', ms.get('jax'))):>9} "
                 f"{f(ms.get('jax_shift')):>9} " + " ".join(f"{f(ms.get(k)):>9}" for k in tk)
                 + f" {g(ratio.get('jax_xla', ratio.get('jax'))):>7} {g(ratio.get('jax_shift')):>9} "
                 f"{g(cpu.get('jax_xla', cpu.get('jax'))):>7} {g(cpu.get('jax_shift')):>9}  "
                 f"{r['load_before'][:1]}→{r['load_after'][:1]}")
    if r.get("torch_error"):
      lines.append(f"  torch: {r['torch_error']}")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", nargs="+", default=["edm_train", *BACKBONES], choices=["edm_train", *BACKBONES])
  p.add_argument("--batch", nargs="+", type=int, default=[1, 64], help="inference batches of the backbone rows")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--iters", type=int, default=0, help="timed calls per contender and round (0: 1 for the "
                 "training step and batch ≥ 64, 3 at smaller batches)")
  p.add_argument("--torch-python", default=os.environ.get("JAXGEN_TORCH_PYTHON", sys.executable))
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--torch-threads", nargs="+", type=int, default=None,
                 help="PyTorch intra-op thread counts to time (default: the core count and 1)")
  p.add_argument("--edm-repo", default=None, help="git dir of github.com/NVlabs/edm (for the edm_train row)")
  p.add_argument("--edm-size", default="full", choices=["full", "tiny"],
                 help="edm_train network: 'full' DDPM++ CIFAR-10 (55.7M) or 'tiny' (32 channels, mult 1,2, one "
                      "block per level, attention at 16²: the same code paths, for a loaded CPU)")
  p.add_argument("--out", default=DEFAULT_OUT)
  p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.torch_worker:
    return worker_main(a.edm_repo, a.edm_size)
  import jax

  from jaxgen.eval import results as results_lib
  torch = None if a.no_torch else TorchClient(a.torch_python, a.edm_repo, a.edm_size)
  if torch is not None and torch.error:
    print(f"note: {torch.error}; timing jaxgen only.", flush=True)
  started, load0, rows = datetime.datetime.now(datetime.timezone.utc), _load(), []
  threads = a.torch_threads or sorted({os.cpu_count() or 1, 1}, reverse=True)
  plan = [(r, b) for r in a.rows for b in ([EDM_BATCH] if r == "edm_train" else a.batch)]

  def save(complete: bool):   # after every row, so an interrupted run keeps what it measured
    result = dict(benchmark="benchmarks/cpu_vs_torch.py", argv=sys.argv[1:] if argv is None else list(argv),
                  date=started.strftime("%Y-%m-%d %H:%M UTC"), complete=complete,
                  machine=dict(cpu=results_lib.cpu_name(), cores=os.cpu_count(), platform=platform.platform(),
                               backend=jax.default_backend()),
                  jax=jax.__version__, torch=torch.version if torch is not None else None,
                  torch_threads=threads, load_before=load0, load_after=_load(), rounds=a.rounds, rows=rows)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".tmp", "w") as f:
      json.dump(result, f, indent=1)
    os.replace(a.out + ".tmp", a.out)

  try:
    for row, batch in plan:
      iters = a.iters or (1 if row == "edm_train" or batch >= 64 else 3)
      rows.append(run_row(row, batch, torch, a.rounds, iters, a.edm_size, threads))
      print(render(rows[-1:]).split("\n", 2)[-1], flush=True)
      save(False)
  finally:
    if torch is not None:
      torch.close()
  save(True)
  print()
  print(render(rows))
  print(f"wrote {a.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
