"""The ``score_sde_bpd`` evaluator: bits/dim of the eval split by score_sde's protocol (docs/convert.md
"## score_sde"; ``jaxgen.eval.bpd.score_sde_nll``).

    c.evals.nll = dict(type="score_sde_bpd", sde="subvpsde")                      # CIFAR-10: 5 passes
    c.evals.nll = dict(type="score_sde_bpd", sde="vesde", num_repeats=1, limit=1000)

The data point is x at t = ``eps``, the PF-ODE runs to T = 1 with score_sde's prior (N(0, I) for VP/sub-VP,
N(0, σ_max²) on [0, 1] data for VE), RK45 at ``rtol``/``atol``, one Rademacher probe per image, the split
scored ``num_repeats`` times with fresh dequantization and probes. ``sde`` names score_sde's SDE of the
task's preconditioning (task.precond 'vp' → vpsde, 'subvp' → subvpsde, 've' → vesde) with its constants
(``beta_min``/``beta_max``; ``sigma_min``/``sigma_max`` in score_sde's [0, 1] units, half of jaxgen's); the
task's schedule σ_max must equal that SDE's σ(T) to 1e-7 (VP's and sub-VP's differ by 2·10⁻⁵; a mismatch is
a ConfigError). Reports ``bpd``,
``bpd_sem``, ``num_images`` (per pass) and ``num_repeats``.
"""

from __future__ import annotations

import math

from jaxgen.errors import ConfigError
from jaxgen.eval.evaluators import _facts, register

__all__ = ["score_sde_bpd"]


@register("score_sde_bpd", needs=("denoise", "data"), batches=True,
          bounds=dict(sde=dict(choices=("vpsde", "subvpsde", "vesde")), num_repeats=dict(min=1),
                      limit=dict(min=0), eps=dict(above=0.0), rtol=dict(above=0.0), atol=dict(above=0.0),
                      beta_min=dict(above=0.0), beta_max=dict(above=0.0), sigma_min=dict(above=0.0),
                      sigma_max=dict(above=0.0)))
def score_sde_bpd(fns, key, batches, *, sde: str = "subvpsde", beta_min: float = 0.1, beta_max: float = 20.0,
                  sigma_min: float = 0.01, sigma_max: float = 50.0, eps: float = 1e-5, num_repeats: int = 5,
                  limit: int = 0, rtol: float = 1e-5, atol: float = 1e-5) -> dict:
  """score_sde's bits/dim of the eval split (module docstring)."""
  from jaxgen.eval import bpd as bpd_lib  # noqa: PLC0415

  spec = dict(name=sde, beta_min=beta_min, beta_max=beta_max, sigma_min=sigma_min, sigma_max=sigma_max,
              T=1.0, eps=eps)
  want = bpd_lib.score_sde_terms(spec)["sigma_max"]
  have = _facts(fns).get("sigma_max")
  if have is not None and not math.isclose(float(have), want, rel_tol=1e-7):   # VP vs sub-VP: 2e-5
    raise ConfigError(f"evals score_sde_bpd: sde={sde!r} reaches σ = {want:.6g} at T = 1 (jaxgen units) but the "
                      f"task's schedule reaches {float(have):.6g}: set sde (and its constants) to the SDE of "
                      "task.precond (vp → vpsde, subvp → subvpsde, ve → vesde) with the same constants.")
  out = bpd_lib.score_sde_nll(fns["denoise"], spec, batches, key, num_repeats=num_repeats,
                              limit=limit or None, progress=False, rtol=rtol, atol=atol)
  return {k: float(out[k]) for k in ("bpd", "bpd_sem", "num_images", "num_repeats")}
