"""Roofline of EDM's DDPM++ CIFAR-10 training step and denoiser call, from the jaxpr (not a test; no GPU).

    python benchmarks/diffusion_roofline.py                          # ddpmpp_cifar10, batch 512, bf16, H200
    python benchmarks/diffusion_roofline.py --peak-tflops 788 --hbm-tbs 4.8 --measured-train 3076 \
        --measured-sample 275 --chains 8
    python benchmarks/diffusion_roofline.py --model ncsnpp_cifar10 --measured-train 0 --measured-sample 0

CONCLUSION (bf16, batch 512, one H200: 788 TFLOP/s measured bf16 matmul rate, 4.8 TB/s HBM; an
accounting of the traced program, not a profile):
1. FLOPs: 127.1 GFLOP/img per training step (every tap; 120.5 without padded taps, XLA's cost analysis
   121.3), 42.4 per denoiser call. 93% are 3×3 convs at ≈1,200 FLOP/B (a 3×3 conv with C channels has
   ≈4.5·C FLOP/B at any resolution; ridge point 164), 6% 1×1 convs at the ridge (156–167), attention
   0.8%. No conv is memory-bound by itself; small resolutions (8², 16²) are not the problem. DDPM++
   resamples with the [1,1] filter (reshape-mean / broadcast, fused): it has no depthwise FIR conv;
   NCSN++'s [1,3,3,1] ones are 0.07 GFLOP and 8 MB per image (≤ 1 ms per step at full bandwidth).
2. Matmuls at peak take 82.6 ms per training step (6,198 img/s) and 27.5 ms per denoiser call (531 img/s):
   the measured 3,076 and 275 img/s are 50% and 52% of that. Neither compute nor bandwidth alone bounds
   them: their *sum* does. XLA runs the cuDNN convs and the memory-bound fusions between them one after
   another, and the fusions (GroupNorm with float32 statistics and a two-pass variance = 3 reads of its
   input, SiLU, bias/residual adds, dropout, casts; in training also the backward of all that) move, even
   ideally fused (model b), 571 MB/img per training step (61 ms) and 116 MB/img per denoiser call (12 ms).
   Serial sum: ≤ 3,529 and ≤ 362 img/s; measured 87% and 76% of it, i.e. convs at ≈79% / 68% of the
   matmul peak with ideal fusion, or fusions ≈1.4× / 2.1× the ideal traffic at peak convs (unfused, model
   a, would give 1,460 / 131: XLA fuses most of it). Only a profile splits the remainder.
3. The biggest avoidable term was GroupNorm's float32 residuals: autodiff saved x − μ twice in float32
   plus the SiLU's y and sigmoid(y) (76 MB/img of float32 written forward, 116 MB/img read back in the
   2-pass backward; 85.9 GB of saved residuals at batch 512, all layers). Done here
   (jaxgen/models/unet_song.py): GroupNorm+SiLU as one function under jax.checkpoint saving only the
   [B, G] statistics (forward bitwise identical, gradients equal to float32 rounding): model-b traffic
   571 → 290 MB/img, serial bound 3,529 → 4,448 img/s (+26%; at the measured 87% efficiency ≈ 3,880
   img/s), saved residuals 27.1 GB; float32: 951 → 552 MB/img. Sampling is unchanged (forward only).
4. Further candidates (serial bounds, training / sampling): one-pass (Welford) statistics 4,620 / 383
   (not bitwise identical: a numerics decision); statistics produced in the conv epilogue 4,918 / 407
   (needs a conv kernel XLA cannot fuse into cuDNN: Pallas/Triton or cuDNN-frontend fusion); overlap of
   fusions with convs up to 6,198 / 531. Sampling ≥ 390 img/s needs one of the last two and convs near
   peak (even ideal chains give 362). Not worth it:
   layout (NHWC throughout; the jaxpr's transposes are 1×1 weights and attention's, no activation
   transposes around convs: check the optimized HLO for layout copies), separable FIR resampling
   (none in DDPM++), cuDNN attention (0.8% of FLOPs; 1 head of 256 channels), whole-network remat
   saving only matmul outputs (+147 MB/img with or without the GroupNorm change). Dropout's threefry
   RNG: 3.5 M words/img ≈ 4 ms of ALU per step (≈3%), hidden while its fusions are memory-bound.
5. A GPU session should first: (i) ``diffusion_throughput.py --dtype bfloat16`` with and without
   ``--no-norm-remat`` (the GroupNorm change is unmeasured); (ii) profile one step and one denoiser call
   (``jax.profiler.trace``) and sum kernel time over cuDNN convs vs XLA fusions against 82.6 / 27.5 ms
   and 290 / 116 MB/img here: convs well under 80% of peak point at conv algorithms/autotuning
   (``--xla_gpu_autotune_level``), fusions well over their bytes at split or unfused GroupNorm passes
   (dump the optimized HLO: ``--xla_dump_to``); (iii) then the one-pass-statistics A/B.

Method. The bf16 training step of ``benchmarks/diffusion_throughput.py`` (``jaxgen.diffusion.edm_loss``
through ``precondition``, value_and_grad, Adam) and the bf16 denoiser forward are traced abstractly
(``jax.make_jaxpr`` on ``ShapeDtypeStruct``s: nothing of full size is executed). The jaxpr is flattened
(pjit / custom_jvp / custom_vjp / remat sub-jaxprs inlined with their variables aliased; scan / while /
cond bodies counted once per iteration, their boundaries treated as memory) and every equation is
accounted for:

- ``conv_general_dilated`` and ``dot_general``: FLOPs = 2·MACs, every kernel tap counted (the usual
  paper count, docs/reference.md §6); also the "valid taps" count, which skips taps that fall on zero
  padding as XLA's cost analysis does. Depthwise convolutions (the FIR [1,3,3,1] resampling of
  NCSN++) are listed apart: cuDNN runs them memory-bound, so they are costed as memory.
- every other primitive: the bytes of its operands and results.

Memory traffic, two fusion models (HBM bytes; weights counted at every use):

(a) unfused: every non-matmul primitive reads its operands and writes its result (reshape / squeeze /
    expand_dims / broadcast_in_dim are free views: a consumer of a broadcast reads its source).
(b) ideally fused: the non-matmul primitives between two consecutive large matmuls (in program order;
    "large": an operand of ≥ 1,024 elements per image, so the embedding MLP does not split a chain)
    form one kernel that reads each tensor it needs from outside once per *pass* and writes each
    tensor used outside once. A pass ends at a reduction of a large tensor (GroupNorm mean, variance,
    the backward Σdy, Σdy·x̂...): what follows recomputes from the kernel's inputs, or re-reads a
    tensor the kernel writes out anyway, whichever moves fewer bytes. As written (two-pass variance,
    torch's group_norm) a GroupNorm reads its input 3×; "(b1)" caps every chain at 2 passes (one-pass
    Welford statistics + normalize), "(b0)" at 1 (statistics delivered by the producing conv).
Matmuls read their operands and write their result once in both models.

Bounds on img/s: "roofline" = batch / max(matmul time at peak, memory time) (perfect overlap);
"serial" = batch / (Σ over matmuls of max(FLOP time, own-bytes time) + non-matmul bytes / HBM)
(XLA on a GPU runs cuDNN/cuBLAS calls and fusions one after another on one stream).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.extend import core as jcore  # noqa: E402

import diffusion_throughput as dt  # noqa: E402  (the benchmark's step: what is measured is what is traced)
import jaxgen.models as M  # noqa: E402
from jaxgen.models import unet_song  # noqa: E402

CONCLUSION = __doc__[__doc__.index("CONCLUSION"):__doc__.index("Method.")].rstrip()

FREE = {"reshape", "squeeze", "expand_dims", "broadcast_in_dim", "iota", "random_wrap", "random_unwrap",
        "random_seed", "random_fold_in", "random_split", "stop_gradient", "copy_p"}
CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")   # parameter names of inlined sub-jaxprs
LOOPS = {"scan", "while", "cond"}
# threefry2x32: 20 rounds of (add, rotate, xor) + 5 key injections ≈ 75 int32 ops per 2 words, plus the
# uniform/compare of bernoulli; an estimate, not a measurement.
THREEFRY_OPS_PER_WORD = 40


@dataclasses.dataclass
class Op:
  prim: str
  ins: list            # [(var id, aval)] (literals dropped)
  outs: list           # [(var id, aval)]
  params: dict
  scope: str           # '/'-joined names of the enclosing pjit calls
  bwd: bool            # inside a transpose (the backward pass)
  mult: float = 1.0    # times executed (loop bodies)


def _itemsize(dtype) -> int:
  try:
    return np.dtype(dtype).itemsize
  except TypeError:   # PRNG key arrays: threefry keys are 2 × uint32
    return 8


def _nbytes(aval) -> int:
  return int(np.prod(aval.shape, dtype=np.int64)) * _itemsize(aval.dtype) if hasattr(aval, "shape") else 0


def _numel(aval) -> int:
  return int(np.prod(aval.shape, dtype=np.int64)) if hasattr(aval, "shape") else 0


class Flattener:
  """Inlines call-like sub-jaxprs into one list of ``Op``s with global variable ids."""

  def __init__(self):
    self.ops: list[Op] = []
    self._next = 0

  def _new(self):
    self._next += 1
    return self._next

  def run(self, closed):
    env = {}
    for v in closed.jaxpr.constvars:
      env[v] = self._new()
    ins = [self._new() for _ in closed.jaxpr.invars]
    for v, i in zip(closed.jaxpr.invars, ins):
      env[v] = i
    self.inputs = list(zip(ins, [v.aval for v in closed.jaxpr.invars]))
    self._walk(closed.jaxpr, env, "", False, 1.0)
    self.outputs = [(env[v], v.aval) for v in closed.jaxpr.outvars if not isinstance(v, jcore.Literal)]
    return self

  def _ids(self, env, vs):
    return [(env[v], v.aval) for v in vs if not isinstance(v, jcore.Literal) and v in env]

  def _walk(self, jaxpr, env, scope, bwd, mult):
    for eqn in jaxpr.eqns:
      prim = eqn.primitive.name
      stack = str(eqn.source_info.name_stack)
      e_bwd = bwd or "transpose" in stack
      sub = next((eqn.params[k] for k in CALLS if k in eqn.params and prim not in LOOPS), None)
      if sub is not None and prim not in LOOPS:
        inner = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
        ienv = {}
        for v in inner.constvars:
          ienv[v] = self._new()
        for v_out, v_in in zip(eqn.invars, inner.invars):
          ienv[v_in] = env[v_out] if not isinstance(v_out, jcore.Literal) else self._new()
        name = eqn.params.get("name", prim)
        self._walk(inner, ienv, f"{scope}/{name}", e_bwd or "transpose" in str(name), mult)
        for v_out, v_in in zip(eqn.outvars, inner.outvars):
          env[v_out] = ienv[v_in] if not isinstance(v_in, jcore.Literal) else self._new()
        continue
      for v in eqn.outvars:
        env[v] = self._new()
      if prim in LOOPS:   # loop bodies: their own ids; the loop's operands/results are memory
        self.ops.append(Op(prim, self._ids(env, eqn.invars), self._ids(env, eqn.outvars), {}, scope, e_bwd, mult))
        n = eqn.params.get("length", 1) if prim == "scan" else 1
        for j in jcore.jaxprs_in_params(eqn.params):
          inner = j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j
          ienv = {v: self._new() for v in list(inner.constvars) + list(inner.invars)}
          self._walk(inner, ienv, f"{scope}/{prim}", e_bwd, mult * n)
        continue
      self.ops.append(Op(prim, self._ids(env, eqn.invars), self._ids(env, eqn.outvars), dict(eqn.params),
                         scope, e_bwd, mult))


# -- matmul accounting -------------------------------------------------------------------------------

def _valid_taps(n_in, n_out, k, stride, rhs_dil, lhs_dil, pad_lo) -> int:
  """Σ over output positions of the kernel taps that land on a real (not padded/dilated) input."""
  o = np.arange(n_out)[:, None]
  kk = np.arange(k)[None, :]
  i = o * stride + kk * rhs_dil - pad_lo
  ok = (i >= 0) & (i <= (n_in - 1) * lhs_dil) & (i % lhs_dil == 0)
  return int(ok.sum())


def conv_info(op):
  """(FLOPs all taps, FLOPs valid taps, depthwise?, resolution, kernel size) of a conv_general_dilated."""
  (_, lhs), (_, rhs) = op.ins[:2]
  out = op.outs[0][1]
  dn = op.params["dimension_numbers"]
  lspec, rspec, ospec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  nsp = len(lspec) - 2
  batch_out = out.shape[ospec[0]]
  f_out = out.shape[ospec[1]]
  rhs_in = rhs.shape[rspec[1]]
  k = [rhs.shape[rspec[2 + d]] for d in range(nsp)]
  o_sp = [out.shape[ospec[2 + d]] for d in range(nsp)]
  l_sp = [lhs.shape[lspec[2 + d]] for d in range(nsp)]
  strides = op.params["window_strides"]
  pads = op.params["padding"]
  ld = op.params.get("lhs_dilation") or (1,) * nsp
  rd = op.params.get("rhs_dilation") or (1,) * nsp
  macs_all = batch_out * f_out * rhs_in * int(np.prod(o_sp)) * int(np.prod(k))
  valid = 1
  for d in range(nsp):
    valid *= _valid_taps(l_sp[d], o_sp[d], k[d], strides[d], rd[d], ld[d], pads[d][0])
  macs_valid = batch_out * f_out * rhs_in * valid
  g = op.params.get("feature_group_count", 1)
  depthwise = g > 1 and rhs_in == 1
  res = max(l_sp)
  ksz = min(max(k), max(o_sp))
  return 2 * macs_all, 2 * macs_valid, depthwise, res, ksz


def dot_flops(op):
  (_, a), (_, b) = op.ins[:2]
  out = op.outs[0][1]
  (ca, _), _ = op.params["dimension_numbers"]
  return 2 * _numel(out) * int(np.prod([a.shape[d] for d in ca]))


@dataclasses.dataclass
class Matmul:
  kind: str         # '3×3 conv', '1×1 conv', 'attention', 'dense', 'depthwise FIR', 'conv k×k'
  res: int
  flops: float
  flops_valid: float
  bytes: float
  bwd: bool


def classify_matmul(op, batch) -> Matmul:
  io = sum(_nbytes(a) for _, a in op.ins) + sum(_nbytes(a) for _, a in op.outs)
  if op.prim == "conv_general_dilated":
    f, fv, dw, res, k = conv_info(op)
    kind = "depthwise FIR" if dw else f"{k}×{k} conv"
    return Matmul(kind, res, f * op.mult, fv * op.mult, io * op.mult, op.bwd)
  f = dot_flops(op)
  out = op.outs[0][1]
  (_, _), (lb, _) = op.params["dimension_numbers"]
  shapes = [a.shape for _, a in op.ins]
  if lb and any(len(sh) >= 4 for sh in shapes):   # batched over (batch, heads): attention's QKᵀ, PV and grads
    tokens = min(d for d in out.shape[len(lb):] if d > 1)
    kind, res = "attention", int(round(math.sqrt(tokens)))
  elif any(len(sh) == 4 for sh in shapes):       # the 1×1 convs written as einsum (and their grads)
    kind, res = "1×1 conv", next(sh[1] for sh in shapes if len(sh) == 4)
  else:
    kind, res = "dense", 0
  return Matmul(kind, res, f * op.mult, f * op.mult, io * op.mult, op.bwd)


def is_matmul(op):
  return op.prim in ("conv_general_dilated", "dot_general")


def is_boundary(op, batch):
  """A kernel of its own: convolutions, and dots with an operand of ≥ 1,024 elements per image."""
  if op.prim == "conv_general_dilated":
    return True
  if op.prim == "dot_general":
    return max(_numel(a) for _, a in op.ins + op.outs) >= 1024 * batch
  return op.prim in LOOPS


# -- non-matmul traffic ---------------------------------------------------------------------------

PRIM_CLASS = {
    "convert_element_type": "casts",
    "reduce_sum": "reductions", "reduce_max": "reductions", "reduce_min": "reductions", "argmax": "reductions",
    "exp": "transcendental", "exp2": "transcendental", "log": "transcendental", "logistic": "transcendental",
    "tanh": "transcendental", "rsqrt": "transcendental", "sqrt": "transcendental", "sin": "transcendental",
    "cos": "transcendental", "erf_inv": "transcendental", "log1p": "transcendental", "pow": "transcendental",
    "random_bits": "dropout RNG", "threefry2x32": "dropout RNG", "shift_right_logical": "dropout RNG",
    "concatenate": "data movement", "slice": "data movement", "pad": "data movement",
    "transpose": "data movement", "dynamic_slice": "data movement", "dynamic_update_slice": "data movement",
    "gather": "data movement", "scatter-add": "data movement", "scatter_add": "data movement",
    "select_n": "select", "reduce_precision": "casts",
}


class Graph:
  def __init__(self, fl: Flattener, batch: int):
    self.fl, self.batch = fl, batch
    self.ops = fl.ops
    self.producer = {}
    for i, op in enumerate(self.ops):
      for vid, _ in op.outs:
        self.producer[vid] = i
    self.consumers = collections.defaultdict(set)
    for i, op in enumerate(self.ops):
      for vid, _ in op.ins:
        self.consumers[vid].add(i)
    self.out_ids = {vid for vid, _ in fl.outputs}
    self.aval = {}
    for op in self.ops:
      for vid, a in op.ins + op.outs:
        self.aval[vid] = a
    self.boundary = [is_boundary(op, batch) for op in self.ops]

  def source(self, vid):
    """A free view's source (what a consumer really reads)."""
    while vid in self.producer and self.ops[self.producer[vid]].prim in FREE and self.ops[self.producer[vid]].ins:
      op = self.ops[self.producer[vid]]
      vid = max(op.ins, key=lambda x: _numel(x[1]))[0]
    return vid

  # (a) unfused
  def unfused(self):
    by_class = collections.Counter()
    for i, op in enumerate(self.ops):
      if self.boundary[i] or op.prim in FREE:
        continue
      b = sum(_nbytes(self.aval[self.source(v)]) for v, _ in op.ins) + sum(_nbytes(a) for _, a in op.outs)
      by_class[PRIM_CLASS.get(op.prim, "elementwise arith")] += b * op.mult
    return by_class

  # (b) ideally fused
  def clusters(self):
    cl, cur, out = [], [], []
    for i in range(len(self.ops)):
      if self.boundary[i]:
        if cur:
          out.append(cur)
        cur = []
      else:
        cur.append(i)
    if cur:
      out.append(cur)
    return out

  def fused(self, max_passes=None):
    """(bytes, re-read bytes of passes after the first, per-chain list, breakdown Counter) over chains;
    ``max_passes`` caps the passes of a chain. Breakdown keys: (fwd|bwd, read|write, dtype)."""
    total, extra, per_chain, brk = 0.0, 0.0, [], collections.Counter()
    for chain in self.clusters():
      members = set(chain)
      big = max((_numel(a) for i in chain for _, a in self.ops[i].ins + self.ops[i].outs), default=0)
      large = lambda vid: _numel(self.aval[vid]) * 64 >= big and _numel(self.aval[vid]) >= 1024 * self.batch
      writes = set()
      for i in chain:
        for vid, _ in self.ops[i].outs:
          if vid in self.out_ids or any(c not in members for c in self.consumers[vid]):
            writes.add(vid)
      nb = lambda vs: sum(_nbytes(self.aval[self.source(v)]) for v in vs)
      is_red = lambda q: q.prim.startswith("reduce_") or q.prim == "argmax"
      passes, needed, memo = {}, {}, {}

      def need_for(vid, p):
        """External tensors read to have ``vid`` at pass ``p``: recompute it from the chain's inputs, or
        re-read it when the chain writes it out in an earlier pass anyway (whichever moves fewer bytes)."""
        j = self.producer.get(vid)
        if j is None or j not in members:
          return frozenset([vid])
        if is_red(self.ops[j]) and not large(vid):
          return frozenset()             # a statistic: kept on chip
        if (vid, p) not in memo:
          rec = frozenset().union(*[need_for(u, p) for u, _ in self.ops[j].ins])
          if passes[j] < p and vid in writes and nb([vid]) <= nb(rec):
            rec = frozenset([vid])
          memo[(vid, p)] = rec
        return memo[(vid, p)]

      for i in chain:
        op = self.ops[i]
        p = 0
        for vid, _ in op.ins:
          j = self.producer.get(vid)
          if j is not None and j in members:
            q = self.ops[j]
            p = max(p, passes[j] + (1 if is_red(q) and any(large(v) for v, _ in q.ins) else 0))
        if max_passes is not None:
          p = min(p, max_passes - 1)
        passes[i] = p
        needed[i] = frozenset().union(*[need_for(vid, p) for vid, _ in op.ins])
      reads = collections.defaultdict(set)
      for i in chain:
        reads[passes[i]] |= needed[i]
      mult = self.ops[chain[0]].mult
      phase = "bwd" if self.ops[chain[-1]].bwd else "fwd"
      rb = []
      for _, vs in sorted(reads.items()):
        rb.append(0)
        for v in vs:
          a = self.aval[self.source(v)]
          rb[-1] += _nbytes(a)
          brk[(phase, "read", str(a.dtype))] += _nbytes(a) * mult
      wb = 0
      for v in writes:
        wb += _nbytes(self.aval[v])
        brk[(phase, "write", str(self.aval[v].dtype))] += _nbytes(self.aval[v]) * mult
      total += (sum(rb) + wb) * mult
      extra += sum(rb[1:]) * mult
      per_chain.append((chain, sum(rb) + wb, len(rb)))
    return total, extra, per_chain, brk


