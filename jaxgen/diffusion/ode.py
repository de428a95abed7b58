"""ODE integrators over pytrees, each one compiled program (``lax.scan`` / ``lax.while_loop``).

``f(y, t) -> dy/dt`` with ``y`` any pytree of float arrays and ``t`` a float32 scalar.

- ``odeint_fixed(f, y0, ts, method)``: explicit Euler (1 evaluation per step), Heun / explicit
  trapezoid (2), classical RK4 (4) on a given grid ``ts`` (increasing or decreasing).
- ``odeint_rk45(f, y0, t0, t1, rtol, atol)``: adaptive Dormand–Prince 5(4) (Dormand & Prince 1980;
  Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4–5) with first-same-as-last, the error norm
  RMS((y5 − y4)/(atol + rtol·max(|y|, |y_new|))) over every element of the state, step factor
  safety·err^{−1/5} clipped to [min_factor, max_factor] (≤ 1 after a rejection), and Hairer's starting
  step. ``fixed_steps=n`` instead takes n equal Dormand–Prince steps without error control, so the cost
  (NFE = 6n + 1) is the same on every device, for multi-device runs. The result counts the function
  evaluations inside the compiled program. Under ``jax.vmap`` each example gets its own steps.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgen.errors import ConfigError

f32 = jnp.float32
tree_map = jax.tree_util.tree_map


def _axpy(y, h, ks, coeffs):
  """y + h·Σ c_i k_i over pytrees (terms with c_i = 0 skipped)."""
  def comb(y_leaf, *k_leaves):
    acc = None
    for c, k in zip(coeffs, k_leaves):
      if c != 0:
        term = c * k
        acc = term if acc is None else acc + term
    return y_leaf if acc is None else y_leaf + (h * acc).astype(y_leaf.dtype)
  return tree_map(comb, y, *ks)


# -- fixed step -------------------------------------------------------------------------------

_TABLEAUS = {
    # (c, A, b): explicit Runge–Kutta tableaus
    "euler": ((0.0,), ((),), (1.0,)),
    "heun": ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "rk4": ((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}


def rk_step(f: Callable, y, t, h, method: str = "heun"):
  """One explicit Runge–Kutta step of size h from (t, y); returns y(t + h)."""
  if method not in _TABLEAUS:
    raise ConfigError(f"unknown method {method!r}: use one of {', '.join(_TABLEAUS)}.")
  c, A, b = _TABLEAUS[method]
  ks = []
  for ci, ai in zip(c, A):
    yi = _axpy(y, h, ks, ai) if ks else y
    ks.append(f(yi, t + ci * h))
  return _axpy(y, h, ks, b)


def odeint_fixed(f: Callable, y0, ts, method: str = "heun", *, return_trajectory: bool = False):
  """Integrate from ts[0] to ts[-1] over the grid ``ts`` with Euler, Heun or RK4.

  Returns y(ts[-1]), or (y(ts[-1]), trajectory) with the trajectory stacked over ts[1:].
  NFE = (len(ts) − 1) × {euler: 1, heun: 2, rk4: 4}.
  """
  if method not in _TABLEAUS:
    raise ConfigError(f"unknown method {method!r}: use one of {', '.join(_TABLEAUS)}.")
  ts = jnp.asarray(ts, f32)

  def body(y, tt):
    t, t_next = tt
    y = rk_step(f, y, t, t_next - t, method)
    return y, (y if return_trajectory else None)

  y, traj = lax.scan(body, y0, (ts[:-1], ts[1:]))
  return (y, traj) if return_trajectory else y


def fixed_nfe(num_steps: int, method: str) -> int:
  return num_steps * len(_TABLEAUS[method][0])


# -- Dormand–Prince 5(4) ----------------------------------------------------------------------

_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = ((),
         (1 / 5,),
         (3 / 40, 9 / 40),
         (44 / 45, -56 / 15, 32 / 9),
         (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
         (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
         (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)        # 5th order
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_DP_E = tuple(b - b4 for b, b4 in zip(_DP_B, _DP_B4))                          # y5 − y4 per h·k


class ODESolution(NamedTuple):
  y: Any               # state at t1 (or where the solver stopped)
  t: jax.Array         # time reached
  nfe: jax.Array       # function evaluations (int32), counted in the compiled program
  num_steps: jax.Array  # accepted steps
  num_rejected: jax.Array
  success: jax.Array   # reached t1 within max_steps


def _dp_step(f, y, k1, t, h):
  """One Dormand–Prince step: (y5, k7 = f(y5, t+h), error estimate y5 − y4)."""
  ks = [k1]
  for i in range(1, 7):
    yi = _axpy(y, h, ks, _DP_A[i])
    if i == 6:
      y5 = yi              # row 7 of A is b: the stage-7 point is the 5th-order solution (FSAL)
    ks.append(f(yi, t + _DP_C[i] * h))
  err = tree_map(lambda *k: h * sum(e * kk for e, kk in zip(_DP_E, k) if e != 0), *ks)
  return y5, ks[-1], err


def _rms_norm(tree, scale_tree):
  leaves = jax.tree_util.tree_leaves(tree_map(lambda e, s: (e.astype(f32) / s) ** 2, tree, scale_tree))
  total = sum(jnp.sum(l) for l in leaves)
  count = sum(l.size for l in leaves)
  return jnp.sqrt(total / count)


def _scale(y, y_new, rtol, atol):
  return tree_map(lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)).astype(f32), y, y_new)


def _initial_step(f, y0, f0, t0, direction, span, rtol, atol):
  """Hairer, Nørsett & Wanner (II.4) starting step for order 5 (one extra evaluation), capped by the span."""
  sc = _scale(y0, y0, rtol, atol)
  d0, d1 = _rms_norm(y0, sc), _rms_norm(f0, sc)
  h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.maximum(d1, 1e-30))
  h0 = jnp.minimum(h0, span)
  y1 = _axpy(y0, direction * h0, [f0], (1.0,))
  f1 = f(y1, t0 + direction * h0)
  d2 = _rms_norm(tree_map(lambda a, b: a - b, f1, f0), sc) / h0
  dm = jnp.maximum(d1, d2)
  h1 = jnp.where(dm <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.maximum(dm, 1e-30)) ** (1 / 5))
  h = jnp.minimum(jnp.minimum(100 * h0, h1), span)
  return jnp.where(jnp.isfinite(h) & (h > 0), h, 1e-3 * span)


def _varying_axes(x) -> set:
  """The manual mesh axes ``x`` varies over inside shard_map (jax ≥ 0.10: ``aval.manual_axis_type
  .varying``; earlier: ``aval.vma``); empty outside shard_map or where the aval carries neither."""
  aval = jax.typeof(x)
  mat = getattr(aval, "manual_axis_type", None)
  return set(getattr(mat, "varying", None) or getattr(aval, "vma", None) or ())


def _vary_like(tree, ref):
  """Marks every leaf of ``tree`` as varying over the manual mesh axes ``ref``'s leaves vary over.

  Inside ``shard_map`` (check_vma on), the adaptive loop's step size, time and counters depend on the
  local shard, so the carry must start device-varying like y; outside shard_map this is the identity.
  """
  axes = set()
  for leaf in jax.tree_util.tree_leaves(ref):
    axes |= _varying_axes(leaf)
  if not axes:
    return tree

  def cast(a):
    missing = tuple(sorted(axes - _varying_axes(a)))
    if not missing:
      return a
    if hasattr(lax, "pcast"):
      return lax.pcast(a, missing, to="varying")
    return lax.pvary(a, missing)

  return tree_map(cast, tree)


def odeint_rk45(f: Callable, y0, t0, t1, *, rtol: float = 1e-5, atol: float = 1e-5,
                first_step: float | None = None, max_steps: int = 4096, safety: float = 0.9,
                min_factor: float = 0.2, max_factor: float = 10.0,
                fixed_steps: int | None = None) -> ODESolution:
  """Adaptive Dormand–Prince 5(4) from t0 to t1 (either direction); see the module docstring."""
  t0 = jnp.asarray(t0, f32)
  t1 = jnp.asarray(t1, f32)
  y0 = tree_map(lambda a: jnp.asarray(a), y0)
  f0 = f(y0, t0)
  if fixed_steps is not None:
    if not isinstance(fixed_steps, (int, np.integer)) or fixed_steps < 1:
      raise ConfigError(f"fixed_steps must be a positive int, got {fixed_steps!r}.")
    h = (t1 - t0) / fixed_steps

    def body(carry, i):
      y, k = carry
      t = t0 + i.astype(f32) * h
      y, k, _ = _dp_step(f, y, k, t, h)
      return (y, k), None

    (y, _), _ = lax.scan(body, (y0, f0), jnp.arange(fixed_steps))
    n = jnp.int32(fixed_steps)
    return ODESolution(y, t1, 6 * n + 1, n, jnp.int32(0), jnp.bool_(True))

  direction = jnp.sign(t1 - t0)
  direction = jnp.where(direction == 0, 1.0, direction)
  span = jnp.abs(t1 - t0)
  if first_step is None:
    h_abs = _initial_step(f, y0, f0, t0, direction, span, rtol, atol)
    nfe0 = 2
  else:
    h_abs = jnp.asarray(first_step, f32)
    nfe0 = 1
  # state: (t, y, k1, |h|, nfe, accepted, rejected)
  init = (t0, y0, f0, jnp.minimum(h_abs, span), jnp.int32(nfe0), jnp.int32(0), jnp.int32(0))
  init = _vary_like(init, (y0, f0))

  def cond(state):
    t, _, _, _, _, acc, rej = state
    return (direction * (t1 - t) > 0) & (acc + rej < max_steps)

  def body(state):
    t, y, k1, h_abs, nfe, acc, rej = state
    remaining = jnp.abs(t1 - t)
    last = h_abs >= remaining * (1 - 1e-6)
    h_abs = jnp.where(last, remaining, h_abs)
    h = direction * h_abs
    y_new, k_new, err = _dp_step(f, y, k1, t, h)
    err_norm = _rms_norm(err, _scale(y, y_new, rtol, atol))
    ok = err_norm <= 1.0
    factor = jnp.where(err_norm == 0, max_factor,
                       jnp.clip(safety * err_norm ** (-1 / 5), min_factor, max_factor))
    factor = jnp.where(ok, factor, jnp.minimum(factor, 1.0))
    finite = jnp.isfinite(err_norm)
    factor = jnp.where(finite, factor, min_factor)
    ok = ok & finite
    t_new = jnp.where(ok, jnp.where(last, t1, t + h), t)
    pick = lambda a, b: jnp.where(ok, a, b)
    return (t_new, tree_map(pick, y_new, y), tree_map(pick, k_new, k1), h_abs * factor,
            nfe + 6, acc + ok.astype(jnp.int32), rej + (~ok).astype(jnp.int32))

  t, y, _, _, nfe, acc, rej = lax.while_loop(cond, body, init)
  return ODESolution(y, t, nfe, acc, rej, direction * (t1 - t) <= 0)


__all__ = ["rk_step", "odeint_fixed", "fixed_nfe", "odeint_rk45", "ODESolution"]