# -- tracing ------------------------------------------------------------------------------------

def abstract_params(model, overrides):
  return M.param_shapes(model, augment_dim=dt.AUGMENT_DIM, dropout=0.13, **overrides)


def trace_train(model, overrides, dtype, batch):
  net = M.create(model, dtype=dtype, augment_dim=dt.AUGMENT_DIM, dropout=0.13, **overrides)
  params = abstract_params(model, overrides)
  opt = dt.make_optimizer()
  opt_state = jax.eval_shape(opt.init, params)
  res = net.img_resolution
  images = jax.ShapeDtypeStruct((batch, res, res, net.in_channels), jnp.float32)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  step = dt.make_train_step(net, opt, batch)
  fn = lambda p, o, x, k: step(p, o, x, jax.random.wrap_key_data(k))
  return jax.make_jaxpr(fn)(params, opt_state, images, key), (fn, (params, opt_state, images, key))


def trace_denoiser(model, overrides, dtype, batch):
  net = M.create(model, dtype=dtype, augment_dim=dt.AUGMENT_DIM, dropout=0.13, **overrides)
  params = abstract_params(model, overrides)
  res = net.img_resolution
  x = jax.ShapeDtypeStruct((batch, res, res, net.in_channels), jnp.float32)
  sigma = jax.ShapeDtypeStruct((batch,), jnp.float32)
  fn = lambda p, x, s: dt.denoiser(net, p)(x, s)
  return jax.make_jaxpr(fn)(params, x, sigma), (fn, (params, x, sigma))


def xla_flops(fn, args, batch_args, small):
  """XLA's cost analysis (flops) of ``fn`` lowered at batch ``small`` (the arguments at positions
  ``batch_args`` shrunk; lowering only, nothing is compiled or run)."""
  sargs = [jax.ShapeDtypeStruct((small,) + a.shape[1:], a.dtype) if i in batch_args else a
           for i, a in enumerate(args)]
  ca = jax.jit(fn).lower(*sargs).cost_analysis()
  if isinstance(ca, (list, tuple)):
    ca = ca[0]
  return float(ca.get("flops", float("nan")))


# -- report -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Account:
  name: str
  batch: int
  matmuls: list
  unfused: collections.Counter
  fused: float
  fused_extra: float
  fused_b1: float
  chains: list
  breakdown: collections.Counter
  rng_words: float = 0.0

  @property
  def flops(self):
    return sum(m.flops for m in self.matmuls if m.kind != "depthwise FIR")

  @property
  def flops_valid(self):
    return sum(m.flops_valid for m in self.matmuls if m.kind != "depthwise FIR")

  @property
  def mm_bytes(self):
    return sum(m.bytes for m in self.matmuls)


def account(closed, batch, name):
  fl = Flattener().run(closed)
  g = Graph(fl, batch)
  mms = [classify_matmul(op, batch) for op in fl.ops if is_matmul(op)]
  un = g.unfused()
  fused, extra, chains, brk = g.fused()
  fused_b1 = g.fused(max_passes=2)[0]
  # Small dots inside chains (embedding MLP) are counted as matmuls for FLOPs; their bytes stay in the chain.
  rng = sum(_numel(op.outs[0][1]) * op.mult for op in fl.ops if op.prim == "random_bits")
  return Account(name, batch, mms, un, fused, extra, fused_b1, chains, brk, rng), g


def fmt(x, unit=""):
  return f"{x:,.1f}{unit}"


def report(acc: Account, peak, bw, measured, nfe=1, int_ops=16.7e12):
  B = acc.batch
  t_mm = acc.flops / peak
  # matmul time, each at max(FLOP time, own bytes time); depthwise convs are memory-bound
  t_mm_serial = sum(max((m.flops if m.kind != "depthwise FIR" else 0) / peak, m.bytes / bw) for m in acc.matmuls)
  unf = sum(acc.unfused.values())
  rows = []
  models = (("(a) unfused", unf), ("(b) ideally fused", acc.fused), ("(b1) fused, 1-pass stats", acc.fused_b1))
  for label, nonmm in models:
    t_mem = (nonmm + acc.mm_bytes) / bw
    roof = B / max(t_mm, t_mem) / nfe
    serial = B / (t_mm_serial + nonmm / bw) / nfe
    rows.append((label, nonmm, t_mem, roof, serial))
  print(f"\n=== {acc.name}: batch {B}{'' if nfe == 1 else f', ×{nfe} NFE'} ===")
  print(f"matmul FLOPs: {acc.flops / B / 1e9:.2f} GFLOP/img (all taps), {acc.flops_valid / B / 1e9:.2f} GFLOP/img "
        f"(valid taps, XLA's convention); at {peak / 1e12:.0f} TFLOP/s: {t_mm * 1e3:.1f} ms/batch "
        f"→ ≤ {B / t_mm / nfe:,.0f} img/s")
  dw = [m for m in acc.matmuls if m.kind == "depthwise FIR"]
  if dw:
    print(f"depthwise FIR convs: {sum(m.flops for m in dw) / B / 1e9:.3f} GFLOP/img, "
          f"{sum(m.bytes for m in dw) / B / 1e6:.1f} MB/img (memory-bound)")
  print(f"matmul operand+result bytes: {acc.mm_bytes / B / 1e6:.1f} MB/img "
        f"({acc.mm_bytes / bw * 1e3:.1f} ms/batch at {bw / 1e12:.1f} TB/s)")
  print(f"| {'memory model':<26} | {'non-matmul MB/img':>17} | {'memory ms/batch':>15} | "
        f"{'roofline img/s':>14} | {'serial img/s':>12} |")
  print("|" + "|".join("-" * w for w in (28, 19, 17, 16, 14)) + "|")
  for label, nonmm, t_mem, roof, serial in rows:
    print(f"| {label:<26} | {nonmm / B / 1e6:17.1f} | {t_mem * 1e3:15.1f} | {roof:14,.0f} | {serial:12,.0f} |")
  if measured:
    t_meas = B / measured / nfe
    t_b = t_mm_serial - t_mm + acc.fused / bw
    print(f"measured {measured:,.0f} img/s = {t_meas * 1e3:.1f} ms/batch: matmuls at peak would be "
          f"{t_mm / t_meas:.0%} of it; the rest, {(t_meas - t_mm) * 1e3:.1f} ms, equals "
          f"{(t_meas - t_mm) * bw / B / 1e6:,.0f} MB/img of HBM traffic at {bw / 1e12:.1f} TB/s, "
          f"{(t_meas - t_mm) * bw / acc.fused:.1f}× model (b); or: with (b) at full bandwidth the matmuls "
          f"ran at {t_mm / (t_meas - t_b):.0%} of peak ({acc.flops / (t_meas - t_b) / 1e12:.0f} TFLOP/s)")
  print("unfused non-matmul bytes by primitive class (MB/img): " + ", ".join(
      f"{k} {v / B / 1e6:.0f}" for k, v in acc.unfused.most_common()))
  if acc.rng_words >= 5e4 * B:
    t_rng = acc.rng_words * THREEFRY_OPS_PER_WORD / int_ops
    print(f"dropout RNG: {acc.rng_words / B / 1e6:.1f} M 32-bit threefry words/img ≈ "
          f"{THREEFRY_OPS_PER_WORD} int32 ops each → {t_rng * 1e3:.1f} ms/batch of ALU time at "
          f"{int_ops / 1e12:.1f} T int32 op/s (hidden only if the mask fusions stay memory-bound)")
  print(f"fused: GroupNorm/backward-statistics re-read passes {acc.fused_extra / B / 1e6:.1f} MB/img of the "
        f"{acc.fused / B / 1e6:.1f}; by phase, direction, dtype (MB/img): " + ", ".join(
      f"{ph} {rw} {d} {v / B / 1e6:.0f}" for (ph, rw, d), v in sorted(acc.breakdown.items()) if v / B >= 5e5))
  return rows


def matmul_table(acc: Account, peak, bw):
  B = acc.batch
  ridge = peak / bw
  groups = collections.defaultdict(lambda: [0.0, 0.0, 0])
  for m in acc.matmuls:
    g = groups[(m.kind, m.res)]
    g[0] += m.flops
    g[1] += m.bytes
    g[2] += 1
  tot = sum(v[0] for v in groups.values())
  print(f"\nmatmuls of the {acc.name} by kind and resolution (ridge point {ridge:.0f} FLOP/B; bytes in "
        f"the traced dtypes):")
  print(f"| {'kind':<13} | {'res':>5} | {'ops':>4} | {'GFLOP/img':>9} | {'share':>6} | {'FLOP/B':>7} | "
        f"{'t_peak ms':>9} | {'t_mem ms':>8} |")
  print("|" + "|".join("-" * w for w in (15, 7, 6, 11, 8, 9, 11, 10)) + "|")
  for (kind, res), (f, b, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
    ai = f / b if b else float("inf")
    print(f"| {kind:<13} | {str(res) + '²' if res else '-':>5} | {n:4d} | {f / B / 1e9:9.3f} | {f / tot:6.1%} | "
          f"{ai:7.0f} | {f / peak * 1e3:9.2f} | {b / bw * 1e3:8.2f} |")
  low = sum(f for (kind, res), (f, b, n) in groups.items() if b and f / b < ridge)
  print(f"FLOPs in matmuls below the ridge point (memory-bound even alone): {low / tot:.1%}")


def serial_img_s(acc, nonmm, peak, bw, nfe=1, conv_eff=1.0):
  t = sum(max((m.flops if m.kind != "depthwise FIR" else 0) / (peak * conv_eff), m.bytes / bw) for m in acc.matmuls)
  return acc.batch / (t + nonmm / bw) / nfe


def whatif(old, tr, de, g_tr, g_de, peak, bw, nfe, a):
  """Serial-model img/s of candidate changes (training, sampling), from the accounts above."""
  b0_tr, b0_de = g_tr.fused(max_passes=1)[0], g_de.fused(max_passes=1)[0]
  rows = [
      ("GroupNorm without remat (as measured), (b)", serial_img_s(old, old.fused, peak, bw),
       serial_img_s(de, de.fused, peak, bw, nfe)),
      ("+ GroupNorm/SiLU remat (this version), (b)", serial_img_s(tr, tr.fused, peak, bw),
       serial_img_s(de, de.fused, peak, bw, nfe)),
      ("+ one-pass statistics (Welford), (b1)", serial_img_s(tr, tr.fused_b1, peak, bw),
       serial_img_s(de, de.fused_b1, peak, bw, nfe)),
      ("+ statistics from the conv epilogue, (b0)", serial_img_s(tr, b0_tr, peak, bw),
       serial_img_s(de, b0_de, peak, bw, nfe)),
      ("this version, (b), convs at 85% of peak", serial_img_s(tr, tr.fused, peak, bw, conv_eff=0.85),
       serial_img_s(de, de.fused, peak, bw, nfe, conv_eff=0.85)),
      ("perfect overlap (roofline), any fusion ≥ (b)", tr.batch / (tr.flops / peak),
       de.batch / (de.flops / peak) / nfe),
  ]
  meas = f"measured {a.measured_train:,.0f} / {a.measured_sample:,.0f}" if a.measured_train else ""
  print(f"\nwhat-if, img/s upper bounds of the serial model (matmuls at peak unless said; {meas}; "
        f"targets 4,300 / 390):")
  print(f"| {'change':<46} | {'train img/s':>11} | {'Heun-18 img/s':>13} |")
  print("|" + "|".join("-" * w for w in (48, 13, 15)) + "|")
  for label, t, smp in rows:
    print(f"| {label:<46} | {t:11,.0f} | {smp:13,.0f} |")


def main(argv=None):
  sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default="ddpmpp_cifar10")
  p.add_argument("--batch", type=int, default=512)
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--peak-tflops", type=float, default=788.0, help="dense bf16 matmul rate (H200, measured)")
  p.add_argument("--hbm-tbs", type=float, default=4.8, help="HBM bandwidth, TB/s (H200 nominal)")
  p.add_argument("--measured-train", type=float, default=3076.0, help="measured training img/s (0: none)")
  p.add_argument("--measured-sample", type=float, default=275.0, help="measured Heun-18 img/s (0: none)")
  p.add_argument("--num-steps", type=int, default=18, help="Heun steps (NFE = 2N − 1)")
  p.add_argument("--xla-batch", type=int, default=4, help="batch of the cost-analysis cross-check (0: skip)")
  p.add_argument("--int-tops", type=float, default=16.7,
                 help="int32 ops/s in T (H200: 132 SMs × 64 lanes × 1.98 GHz), for the dropout RNG")
  p.add_argument("--chains", type=int, default=0, help="print the N most expensive fused chains")
  a = p.parse_args(argv)
  peak, bw = a.peak_tflops * 1e12, a.hbm_tbs * 1e12
  nfe = 2 * a.num_steps - 1
  print(f"jax {jax.__version__}; {a.model}, {a.dtype}, batch {a.batch}; peak {a.peak_tflops:.0f} TFLOP/s, "
        f"HBM {a.hbm_tbs} TB/s (ridge {peak / bw:.0f} FLOP/B)")
  B = a.batch
  closed, (fn_t, args_t) = trace_train(a.model, {}, a.dtype, B)
  tr, g_tr = account(closed, B, "training step (GroupNorm remat, this version)")
  report(tr, peak, bw, 0, int_ops=a.int_tops * 1e12)
  matmul_table(tr, peak, bw)
  unet_song.GROUPNORM_REMAT = False
  try:
    old, _ = account(trace_train(a.model, {}, a.dtype, B)[0], B,
                     "training step (GroupNorm without remat, as measured)")
  finally:
    unet_song.GROUPNORM_REMAT = True
  report(old, peak, bw, a.measured_train, int_ops=a.int_tops * 1e12)
  closed, (fn_d, args_d) = trace_denoiser(a.model, {}, a.dtype, B)
  de, g_de = account(closed, B, "denoiser forward (sampling)")
  report(de, peak, bw, a.measured_sample, nfe=nfe)
  matmul_table(de, peak, bw)
  for acc, g in ((tr, g_tr), (de, g_de))[: 2 if a.chains else 0]:
    print(f"\nmost expensive fused chains of the {acc.name}:")
    for chain, b, npass in sorted(acc.chains, key=lambda c: -c[1])[: a.chains]:
      prims = collections.Counter(g.ops[i].prim for i in chain)
      print(f"  {b / B / 1e6:6.2f} MB/img, {npass} pass(es), {len(chain)} ops: "
            + ", ".join(f"{k}×{v}" for k, v in prims.most_common(6)))
  whatif(old, tr, de, g_tr, g_de, peak, bw, nfe, a)
  if a.xla_batch:
    ft = xla_flops(fn_t, args_t, (2,), a.xla_batch) / a.xla_batch
    fd = xla_flops(fn_d, args_d, (1, 2), a.xla_batch) / a.xla_batch
    print(f"\ncross-check, GFLOP/img: training step {tr.flops / B / 1e9:.2f} (all taps) / "
          f"{tr.flops_valid / B / 1e9:.2f} (valid taps) vs XLA cost analysis {ft / 1e9:.2f} (lowered at batch "
          f"{a.xla_batch}, counts elementwise ops too); docs/reference.md §6: ≈127 (3 × 2 × 21.2 GMAC); "
          f"denoiser {de.flops / B / 1e9:.2f} / {de.flops_valid / B / 1e9:.2f} vs XLA {fd / 1e9:.2f} "
          "(2 × 21.2 = 42.4)")
  print("\n" + CONCLUSION)
  return 0


if __name__ == "__main__":
  sys.exit(main())
